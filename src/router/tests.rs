//! Routing verdicts tested as the pure functions they are: stanzas from a framer, rules
//! from a config, no sockets.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::client::{self, ClientView};
use super::component::{self, ComponentVerdict, ComponentView};
use super::delegation::disco::DiscoCache;
use super::delegation::table::Table as Delegations;
use super::privilege::table::Table as Privileges;
use super::privilege::Operation;
use super::rules::Rules;
use super::server::{self, ServerView};
use super::session::RouteState;
use super::verdict::{
    Answer, ClientVerdict, Consumed, Dropped, PassNote, Relayed, ServerNote, ServerVerdict,
};
use crate::config::Config;
use crate::jid::{BareJid, Domain};
use crate::xml::{Frame, Framer, Limits, Stanza};

const JID: &str = "alice@example.org/phone";

fn config(web_roster: bool) -> Config {
    let roster = if web_roster {
        "[hosts.\"example.org\".roster_admin]\nurl = \"http://app/%s\"\nrefresh_token = \"t\"\n"
    } else {
        ""
    };
    crate::config::for_tests(&format!(
        r#"
[hosts."example.org".delegations."urn:example:a"]
jid = "c.example.org"
[hosts."example.org".delegations."urn:xmpp:delegation:2:bare:disco#info:*"]
jid = "c.example.org"
[hosts."example.org".privileged_entities."c.example.org"]
roster = "both"
presence = "roster"
iq = {{ "urn:example:b" = "set" }}
{roster}[components."c.example.org"]
secret = "s"
"#
    ))
}

fn rules(web_roster: bool) -> Rules {
    let cfg = config(web_roster);
    Rules {
        delegations: Arc::new(Delegations::from_config(&cfg)),
        privileges: Arc::new(Privileges::from_config(&cfg)),
        web_roster,
    }
}

fn stanza(default_ns: &str, xml: &str) -> Stanza {
    let mut framer = Framer::new(Limits::default());
    framer.buffer_mut().extend_from_slice(
        format!("<stream:stream xmlns='{default_ns}' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>{xml}").as_bytes(),
    );
    loop {
        match framer.next_frame() {
            Ok(Some(Frame::Stanza(s))) => return s,
            Ok(Some(_)) => {}
            other => panic!("no stanza in {xml}: {other:?}"),
        }
    }
}

fn client_verdict(rules: &Rules, state: &RouteState, xml: &str) -> ClientVerdict {
    let s = stanza("jabber:client", xml);
    let view = ClientView {
        jid: JID,
        domain: "example.org",
        rules,
        state,
        awaits_reply: &|id| id == "awaited",
        awaits_push_answer: &|head| head.id().as_deref() == Some("push-copy"),
    };
    client::verdict(&view, s.head().unwrap())
}

fn server_verdict(rules: &Rules, state: &RouteState, xml: &str) -> ServerVerdict {
    let s = stanza("jabber:client", xml);
    let disco = DiscoCache::default();
    let view = ServerView {
        jid: JID,
        rules,
        state,
        disco: &disco,
    };
    server::verdict(&view, &s, s.head().unwrap())
}

// ---- client → server --------------------------------------------------------------

#[test]
fn messages_and_plain_iqs_pass() {
    let (rules, state) = (rules(false), RouteState::default());
    for xml in [
        "<message to='bob@example.org'><body>hi</body></message>",
        "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<presence to='bob@example.org'/>",
    ] {
        assert!(
            matches!(
                client_verdict(&rules, &state, xml),
                ClientVerdict::Pass(PassNote::None)
            ),
            "{xml}"
        );
    }
}

#[test]
fn delegated_namespaces_are_delegated_and_probes_noted() {
    let (rules, state) = (rules(false), RouteState::default());
    let v = client_verdict(
        &rules,
        &state,
        "<iq type='get' id='1'><q xmlns='urn:example:a'/></iq>",
    );
    assert!(matches!(v, ClientVerdict::Delegate(rule) if rule.ns == "urn:example:a"));
    let v = client_verdict(
        &rules,
        &state,
        "<iq type='get' id='2' to='bob@example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>",
    );
    assert!(matches!(v, ClientVerdict::Pass(PassNote::Probe(_))));
}

#[test]
fn broadcast_presence_and_carbons_are_noted() {
    let (rules, state) = (rules(false), RouteState::default());
    assert_eq!(
        note(client_verdict(
            &rules,
            &state,
            "<presence><show>away</show></presence>"
        )),
        PassNote::Broadcast { available: true }
    );
    assert_eq!(
        note(client_verdict(
            &rules,
            &state,
            "<presence type='unavailable'/>"
        )),
        PassNote::Broadcast { available: false }
    );
    assert_eq!(
        note(client_verdict(
            &rules,
            &state,
            "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
        )),
        PassNote::Carbons {
            id: "c1".into(),
            enable: true
        }
    );
}

