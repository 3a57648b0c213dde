//! XEP-0355 Namespace Delegation through stanzagate in front of a real Prosody (which
//! knows nothing of delegation): one test per MUST item of checklist sections C–F,
//! named after its number, with slixmpp clients and components (raw XML handlers, as
//! slixmpp has no XEP-0355 plugin) and raw streams where exact bytes matter.

mod common;

use std::time::Duration;

use common::python::Running;
use common::raw::text;
use common::{peers, Peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::children::{root_attr, stanza_error_condition};
use stanzagate::xml::Stanza;

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";
const LIMIT: Duration = Duration::from_secs(60);

fn delegation(ns: &str, filtering: &[&str]) -> String {
    let mut toml = format!("[hosts.\"localhost\".delegations.\"{ns}\"]\njid = \"{COMPONENT}\"\n");
    if !filtering.is_empty() {
        let list: Vec<String> = filtering.iter().map(|a| format!("\"{a}\"")).collect();
        toml.push_str(&format!("filtering = [{}]\n", list.join(", ")));
    }
    toml
}

fn spec(extra: &str) -> ProxySpec {
    ProxySpec::plaintext()
        .with_component(COMPONENT, SECRET)
        .with_extra(extra)
}

fn setup(extra: &str) -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET));
    let proxy = Proxy::start(&spec(extra), &prosody);
    (prosody, proxy)
}

async fn delegate(peers: &Peers, proxy: &Proxy, args: &[&str]) -> Running {
    peers
        .python
        .component(
            "delegate.py",
            COMPONENT,
            SECRET,
            proxy.ports.component,
            args,
        )
        .await
}

fn iq(id: &str, to: Option<&str>, kind: &str, payload: &str) -> String {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    format!("<iq type='{kind}' id='{id}'{to}>{payload}</iq>")
}

fn query(ns: &str) -> String {
    format!("<query xmlns='{ns}'/>")
}

/// The answer's type, `from`, and error condition (if any).
fn verdict(answer: &Stanza) -> (String, Option<String>, Option<String>) {
    let head = answer.head().unwrap();
    (
        head.type_().unwrap_or_default().into_owned(),
        head.from().map(|f| f.into_owned()),
        stanza_error_condition(answer.bytes()),
    )
}

/// Reads the component stream until a delegation wrapper arrives.
async fn wrapper(component: &mut Raw) -> Stanza {
    component
        .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("<delegation"))
        .await
}

/// The inner IQ of a wrapper as its own bytes.
fn inner_iq(wrapper: &Stanza) -> String {
    let t = text(wrapper);
    let start = t.find("<iq xmlns='jabber:client'").expect("inner iq");
    let end = t.rfind("</forwarded>").expect("end of forwarded");
    t[start..end].to_owned()
}

// ---- C. configuration and advertisement ------------------------------------------

