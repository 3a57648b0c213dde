//! Fail closed: what the proxy cannot vouch for is refused, never passed on as it came.
//! One test per defect class, each against a real Prosody with raw sockets for the
//! hostile side: stored client bytes re-emitted with new addresses, roster pushes of
//! unknown origin copied to privileged entities, XML that is well-formed but not
//! namespace-well-formed (or not well-formed in ways a byte scanner misses), component
//! stanzas with forged senders in other namespaces, and JIDs compared by ASCII case only.

mod common;

use common::raw::{has_id, text};
use common::xmlcheck::{assert_ns_well_formed, has_element};
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, WebApp, DOMAIN};
use stanzagate::xml::children::{root_attr, stanza_error_condition};
use stanzagate::xml::Stanza;

const SECRET: &str = "secret";
/// A XEP-0355 delegate.
const COMPONENT: &str = "component.localhost";
/// A XEP-0356 privileged entity.
const GATEWAY: &str = "gateway.localhost";
const NS: &str = "urn:example:delegated";
const NS_CLIENT: &str = "jabber:client";
const NS_COMPONENT: &str = "jabber:component:accept";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

fn delegation(ns: &str) -> String {
    format!("[hosts.\"localhost\".delegations.\"{ns}\"]\njid = \"{COMPONENT}\"\n")
}

/// Prosody and the proxy with `components` configured on both, and `extra` TOML.
fn setup(components: &[&str], extra: &str) -> (Prosody, Proxy) {
    let mut prosody = ProsodySpec::default();
    let mut spec = ProxySpec::plaintext();
    for name in components {
        prosody = prosody.with_component(name, SECRET);
        spec = spec.with_component(name, SECRET);
    }
    let prosody = Prosody::start(&prosody);
    let proxy = Proxy::start(&spec.with_extra(extra), &prosody);
    (prosody, proxy)
}

/// Reads the component stream until a delegation wrapper arrives.
async fn wrapper(component: &mut Raw) -> Stanza {
    component
        .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("<delegation"))
        .await
}

/// Answers a delegation wrapper with a result carrying `<handled-by/>`.
async fn answer_wrapper(component: &mut Raw, wrapped: &Stanza) {
    let head = wrapped.head().unwrap();
    let wid = head.id().unwrap().into_owned();
    let t = text(wrapped);
    let inner_at = t.find("<iq xmlns='jabber:client'").expect("inner iq");
    let inner = &t.as_bytes()[inner_at..];
    let id = root_attr(inner, "id").expect("inner id");
    let requester = root_attr(inner, "from").expect("inner from");
    component
        .send(&format!(
            "<iq type='result' id='{wid}' from='{COMPONENT}' to='{DOMAIN}'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='{id}' to='{requester}'>\
<query xmlns='{NS}'><handled-by>{COMPONENT}</handled-by></query></iq></forwarded></delegation></iq>"
        ))
        .await;
}

// ---- 1. stored client bytes re-emitted with new addresses ----------------------------

/// A presence from alice (or claiming to be), as bob or an entity receives it.
fn alice_or_forged(s: &Stanza) -> bool {
    let head = s.head().unwrap();
    head.name() == "presence"
        && head
            .from()
            .is_some_and(|f| f.starts_with("alice@localhost") || f.starts_with("admin@localhost"))
}

