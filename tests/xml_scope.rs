//! Scoped extraction (`xml::scope`): an element taken out of a stanza carries the
//! declarations it relies on, and means the same to an independent strict parser
//! (roxmltree) as it did inside the stanza and stream.

use std::ops::Range;
use std::sync::Arc;

use stanzagate::xml::scope::{elements, Element};
use stanzagate::xml::{
    extract_element, extract_stanza, Frame, Framer, Limits, Namespaces, ScopeError, Stanza,
};

const CLIENT: &str = "<stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' xmlns:foo='urn:foo' to='example.com'>";

const COMPONENT: &str = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
xmlns='jabber:component:accept' to='pubsub.example.com'>";

/// Frames `stanza` on a stream opened by `header`.
fn frame(header: &str, stanza: &str) -> Stanza {
    let mut framer = Framer::default();
    framer.buffer_mut().extend_from_slice(header.as_bytes());
    framer.buffer_mut().extend_from_slice(stanza.as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Header(_)))));
    match framer.next_frame() {
        Ok(Some(Frame::Stanza(s))) => s,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

/// The range of the first element whose qualified name is `name`.
fn range_of(stanza: &Stanza, name: &str) -> Range<usize> {
    let bytes = stanza.bytes();
    let at = (0..bytes.len())
        .find(|&i| {
            bytes[i..].starts_with(format!("<{name}").as_bytes())
                && matches!(bytes.get(i + 1 + name.len()), Some(b' ' | b'/' | b'>'))
        })
        .unwrap_or_else(|| panic!("no <{name}>"));
    let element = elements(stanza)
        .unwrap()
        .into_iter()
        .find(|e| e.range.start == at)
        .unwrap();
    element.range
}

/// Expanded names (and attribute values) of `node` and its descendants, as roxmltree
/// reads them. roxmltree reports `xmlns=''` as the namespace `""`: that is no namespace.
fn expanded(node: roxmltree::Node<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    for n in node.descendants().filter(|n| n.is_element()) {
        out.push(format!(
            "{:?} {}",
            n.tag_name().namespace().filter(|ns| !ns.is_empty()),
            n.tag_name().name()
        ));
        for a in n.attributes() {
            out.push(format!(
                "  @{:?} {}={:?}",
                a.namespace(),
                a.name(),
                a.value()
            ));
        }
    }
    out
}

/// The stream header's declarations as attributes of a wrapper element, so roxmltree
/// reads a stanza in the context its stream gave it.
fn wrapper(namespaces: &Namespaces) -> String {
    let mut open = String::from("<w");
    for (prefix, uri) in namespaces.iter() {
        match prefix {
            Some(p) => open.push_str(&format!(" xmlns:{p}='{uri}'")),
            None => open.push_str(&format!(" xmlns='{uri}'")),
        }
    }
    open + ">"
}

/// Extracts `range` and checks it against roxmltree: standalone, it parses and has the
/// expanded names the element had inside the stanza and stream. Returns it.
fn check_extract(stanza: &Stanza, range: Range<usize>) -> String {
    let out = extract_element(stanza, range.clone()).unwrap();
    let text = std::str::from_utf8(&out).unwrap().to_owned();
    let alone = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("extracted {text:?} does not parse: {e}"));
    let open = wrapper(stanza.namespaces());
    let original = format!("{open}{}</w>", std::str::from_utf8(stanza.bytes()).unwrap());
    let doc = roxmltree::Document::parse(&original).unwrap();
    let node = doc
        .descendants()
        .find(|n| n.is_element() && n.range().start == open.len() + range.start)
        .unwrap();
    assert_eq!(node.range().end, open.len() + range.end);
    assert_eq!(expanded(alone.root_element()), expanded(node), "{text}");
    // Only the open tag changed: what follows the name is kept byte for byte.
    let bytes = stanza.bytes();
    let name_len = text[1..].find([' ', '/', '>']).unwrap();
    assert_eq!(
        &text.as_bytes()[..1 + name_len],
        &bytes[range.start..range.start + 1 + name_len]
    );
    let rest = &bytes[range.start + 1 + name_len..range.end];
    assert!(text.as_bytes().ends_with(rest), "{text}");
    text
}

#[test]
fn prefix_declared_on_the_stream_header_and_used_deep_inside() {
    let s = frame(
        CLIENT,
        "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b'>\
         <group>g</group><foo:x><foo:y foo:z='1'/></foo:x></item></query></iq>",
    );
    let out = check_extract(&s, range_of(&s, "item"));
    assert!(
        out.starts_with("<item xmlns='jabber:iq:roster' xmlns:foo='urn:foo' jid='a@b'>"),
        "{out}"
    );
}

#[test]
fn prefix_declared_on_an_ancestor() {
    let s = frame(
        CLIENT,
        "<message to='r@e' xmlns:x='jabber:x:data'><body>hi</body>\
         <x:x type='form'><x:field var='a'/></x:x></message>",
    );
    let out = check_extract(&s, range_of(&s, "x:x"));
    assert_eq!(
        out,
        "<x:x xmlns='jabber:client' xmlns:x='jabber:x:data' type='form'><x:field var='a'/></x:x>"
    );
}