#[test]
fn checklist_11_delegating_the_delegation_namespace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    for ns in ["urn:xmpp:delegation:2", "urn:xmpp:delegation:1"] {
        std::fs::write(
            &path,
            format!(
                "[listen]\nc2s = \"127.0.0.1:5222\"\ncomponent = \"127.0.0.1:5347\"\n[tls]\nrequired = false\n\
[upstream]\nc2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n{}\
[components.\"{COMPONENT}\"]\nsecret = \"s\"\n",
                delegation(ns, &[])
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stanzagate"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{ns} must be refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(ns) && stderr.contains(":9:"), "{stderr}");
    }
}

#[tokio::test]
async fn checklist_12_advertisement_right_after_handshake_one_per_domain() {
    let Some(_peers) = peers() else { return };
    let extra = format!(
        "{}{}[hosts.\"other.localhost\".delegations.\"urn:example:two\"]\njid = \"{COMPONENT}\"\n\
[components.\"quiet.localhost\"]\nsecret = \"{SECRET}\"\n",
        delegation(NS, &["node", "kind"]),
        delegation("urn:example:b", &[]),
    );
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_component(COMPONENT, SECRET)
            .with_component("quiet.localhost", SECRET),
    );
    let proxy = Proxy::start(&spec(&extra), &prosody);
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    // The very next stanzas are the advertisements, in domain order.
    let first = component.next_stanza().await;
    let second = component.next_stanza().await;
    for (stanza, domain) in [(&first, "localhost"), (&second, "other.localhost")] {
        let head = stanza.head().unwrap();
        assert_eq!(head.name(), "message", "{}", text(stanza));
        assert_eq!(
            head.from().as_deref(),
            Some(domain),
            "from is the bare domain"
        );
        assert_eq!(head.to().as_deref(), Some(COMPONENT));
        assert!(text(stanza).contains("<delegation xmlns='urn:xmpp:delegation:2'>"));
    }
    let t = text(&first);
    assert!(t.contains(&format!("<delegated namespace='{NS}'><attribute name='node'/><attribute name='kind'/></delegated>")), "{t}");
    assert!(t.contains("<delegated namespace='urn:example:b'/>"), "{t}");
    assert!(text(&second).contains("<delegated namespace='urn:example:two'/>"));

    // A component with nothing delegated gets no advertisement: its first stanza is
    // the answer to its own ping.
    let mut quiet = Raw::component(proxy.ports.component, "quiet.localhost", SECRET).await;
    quiet
        .send("<iq type='get' id='p' from='quiet.localhost' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let next = quiet.next_stanza().await;
    assert_eq!(
        next.head().unwrap().id().as_deref(),
        Some("p"),
        "{}",
        text(&next)
    );
}

#[tokio::test]
async fn checklist_13_reload_changes_are_readvertised() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let first = component.expect("message").await;
    assert!(text(&first).contains(NS));

    proxy.write_config(&proxy.render(&spec(&format!(
        "{}{}",
        delegation(NS, &[]),
        delegation("urn:example:new", &["node"])
    ))));
    let again = component.expect("message").await;
    let t = text(&again);
    assert!(t.contains(&format!("<delegated namespace='{NS}'/>")), "{t}");
    assert!(
        t.contains("<delegated namespace='urn:example:new'><attribute name='node'/></delegated>"),
        "{t}"
    );

    // Everything removed: an empty advertisement withdraws it.
    proxy.write_config(&proxy.render(&spec("")));
    let none = component.expect("message").await;
    assert!(
        text(&none).contains("<delegation xmlns='urn:xmpp:delegation:2'></delegation>"),
        "{}",
        text(&none)
    );
}

#[tokio::test]
async fn checklist_15_delegation_v1_for_ejabberd_era_components() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET));
    let v1 = ProxySpec::plaintext().with_extra(&format!(
        "{}[components.\"{COMPONENT}\"]\nsecret = \"{SECRET}\"\ndelegation_namespace = \"urn:xmpp:delegation:1\"\n",
        delegation(NS, &[])
    ));
    let proxy = Proxy::start(&v1, &prosody);
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let advert = component.expect("message").await;
    assert!(
        text(&advert).contains("<delegation xmlns='urn:xmpp:delegation:1'>"),
        "{}",
        text(&advert)
    );
    // Nesting nodes use the :1 spelling too.
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let q = component.expect("iq").await;
        nodes.push(descendant_attr(&q, "node"));
    }
    nodes.sort();
    assert_eq!(
        nodes,
        vec![
            format!("urn:xmpp:delegation:1::{NS}"),
            format!("urn:xmpp:delegation:1:bare:{NS}")
        ]
    );
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("v1", Some("localhost"), "get", &query(NS)))
        .await;
    let wrapped = wrapper(&mut component).await;
    assert!(text(&wrapped).contains("<delegation xmlns='urn:xmpp:delegation:1'>"));
}

