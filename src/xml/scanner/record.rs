//! What the scanner remembers about the open tags of a top-level element and its first
//! child while passing over them anyway: names, the routing attributes and namespace
//! declarations. Head parsing then needs no second pass over the attributes.

use super::super::span::Span;
use super::Scanner;

/// Attributes the router reads on every stanza, as indexes into `TagMeta::attrs`.
/// `Xmlns` comes first: the first child records only that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// The default namespace declaration, `xmlns`.
    Xmlns = 0,
    To = 1,
    From = 2,
    Type = 3,
    Id = 4,
}

/// Multiplier of the perfect hash over the `Known` names (see `Known::index_of`).
const HASH: u64 = 0x1e2f_eb89_414c_343d;

/// The `Known` attribute names zero-padded to a little-endian word, in the hash slot
/// each occupies, with their index; empty slots hold 0, which no name's word is.
const SLOTS: [(u64, u8); 8] = {
    let names: [(&[u8], Known); 5] = [
        (b"xmlns", Known::Xmlns),
        (b"to", Known::To),
        (b"from", Known::From),
        (b"type", Known::Type),
        (b"id", Known::Id),
    ];
    let mut slots = [(0, 0); 8];
    let mut i = 0;
    while i < names.len() {
        let word = word_of(names[i].0);
        let slot = (word.wrapping_mul(HASH) >> 61) as usize;
        assert!(slots[slot].0 == 0, "the hash is perfect");
        slots[slot] = (word, names[i].1 as u8);
        i += 1;
    }
    slots
};

/// The first eight bytes of `name`, zero-padded, as a little-endian word.
#[inline]
pub(super) const fn word_of(name: &[u8]) -> u64 {
    let mut word = 0;
    let mut i = 0;
    while i < name.len() && i < 8 {
        word |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    word
}

impl Known {
    /// Index of the known attribute called `name`, whose `word_of` is `word`: one
    /// table lookup and one comparison instead of a branch per candidate.
    #[inline(always)]
    fn index_of(name: &[u8], word: u64) -> Option<usize> {
        let (key, index) = SLOTS[(word.wrapping_mul(HASH) >> 61) as usize];
        // Names hold no NUL bytes, so equal padded words mean equal names (and no
        // name's word is 0, the key of the empty slots).
        (key == word && !name.is_empty() && name.len() <= 8).then_some(usize::from(index))
    }
}

/// Facts about one open tag, recording the first `N` `Known` attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TagMeta<const N: usize> {
    /// Qualified element name.
    pub(crate) name: Span,
    /// Raw values of the `Known` attributes; `Span::ABSENT` if missing.
    attrs: [Span; N],
    /// Bit per `Known` attribute whose value holds references (needs unescaping).
    escaped: u8,
    /// Whether the tag declares any prefix (`xmlns:p`), which then needs a lookup.
    pub(crate) prefixed_decls: bool,
    /// Set when the name is known to have no prefix (false: unknown or prefixed), so
    /// heads need not look for a colon.
    pub(crate) unprefixed: bool,
}

/// The top element's tag: every `Known` attribute.
pub(crate) type TopMeta = TagMeta<5>;
/// The first child's tag: only `xmlns`, which namespace resolution needs.
pub(crate) type ChildMeta = TagMeta<1>;

impl<const N: usize> TagMeta<N> {
    pub(crate) const EMPTY: Self = TagMeta {
        name: Span::ABSENT,
        attrs: [Span::ABSENT; N],
        escaped: 0,
        prefixed_decls: false,
        unprefixed: false,
    };

    /// The raw value of `known` and whether it needs unescaping.
    pub(crate) fn get(&self, known: Known) -> Option<(Span, bool)> {
        let span = self.attrs.get(known as usize).copied()?;
        let escaped = self.escaped & (1 << known as u8) != 0;
        (!span.is_absent()).then_some((span, escaped))
    }

    /// Records an attribute of this tag; `word` is `word_of(name)`.
    #[inline]
    pub(super) fn note(&mut self, name: &[u8], word: u64, value: Span, escaped: bool) {
        const XMLNS_COLON: u64 = word_of(b"xmlns:");
        match Known::index_of(name, word) {
            Some(known) => {
                if let Some(slot) = self.attrs.get_mut(known) {
                    *slot = value;
                    self.escaped |= u8::from(escaped) << known;
                }
            }
            None => {
                self.prefixed_decls |= name.len() >= 6 && word & 0xffff_ffff_ffff == XMLNS_COLON
            }
        }
    }
}

impl Scanner {
    /// An attribute of the current start tag was completely scanned.
    #[inline]
    pub(super) fn note_attr(&mut self, data: &[u8], name: Span, value: Span, escaped: bool) {
        let name = name.of(data);
        match self.depth {
            0 if !self.expect_header => self.meta.top.note(name, word_of(name), value, escaped),
            1 if self.meta.child_count == 0 => {
                self.meta.child.note(name, word_of(name), value, escaped)
            }
            _ => {}
        }
    }

    /// The current start tag is complete; called before depth changes.
    #[inline]
    pub(super) fn note_name(&mut self) {
        match self.depth {
            0 if !self.expect_header => self.meta.top.name = self.name,
            1 if self.meta.child_count == 0 => self.meta.child.name = self.name,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_and_prefixed_declarations() {
        let value = Span::new(1, 2);
        let mut tag = TopMeta::EMPTY;
        for name in [
            &b""[..],
            b"t",
            b"tox",
            b"xml:lang",
            b"xmlns:",
            b"xmlnsa",
            b"idx",
            b"fromage",
            b"typewriter",
        ] {
            tag.note(name, word_of(name), value, true);
        }
        assert_eq!(
            tag,
            TopMeta {
                prefixed_decls: true,
                ..TopMeta::EMPTY
            }
        );
        let mut tag = TopMeta::EMPTY;
        tag.note(b"xmlns:db", word_of(b"xmlns:db"), value, false);
        assert!(tag.prefixed_decls);
        for (name, known) in [
            (&b"to"[..], Known::To),
            (b"from", Known::From),
            (b"type", Known::Type),
            (b"id", Known::Id),
            (b"xmlns", Known::Xmlns),
        ] {
            let mut tag = TopMeta::EMPTY;
            tag.note(name, word_of(name), value, known == Known::Id);
            assert_eq!(tag.get(known), Some((value, known == Known::Id)));
            let mut child = ChildMeta::EMPTY;
            child.note(name, word_of(name), value, false);
            assert_eq!(child.get(known).is_some(), known == Known::Xmlns);
        }
    }
}
