//! Byte classification for the scanner: one 256-entry table so every hot loop costs a
//! single load and test per byte, plus the XML `Char` production for character refs and
//! the `NameStartChar` / `NameChar` productions for names with non-ASCII characters.

/// XML whitespace: space, tab, CR, LF.
pub(crate) const WS: u8 = 1;
/// May start an element or attribute name. Non-ASCII bytes are accepted here; a name
/// holding any is checked character by character once it is complete (`valid_name`).
pub(crate) const NAME_START: u8 = 2;
/// May continue a name.
pub(crate) const NAME: u8 = 4;
/// Plain character data: anything but `<`, `&` and the forbidden C0 controls.
pub(crate) const TEXT: u8 = 8;
/// Plain attribute value byte: like `TEXT` but also excluding both quote characters.
pub(crate) const VALUE: u8 = 16;
/// Plain CDATA byte: excludes `]` and `>` (the terminator) and forbidden controls.
pub(crate) const CDATA: u8 = 32;
/// ASCII subsets of `NAME_START` / `NAME`, for fast paths that leave non-ASCII names
/// (and their UTF-8 bookkeeping) to the byte-level phases.
pub(crate) const NAME_START_ASCII: u8 = 64;
pub(crate) const NAME_ASCII: u8 = 128;

static CLASS: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = classify(i as u8);
        i += 1;
    }
    table
}

const fn classify(b: u8) -> u8 {
    let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let control = b < 0x20 && !ws;
    let mut class = 0;
    if ws {
        class |= WS;
    }
    if b.is_ascii_alphabetic() || b == b'_' {
        class |= NAME_START | NAME | NAME_START_ASCII | NAME_ASCII;
    }
    if b >= 0x80 {
        class |= NAME_START | NAME;
    }
    if b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':') {
        class |= NAME | NAME_ASCII;
    }
    if !control && b != b'<' && b != b'&' {
        class |= TEXT;
        if b != b'\'' && b != b'"' {
            class |= VALUE;
        }
    }
    if !control && b != b']' && b != b'>' {
        class |= CDATA;
    }
    class
}

#[inline(always)]
pub(crate) fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

/// Length of the leading run of bytes in `class`.
#[inline(always)]
pub(crate) fn run(bytes: &[u8], class: u8) -> usize {
    bytes
        .iter()
        .position(|&b| !is(b, class))
        .unwrap_or(bytes.len())
}

/// The XML 1.0 `Char` production (what a numeric character reference may denote).
pub(crate) fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// XML 1.0 (5th edition) `NameStartChar`, without the colon: the scanner lets no name
/// start with one (Namespaces in XML forbids it, and `split_qname` relies on it).
pub(crate) fn is_name_start_char(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b < 0x80 => is(b, NAME_START_ASCII),
        _ => matches!(u32::from(c),
            0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF | 0x370..=0x37D | 0x37F..=0x1FFF
            | 0x200C..=0x200D | 0x2070..=0x218F | 0x2C00..=0x2FEF | 0x3001..=0xD7FF
            | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD | 0x10000..=0xEFFFF),
    }
}

/// XML 1.0 (5th edition) `NameChar`.
pub(crate) fn is_name_char(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b < 0x80 => is(b, NAME_ASCII),
        _ => {
            is_name_start_char(c) || matches!(u32::from(c), 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
        }
    }
}

/// Whether `name` is an XML `Name` (colon not allowed first, see
/// `is_name_start_char`). The scanner only asks for names holding non-ASCII bytes: the
/// byte table decides ASCII names exactly.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is(b' ', WS) && is(b'\t', TEXT) && !is(0x01, TEXT));
        assert!(is(b'a', NAME_START) && is(0xC3, NAME_START) && !is(b'1', NAME_START));
        assert!(is(b':', NAME) && !is(b':', NAME_START));
        assert!(is(b'a', NAME_START_ASCII) && !is(0xC3, NAME_ASCII) && is(b'9', NAME_ASCII));
        assert!(is(b'>', TEXT) && !is(b'<', TEXT) && !is(b'&', VALUE));
        assert!(is(b'"', TEXT) && !is(b'"', VALUE) && !is(b']', CDATA));
        assert_eq!(run(b"  \tx", WS), 3);
    }

    #[test]
    fn xml_chars() {
        assert!(is_xml_char(0x41) && is_xml_char(0x10FFFF) && is_xml_char(0x9));
        assert!(!is_xml_char(0) && !is_xml_char(0xD800) && !is_xml_char(0xFFFE));
        assert!(!is_xml_char(0x110000));
    }

    #[test]
    fn name_chars() {
        for ok in [
            "a",
            "_x",
            "caf\u{e9}",
            "\u{e9}t\u{e9}",
            "a\u{b7}b",
            "a\u{300}",
            "\u{10000}",
            "a-1.b",
        ] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            ".a",
            ":a",
            "\u{b7}a",
            "\u{300}a",
            "a\u{d7}",
            "a\u{f7}",
            "a\u{fffe}",
            "a\u{ffff}",
            "a\u{37e}",
            "a\u{2000}",
            "a\u{f0000}",
            "a b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        // Every ASCII byte agrees with the table the scanner uses.
        for b in 0u8..0x80 {
            assert_eq!(
                is_name_start_char(char::from(b)),
                is(b, NAME_START_ASCII),
                "{b}"
            );
            assert_eq!(is_name_char(char::from(b)), is(b, NAME_ASCII), "{b}");
        }
    }
}