fn descendant_attr(stanza: &Stanza, attr: &str) -> String {
    let t = text(stanza);
    let at = t.find(&format!("{attr}='")).expect("attribute") + attr.len() + 2;
    t[at..at + t[at..].find('\'').unwrap()].to_owned()
}

// ---- D. interception --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_16_17_18_what_is_delegated_and_what_reaches_the_server() {
    let Some(peers) = peers() else { return };
    let extra = format!(
        "{}{}",
        delegation(NS, &[]),
        delegation("urn:xmpp:mam:2", &["node"])
    );
    let (_prosody, proxy) = setup(&extra);
    let component = delegate(&peers, &proxy, &[]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mam = "urn:xmpp:mam:2";
    let cases: Vec<(&str, String, bool)> = vec![
        // checklist 17: addressing
        ("no-to", iq("a1", None, "get", &query(NS)), true),
        (
            "domain",
            iq("a2", Some("localhost"), "get", &query(NS)),
            true,
        ),
        (
            "own-bare",
            iq("a3", Some("alice@localhost"), "set", &query(NS)),
            true,
        ),
        (
            "other-bare",
            iq("a4", Some("bob@localhost"), "get", &query(NS)),
            true,
        ),
        (
            "full-jid",
            iq("a5", Some("bob@localhost/x"), "get", &query(NS)),
            false,
        ),
        (
            "component",
            iq("a6", Some(COMPONENT), "get", &query(NS)),
            false,
        ),
        (
            "foreign",
            iq("a7", Some("bob@elsewhere.example"), "get", &query(NS)),
            false,
        ),
        // checklist 16: candidates
        (
            "two-children",
            iq("b1", None, "get", &format!("{}{}", query(NS), query(NS))),
            false,
        ),
        (
            "other-ns",
            iq("b2", None, "get", &query("urn:example:not-delegated")),
            false,
        ),
        // checklist 18: filtering (MAM without node → server, with node → component)
        ("mam-no-node", iq("c1", None, "set", &query(mam)), false),
        (
            "mam-node",
            iq(
                "c2",
                None,
                "set",
                &format!("<query xmlns='{mam}' node='urn:xmpp:microblog:0'/>"),
            ),
            true,
        ),
    ];
    for (case, request, delegated) in &cases {
        let id = root_attr(request.as_bytes(), "id").unwrap();
        alice.send(request).await;
        let answer = alice.expect_iq(&id).await;
        let handled = text(&answer).contains(&format!("<handled-by>{COMPONENT}</handled-by>"));
        assert_eq!(handled, *delegated, "case {case}: {}", text(&answer));
    }
    // A result or a message in the namespace is never delegated (checklist 16).
    alice
        .send(&format!(
            "<message to='bob@localhost' id='m1'><x xmlns='{NS}'/></message>"
        ))
        .await;
    alice
        .send(&iq("r1", Some("localhost"), "result", &query(NS)))
        .await;
    alice.ping("after").await;
    let out = component.stop().await;
    let delegated = out.lines().filter(|l| l.starts_with("DELEGATED ")).count();
    assert_eq!(delegated, cases.iter().filter(|c| c.2).count(), "{out}");
}

#[tokio::test]
async fn checklist_19_iqs_from_the_managing_component_are_not_looped_back() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    component.expect("message").await;
    component
        .send(&format!(
            "<iq type='get' id='own' from='{COMPONENT}' to='localhost'>{}</iq>",
            query(NS)
        ))
        .await;
    component
        .send(&format!(
            "<iq type='get' id='own2' from='{COMPONENT}' to='alice@localhost'>{}</iq>",
            query(NS)
        ))
        .await;
    // Prosody answers both (it does not know the namespace); no wrapper comes back.
    for id in ["own", "own2"] {
        let answer = loop {
            let s = component.next_stanza().await;
            assert!(
                !text(&s).contains("<delegation"),
                "looped back: {}",
                text(&s)
            );
            if s.head().unwrap().id().as_deref() == Some(id) {
                break s;
            }
        };
        assert_eq!(
            answer.head().unwrap().type_().as_deref(),
            Some("error"),
            "{}",
            text(&answer)
        );
    }
}

