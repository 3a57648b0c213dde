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
}
