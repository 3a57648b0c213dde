//! Re-reading an open tag the scanner already validated: its qualified name and its
//! attributes as spans. Allocation-free; on bytes that were not validated it never
//! panics, it just stops early.

use memchr::memchr;

use super::chars::{self, NAME, WS};
use super::span::Span;

/// A qualified name split at its first colon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QName {
    pub(crate) prefix: Option<Span>,
    pub(crate) local: Span,
}

impl QName {
    /// The whole `prefix:local` name.
    pub(crate) fn full(&self) -> Span {
        let start = self.prefix.map_or(self.local.start, |p| p.start);
        Span {
            start,
            end: self.local.end,
        }
    }
}

/// Parses the name of the tag whose `<` is at `start`; returns it and the offset just
/// past the name (where the attributes begin).
pub(crate) fn tag_name(bytes: &[u8], start: usize) -> Option<(QName, usize)> {
    if bytes.get(start) != Some(&b'<') {
        return None;
    }
    let name_start = start + 1;
    let name_end = name_start + chars::run(bytes.get(name_start..)?, NAME);
    let name = bytes.get(name_start..name_end)?;
    if name.is_empty() {
        return None;
    }
    Some((split_qname(name, name_start), name_end))
}

/// Splits the qualified name at `span` of `bytes`.
#[inline]
pub(crate) fn qname(bytes: &[u8], span: Span) -> QName {
    let name = span.of(bytes);
    let base = span.start as usize;
    // Names of up to eight bytes (nearly all) are searched for the colon in one word,
    // read from `bytes` since something always follows a name inside an element.
    let word = bytes
        .get(base..base + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map(u64::from_le_bytes);
    match word {
        Some(word) if !name.is_empty() && name.len() <= 8 => {
            const LO: u64 = 0x0101_0101_0101_0101;
            let x = word ^ (LO * u64::from(b':'));
            // High bit set in each byte equal to ':' (exact for the lowest one).
            let colons = x.wrapping_sub(LO) & !x & (LO << 7);
            let colons = colons & (u64::MAX >> (64 - 8 * name.len()));
            split_at(
                name,
                base,
                (colons != 0).then(|| (colons.trailing_zeros() / 8) as usize),
            )
        }
        _ => split_qname(name, base),
    }
}

fn split_qname(name: &[u8], base: usize) -> QName {
    // Names are short: a plain loop beats a memchr call.
    split_at(name, base, name.iter().position(|&b| b == b':'))
}

#[inline]
fn split_at(name: &[u8], base: usize, colon: Option<usize>) -> QName {
    match colon {
        Some(colon) => QName {
            prefix: Some(Span::new(base, base + colon)),
            local: Span::new(base + colon + 1, base + name.len()),
        },
        None => QName {
            prefix: None,
            local: Span::new(base, base + name.len()),
        },
    }
}

/// One attribute: its (qualified) name and its raw, still escaped value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// Iterates the attributes of an open tag, starting just past the element name.
#[derive(Clone, Debug)]
pub(crate) struct Attrs<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Attrs { bytes, pos }
    }

    /// Where reading stopped: once exhausted on a validated tag, at its `>` or `/>`.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    fn skip(&mut self, class: u8) -> usize {
        let n = chars::run(self.bytes.get(self.pos..).unwrap_or(&[]), class);
        self.pos += n;
        n
    }

    fn eat(&mut self, want: impl Fn(u8) -> bool) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        want(b).then_some(b)
    }
}

impl Iterator for Attrs<'_> {
    type Item = Attr;

    fn next(&mut self) -> Option<Attr> {
        self.skip(WS);
        let name_start = self.pos;
        if self.skip(NAME) == 0 {
            return None;
        }
        let name = Span::new(name_start, self.pos);
        self.skip(WS);
        self.eat(|b| b == b'=')?;
        self.skip(WS);
        let quote = self.eat(|b| b == b'\'' || b == b'"')?;
        let len = memchr(quote, self.bytes.get(self.pos..)?)?;
        let value = Span::new(self.pos, self.pos + len);
        self.pos += len + 1;
        Some(Attr { name, value })
    }
}

/// True if the attribute `name` declares the namespace of `prefix` (`None`: default).
pub(crate) fn declares(name: &[u8], prefix: Option<&[u8]>) -> bool {
    match prefix {
        None => name == b"xmlns",
        Some(p) => name.strip_prefix(b"xmlns:") == Some(p),
    }
}

/// The raw value of the declaration of `prefix` among the attributes at `attrs_start`.
pub(crate) fn find_decl(bytes: &[u8], attrs_start: usize, prefix: Option<&[u8]>) -> Option<Span> {
    Attrs::new(bytes, attrs_start)
        .find(|a| declares(a.name.of(bytes), prefix))
        .map(|a| a.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_attrs() {
        let tag = br#"<stream:features a='1' b = "x>'y" c=''/>"#;
        let (name, end) = tag_name(tag, 0).unwrap();
        assert_eq!(name.prefix.unwrap().of(tag), b"stream");
        assert_eq!(name.local.of(tag), b"features");
        let attrs: Vec<_> = Attrs::new(tag, end)
            .map(|a| (a.name.of(tag), a.value.of(tag)))
            .collect();
        let want: Vec<(&[u8], &[u8])> = vec![(b"a", b"1"), (b"b", b"x>'y"), (b"c", b"")];
        assert_eq!(attrs, want);
    }

    #[test]
    fn qualified_names_split_at_the_first_colon() {
        let bytes = b"<stream:features><a:b:c/><x/><abcdefgh:i/><abcdefgh></abcdefgh>";
        for (start, end, prefix, local) in [
            (1, 16, Some(&b"stream"[..]), &b"features"[..]),
            (18, 23, Some(b"a"), b"b:c"),
            (26, 27, None, b"x"),
            (30, 40, Some(b"abcdefgh"), b"i"),
            (43, 51, None, b"abcdefgh"),
            (54, 62, None, b"abcdefgh"),
        ] {
            let name = qname(bytes, Span::new(start, end));
            assert_eq!(name.prefix.map(|p| p.of(bytes)), prefix);
            assert_eq!(name.local.of(bytes), local);
        }
        // Too close to the end for a word: the plain loop.
        let name = qname(b"<ab:c", Span::new(1, 5));
        assert_eq!(name.prefix, Some(Span::new(1, 3)));
        assert_eq!(name.local, Span::new(4, 5));
    }

    #[test]
    fn garbage_stops_early() {
        assert!(tag_name(b"x", 0).is_none());
        assert!(tag_name(b"<", 0).is_none());
        assert_eq!(Attrs::new(b"<a b='unterminated", 2).count(), 0);
        assert_eq!(Attrs::new(b"<a b=c>", 2).count(), 0);
    }

    #[test]
    fn declarations() {
        assert!(declares(b"xmlns", None));
        assert!(declares(b"xmlns:db", Some(b"db")));
        assert!(!declares(b"xmlns:db", None));
        assert!(!declares(b"xmlns:dbx", Some(b"db")));
    }
}