#[tokio::test]
async fn checklist_20_21_envelope_and_stamped_sender() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let jid = alice.jid.clone().unwrap();
    let payload = format!("<query xmlns='{NS}' node='n'><item id='1'>a &amp; b</item></query>");
    alice
        .send(&format!("<iq type='set' id='orig-1' to='localhost' from='mallory@evil.example/x' xml:lang='fr'>{payload}</iq>"))
        .await;
    let wrapped = wrapper(&mut component).await;
    let head = wrapped.head().unwrap();
    assert_eq!(head.type_().as_deref(), Some("set"));
    assert_eq!(head.from().as_deref(), Some("localhost"));
    assert_eq!(head.to().as_deref(), Some(COMPONENT));
    let wrapper_id = head.id().unwrap().into_owned();
    assert_ne!(wrapper_id, "orig-1");
    assert!(
        wrapper_id.len() >= 32,
        "wrapper ids are unguessable: {wrapper_id}"
    );
    let t = text(&wrapped);
    assert!(t.contains("<delegation xmlns='urn:xmpp:delegation:2'><forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client'"), "{t}");
    let inner = inner_iq(&wrapped);
    assert_eq!(
        root_attr(inner.as_bytes(), "from").as_deref(),
        Some(jid.as_str()),
        "{inner}"
    );
    assert!(
        !t.contains("mallory"),
        "a client-supplied from is never trusted: {t}"
    );
    for (attr, value) in [
        ("id", "orig-1"),
        ("type", "set"),
        ("to", "localhost"),
        ("xml:lang", "fr"),
    ] {
        assert_eq!(
            root_attr(inner.as_bytes(), attr).as_deref(),
            Some(value),
            "{inner}"
        );
    }
    assert!(inner.contains(&payload), "payload bytes kept: {inner}");
}

