//! Stanza head parsing: names, namespace resolution against the stanza and the stream
//! header, attribute access and ranges, first child.

use std::borrow::Cow;
use std::sync::Arc;

use stanzagate::xml::ns::NS_STREAMS;
use stanzagate::xml::{Frame, Framer, Limits, Namespaces, Stanza};

const HEADER: &str = "<stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>";

/// Frames `stanza` on a client stream, as the router would see it.
fn stanza(stanza: &str) -> Stanza {
    let mut framer = Framer::default();
    framer.buffer_mut().extend_from_slice(HEADER.as_bytes());
    framer.buffer_mut().extend_from_slice(stanza.as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Header(_)))));
    match framer.next_frame() {
        Ok(Some(Frame::Stanza(s))) => s,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

#[test]
fn iq_with_query_child() {
    let s =
        stanza("<iq type='get' id='a1' to='example.org'><query xmlns='jabber:iq:roster'/></iq>");
    let h = s.head().unwrap();
    assert_eq!(h.name(), "iq");
    assert_eq!(h.prefix(), None);
    assert_eq!(h.ns(), Some("jabber:client"));
    assert_eq!(h.type_().as_deref(), Some("get"));
    assert_eq!(h.id().as_deref(), Some("a1"));
    assert_eq!(h.to().as_deref(), Some("example.org"));
    assert_eq!(h.from(), None);
    assert!(matches!(h.to(), Some(Cow::Borrowed(_))));
    assert!(!h.own_ns_declared());
    assert!(!h.is_empty_element());
    assert_eq!(h.child_count(), 1);
    let child = h.child().unwrap();
    assert_eq!(child.name(), "query");
    assert_eq!(child.ns(), Some("jabber:iq:roster"));
    assert_eq!(
        &s.bytes()[child.range()],
        b"<query xmlns='jabber:iq:roster'/>"
    );
    assert_eq!(
        &s.bytes()[h.open_tag_range()],
        b"<iq type='get' id='a1' to='example.org'>"
    );
    assert_eq!(
        &s.bytes()[h.content_range()],
        b"<query xmlns='jabber:iq:roster'/>"
    );
}

#[test]
fn prefixed_stream_features() {
    let s = stanza(
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    );
    let h = s.head().unwrap();
    assert_eq!(h.name(), "features");
    assert_eq!(h.prefix(), Some("stream"));
    assert_eq!(h.ns(), Some(NS_STREAMS));
    assert_eq!(
        h.child().unwrap().ns(),
        Some("urn:ietf:params:xml:ns:xmpp-bind")
    );
}

#[test]
fn entity_in_attribute_is_owned() {
    let s = stanza("<message to='a&amp;b' from=\"x&#64;y\"/>");
    let h = s.head().unwrap();
    assert_eq!(h.to(), Some(Cow::Owned::<str>("a&b".into())));
    assert_eq!(h.from().as_deref(), Some("x@y"));
    assert_eq!(&s.bytes()[h.attr_range("to").unwrap()], b"a&amp;b");
}

#[test]
fn sm_ack() {
    let s = stanza("<a xmlns='urn:xmpp:sm:3' h='7'/>");
    let h = s.head().unwrap();
    assert_eq!(h.name(), "a");
    assert_eq!(h.ns(), Some("urn:xmpp:sm:3"));
    assert!(h.own_ns_declared());
    assert_eq!(h.attr("h").as_deref(), Some("7"));
    assert_eq!(h.attr("x"), None);
    assert!(h.is_empty_element());
    assert_eq!(h.child_count(), 0);
    assert!(h.child().is_none());
    assert_eq!(h.content_range(), s.len()..s.len());
    assert_eq!(h.open_tag_range(), 0..s.len());
}

#[test]
fn child_prefix_declared_on_top_element() {
    let s = stanza(
        "<message xmlns:x='jabber:x:data' to='r@e'><x:x type='form'><x:field/></x:x></message>",
    );
    let h = s.head().unwrap();
    let child = h.child().unwrap();
    assert_eq!(child.name(), "x");
    assert_eq!(child.prefix(), Some("x"));
    assert_eq!(child.ns(), Some("jabber:x:data"));
    assert_eq!(child.attr("type").as_deref(), Some("form"));
    let attrs: Vec<_> = child.attrs().collect();
    assert_eq!(attrs, vec![("type", Cow::Borrowed("form"))]);
}

#[test]
fn default_ns_declared_on_top_element_applies_to_child() {
    let s = stanza("<iq xmlns='jabber:server' type='get'><ping/></iq>");
    let h = s.head().unwrap();
    assert_eq!(h.ns(), Some("jabber:server"));
    assert!(h.own_ns_declared());
    assert_eq!(h.child().unwrap().ns(), Some("jabber:server"));
}

#[test]
fn child_prefix_from_stream_header() {
    let s = stanza("<message><db:result from='a'/></message>");
    let child = s.head().unwrap().child().unwrap().clone();
    assert_eq!(child.ns(), Some("jabber:server:dialback"));
    let s = stanza("<db:verify id='1'/>");
    assert_eq!(s.head().unwrap().ns(), Some("jabber:server:dialback"));
}

#[test]
fn first_child_after_text_and_cdata() {
    let s = stanza("<message>\n  hello &amp; <![CDATA[<fake/>]]> <body>hi</body><thread>t</thread>text</message>");
    let h = s.head().unwrap();
    assert_eq!(h.child_count(), 2);
    let child = h.child().unwrap();
    assert_eq!(child.name(), "body");
    assert_eq!(&s.bytes()[child.range()], b"<body>hi</body>");
}

#[test]
fn nested_children_are_not_counted() {
    let s = stanza("<iq><a><b/><c><d/></c></a><e/></iq>");
    let h = s.head().unwrap();
    assert_eq!(h.child_count(), 2);
    assert_eq!(
        &s.bytes()[h.child().unwrap().range()],
        b"<a><b/><c><d/></c></a>"
    );
}

#[test]
fn attributes_in_order_and_xml_lang() {
    let s = stanza("<presence xml:lang='fr' id=\"p1\" type='unavailable'/>");
    let h = s.head().unwrap();
    assert_eq!(h.attr("xml:lang").as_deref(), Some("fr"));
    let names: Vec<_> = h.attrs().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["xml:lang", "id", "type"]);
    assert_eq!(h.type_().as_deref(), Some("unavailable"));
}