/// alice's stream header declares the prefix `x`; her broadcast presence uses it and
/// claims to come from admin@localhost. Whatever path her presence takes to bob (her
/// web-app contact) or to an entity with `presence = "managed_entity"`, it must carry
/// her real full JID and be namespace-well-formed on the receiver's stream. The old
/// build re-parsed the stored presence on its own, failed (unbound prefix) and sent the
/// original bytes, forged `from` included, to bob's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_presence_is_shown_with_the_real_sender_and_its_namespaces() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    app.set("bob", r#"{"alice@localhost": {}}"#);
    let grants = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\npresence = \"managed_entity\"\n"
    );
    let (_prosody, proxy) = setup(&[GATEWAY], &format!("{}{grants}", app.toml("token", 3000)));
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;

    let header = Raw::header_with(DOMAIN, "xmlns:x='urn:example:x'");
    let mut alice = Raw::login_with_header(proxy.c2s(), "alice", &header).await;
    let alice_jid = alice.jid.clone().unwrap();
    alice
        .send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r").await;
    alice
        .send("<presence from='admin@localhost/x'><x:status>first</x:status></presence>")
        .await;
    // In order on alice's stream: once the ping is answered her presence is stored.
    alice.ping("stored").await;

    let check = |who: &str, s: &Stanza, default_ns: &str| {
        let from = s.head().unwrap().from().map(|f| f.into_owned());
        assert_eq!(
            from.as_deref(),
            Some(alice_jid.as_str()),
            "{who} got alice's presence with a forged or missing sender: {}",
            text(s)
        );
        let names = assert_ns_well_formed(s.bytes(), default_ns, who);
        assert!(
            has_element(&names, "urn:example:x", "status"),
            "{who}: alice's <x:status/> lost or in the wrong namespace: {}",
            text(s)
        );
    };

    // bob logs in after her: the proxy shows him her stored presence.
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let shown = bob.until(alice_or_forged).await;
    check("bob (stored presence)", &shown, NS_CLIENT);

    // bob online: her next presence reaches him as directed presence.
    alice
        .send("<presence from='admin@localhost/x'><x:status>second</x:status></presence>")
        .await;
    let live = bob
        .until(|s| alice_or_forged(s) && text(s).contains("second"))
        .await;
    check("bob (live presence)", &live, NS_CLIENT);

    // The privileged entity's copies (checklist 65), on a jabber:component:accept stream.
    for marker in ["first", "second"] {
        let copy = gw
            .until(|s| alice_or_forged(s) && text(s).contains(marker))
            .await;
        check("the managed_entity copy", &copy, NS_COMPONENT);
    }
}

// ---- 2. roster pushes of unknown origin -----------------------------------------------

/// alice sends bob's full JID an IQ that looks like a roster push. Prosody routes it to
/// bob's session as it would any IQ to a full JID; it is not a roster push (RFC 6121
/// §2.1.6: a push has no `from` or the user's bare JID), so an entity with roster
/// pushes on must not get a copy (checklist 49). A genuine change made after it is
/// copied, so the first roster IQ the entity sees must be the genuine one. The old
/// build copied anything shaped like a push.
#[tokio::test]
async fn a_roster_push_from_another_user_is_not_copied_to_the_entity() {
    let Some(_peers) = peers() else { return };
    let grants = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\nroster_push = true\n"
    );
    let (_prosody, proxy) = setup(&[GATEWAY], &grants);
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    // Servers push only to sessions that fetched the roster.
    bob.send("<iq type='get' id='fetch'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    bob.expect_iq("fetch").await;
    let bob_jid = bob.jid.clone().unwrap();

    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&format!(
            "<iq type='set' id='forged' to='{bob_jid}'><query xmlns='jabber:iq:roster'><item jid='fake@x.example'/></query></iq>"
        ))
        .await;
    let forged = bob.expect_iq("forged").await;
    assert!(
        forged
            .head()
            .unwrap()
            .from()
            .is_some_and(|f| f.starts_with("alice@localhost")),
        "Prosody delivered it from alice: {}",
        text(&forged)
    );

    // The genuine change, after the forged one was seen on bob's session.
    bob.send("<iq type='set' id='real'><query xmlns='jabber:iq:roster'><item jid='genuine@localhost'/></query></iq>")
        .await;
    bob.expect_iq("real").await;

    let copy = gw
        .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("jabber:iq:roster"))
        .await;
    assert!(
        text(&copy).contains("genuine@localhost") && !text(&copy).contains("fake@x.example"),
        "the first roster push copy must be bob's genuine change: {}",
        text(&copy)
    );
    assert_eq!(
        copy.head().unwrap().from().as_deref(),
        Some("bob@localhost"),
        "{}",
        text(&copy)
    );
}

// ---- 3. namespace well-formedness ------------------------------------------------------

