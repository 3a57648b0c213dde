//! Shared by the differential targets: the stream context the fuzzer picks, framing
//! with stream restarts, and the strict parser's view of a stanza.
//!
//! The strict parser is roxmltree: it is namespace-aware and strict where the framer
//! must be (unbound prefixes, duplicate expanded attribute names, reserved prefixes and
//! namespaces, `]]>` in text, characters outside XML's `Char` and name productions),
//! reports the byte range of every element so frame boundaries can be compared, is
//! widely used and maintained, and has no code in common with the framer. xml-rs was
//! the other candidate; it reports positions as line and column only.
//!
//! Known differences, where the framer is stricter or roxmltree deviates from
//! Namespaces in XML, are accounted for here and nowhere else:
//! - roxmltree accepts `xmlns:p=''` (an XML Namespaces 1.1 undeclaration); the framer
//!   refuses it, as 1.0 requires.
//! - roxmltree does not bind the `xml` prefix for element names (only attributes);
//!   the framer does, as the specification says. Such stanzas are not compared.
//! - roxmltree reports `xmlns=''` as the namespace `""`; both mean no namespace.

#![allow(dead_code)]

use stanzagate::xml::scope::Element;
use stanzagate::xml::{escape_attr, Frame, Framer, Limits, Namespaces, Stanza};

/// Stream headers the fuzzer chooses from with the first input byte, so it does not
/// have to discover them; the last choice takes the header from the input itself.
const HEADERS: &[&str] = &[
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
     to='example.com' version='1.0' xml:lang='en'>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns='jabber:component:accept' to='pubsub.example.com'>",
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns:db='jabber:server:dialback' to='example.net' version='1.0'>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns:foo='urn:foo' xmlns:x='jabber:x:data' to='example.com' version='1.0'>",
    "<stream xmlns='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
    "",
];

/// The input as a stream: the chosen header, then the rest of the bytes.
pub fn stream(data: &[u8]) -> Option<Vec<u8>> {
    let (&choice, body) = data.split_first()?;
    let header = HEADERS[usize::from(choice) % HEADERS.len()];
    Some([header.as_bytes(), body].concat())
}

/// Frames `input` in one piece, handing every stanza to `check` with the declarations
/// of its stream header; restarts after `<success/>` and `<proceed/>` as a session
/// would. Stops at the first error: the framer may refuse more than roxmltree.
pub fn for_each_stanza(input: &[u8], mut check: impl FnMut(&Stanza)) {
    let mut framer = Framer::new(Limits::default());
    framer.buffer_mut().extend_from_slice(input);
    while let Ok(Some(frame)) = framer.next_frame() {
        if let Frame::Stanza(stanza) = frame {
            check(&stanza);
            if matches!(stanza.head().map(|h| h.name()), Ok("success" | "proceed")) {
                framer.restart();
            }
        }
    }
}

/// The stream header's declarations as a wrapper element's open tag.
pub fn wrapper(namespaces: &Namespaces) -> String {
    let mut open = String::from("<w");
    for (prefix, uri) in namespaces.iter() {
        let uri = escape_attr(uri);
        match prefix {
            Some(p) => open.push_str(&format!(" xmlns:{p}='{uri}'")),
            None => open.push_str(&format!(" xmlns='{uri}'")),
        }
    }
    open + ">"
}

/// Whether roxmltree's refusal is one of the known differences (see the module doc).
pub fn known_difference(error: &roxmltree::Error) -> bool {
    matches!(error, roxmltree::Error::UnknownNamespace(prefix, _) if prefix == "xml")
}

/// An element as compared: offset, namespace, local name, attributes.
pub type Compared = (usize, Option<String>, String, Vec<(Option<String>, String, String)>);

/// roxmltree's view of `node` and its descendants, offsets relative to `base`.
pub fn strict_elements(node: roxmltree::Node<'_, '_>, base: usize) -> Vec<Compared> {
    node.descendants()
        .filter(|n| n.is_element())
        .map(|n| {
            let attrs = n
                .attributes()
                .map(|a| {
                    (a.namespace().map(str::to_owned), a.name().to_owned(), a.value().to_owned())
                })
                .collect();
            let ns = n.tag_name().namespace().filter(|ns| !ns.is_empty());
            let offset = n.range().start.wrapping_sub(base);
            (offset, ns.map(str::to_owned), n.tag_name().name().to_owned(), attrs)
        })
        .collect()
}

/// The framer's view (`xml::scope::elements`) of a stanza's elements, in the same form.
pub fn our_elements(elements: &[Element], base: usize) -> Vec<Compared> {
    elements
        .iter()
        .map(|e| {
            let attrs = e
                .attrs
                .iter()
                .map(|a| (a.ns.clone(), a.name.clone(), a.value.clone()))
                .collect();
            (e.range.start.wrapping_sub(base), e.ns.clone(), e.name.clone(), attrs)
        })
        .collect()
}
