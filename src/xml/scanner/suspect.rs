//! Which top-level elements need the namespace check (`ns_check`), decided while their
//! names go by from what the scanner learns anyway, so ordinary stanzas never pay for
//! a second walk.
//!
//! An element needs it when a name in it, at any depth, holds a colon (a prefix is
//! used or declared), `xml:lang`-style attributes excepted since the `xml` prefix is
//! always bound; or when it declares a default namespace whose value could be one of
//! the two reserved namespaces (it holds references, or has the length of one). Without
//! either, an element cannot break namespace well-formedness: it uses no prefix, and a
//! default namespace declaration can only be wrong by naming a reserved namespace.

use super::super::chars::{is, NAME_ASCII, NAME_START_ASCII};
use super::super::ns::{NS_XML, NS_XMLNS};
use super::Scanner;

impl Scanner {
    /// Whether the element scanned since the last frame needs the namespace check.
    #[inline(always)]
    pub(crate) fn ns_suspect(&self) -> bool {
        self.ns_suspect
    }

    /// Flags the element as needing the check if `suspect`.
    #[inline(always)]
    pub(super) fn note_suspect(&mut self, suspect: bool) {
        self.ns_suspect |= suspect;
    }

    /// An element name was scanned; `colon` if it holds one.
    #[inline(always)]
    pub(super) fn note_element_name(&mut self, colon: bool) {
        self.ns_suspect |= colon;
    }

    /// An attribute was scanned: its name, whether that holds a colon, its raw value's
    /// length and whether the value holds references.
    #[inline(always)]
    pub(super) fn note_attr_name(
        &mut self,
        name: &[u8],
        colon: bool,
        value_len: usize,
        escaped: bool,
    ) {
        if colon || escaped || value_len == NS_XML.len() || value_len == NS_XMLNS.len() {
            self.ns_suspect |= suspect_attr(name, colon);
        }
    }
}

/// The fast path's `note_attr_name`, for an attribute of `name_len` ASCII bytes at
/// `pos`: cheap enough for every attribute (no call, no store, `xml:lang` the only
/// prefixed name told apart) and conservative: it may flag an attribute that is fine
/// (any other `xml:` attribute, a five-letter name with a value of a reserved
/// namespace's length), which only costs that element a namespace check.
#[inline(always)]
pub(super) fn attr_may_be_suspect(
    data: &[u8],
    pos: usize,
    name_len: usize,
    colon: bool,
    value_len: usize,
    escaped: bool,
) -> bool {
    maybe_default_decl(name_len, value_len, escaped) | (colon && !is_xml_lang(data, pos, name_len))
}

/// Whether an attribute with a name of `name_len` bytes and such a value could be a
/// default namespace declaration naming a reserved namespace.
#[inline(always)]
pub(super) fn maybe_default_decl(name_len: usize, value_len: usize, escaped: bool) -> bool {
    let reserved_len = (value_len == NS_XML.len()) | (value_len == NS_XMLNS.len());
    (name_len == b"xmlns".len()) & (escaped | reserved_len)
}

/// Whether the name of `name_len` bytes at `pos` is `xml:lang`, by far the most common
/// prefixed attribute.
#[inline(always)]
pub(super) fn is_xml_lang(data: &[u8], pos: usize, name_len: usize) -> bool {
    name_len == 8 && data.get(pos..pos + 8) == Some(b"xml:lang")
}

/// The rarer half of `note_attr_name`, out of line to keep the attribute loops small.
#[inline(never)]
fn suspect_attr(name: &[u8], colon: bool) -> bool {
    match colon {
        true => !plain_xml_attr(name),
        false => name == b"xmlns",
    }
}

/// `xml:` and an ASCII local name without colons (`xml:lang`, `xml:space`), other than
/// `xmlns` (see `NsError::XmlnsLocalName`): always namespace-well-formed.
fn plain_xml_attr(name: &[u8]) -> bool {
    match name.strip_prefix(b"xml:") {
        Some(b"xmlns") => false,
        Some(local @ [first, ..]) => {
            is(*first, NAME_START_ASCII) && local.iter().all(|&b| is(b, NAME_ASCII) && b != b':')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_attributes_are_suspect() {
        let suspect = |name: &str, value: &str, escaped: bool| {
            let mut scanner = Scanner::new();
            let colon = name.contains(':');
            scanner.note_attr_name(name.as_bytes(), colon, value.len(), escaped);
            scanner.ns_suspect()
        };
        assert!(!suspect("xml:lang", "en", false));
        assert!(!suspect("xml:space", "preserve", true));
        assert!(!suspect("to", NS_XML, false));
        assert!(!suspect("xmlns", "jabber:client", false));
        assert!(!suspect("id", "a&amp;b", true));
        assert!(suspect("xmlns", NS_XML, false));
        assert!(suspect("xmlns", NS_XMLNS, false));
        assert!(suspect("xmlns", "urn:&#x61;", true));
        assert!(suspect("xml:a:b", "", false));
        assert!(suspect("xml:1", "", false));
        assert!(suspect("xml:xmlns", "", false));
        assert!(!suspect("xml:xmlnsx", "", false));
        assert!(suspect("xml:", "", false));
        assert!(suspect("xml:\u{e9}", "", false));
        assert!(suspect("p:lang", "", false));
        assert!(suspect("xmlns:p", "urn:p", false));
    }

    #[test]
    fn the_fast_path_flags_at_least_as_much() {
        let cases: [(&str, &str, bool); 12] = [
            ("xml:lang", "en", false),
            ("xml:space", "preserve", false),
            ("to", NS_XML, false),
            ("xmlns", "jabber:client", false),
            ("xmlns", NS_XML, false),
            ("xmlns", NS_XMLNS, false),
            ("xmlns", "urn:&#x61;", true),
            ("xml:xmlns", "", false),
            ("p:lang", "", false),
            ("xmlns:p", "urn:p", false),
            ("label", NS_XML, false),
            ("id", "a&amp;b", true),
        ];
        for (name, value, escaped) in cases {
            let mut precise = Scanner::new();
            let colon = name.contains(':');
            precise.note_attr_name(name.as_bytes(), colon, value.len(), escaped);
            let data = format!("{name}='{value}'");
            let fast =
                attr_may_be_suspect(data.as_bytes(), 0, name.len(), colon, value.len(), escaped);
            assert!(fast || !precise.ns_suspect(), "{name}");
        }
        let fast = |name: &str| attr_may_be_suspect(name.as_bytes(), 0, name.len(), true, 2, false);
        assert!(!fast("xml:lang") && fast("xml:langs") && fast("p:a"));
    }
}