/// Delegated IQ payloads that a byte scanner accepts but a namespace-aware parser (the
/// component's) refuses. Each ends the sender's stream with `<not-well-formed/>`; the
/// delegate never receives it, stays connected, and serves a bystander's IQ next. The
/// old build wrapped them for the component, whose parser then fails the whole
/// component stream (every user's delegated IQs). Checklist 16, 20: only a stanza
/// the proxy can vouch for is wrapped for the delegate.
#[tokio::test]
async fn hostile_xml_in_a_delegated_iq_ends_only_the_senders_stream() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&[COMPONENT], &delegation(NS));
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let bob_jid = bob.jid.clone().unwrap();
    let cases: [(&str, String); 7] = [
        (
            "unbound prefix below the first child",
            format!("<query xmlns='{NS}'><a><y:b/></a></query>"),
        ),
        (
            "unbound attribute prefix",
            format!("<query xmlns='{NS}'><a y:attr='1'/></query>"),
        ),
        (
            "prefix undeclared (xmlns:p='')",
            format!("<query xmlns='{NS}'><a xmlns:p=''/></query>"),
        ),
        (
            "same attribute twice after prefix expansion",
            format!(
                "<query xmlns='{NS}'><a xmlns:p='urn:example:u' xmlns:q='urn:example:u' p:x='1' q:x='2'/></query>"
            ),
        ),
        (
            "U+FFFF in text",
            format!("<query xmlns='{NS}'><a>\u{FFFF}</a></query>"),
        ),
        (
            "U+00D7 in an element name",
            format!("<query xmlns='{NS}'><a\u{D7}b/></query>"),
        ),
        (
            "U+00D7 in an attribute name",
            format!("<query xmlns='{NS}'><a b\u{D7}c='1'/></query>"),
        ),
    ];
    // Every case is tried; the failures are reported together.
    let mut failures = Vec::new();
    for (i, (case, payload)) in cases.iter().enumerate() {
        let mut alice = Raw::login(proxy.c2s(), "alice").await;
        alice
            .send(&format!("<iq type='get' id='hostile{i}'>{payload}</iq>"))
            .await;
        tokio::select! {
            condition = alice.expect_stream_error() => if condition != "not-well-formed" {
                failures.push(format!("{case}: stream error <{condition}/>"));
            },
            wrapped = wrapper(&mut component) => {
                failures.push(format!("{case}: the delegate received it: {}", text(&wrapped)));
            }
        }
        // The bystander's IQ is the next thing the delegate gets, and it is answered.
        let id = format!("bystander{i}");
        bob.send(&format!(
            "<iq type='get' id='{id}'><query xmlns='{NS}'/></iq>"
        ))
        .await;
        let wrapped = wrapper(&mut component).await;
        if let Err(why) = common::xmlcheck::elements(wrapped.bytes(), NS_COMPONENT) {
            failures.push(format!(
                "{case}: the delegate received ({why}): {}",
                text(&wrapped)
            ));
        }
        if !(text(&wrapped).contains(&format!("from='{bob_jid}'"))
            && text(&wrapped).contains(&format!("id='{id}'")))
        {
            failures.push(format!(
                "{case}: the delegate got something other than the bystander's IQ: {}",
                text(&wrapped)
            ));
            continue;
        }
        answer_wrapper(&mut component, &wrapped).await;
        let answer = bob.expect_iq(&id).await;
        assert!(
            text(&answer).contains("handled-by"),
            "case {case}: {}",
            text(&answer)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A privileged message (XEP-0356, checklist 51) whose inner message uses a prefix
/// declared on `<forwarded/>`, as a namespace-aware serialiser may write it. It is
/// sent on alice's stream, where the prefix is not declared: it must arrive at bob
/// with `<z:thing/>` resolvable, and alice's stream must stay open. The old build cut
/// the inner message out without the declaration; Prosody then closed alice's stream
/// as not-well-formed and bob got nothing.
#[tokio::test]
async fn privileged_message_keeps_prefixes_declared_on_its_ancestors() {
    let Some(_peers) = peers() else { return };
    let grants = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nmessage = \"outgoing\"\n"
    );
    let (_prosody, proxy) = setup(&[GATEWAY], &grants);
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!(
        "<message id='pm' from='{GATEWAY}' to='{DOMAIN}'><privilege xmlns='urn:xmpp:privilege:2'>\
<forwarded xmlns='urn:xmpp:forward:0' xmlns:z='urn:example:z'><message xmlns='jabber:client' \
from='alice@localhost' to='bob@localhost' id='zm' type='chat'><body>hi</body><z:thing/></message>\
</forwarded></privilege></message>"
    ))
    .await;
    let got = bob
        .until(|s| s.head().unwrap().name() == "message" && text(s).contains("<body>hi</body>"))
        .await;
    let names = assert_ns_well_formed(got.bytes(), NS_CLIENT, "the message bob received");
    assert!(
        has_element(&names, "urn:example:z", "thing"),
        "<z:thing/> lost or in the wrong namespace: {}",
        text(&got)
    );
    assert!(got
        .head()
        .unwrap()
        .from()
        .is_some_and(|f| f.starts_with("alice@localhost")));
    alice.ping("alice-still-open").await;
}