#[test]
fn gt_and_other_quote_inside_attribute_values() {
    let s = stanza("<message id='a>\"b' to=\"c'd\"><body/></message>");
    let h = s.head().unwrap();
    assert_eq!(h.id().as_deref(), Some("a>\"b"));
    assert_eq!(h.to().as_deref(), Some("c'd"));
    assert_eq!(h.child().unwrap().name(), "body");
}

/// Frames `stanza` on a client stream and returns the framing error.
fn framing_error(stanza: &str) -> stanzagate::xml::FrameError {
    let mut framer = Framer::default();
    framer.buffer_mut().extend_from_slice(HEADER.as_bytes());
    framer.buffer_mut().extend_from_slice(stanza.as_bytes());
    assert!(matches!(framer.next_frame(), Ok(Some(Frame::Header(_)))));
    match framer.next_frame() {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn undeclared_prefix_is_a_framing_error() {
    // The framer checks namespaces at every depth, so heads never see unbound prefixes.
    for bad in [
        "<foo:bar/>",
        "<message><foo:bar/></message>",
        "<a><b><c foo:x='1'/></b></a>",
    ] {
        let e = framing_error(bad);
        assert_eq!(e.condition(), "not-well-formed", "{bad}");
        assert!(e.to_string().contains("'foo'"), "{e}");
        let parsed = Stanza::parse(bad.into(), Arc::new(Namespaces::new()), &Limits::default());
        assert_eq!(parsed.unwrap_err().condition(), "not-well-formed", "{bad}");
    }
    // Bound by the stream header: fine.
    assert_eq!(stanza("<db:result/>").head().unwrap().prefix(), Some("db"));
}

#[test]
fn empty_default_namespace_undeclares() {
    let s = stanza("<message xmlns=''><body/></message>");
    let h = s.head().unwrap();
    assert_eq!(h.ns(), None);
    assert_eq!(h.child().unwrap().ns(), None);
}

#[test]
fn xml_prefix_is_builtin() {
    let s = stanza("<message><xml:foo/></message>");
    let ns = s.head().unwrap().child().unwrap().ns();
    assert_eq!(ns, Some("http://www.w3.org/XML/1998/namespace"));
}

#[test]
fn escaped_namespace_value() {
    let s = stanza("<x xmlns='urn:a&amp;b'/>");
    assert_eq!(s.head().unwrap().ns(), Some("urn:a&b"));
}

#[test]
fn head_is_cached_and_stanza_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = stanza("<iq type='get'/>");
    assert_send(&s);
    let a = s.head().unwrap() as *const _;
    let b = s.head().unwrap() as *const _;
    assert_eq!(a, b);
}

#[test]
fn stanza_without_stream_namespaces() {
    let s = Stanza::parse(
        "<message to='x'/>".into(),
        Arc::new(Namespaces::new()),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(s.head().unwrap().ns(), None);
    assert_eq!(s.head().unwrap().name(), "message");
}

#[test]
fn unicode_names_and_values() {
    let s = stanza("<méssage to='jüliet@exämple.com'><bödy>ö</bödy></méssage>");
    let h = s.head().unwrap();
    assert_eq!(h.name(), "méssage");
    assert_eq!(h.to().as_deref(), Some("jüliet@exämple.com"));
    assert_eq!(h.child().unwrap().name(), "bödy");
}
