//! Namespace well-formedness (Namespaces in XML 1.0) of one top-level element in the
//! context of its stream header's declarations, at every depth: prefixes bound,
//! qualified names well-formed, no reserved prefix or namespace misused, no two
//! attributes with the same expanded name.
//!
//! Off the hot path: the scanner flags the elements that could break these rules (a
//! name with a colon other than the usual `xml:lang`-style attribute, or a default
//! namespace declaration that could bind a reserved namespace, see
//! `Scanner::ns_suspect`), and only those are walked again here. Any other element is
//! namespace-well-formed by construction: without a colon no prefix is used or
//! declared, and a default declaration can only be wrong by naming a reserved URI.

use thiserror::Error;

use super::bindings::{declared, lossy, split_qname, Bindings};
use super::namespaces::Namespaces;
use super::tags::{StartTag, Tag, Tags};

/// Why an element is not namespace-well-formed. The framer reports these as
/// `not-well-formed` (RFC 6120 §4.9.3.13 names [XML-NAMES] violations explicitly).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NsError {
    #[error("undeclared namespace prefix '{0}'")]
    UnboundPrefix(String),
    #[error("'{0}' is not a qualified name")]
    BadQName(String),
    #[error("the 'xmlns' prefix is reserved for namespace declarations")]
    XmlnsPrefix,
    #[error("'{0}' binds a reserved prefix or namespace")]
    ReservedBinding(String),
    #[error(
        "prefix '{0}' is declared with an empty namespace (XML Namespaces 1.0 forbids undeclaring)"
    )]
    EmptyPrefixDecl(String),
    /// A prefixed attribute called `xmlns` (`xml:xmlns`): Namespaces in XML allows it,
    /// but parsers that misread it as a default namespace declaration exist (roxmltree
    /// does), and a stanza must not mean different things to the proxy and its peers.
    #[error("attribute '{0}' could be mistaken for a namespace declaration")]
    XmlnsLocalName(String),
    #[error("attribute '{0}' repeats the expanded name of another")]
    DuplicateAttr(String),
    #[error("malformed element")]
    Malformed,
}

/// Checks the element `bytes` (validated by the scanner) against the stream's
/// `namespaces`.
pub(crate) fn check(bytes: &[u8], namespaces: &Namespaces) -> Result<(), NsError> {
    let mut bindings = Bindings::new(Some(namespaces));
    for tag in Tags::new(bytes, 0) {
        match tag {
            Tag::Start(tag) => {
                bindings.open(bytes, &tag)?;
                check_names(bytes, &tag, &bindings)?;
                if tag.empty {
                    bindings.close();
                }
            }
            Tag::End { .. } => bindings.close(),
        }
        if bindings.depth() == 0 {
            return Ok(());
        }
    }
    // The scanner saw a complete element; re-walking it must end it.
    Err(NsError::Malformed)
}

