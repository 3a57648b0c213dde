//! Differential fuzz target: the framer against an independent strict, namespace-aware
//! parser (roxmltree, see `strict.rs`). Whenever the framer yields a stanza, roxmltree
//! must accept it in the context of the stream header's declarations, see exactly one
//! element spanning the same bytes, and agree on every element's local name and
//! namespace and every attribute's name, namespace and value; the stanza head must
//! agree on the top element and first child. The framer may refuse more (RFC 6120
//! restrictions, limits, the differences listed in `strict.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stanzagate::xml::scope::elements;
use stanzagate::xml::Stanza;

#[path = "strict.rs"]
mod strict;

fn check(stanza: &Stanza) {
    let text = std::str::from_utf8(stanza.bytes()).expect("stanzas are UTF-8");
    let open = strict::wrapper(stanza.namespaces());
    // A header whose declarations roxmltree refuses gives no context to compare in.
    if roxmltree::Document::parse(&format!("{open}</w>")).is_err() {
        return;
    }
    let doc = format!("{open}{text}</w>");
    let parsed = match roxmltree::Document::parse(&doc) {
        Ok(parsed) => parsed,
        Err(e) if strict::known_difference(&e) => return,
        Err(e) => panic!("framed {text:?} but roxmltree refuses it: {e}"),
    };
    let mut children = parsed.root_element().children();
    let top = children.next().expect("one child");
    assert!(children.next().is_none(), "more than one node in {text:?}");
    assert!(top.is_element(), "not an element: {text:?}");
    assert_eq!(top.range(), open.len()..open.len() + text.len(), "boundaries of {text:?}");

    let ours = elements(stanza).expect("framed stanzas resolve");
    let theirs = strict::strict_elements(top, open.len());
    assert_eq!(strict::our_elements(&ours, 0), theirs, "names and namespaces of {text:?}");

    let head = stanza.head().expect("framed stanzas have heads");
    assert_eq!(head.name(), ours[0].name);
    // Heads read namespace values raw; a literal tab or newline in one (never a valid
    // URI) is normalised only by the full resolution above.
    if !text.contains(['\t', '\n', '\r']) {
        assert_eq!(head.ns(), ours[0].ns.as_deref(), "top namespace of {text:?}");
        if let Some(child) = head.child() {
            let first = ours.iter().find(|e| e.depth == 1).expect("a child");
            assert_eq!(child.name(), first.name);
            assert_eq!(child.ns(), first.ns.as_deref(), "child namespace of {text:?}");
            assert_eq!(child.range(), first.range);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(input) = strict::stream(data) {
        strict::for_each_stanza(&input, check);
    }
});