#[tokio::test]
async fn checklist_22_no_connected_component_is_service_unavailable() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("off-1", Some("localhost"), "get", &query(NS)))
        .await;
    let answer = alice.expect_iq("off-1").await;
    assert_eq!(
        verdict(&answer),
        (
            "error".into(),
            Some("localhost".into()),
            Some("service-unavailable".into())
        ),
        "{}",
        text(&answer)
    );
    alice.send(&iq("off-2", None, "get", &query(NS))).await;
    let answer = alice.expect_iq("off-2").await;
    assert_eq!(
        verdict(&answer),
        ("error".into(), None, Some("service-unavailable".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_23_waiting_for_the_component_does_not_block_other_traffic() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let component = delegate(&peers, &proxy, &["--answer", "silent"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("slow", Some("localhost"), "get", &query(NS)))
        .await;
    alice.ping("meanwhile").await;
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_24_no_answer_in_time_is_service_unavailable() {
    let Some(peers) = peers() else { return };
    let extra = format!(
        "{}[limits]\ndelegation_timeout_ms = 300\n",
        delegation(NS, &[])
    );
    let (_prosody, proxy) = setup(&extra);
    let component = delegate(&peers, &proxy, &["--answer", "silent"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("late", Some("localhost"), "get", &query(NS)))
        .await;
    let answer = alice.expect_iq("late").await;
    assert_eq!(
        verdict(&answer).2.as_deref(),
        Some("service-unavailable"),
        "{}",
        text(&answer)
    );
    drop(component);
}

// ---- E. replies -------------------------------------------------------------------

/// A raw component and a client with one delegated IQ in flight; returns the wrapper.
async fn in_flight(proxy: &Proxy, id: &str, to: Option<&str>) -> (Raw, Raw, Stanza) {
    let mut component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.send(&iq(id, to, "get", &query(NS))).await;
    let wrapped = wrapper(&mut component).await;
    (component, alice, wrapped)
}

fn reply(wrapper_id: &str, from: &str, inner: &str) -> String {
    format!(
        "<iq type='result' id='{wrapper_id}' from='{from}' to='localhost'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></delegation></iq>"
    )
}

/// Everything the client receives until the component's marker message arrives.
async fn until_marker(alice: &mut Raw, component: &mut Raw, marker: &str) -> Vec<Stanza> {
    let to = alice.jid.clone().unwrap();
    component
        .send(&format!(
            "<message from='{COMPONENT}' to='{to}' id='{marker}'><body>{marker}</body></message>"
        ))
        .await;
    let mut seen = Vec::new();
    loop {
        let s = alice.next_stanza().await;
        if s.head().unwrap().id().as_deref() == Some(marker) {
            return seen;
        }
        seen.push(s);
    }
}

#[tokio::test]
async fn checklist_25_only_the_exact_component_answers_and_only_once() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let (mut component, mut alice, wrapped) = in_flight(&proxy, "q25", Some("localhost")).await;
    let wid = wrapped.head().unwrap().id().unwrap().into_owned();
    let jid = alice.jid.clone().unwrap();
    let good = format!("<iq xmlns='jabber:client' type='result' id='q25' to='{jid}' from='localhost'><query xmlns='{NS}'><n>genuine</n></query></iq>");
    let forged = format!("<iq xmlns='jabber:client' type='result' id='q25' to='{jid}' from='localhost'><query xmlns='{NS}'><n>forged</n></query></iq>");
    // Same id, another JID of the component's domain: dropped, the entry keeps waiting.
    component
        .send(&reply(&wid, &format!("someone@{COMPONENT}"), &forged))
        .await;
    // An unknown wrapper id: not an answer to anything of the client's.
    component
        .send(&reply("no-such-id", COMPONENT, &forged))
        .await;
    component.send(&reply(&wid, COMPONENT, &good)).await;
    component.send(&reply(&wid, COMPONENT, &forged)).await;
    // The genuine answer arrives (awaited: the component's marker below travels
    // through the server and may overtake it)...
    let answer = alice.expect_iq("q25").await;
    assert!(text(&answer).contains("genuine"), "{}", text(&answer));
    // ...and no second one: the later replies were dropped.
    let seen = until_marker(&mut alice, &mut component, "m25").await;
    let more: Vec<String> = seen
        .iter()
        .filter(|s| s.head().unwrap().id().as_deref() == Some("q25"))
        .map(text)
        .collect();
    assert!(more.is_empty(), "exactly one answer, then: {more:?}");
}

#[tokio::test]
async fn checklist_26_malformed_reply_is_service_unavailable() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let jid_inner =
        |jid: &str| format!("<iq xmlns='jabber:client' type='result' id='q26' to='{jid}'/>");
    for (case, build) in [
        (
            "no forwarded",
            Box::new(|_: &str, w: &str| {
                format!("<iq type='result' id='{w}' from='{COMPONENT}' to='localhost'><delegation xmlns='urn:xmpp:delegation:2'/></iq>")
            }) as Box<dyn Fn(&str, &str) -> String>,
        ),
        (
            "text in forwarded",
            Box::new(move |j: &str, w: &str| reply(w, COMPONENT, &format!("junk{}", jid_inner(j)))),
        ),
        (
            "two stanzas",
            Box::new(move |j: &str, w: &str| reply(w, COMPONENT, &format!("{0}{0}", jid_inner(j)))),
        ),
        (
            "inner not jabber:client",
            Box::new(|j: &str, w: &str| {
                reply(
                    w,
                    COMPONENT,
                    &format!("<iq xmlns='urn:example:x' type='result' id='q26' to='{j}'/>"),
                )
            }),
        ),
        (
            "empty result",
            Box::new(|_: &str, w: &str| {
                format!("<iq type='result' id='{w}' from='{COMPONENT}' to='localhost'/>")
            }),
        ),
    ] {
        let (mut component, mut alice, wrapped) = in_flight(&proxy, "q26", Some("localhost")).await;
        let wid = wrapped.head().unwrap().id().unwrap().into_owned();
        component
            .send(&build(alice.jid.as_deref().unwrap(), &wid))
            .await;
        let answer = alice.expect_iq("q26").await;
        assert_eq!(
            verdict(&answer).2.as_deref(),
            Some("service-unavailable"),
            "case {case}: {}",
            text(&answer)
        );
        // A clean close: the next case's component may claim the name at once.
        component.send("</stream:stream>").await;
        component.expect_closed().await;
    }
}

#[tokio::test]
async fn checklist_27_inner_reply_must_match_the_request() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    for (case, inner) in [
        (
            "wrong id",
            "<iq xmlns='jabber:client' type='result' id='other' to='{jid}'/>",
        ),
        (
            "wrong to",
            "<iq xmlns='jabber:client' type='result' id='q27' to='bob@localhost/x'/>",
        ),
        (
            "spoofed from",
            "<iq xmlns='jabber:client' type='result' id='q27' to='{jid}' from='bob@localhost'/>",
        ),
        (
            "not a result",
            "<iq xmlns='jabber:client' type='set' id='q27' to='{jid}'/>",
        ),
        (
            "inner message",
            "<message xmlns='jabber:client' id='q27' to='{jid}'/>",
        ),
    ] {
        let (mut component, mut alice, wrapped) = in_flight(&proxy, "q27", Some("localhost")).await;
        let wid = wrapped.head().unwrap().id().unwrap().into_owned();
        let inner = inner.replace("{jid}", alice.jid.as_deref().unwrap());
        component.send(&reply(&wid, COMPONENT, &inner)).await;
        let answer = alice.expect_iq("q27").await;
        assert_eq!(
            verdict(&answer).2.as_deref(),
            Some("service-unavailable"),
            "case {case}: {}",
            text(&answer)
        );
    }
}

#[tokio::test]
async fn checklist_28_the_proxy_sets_the_reply_addresses() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    // Request to the domain, inner reply without 'from': the client sees from=domain.
    let (mut component, mut alice, wrapped) = in_flight(&proxy, "q28", Some("localhost")).await;
    let wid = wrapped.head().unwrap().id().unwrap().into_owned();
    let jid = alice.jid.clone().unwrap();
    component
        .send(&reply(&wid, COMPONENT, &format!("<iq xmlns='jabber:client' type='result' id='q28' to='{jid}'><query xmlns='{NS}'/></iq>")))
        .await;
    let answer = alice.expect_iq("q28").await;
    let head = answer.head().unwrap();
    assert_eq!(head.from().as_deref(), Some("localhost"));
    assert_eq!(head.to().as_deref(), Some(jid.as_str()));
    assert_eq!(head.type_().as_deref(), Some("result"));
    // Request without 'to': the reply has no 'from' (it comes from the account itself).
    alice.send(&iq("q28b", None, "get", &query(NS))).await;
    let wrapped = wrapper(&mut component).await;
    let wid = wrapped.head().unwrap().id().unwrap().into_owned();
    component
        .send(&reply(&wid, COMPONENT, &format!("<iq xmlns='jabber:client' type='result' id='q28b' to='{jid}' from='alice@localhost'/>")))
        .await;
    let answer = alice.expect_iq("q28b").await;
    assert_eq!(answer.head().unwrap().from(), None, "{}", text(&answer));
    // Too many payload elements in a result: malformed.
    alice
        .send(&iq("q28c", Some("localhost"), "get", &query(NS)))
        .await;
    let wid = wrapper(&mut component)
        .await
        .head()
        .unwrap()
        .id()
        .unwrap()
        .into_owned();
    component
        .send(&reply(&wid, COMPONENT, &format!("<iq xmlns='jabber:client' type='result' id='q28c' to='{jid}'><a xmlns='x'/><b xmlns='x'/></iq>")))
        .await;
    let answer = alice.expect_iq("q28c").await;
    assert_eq!(verdict(&answer).2.as_deref(), Some("service-unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_29_outer_error_is_service_unavailable_with_the_original_id() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let component = delegate(&peers, &proxy, &["--answer", "outer-error"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("q29", Some("localhost"), "get", &query(NS)))
        .await;
    let answer = alice.expect_iq("q29").await;
    assert_eq!(
        verdict(&answer),
        (
            "error".into(),
            Some("localhost".into()),
            Some("service-unavailable".into())
        )
    );
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_30_inner_error_reaches_the_client() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let component = delegate(&peers, &proxy, &["--answer", "inner-error"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("q30", Some("localhost"), "get", &query(NS)))
        .await;
    let answer = alice.expect_iq("q30").await;
    assert_eq!(
        verdict(&answer),
        (
            "error".into(),
            Some("localhost".into()),
            Some("forbidden".into())
        )
    );
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_9_pretty_printed_reply_with_delay_is_accepted() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&delegation(NS, &[]));
    let component = delegate(&peers, &proxy, &["--answer", "pretty"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&iq("q9", Some("localhost"), "get", &query(NS)))
        .await;
    let answer = alice.expect_iq("q9").await;
    assert_eq!(verdict(&answer).0, "result", "{}", text(&answer));
    assert!(text(&answer).contains("handled-by"));
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_7_component_disconnect_answers_pending_iqs_at_once() {
    let Some(peers) = peers() else { return };
    let extra = format!(
        "{}[limits]\ndelegation_timeout_ms = 600000\n",
        delegation(NS, &[])
    );
    let (_prosody, proxy) = setup(&extra);
    let mut component = delegate(&peers, &proxy, &["--answer", "silent"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    for i in 0..3 {
        alice
            .send(&iq(&format!("p{i}"), Some("localhost"), "get", &query(NS)))
            .await;
    }
    for _ in 0..3 {
        assert!(component.await_line("DELEGATED", LIMIT).await.is_some());
    }
    component.stop().await;
    let mut answered = Vec::new();
    for _ in 0..3 {
        let answer = alice.expect("iq").await;
        assert_eq!(verdict(&answer).2.as_deref(), Some("service-unavailable"));
        answered.push(answer.head().unwrap().id().unwrap().into_owned());
    }
    answered.sort();
    assert_eq!(answered, ["p0", "p1", "p2"]);
}

// ---- F. discovery -----------------------------------------------------------------

fn features(answer: &Stanza) -> Vec<String> {
    let t = text(answer);
    t.match_indices("<feature ")
        .filter_map(|(at, _)| root_attr(&t.as_bytes()[at..], "var"))
        .collect()
}

/// disco#info to `to`, retried until the delegate's nested feature shows (the nesting
/// answers are fetched when the component connects).
async fn disco_info(alice: &mut Raw, to: &str, expect: &str) -> Stanza {
    for attempt in 0..100 {
        let id = format!("disco-{attempt}");
        alice
            .send(&iq(
                &id,
                Some(to),
                "get",
                "<query xmlns='http://jabber.org/protocol/disco#info'/>",
            ))
            .await;
        let answer = alice.expect_iq(&id).await;
        if features(&answer).iter().any(|f| f == expect) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{expect} never appeared in disco#info of {to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_31_32_33_domain_disco_shows_delegation_and_the_delegates_features() {
    let Some(peers) = peers() else { return };
    // Prosody announces urn:xmpp:time (mod_time) on the domain.
    let (_prosody, proxy) = setup(&delegation("urn:xmpp:time", &[]));
    let mut component = delegate(&peers, &proxy, &["--omit-ns-feature"]).await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(
            component
                .await_line("NESTING", LIMIT)
                .await
                .expect("nesting query"),
        );
    }
    nodes.sort();
    assert_eq!(
        nodes,
        vec![
            "NESTING localhost urn:xmpp:delegation:2::urn:xmpp:time".to_owned(),
            "NESTING localhost urn:xmpp:delegation:2:bare:urn:xmpp:time".to_owned(),
        ]
    );
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let answer = disco_info(&mut alice, "localhost", "urn:xmpp:time#server-extra").await;
    let list = features(&answer);
    assert!(
        list.contains(&"urn:xmpp:delegation:2".to_owned()),
        "checklist 31: {list:?}"
    );
    assert!(
        !list.contains(&"urn:xmpp:time".to_owned()),
        "checklist 33: the server's own feature is hidden: {list:?}"
    );
    assert!(
        list.contains(&"urn:xmpp:ping".to_owned()),
        "other server features stay: {list:?}"
    );
    assert!(
        text(&answer).contains("delegate server"),
        "the delegate's identity: {}",
        text(&answer)
    );
    assert_eq!(
        list.iter()
            .filter(|f| *f == "urn:xmpp:delegation:2")
            .count(),
        1
    );
    component.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_34_account_disco_shows_the_delegates_bare_features() {
    let Some(peers) = peers() else { return };
    // PEP: Prosody announces pubsub features on accounts; an external PEP service
    // takes over the namespace.
    let pubsub = "http://jabber.org/protocol/pubsub";
    let (_prosody, proxy) = setup(&delegation(pubsub, &[]));
    let component = delegate(&peers, &proxy, &["--omit-ns-feature"]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let answer = disco_info(
        &mut alice,
        "alice@localhost",
        &format!("{pubsub}#bare-extra"),
    )
    .await;
    assert_eq!(
        answer.head().unwrap().from().as_deref(),
        Some("alice@localhost")
    );
    let list = features(&answer);
    let legacy: Vec<&String> = list
        .iter()
        .filter(|f| {
            (f.as_str() == pubsub || f.starts_with(&format!("{pubsub}#"))) && !f.ends_with("-extra")
        })
        .collect();
    assert!(
        legacy.is_empty(),
        "Prosody's own PEP features must be hidden: {legacy:?}"
    );
    assert!(
        !list.contains(&"urn:xmpp:delegation:2".to_owned()),
        "the domain feature is not an account's"
    );
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_35_36_pseudo_namespaces_for_bare_disco() {
    let Some(peers) = peers() else { return };
    let extra = format!(
        "{}{}",
        delegation("urn:xmpp:delegation:2:bare:disco#info:*", &[]),
        delegation("urn:xmpp:delegation:2:bare:disco#items:*", &[])
    );
    // Prosody answers disco on an account only to contacts with a subscription.
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_component(COMPONENT, SECRET)
            .with_subscription("alice", "bob"),
    );
    let proxy = Proxy::start(&spec(&extra), &prosody);
    let component = delegate(&peers, &proxy, &[]).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // 36: disco#items on a bare JID without node goes straight to the delegate.
    alice
        .send(&iq(
            "i36",
            Some("bob@localhost"),
            "get",
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        ))
        .await;
    let answer = alice.expect_iq("i36").await;
    assert!(text(&answer).contains("handled-by"), "{}", text(&answer));
    assert_eq!(
        answer.head().unwrap().from().as_deref(),
        Some("bob@localhost")
    );
    // 35: disco#info with a node the legacy server does not know → delegated.
    alice
        .send(&iq("i35", Some("bob@localhost"), "get", "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:unknown-node'/>"))
        .await;
    let answer = alice.expect_iq("i35").await;
    assert!(text(&answer).contains("handled-by"), "{}", text(&answer));
    // Without a node, disco#info on a bare JID stays with the legacy server.
    alice
        .send(&iq(
            "i35b",
            Some("bob@localhost"),
            "get",
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        ))
        .await;
    let answer = alice.expect_iq("i35b").await;
    assert!(!text(&answer).contains("handled-by"), "{}", text(&answer));
    let out = component.stop().await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("DELEGATED ")).count(),
        2,
        "{out}"
    );
}