#[test]
fn default_namespace_inherited_from_the_stanza() {
    let s = frame(
        COMPONENT,
        "<iq xmlns='jabber:server' type='get' id='p'><ping/></iq>",
    );
    assert_eq!(
        check_extract(&s, range_of(&s, "ping")),
        "<ping xmlns='jabber:server'/>"
    );
    // And from the stream header.
    let s = frame(COMPONENT, "<iq type='get' id='p'><ping/></iq>");
    let out = check_extract(&s, range_of(&s, "ping"));
    assert_eq!(out, "<ping xmlns='jabber:component:accept'/>");
}

#[test]
fn no_default_namespace_in_scope_is_made_explicit_too() {
    let s = Stanza::parse(
        "<a><b><c/></b></a>".into(),
        Arc::new(Namespaces::new()),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(check_extract(&s, range_of(&s, "b")), "<b xmlns=''><c/></b>");
    let s = frame(CLIENT, "<message xmlns=''><b/></message>");
    assert_eq!(check_extract(&s, range_of(&s, "b")), "<b xmlns=''/>");
}

#[test]
fn attribute_only_prefix_use() {
    let s = frame(
        CLIENT,
        "<message xmlns:p='urn:p'><thing p:attr='1' plain='2'/></message>",
    );
    let out = check_extract(&s, range_of(&s, "thing"));
    assert_eq!(
        out,
        "<thing xmlns='jabber:client' xmlns:p='urn:p' p:attr='1' plain='2'/>"
    );
}

#[test]
fn only_bindings_visible_at_the_root_matter() {
    // The nearer declaration shadows the outer one.
    let s = frame(
        CLIENT,
        "<a xmlns:p='urn:1'><b xmlns:p='urn:2'><c><p:d/></c></b></a>",
    );
    let out = check_extract(&s, range_of(&s, "c"));
    assert_eq!(out, "<c xmlns='jabber:client' xmlns:p='urn:2'><p:d/></c>");
    // Declared by the root itself: nothing to add for `p`.
    let s = frame(
        CLIENT,
        "<a xmlns:p='urn:1'><b><c xmlns:p='urn:3'><p:d/></c></b></a>",
    );
    let out = check_extract(&s, range_of(&s, "c"));
    assert_eq!(out, "<c xmlns='jabber:client' xmlns:p='urn:3'><p:d/></c>");
    // Used above a redeclaration inside the subtree: the outer binding is needed for
    // that use, the inner one still holds below it.
    let s = frame(
        CLIENT,
        "<a xmlns:p='urn:1'><c><p:x/><d xmlns:p='urn:2'><p:y/></d></c></a>",
    );
    let out = check_extract(&s, range_of(&s, "c"));
    assert!(
        out.starts_with("<c xmlns='jabber:client' xmlns:p='urn:1'>"),
        "{out}"
    );
    // Declared only inside the subtree: never added from outside.
    let s = frame(
        CLIENT,
        "<a xmlns:p='urn:1'><c><d xmlns:p='urn:2'><p:y/></d></c></a>",
    );
    let out = check_extract(&s, range_of(&s, "c"));
    assert!(out.starts_with("<c xmlns='jabber:client'>"), "{out}");
    // A default namespace redeclared below the root keeps its own meaning.
    let s = frame(
        CLIENT,
        "<a xmlns='urn:a'><b><c xmlns='urn:c'><d/></c><e/></b></a>",
    );
    let out = check_extract(&s, range_of(&s, "b"));
    assert_eq!(out, "<b xmlns='urn:a'><c xmlns='urn:c'><d/></c><e/></b>");
}

#[test]
fn the_xml_prefix_is_never_declared() {
    let s = frame(CLIENT, "<message><body xml:lang='en'>hi</body></message>");
    let out = check_extract(&s, range_of(&s, "body"));
    assert_eq!(out, "<body xmlns='jabber:client' xml:lang='en'>hi</body>");
}

#[test]
fn nothing_to_add_returns_the_received_slice() {
    let s = frame(
        CLIENT,
        "<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>",
    );
    let range = range_of(&s, "query");
    let out = extract_element(&s, range.clone()).unwrap();
    assert_eq!(
        out.as_ptr(),
        s.bytes()[range.clone()].as_ptr(),
        "not copied"
    );
    assert_eq!(&out[..], &s.bytes()[range]);
}

#[test]
fn uris_are_escaped_when_added() {
    let s = frame(
        CLIENT,
        "<a xmlns:p=\"urn:a'b&amp;c&#9;d\" xmlns='urn:&lt;x&gt;'><b p:x='1'/></a>",
    );
    let out = check_extract(&s, range_of(&s, "b"));
    assert_eq!(
        out,
        "<b xmlns='urn:&lt;x&gt;' xmlns:p='urn:a&apos;b&amp;c&#9;d' p:x='1'/>"
    );
}

#[test]
fn whole_stanza_gets_the_stream_header_declarations_it_uses() {
    let s = frame(
        CLIENT,
        "<message to='x@y' id='1'><body>hi</body><foo:bar/></message>",
    );
    let out = extract_stanza(&s).unwrap();
    assert_eq!(
        &out[..],
        b"<message xmlns='jabber:client' xmlns:foo='urn:foo' to='x@y' id='1'>\
<body>hi</body><foo:bar/></message>"
    );
    assert_eq!(check_extract(&s, 0..s.len()).as_bytes(), &out[..]);
    // The stream prefix, used by the element itself.
    let s = frame(
        CLIENT,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    );
    let out = check_extract(&s, 0..s.len());
    assert!(out.starts_with("<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"), "{out}");
    // A stanza declaring its own default namespace and using no prefix is returned as is.
    let s = frame(CLIENT, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(extract_stanza(&s).unwrap().as_ptr(), s.bytes().as_ptr());
    // The result frames on its own, in no stream context.
    let s = frame(CLIENT, "<message><foo:bar foo:a='1'/></message>");
    let alone = Stanza::standalone(extract_stanza(&s).unwrap()).unwrap();
    assert_eq!(alone.head().unwrap().ns(), Some("jabber:client"));
    assert_eq!(alone.head().unwrap().child().unwrap().ns(), Some("urn:foo"));
}

#[test]
fn ranges_that_are_not_elements_are_refused() {
    let s = frame(CLIENT, "<message id='1'><body>hi</body><x/></message>");
    let body = range_of(&s, "body");
    let len = s.len();
    let bad = [
        body.start + 1..body.end,
        body.start..body.end - 1,
        body.start..body.end + 1,
        body.start..len,
        body.start + 6..body.start + 8,
        body.end - 7..body.end,
        len - 10..len,
        0..len - 1,
        len..len + 5,
        200..300,
        body.end..body.start,
    ];
    for range in bad {
        assert_eq!(
            extract_element(&s, range.clone()),
            Err(ScopeError::NotAnElement(range.clone())),
            "{range:?}"
        );
    }
    assert!(extract_element(&s, body).is_ok());
}

#[test]
fn elements_are_listed_with_ranges_and_expanded_names() {
    let s = frame(
        CLIENT,
        "<message xmlns:x='urn:x' to='a'><x:y x:k='v&amp;w' k='\t'><z/></x:y><foo:q/></message>",
    );
    let list = elements(&s).unwrap();
    let summary: Vec<_> = list
        .iter()
        .map(|e: &Element| {
            (
                e.depth,
                e.prefix.as_deref(),
                e.name.as_str(),
                e.ns.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, None, "message", Some("jabber:client")),
            (1, Some("x"), "y", Some("urn:x")),
            (2, None, "z", Some("jabber:client")),
            (1, Some("foo"), "q", Some("urn:foo")),
        ]
    );
    assert_eq!(list[0].range, 0..s.len());
    assert_eq!(
        &s.bytes()[list[1].range.clone()],
        b"<x:y x:k='v&amp;w' k='\t'><z/></x:y>"
    );
    assert_eq!(&s.bytes()[list[3].range.clone()], b"<foo:q/>");
    let attrs: Vec<_> = list[1]
        .attrs
        .iter()
        .map(|a| {
            (
                a.prefix.as_deref(),
                a.name.as_str(),
                a.ns.as_deref(),
                a.value.as_str(),
            )
        })
        .collect();
    assert_eq!(
        attrs,
        vec![
            (Some("x"), "k", Some("urn:x"), "v&w"),
            (None, "k", None, " ")
        ]
    );
    assert_eq!(list[0].attrs.len(), 1, "declarations are not attributes");
}

#[test]
fn every_element_of_realistic_stanzas_extracts_faithfully() {
    let stanzas = [
        (CLIENT, "<iq type='set' id='d1' to='example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<publish node='urn:xmpp:avatar:data'><item id='abc'><data xmlns='urn:xmpp:avatar:data'>iVBO</data>\
</item></publish></pubsub></iq>"),
        (COMPONENT, "<message from='pubsub.example.com' to='example.com'>\
<privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'>\
<message xmlns='jabber:client' from='juliet@example.com' to='romeo@example.net' xml:lang='en'>\
<body>hi</body><foo xmlns:e='urn:e' e:a='1'><e:b/></foo></message></forwarded></privilege></message>"),
        (CLIENT, "<iq type='result' id='r'><query xmlns='jabber:iq:roster' ver='v1'>\
<item jid='a@b' name='A' subscription='both'><group>Friends</group></item>\
<item jid='c@d' foo:note='x'/></query></iq>"),
        (CLIENT, "<message xmlns:x='jabber:x:data'><x:x type='submit'><x:field var='FORM_TYPE' type='hidden'>\
<x:value>urn:x</x:value></x:field><field xmlns='jabber:x:data' var='b'/></x:x>\
<stream:error/><![CDATA[<not:an element='1'/>]]></message>"),
    ];
    for (header, text) in stanzas {
        let s = frame(header, text);
        let list = elements(&s).unwrap();
        assert!(list.len() > 3);
        for element in list {
            check_extract(&s, element.range);
        }
    }
}