fn note(verdict: ClientVerdict) -> PassNote {
    match verdict {
        ClientVerdict::Pass(note) => note,
        other => panic!("expected a pass, got {other:?}"),
    }
}

#[test]
fn web_app_rosters_are_answered_refused_or_dropped_checklist_70_71() {
    let (rules, state) = (rules(true), RouteState::default());
    let get = client_verdict(
        &rules,
        &state,
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='v1'/></iq>",
    );
    assert_eq!(
        match get {
            ClientVerdict::Answer(answer) => answer,
            other => panic!("{other:?}"),
        },
        Answer::WebRoster {
            id: "r1".into(),
            ver: Some("v1".into())
        }
    );
    // Addressed to the user's own bare JID in another spelling: still the own roster.
    let set = client_verdict(
        &rules,
        &state,
        "<iq type='set' id='r2' to='ALICE@Example.ORG'><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>",
    );
    assert!(matches!(set, ClientVerdict::Reject(error) if contains(&error, "not-allowed")));
    let sub = client_verdict(&rules, &state, "<presence to='bob@x' type='subscribe'/>");
    assert!(matches!(
        sub,
        ClientVerdict::Drop(Dropped::WebRosterSubscription)
    ));
    // Someone else's roster is not the web app's business.
    let other = client_verdict(
        &rules,
        &state,
        "<iq type='get' id='r3' to='bob@example.org'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(matches!(other, ClientVerdict::Pass(_)));
}

fn contains(bytes: &Bytes, needle: &str) -> bool {
    String::from_utf8_lossy(bytes).contains(needle)
}

// ---- server → client ----------------------------------------------------------------

#[test]
fn answers_to_the_proxy_are_consumed() {
    let rules = rules(false);
    let mut state = RouteState::default();
    let (reply, _answer) = oneshot::channel();
    state.await_answer("sg-1".into(), reply, std::time::Duration::from_secs(5), 10);
    let v = server_verdict(
        &rules,
        &state,
        "<iq type='result' id='sg-1' to='alice@example.org/phone'/>",
    );
    assert!(matches!(
        v,
        ServerVerdict::Consume(Consumed::ActingAnswer { id, note: ServerNote::None }) if id == "sg-1"
    ));
    let v = server_verdict(&rules, &state, "<iq type='result' id='other'/>");
    assert!(matches!(
        v,
        ServerVerdict::Relay(Relayed::AsReceived, ServerNote::None)
    ));
}

#[test]
fn roster_pushes_are_copied_only_from_the_server() {
    let (rules, state) = (rules(false), RouteState::default());
    let push = |from: &str| {
        format!("<iq type='set' id='p'{from}><query xmlns='jabber:iq:roster'><item jid='bob@x'/></query></iq>")
    };
    for from in ["", " from='alice@example.org'", " from='Alice@EXAMPLE.org'"] {
        assert!(
            matches!(
                server_verdict(&rules, &state, &push(from)),
                ServerVerdict::Relay(_, ServerNote::RosterPush)
            ),
            "from {from:?}"
        );
    }
    // RFC 6121 §2.1.6: anyone else's "push" is ordinary traffic.
    for from in [
        " from='mallory@evil.example'",
        " from='alice@example.org/phone'",
        " from='example.org'",
    ] {
        assert!(
            matches!(
                server_verdict(&rules, &state, &push(from)),
                ServerVerdict::Relay(_, ServerNote::None)
            ),
            "from {from:?}"
        );
    }
}

#[test]
fn contact_presence_is_noted_and_expected_acks_consumed() {
    let rules = rules(false);
    let mut state = RouteState::default();
    let v = server_verdict(&rules, &state, "<presence from='bob@x/r'/>");
    assert!(matches!(
        v,
        ServerVerdict::Relay(_, ServerNote::ContactPresence)
    ));
    let ack = "<presence from='Bob@X' type='subscribed'/>";
    assert!(matches!(
        server_verdict(&rules, &state, ack),
        ServerVerdict::Relay(_, ServerNote::None)
    ));
    state.expect_subscribed("bob@x".into(), 10);
    assert!(matches!(
        server_verdict(&rules, &state, ack),
        ServerVerdict::Consume(Consumed::ExpectedSubscribed { contact }) if contact == "bob@x"
    ));
}

#[test]
fn web_app_roster_subscriptions_from_the_server_are_consumed() {
    let (rules, state) = (rules(true), RouteState::default());
    let v = server_verdict(&rules, &state, "<presence from='bob@x' type='subscribe'/>");
    assert!(matches!(
        v,
        ServerVerdict::Consume(Consumed::WebRosterSubscription)
    ));
}

// ---- component → server -------------------------------------------------------------

fn component_verdict(xml: &str, awaited: Option<&str>, op: Option<Operation>) -> ComponentVerdict {
    let s = stanza("jabber:component:accept", xml);
    let name = Domain::parse("c.example.org").unwrap();
    let awaits = |id: &str| Some(id) == awaited;
    let privileged = |_: &crate::xml::Head| op.clone();
    let view = ComponentView {
        name: &name,
        awaits_reply: &awaits,
        privileged: &privileged,
    };
    component::verdict(&view, s.head().unwrap())
}

#[test]
fn component_from_is_checked_in_every_namespace() {
    for xml in [
        "<message from='alice@example.org' to='bob@example.org'/>",
        "<message xmlns='jabber:client' from='alice@example.org' to='bob@example.org'/>",
        "<iq xmlns='urn:evil' type='get' id='1' from='example.org' to='bob@example.org'/>",
        "<presence to='bob@example.org'/>",
    ] {
        assert!(
            matches!(component_verdict(xml, None, None), ComponentVerdict::End(end) if end.condition == "invalid-from"),
            "{xml}"
        );
    }
    let other_ns =
        "<iq xmlns='urn:evil' type='get' id='1' from='c.example.org' to='bob@example.org'/>";
    assert!(matches!(
        component_verdict(other_ns, None, None),
        ComponentVerdict::End(end) if end.condition == "invalid-namespace"
    ));
    let not_a_stanza = "<handshake>x</handshake>";
    assert!(matches!(
        component_verdict(not_a_stanza, None, None),
        ComponentVerdict::End(end) if end.condition == "unsupported-stanza-type"
    ));
    let ok = "<message from='user@C.Example.org/r' to='bob@example.org'/>";
    assert!(matches!(
        component_verdict(ok, None, None),
        ComponentVerdict::Pass
    ));
}

#[test]
fn component_replies_and_operations_are_taken() {
    let reply = "<iq type='result' id='w1' from='c.example.org' to='example.org'/>";
    assert!(matches!(
        component_verdict(reply, Some("w1"), None),
        ComponentVerdict::DelegationReply
    ));
    let op = Operation::Roster {
        user: BareJid::parse("alice@example.org").unwrap(),
        domain: Domain::parse("example.org").unwrap(),
        web_app: false,
    };
    let set = "<iq type='set' id='r' from='c.example.org' to='alice@example.org'><query xmlns='jabber:iq:roster'/></iq>";
    assert!(matches!(
        component_verdict(set, None, Some(op)),
        ComponentVerdict::Privileged(Operation::Roster { .. })
    ));
    let no_to = "<message from='c.example.org'/>";
    assert!(matches!(
        component_verdict(no_to, None, None),
        ComponentVerdict::Bounce(_)
    ));
}

/// The roster the server gives the user is kept for entities that may read it while
/// the user is offline; a result from anyone else is not the user's roster.
#[test]
fn roster_results_from_the_server_are_mirrored() {
    let (rules, state) = (rules(false), RouteState::default());
    let result = |from: &str| {
        format!("<iq type='result' id='r'{from}><query xmlns='jabber:iq:roster'><item jid='bob@x'/></query></iq>")
    };
    for from in ["", " from='alice@example.org'"] {
        assert!(
            matches!(
                server_verdict(&rules, &state, &result(from)),
                ServerVerdict::Relay(_, ServerNote::RosterResult)
            ),
            "from {from:?}"
        );
    }
    assert!(matches!(
        server_verdict(&rules, &state, &result(" from='mallory@evil.example'")),
        ServerVerdict::Relay(_, ServerNote::None)
    ));
    // One the proxy asked for as the user (a privileged get) is mirrored too.
    let mut asked = RouteState::default();
    let (reply, _) = oneshot::channel();
    asked.await_answer("r".into(), reply, std::time::Duration::from_secs(5), 10);
    assert!(matches!(
        server_verdict(&rules, &asked, &result("")),
        ServerVerdict::Consume(Consumed::ActingAnswer {
            note: ServerNote::RosterResult,
            ..
        })
    ));
    // A roster set's empty result is no roster.
    assert!(matches!(
        server_verdict(&rules, &state, "<iq type='result' id='s'/>"),
        ServerVerdict::Relay(_, ServerNote::None)
    ));
}

/// A user account that is a privileged entity acting as one is taken by the proxy;
/// the same stanzas from any other account are ordinary traffic for the server.
#[test]
fn a_user_account_entity_s_privileged_requests_are_taken() {
    let base = config(false);
    let mut cfg = base.clone();
    if let Some(host) = cfg.hosts.get_mut("example.org") {
        let grants = host.privileged_entities["c.example.org"].clone();
        host.privileged_entities
            .insert("alice@example.org".to_owned(), grants);
    }
    let entity = Rules {
        delegations: Arc::new(Delegations::from_config(&cfg)),
        privileges: Arc::new(Privileges::from_config(&cfg)),
        web_roster: false,
    };
    let state = RouteState::default();
    let privileged = [
        "<iq type='get' id='r' to='bob@example.org'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='set' id='p' to='bob@example.org'><privileged_iq xmlns='urn:xmpp:privilege:2'/></iq>",
        "<message to='example.org'><privilege xmlns='urn:xmpp:privilege:2'/></message>",
        "<iq type='result' id='push-copy' to='bob@example.org'/>",
    ];
    for xml in privileged {
        assert!(
            matches!(
                client_verdict(&entity, &state, xml),
                ClientVerdict::Privileged
            ),
            "{xml}"
        );
        // Not an entity: relayed (the server refuses what it must).
        assert!(
            matches!(
                client_verdict(&rules(false), &state, xml),
                ClientVerdict::Pass(_)
            ),
            "{xml}"
        );
    }
    // The entity's own roster and ordinary traffic stay its own.
    for xml in [
        "<iq type='get' id='o'><query xmlns='jabber:iq:roster'/></iq>",
        "<iq type='get' id='o2' to='alice@example.org'><query xmlns='jabber:iq:roster'/></iq>",
        "<message to='bob@example.org'><body>hi</body></message>",
    ] {
        assert!(
            matches!(client_verdict(&entity, &state, xml), ClientVerdict::Pass(_)),
            "{xml}"
        );
    }
}

/// A delegate's answer from its client stream is taken only for an id the proxy waits
/// for from that session.
#[test]
fn a_user_delegate_s_answer_is_taken_only_when_awaited() {
    let (rules, state) = (rules(false), RouteState::default());
    assert!(matches!(
        client_verdict(
            &rules,
            &state,
            "<iq type='result' id='awaited' to='example.org'/>"
        ),
        ClientVerdict::DelegationReply
    ));
    assert!(matches!(
        client_verdict(
            &rules,
            &state,
            "<iq type='error' id='awaited' to='example.org'/>"
        ),
        ClientVerdict::DelegationReply
    ));
    assert!(matches!(
        client_verdict(
            &rules,
            &state,
            "<iq type='result' id='other' to='example.org'/>"
        ),
        ClientVerdict::Pass(_)
    ));
    // A request with that id is no answer.
    assert!(!matches!(
        client_verdict(
            &rules,
            &state,
            "<iq type='get' id='awaited' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"
        ),
        ClientVerdict::DelegationReply
    ));
}

/// Pushes are the client's once it asked for its roster (RFC 6121 §2.1.6); before
/// that only the proxy did (to see queued subscriptions complete at login), and the
/// proxy answers them itself, keeping their effects for entities.
#[test]
fn roster_pushes_before_the_client_asked_are_taken() {
    let rules = rules(false);
    let mut state = RouteState::default();
    let push = "<iq type='set' id='p'><query xmlns='jabber:iq:roster'><item jid='bob@x' subscription='both'/></query></iq>";
    let relayed = |state: &RouteState, xml: &str| {
        matches!(server_verdict(&rules, state, xml), ServerVerdict::Relay(..))
    };
    assert!(relayed(&state, push), "nobody asked: as ever");
    state.roster_requested_by_proxy();
    match server_verdict(&rules, &state, push) {
        ServerVerdict::Consume(Consumed::UnaskedPush { id, note }) => {
            assert_eq!(id, "p");
            assert_eq!(note, ServerNote::RosterPush);
        }
        other => panic!("{other:?}"),
    }
    let forged = "<iq type='set' id='f' from='mallory@evil.example'><query xmlns='jabber:iq:roster'><item jid='bob@x'/></query></iq>";
    assert!(relayed(&state, forged), "anyone else's push is traffic");

    let own = "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>";
    assert_eq!(
        note(client_verdict(&rules, &state, own)),
        PassNote::RosterRequested
    );
    let bare =
        "<iq type='get' id='r' to='alice@example.org'><query xmlns='jabber:iq:roster'/></iq>";
    assert_eq!(
        note(client_verdict(&rules, &state, bare)),
        PassNote::RosterRequested
    );
    let other = "<iq type='get' id='r' to='bob@example.org'><query xmlns='jabber:iq:roster'/></iq>";
    assert!(!matches!(
        client_verdict(&rules, &state, other),
        ClientVerdict::Pass(PassNote::RosterRequested)
    ));
    state.roster_requested_by_client();
    assert!(relayed(&state, push), "the client asked: its pushes");
    state.roster_requested_by_proxy();
    assert!(relayed(&state, push), "and they stay its own");
}