/// The same for a privileged IQ (checklist 57, 60) whose payload uses a prefix
/// declared on `<privileged_iq/>`: it is sent on alice's stream, must not break it,
/// and what Prosody stores (read back by alice) has the element in its namespace.
#[tokio::test]
async fn privileged_iq_keeps_prefixes_declared_on_its_ancestors() {
    let Some(_peers) = peers() else { return };
    let grants = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\niq = {{ \"{PUBSUB}\" = \"both\" }}\n"
    );
    let (_prosody, proxy) = setup(&[GATEWAY], &grants);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!(
        "<iq type='set' id='pi' from='{GATEWAY}' to='alice@localhost'>\
<privileged_iq xmlns='urn:xmpp:privilege:2' xmlns:z='urn:example:z'><iq xmlns='jabber:client' type='set' id='i'>\
<pubsub xmlns='{PUBSUB}'><publish node='urn:example:znode'><item id='1'><z:entry>via privilege</z:entry></item>\
</publish></pubsub></iq></privileged_iq></iq>"
    ))
    .await;
    let answer = gw.until(has_id("pi")).await;
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&answer)
    );
    alice.ping("alice-still-open").await;
    alice
        .send(&format!(
            "<iq type='get' id='read'><pubsub xmlns='{PUBSUB}'><items node='urn:example:znode'/></pubsub></iq>"
        ))
        .await;
    let items = alice.expect_iq("read").await;
    let names = assert_ns_well_formed(items.bytes(), NS_CLIENT, "alice's items");
    assert!(
        has_element(&names, "urn:example:z", "entry"),
        "the published entry lost its namespace: {}",
        text(&items)
    );
}

/// The same for a privileged roster set (checklist 44) whose `<item/>` uses a prefix
/// declared on `<query/>`: the item is applied on alice's stream one by one, so the
/// declaration must come along or Prosody closes her stream.
#[tokio::test]
async fn privileged_roster_item_keeps_prefixes_declared_on_its_ancestors() {
    let Some(_peers) = peers() else { return };
    let grants =
        format!("[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\n");
    let (_prosody, proxy) = setup(&[GATEWAY], &grants);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!(
        "<iq type='set' id='rs' from='{GATEWAY}' to='alice@localhost'>\
<query xmlns='jabber:iq:roster' xmlns:z='urn:example:z'><item jid='carol@localhost' z:note='n'>\
<group>Friends</group><z:extra/></item></query></iq>"
    ))
    .await;
    let answer = gw.until(has_id("rs")).await;
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&answer)
    );
    alice.ping("alice-still-open").await;
    alice
        .send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = alice.expect_iq("roster").await;
    assert!(
        text(&roster).contains("carol@localhost"),
        "{}",
        text(&roster)
    );
}

// ---- 4. component `from` checks in every namespace -------------------------------------

