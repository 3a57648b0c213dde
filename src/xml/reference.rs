//! Incremental validation of the bytes after a `&`: predefined entities and numeric
//! character references pass, anything else is an error. Fed byte by byte so a
//! reference split across socket reads resumes exactly where it stopped.

use super::chars::{is, is_xml_char, NAME, NAME_START};
use super::error::Fault;

/// Everything above this is not a character; saturating here keeps long digit runs
/// (leading zeros are legal) from overflowing.
const CAP: u32 = 0x11_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Start,
    Name,
    Hash,
    Decimal,
    HexStart,
    Hex,
}

/// Progress through one reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    kind: Kind,
    len: u8,
    name: [u8; 4],
    value: u32,
}

impl Default for Reference {
    fn default() -> Self {
        Reference {
            kind: Kind::Start,
            len: 0,
            name: [0; 4],
            value: 0,
        }
    }
}

impl Reference {
    /// Consumes one byte; `Ok(true)` once the terminating `;` completed a valid reference.
    pub(crate) fn feed(&mut self, b: u8) -> Result<bool, Fault> {
        match self.kind {
            Kind::Start => self.start(b),
            Kind::Name => self.name(b),
            Kind::Hash => self.hash(b),
            Kind::Decimal => self.digit(b, 10),
            Kind::HexStart | Kind::Hex => self.digit(b, 16),
        }
    }

    fn start(&mut self, b: u8) -> Result<bool, Fault> {
        if b == b'#' {
            self.kind = Kind::Hash;
        } else if is(b, NAME_START) {
            self.kind = Kind::Name;
            self.push_name(b);
        } else {
            return Err(Fault::BadAmpersand);
        }
        Ok(false)
    }

    fn name(&mut self, b: u8) -> Result<bool, Fault> {
        if b == b';' {
            return match self.is_predefined() {
                true => Ok(true),
                false => Err(Fault::UndeclaredEntity),
            };
        }
        if !is(b, NAME) {
            return Err(Fault::UnterminatedReference);
        }
        self.push_name(b);
        Ok(false)
    }

    fn push_name(&mut self, b: u8) {
        if let Some(slot) = self.name.get_mut(usize::from(self.len)) {
            *slot = b;
        }
        self.len = self.len.saturating_add(1);
    }

    fn is_predefined(&self) -> bool {
        let name = self.name.get(..usize::from(self.len)).unwrap_or(&[]);
        matches!(name, b"amp" | b"lt" | b"gt" | b"quot" | b"apos")
    }

    fn hash(&mut self, b: u8) -> Result<bool, Fault> {
        if b == b'x' {
            self.kind = Kind::HexStart;
            return Ok(false);
        }
        self.kind = Kind::Decimal;
        match b {
            b';' => Err(bad_char_ref()),
            _ => self.digit(b, 10),
        }
    }

    fn digit(&mut self, b: u8, radix: u32) -> Result<bool, Fault> {
        if b == b';' && self.kind != Kind::HexStart {
            return match is_xml_char(self.value) {
                true => Ok(true),
                false => Err(bad_char_ref()),
            };
        }
        let digit = char::from(b).to_digit(radix).ok_or_else(bad_char_ref)?;
        self.value = (self.value * radix + digit).min(CAP);
        if self.kind == Kind::HexStart {
            self.kind = Kind::Hex;
        }
        Ok(false)
    }
}

/// Length of a complete predefined entity reference (`amp;`...) at the start of
/// `rest` (the bytes after `&`); `None` if it is anything else or incomplete, in which
/// case the byte-level `Reference` decides.
#[inline]
pub(crate) fn predefined_len(rest: &[u8]) -> Option<usize> {
    let n = match rest.get(..3)? {
        b"lt;" | b"gt;" => 3,
        b"amp" if rest.get(3) == Some(&b';') => 4,
        b"quo" | b"apo" => match rest.get(3..5)? {
            b"t;" if rest.starts_with(b"quot;") => 5,
            b"s;" if rest.starts_with(b"apos;") => 5,
            _ => return None,
        },
        _ => return None,
    };
    Some(n)
}

fn bad_char_ref() -> Fault {
    Fault::BadCharRef
}

#[cfg(test)]
mod tests {
    use super::super::error::FrameError;
    use super::*;

    fn check(body: &[u8]) -> Result<bool, Fault> {
        let mut r = Reference::default();
        let mut done = false;
        for &b in body {
            done = r.feed(b)?;
        }
        Ok(done)
    }

    #[test]
    fn valid() {
        for ok in [
            &b"amp;"[..],
            b"lt;",
            b"gt;",
            b"quot;",
            b"apos;",
            b"#65;",
            b"#x1F600;",
        ] {
            assert_eq!(check(ok), Ok(true), "{:?}", std::str::from_utf8(ok));
        }
        assert_eq!(check(b"#00000000000000000000065;"), Ok(true));
    }

    #[test]
    fn predefined_lengths() {
        assert_eq!(predefined_len(b"amp;x"), Some(4));
        assert_eq!(predefined_len(b"lt;"), Some(3));
        assert_eq!(predefined_len(b"quot;"), Some(5));
        assert_eq!(predefined_len(b"apos;"), Some(5));
        assert_eq!(predefined_len(b"amp"), None);
        assert_eq!(predefined_len(b"apot;"), None);
        assert_eq!(predefined_len(b"#65;"), None);
        assert_eq!(predefined_len(b"foo;"), None);
    }

    #[test]
    fn invalid() {
        let cond = |b: &[u8]| FrameError::from(check(b).unwrap_err()).condition();
        assert_eq!(cond(b"foo;"), "restricted-xml");
        assert_eq!(cond(b"ampx;"), "restricted-xml");
        assert_eq!(cond(b"amp "), "not-well-formed");
        assert_eq!(cond(b" "), "not-well-formed");
        assert_eq!(cond(b"#;"), "not-well-formed");
        assert_eq!(cond(b"#x;"), "not-well-formed");
        assert_eq!(cond(b"#0;"), "not-well-formed");
        assert_eq!(cond(b"#99999999999;"), "not-well-formed");
        assert_eq!(cond(b"#12a;"), "not-well-formed");
    }
}
