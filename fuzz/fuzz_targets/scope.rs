//! Fuzz target for scoped extraction (`xml::scope`): every element of every stanza the
//! framer yields, extracted, must parse on its own with roxmltree (see `strict.rs`) and
//! have the expanded names it had inside the stanza and stream; it must also frame on
//! its own with the proxy's `Stanza::standalone`, and keep every byte after its name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stanzagate::xml::scope::elements;
use stanzagate::xml::{extract_element, extract_stanza, Stanza};

#[path = "strict.rs"]
mod strict;

/// Extractions per stanza: each one re-walks the stanza from its start.
const MAX_ELEMENTS: usize = 48;

fn check(stanza: &Stanza) {
    let bytes = stanza.bytes();
    let text = std::str::from_utf8(bytes).expect("stanzas are UTF-8");
    let open = strict::wrapper(stanza.namespaces());
    let doc = format!("{open}{text}</w>");
    let Ok(context) = roxmltree::Document::parse(&doc) else {
        // framer_diff covers disagreements; here only comparable stanzas count.
        return;
    };
    let list = elements(stanza).expect("framed stanzas resolve");
    assert_eq!(
        extract_stanza(stanza).expect("the whole stanza extracts"),
        extract_element(stanza, 0..bytes.len()).expect("the top element extracts")
    );
    for element in list.iter().take(MAX_ELEMENTS) {
        let range = element.range.clone();
        let out = extract_element(stanza, range.clone()).expect("elements extract");
        let alone_text = std::str::from_utf8(&out).expect("UTF-8");
        let alone = match roxmltree::Document::parse(alone_text) {
            Ok(alone) => alone,
            Err(e) if strict::known_difference(&e) => continue,
            Err(e) => panic!("extracted {alone_text:?} from {text:?} does not parse: {e}"),
        };
        let node = context
            .descendants()
            .find(|n| n.is_element() && n.range().start == open.len() + range.start)
            .expect("the element is there");
        let inside: Vec<_> = strict::strict_elements(node, node.range().start)
            .into_iter()
            .map(|(_, ns, name, attrs)| (ns, name, attrs))
            .collect();
        let outside: Vec<_> = strict::strict_elements(alone.root_element(), 0)
            .into_iter()
            .map(|(_, ns, name, attrs)| (ns, name, attrs))
            .collect();
        assert_eq!(inside, outside, "{alone_text:?} out of {text:?}");
        // Every byte after the element's name is kept.
        let name_end = range.start + 1 + element.prefix.as_ref().map_or(0, |p| p.len() + 1)
            + element.name.len();
        assert!(out.ends_with(&bytes[name_end..range.end]), "{alone_text:?}");
        assert_eq!(out[..name_end - range.start], bytes[range.start..name_end]);
        // The proxy's own framer takes it back, within its limits.
        if let Err(e) = Stanza::standalone(out.clone()) {
            assert_eq!(e.condition(), "policy-violation", "{alone_text:?}: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(input) = strict::stream(data) {
        strict::for_each_stanza(&input, check);
    }
});
