//! Scoped extraction for the routing code: an element inside a stanza (a delegated
//! IQ's payload, the `<message/>` inside `<privilege><forwarded>`, a roster `<item/>`)
//! or the stanza itself, as bytes that are namespace-well-formed on their own and mean
//! the same wherever they are placed.
//!
//! The declarations the element relies on but does not make itself (from the stream
//! header or from its ancestors inside the stanza) are added to its open tag, and its
//! default namespace is always made explicit. Every other byte is kept exactly as
//! received: the result is the received slice when nothing needs adding, else one
//! allocation holding the open tag's name, the added declarations and the rest.
//!
//! Also lists a stanza's elements with their expanded names, to find the ranges to
//! extract.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::bindings::{declared, lossy, split_qname, Bindings, Lookup};
use super::escape::{attr_value, escape_attr};
use super::ns::{NS_CLIENT, NS_COMPONENT, NS_SERVER};
use super::ns_check::NsError;
use super::stanza::Stanza;
use super::tags::{StartTag, Tag, Tags};

/// Why an element could not be extracted or listed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    /// The range is not exactly one element of the stanza.
    #[error("bytes {0:?} are not an element of the stanza")]
    NotAnElement(Range<usize>),
    /// The stanza is not namespace-well-formed (never for stanzas the framer yields).
    #[error(transparent)]
    Namespace(#[from] NsError),
}

/// An element of a stanza with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The whole element, open tag to end tag, within the stanza's bytes.
    pub range: Range<usize>,
    /// 0 for the stanza's top element, 1 for its children, ...
    pub depth: usize,
    pub prefix: Option<String>,
    /// Local name.
    pub name: String,
    pub ns: Option<String>,
    /// Attributes in order, namespace declarations left out.
    pub attrs: Vec<Attribute>,
}

/// An attribute with its namespace resolved and its value unescaped and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub prefix: Option<String>,
    pub name: String,
    /// `None` for unprefixed attributes, which are in no namespace.
    pub ns: Option<String>,
    pub value: String,
}

/// The stanza's elements in document order, the top element first.
pub fn elements(stanza: &Stanza) -> Result<Vec<Element>, ScopeError> {
    let bytes = stanza.bytes();
    let mut bindings = Bindings::new(Some(stanza.namespaces()));
    let mut out: Vec<Element> = Vec::new();
    // Indexes into `out` of the open elements.
    let mut open: Vec<usize> = Vec::new();
    for tag in Tags::new(bytes, 0) {
        match tag {
            Tag::Start(tag) => {
                bindings.open(bytes, &tag)?;
                out.push(resolve(bytes, &tag, &bindings, open.len())?);
                match tag.empty {
                    true => bindings.close(),
                    false => open.push(out.len() - 1),
                }
            }
            Tag::End { end, .. } => {
                bindings.close();
                if let Some(element) = open.pop().and_then(|i| out.get_mut(i)) {
                    element.range.end = end;
                }
            }
        }
        if open.is_empty() {
            break;
        }
    }
    Ok(out)
}

/// One element's names, resolved against `bindings` (which hold its declarations).
fn resolve(
    bytes: &[u8],
    tag: &StartTag,
    bindings: &Bindings<'_>,
    depth: usize,
) -> Result<Element, ScopeError> {
    let (prefix, name) = split_qname(tag.name.full().of(bytes))?;
    let ns = match prefix {
        Some(p) => Some(bindings.require(p)?),
        None => bindings.lookup(None).uri(),
    };
    let mut attrs = Vec::new();
    for attr in tag.attrs(bytes) {
        let qname = attr.name.of(bytes);
        if declared(qname).is_some() {
            continue;
        }
        let (prefix, name) = split_qname(qname)?;
        let ns = prefix.map(|p| bindings.require(p)).transpose()?;
        let value = attr_value(attr.value.of(bytes)).map_err(|_| NsError::Malformed)?;
        attrs.push(Attribute {
            prefix: prefix.map(lossy),
            name: lossy(name),
            ns: ns.map(str::to_owned),
            value: value.into_owned(),
        });
    }
    Ok(Element {
        range: tag.start..tag.end,
        depth,
        prefix: prefix.map(lossy),
        name: lossy(name),
        ns: ns.map(str::to_owned),
        attrs,
    })
}

