//! Fuzz target for the envelope parsers the proxy runs on what components send: the
//! XEP-0355 delegation reply, the XEP-0356 privileged message and privileged IQ, and
//! privileged roster items. For every stanza the framer yields on a component stream,
//! each parser must not panic, and everything it produces for another stream must be
//! namespace-well-formed on its own: roxmltree (see `strict.rs`) parses it, and so does
//! the proxy's own `Stanza::standalone`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stanzagate::config::{IqPerm, MessagePerm, Privileges, RosterPerm};
use stanzagate::router::delegation::reply::{unwrap_result, Original};
use stanzagate::router::privilege::{iq, message, roster};
use stanzagate::xml::{Frame, Framer, Limits, Stanza};

#[path = "strict.rs"]
mod strict;

const HEADER: &str = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns='jabber:component:accept' xmlns:f='urn:xmpp:forward:0' to='c.example.com'>";

/// Emitted bytes must stand on their own.
fn standalone(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{what}: not UTF-8"));
    if let Err(error) = roxmltree::Document::parse(text) {
        assert!(
            strict::known_difference(&error),
            "{what} is not namespace-well-formed on its own ({error}): {text}"
        );
    }
    Stanza::standalone(bytes::Bytes::copy_from_slice(bytes))
        .unwrap_or_else(|e| panic!("{what} does not frame on its own ({e}): {text}"));
}

fn grants() -> Privileges {
    let mut p = Privileges {
        roster: RosterPerm::Both,
        message: MessagePerm::Outgoing,
        ..Privileges::default()
    };
    for ns in ["urn:example:a", "http://jabber.org/protocol/pubsub"] {
        p.iq.insert(ns.to_owned(), IqPerm::Both);
    }
    p
}

fn check(stanza: &Stanza, grants: &Privileges) {
    let Ok(head) = stanza.head() else { return };
    let original = Original {
        sender: "alice@example.com/r".into(),
        id: "q1".into(),
        to: Some("example.com".into()),
    };
    for ns in ["urn:xmpp:delegation:2", "urn:xmpp:delegation:1"] {
        if let Ok(answer) = unwrap_result(stanza, ns, &original) {
            standalone("delegation answer", &answer);
        }
    }
    if let Ok(inner) = message::check(stanza, head, "example.com", Some(grants)) {
        if let Ok((sent, carbon)) = message::build(&inner, "alice@example.com/r") {
            standalone("privileged message", &sent);
            standalone("carbon", &carbon);
        }
    }
    if let Ok(checked) = iq::check(
        "c.example.com",
        "alice@example.com",
        stanza,
        head,
        Some(grants),
    ) {
        standalone("privileged IQ", &checked.request("sg-1"));
    }
    let op = roster::RosterOp::parse("c.example.com", "alice@example.com", stanza, head);
    for item in &op.items {
        standalone("roster item", item);
        if let Ok(prepared) = roster::prepare_item("alice@example.com", item) {
            standalone("prepared roster item", &prepared.bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let grants = grants();
    let mut framer = Framer::new(Limits::default());
    framer.buffer_mut().extend_from_slice(HEADER.as_bytes());
    framer.buffer_mut().extend_from_slice(data);
    while let Ok(Some(frame)) = framer.next_frame() {
        if let Frame::Stanza(stanza) = frame {
            check(&stanza, &grants);
        }
    }
});