/// The element and attribute names of the open tag `tag`, whose declarations are in
/// `bindings` already.
fn check_names(bytes: &[u8], tag: &StartTag, bindings: &Bindings<'_>) -> Result<(), NsError> {
    let (prefix, _) = split_qname(tag.name.full().of(bytes))?;
    match prefix {
        Some(b"xmlns") => return Err(NsError::XmlnsPrefix),
        Some(prefix) => drop(bindings.require(prefix)?),
        None => {}
    }
    // Expanded names of the prefixed attributes so far (unprefixed ones are in no
    // namespace, so the scanner's check of qualified names covers them).
    let mut seen: Vec<(&str, &[u8])> = Vec::new();
    for attr in tag.attrs(bytes) {
        let name = attr.name.of(bytes);
        if declared(name).is_some() {
            continue;
        }
        let (Some(prefix), local) = split_qname(name)? else {
            continue;
        };
        if local == b"xmlns" {
            return Err(NsError::XmlnsLocalName(lossy(name)));
        }
        let uri = bindings.require(prefix)?;
        if seen.contains(&(uri, local)) {
            return Err(NsError::DuplicateAttr(lossy(name)));
        }
        seen.push((uri, local));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ns::{NS_STREAMS, NS_XML};

    fn header() -> Namespaces {
        let mut ns = Namespaces::new();
        ns.declare(None, "jabber:client");
        ns.declare(Some("stream"), NS_STREAMS);
        ns.declare(Some("h"), "urn:h");
        ns
    }

    fn run(xml: &str) -> Result<(), NsError> {
        check(xml.as_bytes(), &header())
    }

    #[test]
    fn well_formed() {
        for ok in [
            "<a/>",
            "<stream:features/>",
            "<message xml:lang='en'><body xml:lang='de'>x</body></message>",
            "<a xmlns:p='urn:p'><p:b p:c='1' c='2'/></a>",
            "<a><h:b h:x='1'><c><h:d/></c></h:b></a>",
            "<a xmlns:p='urn:p' xmlns:q='urn:q' p:x='1' q:x='2'/>",
            "<a xmlns:p='urn:p'><b xmlns:p='urn:other' p:x='1'/><p:c/></a>",
            "<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:space='preserve'/>",
            "<xml:a/>",
            "<a xmlns=''><b/></a>",
            "<a><![CDATA[<p:x/>]]><b x='&lt;p:y/>'/></a>",
            "<a xmlns:p=\"urn:&amp;\"><p:b/></a>",
        ] {
            assert_eq!(run(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn not_well_formed() {
        let unbound = |p: &str| Err(NsError::UnboundPrefix(p.into()));
        let cases: Vec<(&str, Result<(), NsError>)> = vec![
            ("<p:a/>", unbound("p")),
            ("<a><b><c><p:d/></c></b></a>", unbound("p")),
            ("<a><b p:x='1'/></a>", unbound("p")),
            ("<a><b xmlns:p='urn:p'/><p:c/></a>", unbound("p")),
            ("<xmlns:a/>", Err(NsError::XmlnsPrefix)),
            ("<a><b xmlns:xmlns='urn:x'/></a>", Err(NsError::XmlnsPrefix)),
            (
                "<a><b xmlns:p=''/></a>",
                Err(NsError::EmptyPrefixDecl("p".into())),
            ),
            (
                "<a><b xmlns:xml='urn:x'/></a>",
                Err(NsError::ReservedBinding("xmlns:xml".into())),
            ),
            (
                "<a><b xmlns:p='http://www.w3.org/XML/1998/namespace'/></a>",
                Err(NsError::ReservedBinding("xmlns:p".into())),
            ),
            (
                "<a><b xmlns='http://www.w3.org/2000/xmlns/'/></a>",
                Err(NsError::ReservedBinding("xmlns".into())),
            ),
            (
                "<a><p:b:c xmlns:p='urn:p'/></a>",
                Err(NsError::BadQName("p:b:c".into())),
            ),
            ("<a><b c:='1'/></a>", Err(NsError::BadQName("c:".into()))),
            (
                "<a><b xml:1='1'/></a>",
                Err(NsError::BadQName("xml:1".into())),
            ),
            (
                "<a xmlns:p='urn:x' xmlns:q='urn:x'><b p:x='1' q:x='2'/></a>",
                Err(NsError::DuplicateAttr("q:x".into())),
            ),
            (
                "<a xmlns:p='urn:&#x78;'><b xmlns:q='urn:x' p:x='1' q:x='2'/></a>",
                Err(NsError::DuplicateAttr("q:x".into())),
            ),
            (
                "<a xmlns:p='http://www.w3.org/XML/1998/&#110;amespace'/>",
                Err(NsError::ReservedBinding("xmlns:p".into())),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(run(xml), want, "{xml}");
        }
        // The stream's own declarations: an empty one does not bind.
        let mut ns = header();
        ns.declare(Some("h"), "");
        assert_eq!(
            check(b"<h:a/>", &ns),
            Err(NsError::UnboundPrefix("h".into()))
        );
        assert_eq!(check(b"<xml:a/>", &ns), Ok(()));
        let _ = NS_XML;
    }

    #[test]
    fn whitespace_in_namespace_values_is_normalised() {
        // A literal tab or newline in an attribute value reads as a space, character
        // references are kept: these two bind the same URI.
        let xml = "<a xmlns:p='urn:a b' xmlns:q='urn:a\tb'><c p:x='1' q:x='2'/></a>";
        assert_eq!(run(xml), Err(NsError::DuplicateAttr("q:x".into())));
        let xml = "<a xmlns:p='urn:a b' xmlns:q='urn:a&#9;b'><c p:x='1' q:x='2'/></a>";
        assert_eq!(run(xml), Ok(()));
    }
}