/// The whole stanza, namespace-well-formed on its own: the stream header's
/// declarations it uses are added to its open tag (e.g. `xmlns='jabber:client'`, or an
/// `xmlns:foo` a client declared on its stream header).
pub fn extract_stanza(stanza: &Stanza) -> Result<Bytes, ScopeError> {
    extract_element(stanza, 0..stanza.len())
}

/// The element at `range` of `stanza` (the stanza's top element or any descendant),
/// namespace-well-formed on its own: the declarations in scope at the element (stream
/// header and ancestors) that it or its descendants use but it does not make itself
/// are added to its open tag, and its default namespace is made explicit (`xmlns=''`
/// when none is in scope) so it keeps its meaning inside another envelope.
pub fn extract_element(stanza: &Stanza, range: Range<usize>) -> Result<Bytes, ScopeError> {
    extract(stanza, range, Default::Explicit)
}

/// A stanza (or a stanza inside an envelope) to be sent as a stanza on another stream:
/// like [`extract_element`], except that a default namespace inherited from a stream
/// content namespace (`jabber:client`, `jabber:server`, `jabber:component:accept`)
/// is left implicit, so the stanza and the children that inherit it take the content
/// namespace of the stream it is written to (RFC 6120 §4.8.3), as a server does when
/// it routes between client, server and component streams.
pub fn extract_stanza_for_stream(
    stanza: &Stanza,
    range: Range<usize>,
) -> Result<Bytes, ScopeError> {
    extract(stanza, range, Default::ContentImplicit)
}

/// Each direct child element of the stanza's top element, to put under another
/// stanza (e.g. an IQ's payload and `<error/>`): extracted as by
/// [`extract_stanza_for_stream`], so a child in the stream's content namespace (an
/// `<error/>`, a `<body/>`) takes the content namespace of its new parent.
pub fn extract_children(stanza: &Stanza) -> Result<Vec<Bytes>, ScopeError> {
    elements(stanza)?
        .into_iter()
        .filter(|e| e.depth == 1)
        .map(|e| extract(stanza, e.range, Default::ContentImplicit))
        .collect()
}

/// How the extracted root's default namespace is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Default {
    /// Always declared (`xmlns=''` when none is in scope).
    Explicit,
    /// Left out when it is a stream content namespace.
    ContentImplicit,
}

const CONTENT_NAMESPACES: [&str; 3] = [NS_CLIENT, NS_SERVER, NS_COMPONENT];

fn extract(stanza: &Stanza, range: Range<usize>, default: Default) -> Result<Bytes, ScopeError> {
    let bytes = stanza.bytes();
    let not_element = || ScopeError::NotAnElement(range.clone());
    // The ancestors' declarations, above the stream header's.
    let mut outer = Bindings::new(Some(stanza.namespaces()));
    let mut tags = Tags::new(bytes, 0);
    let root = loop {
        match tags.next().ok_or_else(not_element)? {
            Tag::Start(tag) if tag.start == range.start => break tag,
            Tag::Start(tag) if tag.start < range.start => {
                outer.open(bytes, &tag)?;
                if tag.empty {
                    outer.close();
                }
            }
            Tag::End { start, .. } if start < range.start => outer.close(),
            _ => return Err(not_element()),
        }
        if outer.depth() == 0 {
            // Past the top element.
            return Err(not_element());
        }
    };
    let (end, free) = free_prefixes(bytes, root, &mut tags)?;
    if end != range.end {
        return Err(not_element());
    }
    outer.open(bytes, &root)?;
    let mut added: Vec<(Option<&[u8]>, String)> = Vec::new();
    let declares_default = root
        .attrs(bytes)
        .any(|a| declared(a.name.of(bytes)) == Some(None));
    if !declares_default {
        let uri = outer.lookup(None).uri().unwrap_or("");
        let implicit = default == Default::ContentImplicit && CONTENT_NAMESPACES.contains(&uri);
        if !implicit {
            added.push((None, escape(uri)));
        }
    }
    for prefix in free {
        added.push((Some(prefix), escape(outer.require(prefix)?)));
    }
    Ok(splice(bytes, range, root.attrs_start, &added))
}