/// A component stanza in another stanza namespace (`jabber:client`) claiming a user's
/// JID ends the component's stream with `<invalid-from/>` (checklist 5, 6); bob gets
/// nothing from it, and his session keeps working. So does a forged sender in any
/// other namespace; a stanza with a valid sender in a namespace that is not a stanza
/// namespace ends it with `<invalid-namespace/>`. The old build checked only
/// `jabber:component:accept` stanzas and relayed the rest to the server unchecked:
/// Prosody happens to refuse them (its `<invalid-from/>` for `jabber:client`, its
/// `<unsupported-stanza-type/>` for the others), another server may not.
#[tokio::test]
async fn component_stanzas_in_any_namespace_must_come_from_the_component() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&[GATEWAY], "");
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;

    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send("<message xmlns='jabber:client' from='alice@localhost' to='bob@localhost' id='forged'><body>forged</body></message>")
        .await;
    assert_eq!(gw.expect_stream_error().await, "invalid-from");
    // bob's next message is alice's real one, not the forged one.
    alice
        .send("<message to='bob@localhost' id='real' type='chat'><body>real</body></message>")
        .await;
    let first = bob.expect("message").await;
    assert_eq!(
        first.head().unwrap().id().as_deref(),
        Some("real"),
        "{}",
        text(&first)
    );
    bob.ping("bob-alive").await;

    // Other namespaces: the sender is checked first, then the namespace.
    for (stanza, condition) in [
        (
            "<message xmlns='urn:example:other' from='alice@localhost' to='bob@localhost'><body>forged</body></message>".to_owned(),
            "invalid-from",
        ),
        (
            format!("<iq xmlns='urn:example:other' type='get' id='o' from='{GATEWAY}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"),
            "invalid-namespace",
        ),
    ] {
        let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
        gw.send(&stanza).await;
        assert_eq!(gw.expect_stream_error().await, condition, "{stanza}");
    }
    bob.ping("bob-still-alive").await;
}

// ---- 5. one JID type -------------------------------------------------------------------

/// A client addresses its server in spellings Prosody prepares to its own domain
/// (nameprep: case folding and NFKC, so fullwidth letters too). A delegated namespace
/// addressed that way is delegated (checklist 17), as Prosody would treat the IQ as
/// its own. The old build lowercased ASCII only and sent the fullwidth one to Prosody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_domain_in_any_prepared_spelling_is_delegated() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&[COMPONENT], &delegation(NS));
    let component = peers
        .python
        .component("delegate.py", COMPONENT, SECRET, proxy.ports.component, &[])
        .await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    for (id, to) in [
        ("upper", "LocalHost"),
        (
            "fullwidth",
            "\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\u{FF48}\u{FF4F}\u{FF53}\u{FF54}",
        ),
    ] {
        alice
            .send(&format!(
                "<iq type='get' id='{id}' to='{to}'><query xmlns='{NS}'/></iq>"
            ))
            .await;
        let answer = alice.expect_iq(id).await;
        assert!(
            text(&answer).contains("handled-by"),
            "to='{to}' must be delegated: {}",
            text(&answer)
        );
        assert_eq!(
            stanza_error_condition(answer.bytes()),
            None,
            "{}",
            text(&answer)
        );
    }
    let out = component.stop().await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("DELEGATED ")).count(),
        2,
        "{out}"
    );
}

// ---- the checker itself -----------------------------------------------------------------

/// The strict reader these tests judge the proxy's output with refuses each hostile
/// form and accepts ordinary stanzas (so a pass above means something).
#[test]
fn the_namespace_checker_refuses_what_a_namespace_aware_parser_refuses() {
    use common::xmlcheck::elements;
    let good = "<message to='bob@localhost' xml:lang='en'><body>a &amp; b</body>\
<x:status xmlns:x='urn:example:x' x:a='1' a='2'/><stream:error/></message>";
    let names = elements(good.as_bytes(), NS_CLIENT).unwrap();
    assert!(has_element(&names, "urn:example:x", "status"), "{names:?}");
    assert!(has_element(&names, NS_CLIENT, "body"), "{names:?}");
    for bad in [
        "<message><x:status/></message>",
        "<message><a><y:b/></a></message>",
        "<message><a y:attr='1'/></message>",
        "<message><a xmlns:p=''/></message>",
        "<message><a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/></message>",
        "<message><a x='1' x='2'/></message>",
        "<message><a>\u{FFFF}</a></message>",
        "<message><a\u{D7}b/></message>",
        "<message><a b\u{D7}c='1'/></message>",
        "<message><a></b></message>",
        "<message><a>&undefined;</a></message>",
    ] {
        assert!(
            elements(bad.as_bytes(), NS_CLIENT).is_err(),
            "accepted {bad}"
        );
    }
}