/// Walks the subtree whose open tag `root` was just taken from `tags`: returns where
/// the subtree ends and the prefixes it uses without declaring them (in order of first
/// use; `xml` never counts).
fn free_prefixes<'a>(
    bytes: &'a [u8],
    root: StartTag,
    tags: &mut Tags<'a>,
) -> Result<(usize, Vec<&'a [u8]>), ScopeError> {
    let mut inner = Bindings::new(None);
    let mut free: Vec<&[u8]> = Vec::new();
    let mut tag = Tag::Start(root);
    loop {
        match tag {
            Tag::Start(start) => {
                inner.open(bytes, &start)?;
                let names = std::iter::once(start.name.full().of(bytes)).chain(
                    start
                        .attrs(bytes)
                        .map(|a| a.name.of(bytes))
                        .filter(|name| declared(name).is_none()),
                );
                for name in names {
                    if let (Some(prefix), _) = split_qname(name)? {
                        let undeclared = inner.lookup(Some(prefix)) == Lookup::Undeclared;
                        if undeclared && !free.contains(&prefix) {
                            free.push(prefix);
                        }
                    }
                }
                if start.empty {
                    inner.close();
                }
                if inner.depth() == 0 {
                    return Ok((start.end, free));
                }
            }
            Tag::End { end, .. } => {
                inner.close();
                if inner.depth() == 0 {
                    return Ok((end, free));
                }
            }
        }
        tag = tags.next().ok_or(NsError::Malformed)?;
    }
}

/// A namespace URI as an attribute value. Tab, newline and carriage return are written
/// as character references: literally they would read back as spaces.
fn escape(uri: &str) -> String {
    escape_attr(uri).into_owned()
}

/// The element at `range` with ` xmlns[:p]='uri'` for each of `added` inserted after
/// its name (which ends at `name_end`); the received slice itself if none.
fn splice(
    bytes: &Bytes,
    range: Range<usize>,
    name_end: usize,
    added: &[(Option<&[u8]>, String)],
) -> Bytes {
    if added.is_empty() {
        return bytes.slice(range);
    }
    let extra: usize = added
        .iter()
        .map(|(prefix, uri)| " xmlns:=''".len() + prefix.map_or(0, <[u8]>::len) + uri.len())
        .sum();
    let mut out = BytesMut::with_capacity(range.len() + extra);
    out.extend_from_slice(bytes.get(range.start..name_end).unwrap_or(&[]));
    for (prefix, uri) in added {
        out.extend_from_slice(b" xmlns");
        if let Some(prefix) = prefix {
            out.extend_from_slice(b":");
            out.extend_from_slice(prefix);
        }
        out.extend_from_slice(b"='");
        out.extend_from_slice(uri.as_bytes());
        out.extend_from_slice(b"'");
    }
    out.extend_from_slice(bytes.get(name_end..range.end).unwrap_or(&[]));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::xml::{Limits, Namespaces};

    fn free_of(xml: &str) -> (usize, Vec<String>) {
        let bytes = xml.as_bytes();
        let mut tags = Tags::new(bytes, 0);
        let Some(Tag::Start(root)) = tags.next() else {
            panic!("no root")
        };
        let (end, free) = free_prefixes(bytes, root, &mut tags).unwrap();
        (end, free.into_iter().map(lossy).collect())
    }

    #[test]
    fn free_prefixes_in_order_of_first_use() {
        let xml = "<a:r b:x='1' xml:lang='en'><c:d xmlns:c='urn:c'/><e:f><a:g b:y='2'/></e:f>\
                   <h xmlns:e='urn:e'><e:i/></h></a:r><after/>";
        let (end, free) = free_of(xml);
        assert_eq!(&xml[end..], "<after/>");
        assert_eq!(free, ["a", "b", "e"]);
        assert_eq!(free_of("<r/><x/>"), (4, vec![]));
        assert_eq!(
            free_of("<p:r xmlns:p='u'><p:s/></p:r>").1,
            Vec::<String>::new()
        );
    }

    #[test]
    fn splices_after_the_name_or_returns_the_slice() {
        let bytes = Bytes::from_static(b"<x><p:e a='1'/></x>");
        let added = [
            (None, "d".to_owned()),
            (Some(&b"p"[..]), "u&amp;".to_owned()),
        ];
        let out = splice(&bytes, 3..15, 7, &added);
        assert_eq!(&out[..], b"<p:e xmlns='d' xmlns:p='u&amp;' a='1'/>");
        let same = splice(&bytes, 3..15, 7, &[]);
        assert_eq!(same.as_ptr(), bytes[3..].as_ptr());
    }

    #[test]
    fn extraction_against_the_given_stream_context() {
        let mut ns = Namespaces::new();
        ns.declare(None, "jabber:client");
        ns.declare(Some("h"), "urn:h\t1");
        let xml = "<iq><q xmlns='urn:q'><h:i/></q></iq>";
        let stanza = Stanza::parse(xml.into(), Arc::new(ns), &Limits::default()).unwrap();
        let out = extract_element(&stanza, 4..31).unwrap();
        // Added right after the name, before the element's own attributes.
        assert_eq!(
            &out[..],
            b"<q xmlns:h='urn:h&#9;1' xmlns='urn:q'><h:i/></q>"
        );
        let out = extract_stanza(&stanza).unwrap();
        assert_eq!(
            &out[..],
            b"<iq xmlns='jabber:client' xmlns:h='urn:h&#9;1'><q xmlns='urn:q'><h:i/></q></iq>"
        );
        assert_eq!(
            extract_element(&stanza, 5..31),
            Err(ScopeError::NotAnElement(5..31))
        );
    }
}

#[cfg(test)]
mod content_tests {
    use std::sync::Arc;

    use super::*;
    use crate::xml::{Limits, Namespaces};

    fn on_client_stream(xml: &str) -> Stanza {
        let mut ns = Namespaces::new();
        ns.declare(None, NS_CLIENT);
        ns.declare(Some("x"), "urn:example:x");
        Stanza::parse(
            Bytes::from(xml.to_owned()),
            Arc::new(ns),
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_stanza_for_another_stream_keeps_prefixes_and_drops_the_content_namespace() {
        let s = on_client_stream("<presence><x:status/></presence>");
        let out = extract_stanza_for_stream(&s, 0..s.len()).unwrap();
        assert_eq!(
            &out[..],
            b"<presence xmlns:x='urn:example:x'><x:status/></presence>"
        );
        let explicit = extract_stanza(&s).unwrap();
        assert_eq!(
            &explicit[..],
            b"<presence xmlns='jabber:client' xmlns:x='urn:example:x'><x:status/></presence>"
        );
    }

    #[test]
    fn children_are_extracted_each_on_their_own() {
        let s = on_client_stream("<iq xmlns:p='urn:p'><p:q/><r xmlns='urn:r'><x:y/></r></iq>");
        let kids = extract_children(&s).unwrap();
        assert_eq!(
            kids,
            vec![
                Bytes::from_static(b"<p:q xmlns:p='urn:p'/>"),
                Bytes::from_static(b"<r xmlns:x='urn:example:x' xmlns='urn:r'><x:y/></r>"),
            ]
        );
    }
}
