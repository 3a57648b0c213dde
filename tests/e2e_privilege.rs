//! XEP-0356 Privileged Entity retrofitted onto a plain Prosody by stanzagate: one test
//! per MUST item of checklist sections G–K, named after its number, with components
//! written with slixmpp's own `xep_0356` plugin (what gateways use, unmodified) and
//! raw streams for the malformed and forbidden cases.

mod common;

use std::time::Duration;

use common::python::Running;
use common::raw::{has_id, text};
use common::{peers, Peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::children::stanza_error_condition;
use stanzagate::xml::Stanza;

const GATEWAY: &str = "gateway.localhost";
const SECRET: &str = "secret";
const LIMIT: Duration = Duration::from_secs(60);
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

fn grants(extra: &str) -> String {
    format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\nmessage = \"outgoing\"\n\
presence = \"roster\"\niq = {{ \"{PUBSUB}\" = \"both\" }}\n{extra}"
    )
}

fn spec(toml: &str) -> ProxySpec {
    ProxySpec::plaintext()
        .with_component(GATEWAY, SECRET)
        .with_extra(toml)
}

fn setup_with(prosody: ProsodySpec, toml: &str) -> (Prosody, Proxy) {
    let prosody = Prosody::start(&prosody.with_component(GATEWAY, SECRET));
    let proxy = Proxy::start(&spec(toml), &prosody);
    (prosody, proxy)
}

fn setup(toml: &str) -> (Prosody, Proxy) {
    setup_with(
        ProsodySpec::default().with_subscription("alice", "bob"),
        toml,
    )
}

async fn gateway(peers: &Peers, proxy: &Proxy, args: &[&str]) -> Running {
    peers
        .python
        .component(
            "privileged.py",
            GATEWAY,
            SECRET,
            proxy.ports.component,
            args,
        )
        .await
}

async fn line(running: &mut Running, prefix: &str) -> String {
    match running.take_line(prefix, LIMIT).await {
        Some(line) => line,
        None => panic!("no {prefix} line; got:\n{}", running.seen.join("\n")),
    }
}

// ---- G. advertisement and permission model ------------------------------------------

#[tokio::test]
async fn checklist_38_39_40_advertisement_right_after_handshake() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants("roster_push = false\n"));
    let mut raw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    let first = raw.next_stanza().await;
    let head = first.head().unwrap();
    assert_eq!(head.name(), "message");
    assert_eq!(
        head.from().as_deref(),
        Some("localhost"),
        "from is exactly the bare domain"
    );
    assert_eq!(head.to().as_deref(), Some(GATEWAY));
    let t = text(&first);
    for needle in [
        "<privilege xmlns='urn:xmpp:privilege:2'>",
        "<perm access='roster' type='both' push='false'/>",
        "<perm access='message' type='outgoing'/>",
        "<perm access='presence' type='roster'/>",
        &format!("<perm access='iq'><namespace ns='{PUBSUB}' type='both'/></perm>"),
    ] {
        assert!(t.contains(needle), "missing {needle} in {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_38_slixmpp_plugin_reads_the_advertisement() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut gw = gateway(&peers, &proxy, &[]).await;
    let privileges = line(&mut gw, "PRIVILEGES").await;
    assert!(
        privileges.contains("localhost roster=both message=outgoing presence=roster"),
        "{privileges}"
    );
    assert!(
        privileges.contains(&format!("'{PUBSUB}': 'both'")),
        "{privileges}"
    );
}

#[test]
fn checklist_41_presence_roster_needs_roster_read_access() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\nc2s = \"127.0.0.1:5222\"\ncomponent = \"127.0.0.1:5347\"\n[tls]\nrequired = false\n\
[upstream]\nc2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n\
[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"set\"\npresence = \"roster\"\n\
[components.\"{GATEWAY}\"]\nsecret = \"s\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("presence"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn checklist_42_48_what_is_not_granted_is_refused() {
    let Some(_peers) = peers() else { return };
    // roster get only, no iq, no message.
    let toml = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"get\"\n\
[components.\"plain.localhost\"]\nsecret = \"{SECRET}\"\n"
    );
    let (_prosody, proxy) = setup_with(
        ProsodySpec::default()
            .with_subscription("alice", "bob")
            .with_component("plain.localhost", SECRET),
        &toml,
    );
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!("<iq type='set' id='rs' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>")).await;
    let answer = gw.until(has_id("rs")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("forbidden"),
        "{}",
        text(&answer)
    );
    assert_eq!(
        answer.head().unwrap().from().as_deref(),
        Some("alice@localhost")
    );
    gw.send(&format!("<iq type='get' id='pi' from='{GATEWAY}' to='alice@localhost'><privileged_iq xmlns='urn:xmpp:privilege:2'><iq xmlns='jabber:client' type='get' id='x'><pubsub xmlns='{PUBSUB}'><items node='n'/></pubsub></iq></privileged_iq></iq>")).await;
    let answer = gw.until(has_id("pi")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("forbidden")
    );
    gw.send(&format!("<message id='pm' from='{GATEWAY}' to='localhost'><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost' to='bob@localhost'><body>x</body></message></forwarded></privilege></message>")).await;
    let answer = gw.until(has_id("pm")).await;
    assert_eq!(answer.head().unwrap().type_().as_deref(), Some("error"));
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("forbidden")
    );
    // A component with no privileges at all is refused the same way (48).
    let mut plain = Raw::component(proxy.ports.component, "plain.localhost", SECRET).await;
    plain
        .send("<iq type='get' id='np' from='plain.localhost' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let answer = plain.until(has_id("np")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("forbidden"),
        "{}",
        text(&answer)
    );
    // A roster IQ without 'to' is the component's own business: it reaches Prosody.
    gw.send(&format!(
        "<iq type='get' id='own' from='{GATEWAY}'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    let answer = gw.until(has_id("own")).await;
    assert_ne!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("forbidden"),
        "{}",
        text(&answer)
    );
}

// ---- H. roster ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_43_44_46_49_roster_get_set_and_pushes_through_slixmpp() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = gateway(
        &peers,
        &proxy,
        &[
            "--roster-get",
            "alice@localhost",
            "--roster-set",
            "alice@localhost=carol@localhost:none,dave@localhost:none",
            "--roster-get-after",
            "alice@localhost",
        ],
    )
    .await;
    // 43: the user's roster as the server returns it.
    let first = line(&mut gw, "ROSTER alice@localhost").await;
    assert_eq!(first, "ROSTER alice@localhost bob@localhost:both");
    // 44, 46: a two-item set is applied and answered once.
    line(&mut gw, "ROSTER-SET-OK alice@localhost").await;
    let second = line(&mut gw, "ROSTER alice@localhost").await;
    assert!(
        second.contains("carol@localhost:none") && second.contains("dave@localhost:none"),
        "{second}"
    );
    // 44: the user's client got its normal roster pushes.
    let mut pushed = Vec::new();
    while pushed.len() < 2 {
        let push = alice.expect("iq").await;
        if text(&push).contains("jabber:iq:roster") {
            pushed.push(text(&push));
        }
    }
    assert!(
        pushed.iter().any(|p| p.contains("carol@localhost"))
            && pushed.iter().any(|p| p.contains("dave@localhost"))
    );
    // 49: the gateway got a push for each change, once, from the user's bare JID.
    for contact in ["carol@localhost", "dave@localhost"] {
        let push = line(&mut gw, &format!("ROSTER-PUSH alice@localhost {contact}")).await;
        assert!(push.ends_with("none"), "{push}");
    }
    // A change made by the user's own client is pushed too.
    alice.send("<iq type='set' id='own-set'><query xmlns='jabber:iq:roster'><item jid='erin@localhost'/></query></iq>").await;
    alice.expect_iq("own-set").await;
    line(&mut gw, "ROSTER-PUSH alice@localhost erin@localhost").await;
    let out = gw.stop().await;
    assert_eq!(
        out.matches("ROSTER-PUSH alice@localhost carol@localhost")
            .count(),
        1,
        "{out}"
    );
}

#[tokio::test]
async fn checklist_45_roster_set_validation() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    for (id, item, condition) in [
        ("self", "<item jid='alice@localhost'/>", "not-allowed"),
        ("res", "<item jid='bob@localhost/phone'/>", "bad-request"),
        (
            "gone",
            "<item jid='nobody@localhost' subscription='remove'/>",
            "item-not-found",
        ),
    ] {
        gw.send(&format!("<iq type='set' id='{id}' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'>{item}</query></iq>")).await;
        let answer = gw
            .until(move |s| s.head().unwrap().id().as_deref() == Some(id))
            .await;
        assert_eq!(
            stanza_error_condition(answer.bytes()).as_deref(),
            Some(condition),
            "{id}: {}",
            text(&answer)
        );
    }
}

#[tokio::test]
async fn roster_operation_without_a_live_session_is_recipient_unavailable() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!("<iq type='get' id='nobody' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>")).await;
    let answer = gw.until(has_id("nobody")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("recipient-unavailable")
    );
    assert!(text(&answer).contains("no session"), "{}", text(&answer));
}

#[tokio::test]
async fn checklist_50_answers_to_pushes_are_consumed() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // Servers push roster changes to sessions that fetched the roster (RFC 6121).
    alice
        .send("<iq type='get' id='fetch'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("fetch").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    alice.send("<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='zed@localhost'/></query></iq>").await;
    let push = gw.until(|s| text(s).contains("zed@localhost")).await;
    let id = push.head().unwrap().id().unwrap().into_owned();
    assert!(id.starts_with("sgp-"));
    gw.send(&format!(
        "<iq type='result' id='{id}' from='{GATEWAY}' to='alice@localhost'/>"
    ))
    .await;
    // Had it reached Prosody as an IQ result to alice, nothing would show; but a
    // consumed answer also produces no error back to the gateway: the next thing the
    // gateway sees is the answer to its own ping.
    gw.send(&format!("<iq type='get' id='after' from='{GATEWAY}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")).await;
    let next = gw.until(|s| s.head().unwrap().name() == "iq").await;
    assert_eq!(
        next.head().unwrap().id().as_deref(),
        Some("after"),
        "{}",
        text(&next)
    );
}

// ---- I. messages --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_51_54_slixmpp_privileged_message_in_component_namespace_is_delivered() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send("<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    alice.expect_iq("carbons").await;
    // slixmpp's send_privileged_message puts the inner message in
    // jabber:component:accept (Prosody rejects that; stanzagate normalises it).
    let mut gw = gateway(
        &peers,
        &proxy,
        &[
            "--message",
            "alice@localhost,bob@localhost,on behalf of alice",
        ],
    )
    .await;
    line(&mut gw, "MESSAGE-SENT").await;
    let received = bob.expect("message").await;
    let t = text(&received);
    assert!(t.contains("on behalf of alice"), "{t}");
    assert!(
        received
            .head()
            .unwrap()
            .from()
            .unwrap()
            .starts_with("alice@localhost"),
        "{t}"
    );
    // 54: the session it went out on gets a carbon.
    let carbon = alice.expect("message").await;
    let t = text(&carbon);
    assert!(
        t.contains("<sent xmlns='urn:xmpp:carbons:2'>") && t.contains("on behalf of alice"),
        "{t}"
    );
}

#[tokio::test]
async fn checklist_52_53_56_message_refusals_and_no_recursion() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    let wrap = |id: &str, inner: &str| {
        format!("<message id='{id}' from='{GATEWAY}' to='localhost'><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></privilege></message>")
    };
    for (id, inner, condition) in [
        ("foreign", "<message xmlns='jabber:client' from='eve@elsewhere.example' to='bob@localhost'><body>x</body></message>", "forbidden"),
        ("component", "<message xmlns='jabber:client' from='gateway.localhost' to='bob@localhost'><body>x</body></message>", "forbidden"),
        ("resource", "<message xmlns='jabber:client' from='alice@localhost/r' to='bob@localhost'><body>x</body></message>", "forbidden"),
        ("two", "<message xmlns='jabber:client' from='alice@localhost'/><message xmlns='jabber:client' from='alice@localhost'/>", "bad-request"),
        ("not-msg", "<iq xmlns='jabber:client' from='alice@localhost' type='get' id='x'/>", "bad-request"),
        ("text", "junk<message xmlns='jabber:client' from='alice@localhost'/>", "bad-request"),
    ] {
        gw.send(&wrap(id, inner)).await;
        let answer = gw.until(move |s| s.head().unwrap().id().as_deref() == Some(id)).await;
        assert_eq!(answer.head().unwrap().type_().as_deref(), Some("error"), "{id}");
        assert_eq!(stanza_error_condition(answer.bytes()).as_deref(), Some(condition), "{id}: {}", text(&answer));
    }
    // 56: a privilege element inside the delivered message is just content.
    let nested = wrap("n", "<message xmlns='jabber:client' from='alice@localhost' to='bob@localhost' type='chat'><body>outer</body><privilege xmlns='urn:xmpp:privilege:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost' to='alice@localhost'><body>inner</body></message></forwarded></privilege></message>");
    gw.send(&nested).await;
    let got = bob.expect("message").await;
    let t = text(&got);
    assert!(t.contains("outer") && t.contains("<privilege"), "{t}");
    assert!(got
        .head()
        .unwrap()
        .from()
        .unwrap()
        .starts_with("alice@localhost"));
}

#[tokio::test]
async fn checklist_55_other_messages_to_the_domain_pass() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    // A plain message to the domain reaches Prosody, which answers it as it answers
    // any message to itself; the gateway is not told bad-request (ejabberd does that).
    gw.send(&format!(
        "<message id='plain' from='{GATEWAY}' to='localhost'><body>hello server</body></message>"
    ))
    .await;
    let answer = gw.until(has_id("plain")).await;
    assert_ne!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("bad-request"),
        "{}",
        text(&answer)
    );
    assert_eq!(answer.head().unwrap().from().as_deref(), Some("localhost"));
}

// ---- J. privileged IQ -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_57_60_61_62_privileged_iq_through_slixmpp() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = gateway(
        &peers,
        &proxy,
        &[
            "--publish",
            "alice@localhost,urn:example:node",
            "--retract",
            "alice@localhost,urn:example:nowhere",
        ],
    )
    .await;
    let published = line(&mut gw, "PRIV-IQ-").await;
    assert!(
        published.starts_with("PRIV-IQ-RESULT type=result"),
        "{published}"
    );
    assert!(
        published.contains("<publish node=\"urn:example:node\">")
            || published.contains("urn:example:node"),
        "{published}"
    );
    let failed = line(&mut gw, "PRIV-IQ-").await;
    // slixmpp raises PrivilegedIqError for the outer type='error' and reads the
    // server's condition from the forwarded IQ (its Error plugin only looks for a
    // jabber:client <error/>, so the outer copy, correctly in the component
    // namespace, reads as its default condition).
    assert!(
        failed.starts_with("PRIV-IQ-ERROR ") && failed.ends_with("nested=item-not-found"),
        "{failed}"
    );
    line(&mut gw, "ACTIONS-DONE").await;
    // 62: the answers never reached the user's client: a ping is the next IQ it sees.
    alice.ping("clean").await;
    // The item really is in alice's PEP: she can read it back herself.
    alice.send(&format!("<iq type='get' id='read'><pubsub xmlns='{PUBSUB}'><items node='urn:example:node'/></pubsub></iq>")).await;
    let items = alice.expect_iq("read").await;
    assert!(
        text(&items).contains("via privileged IQ"),
        "{}",
        text(&items)
    );
}

#[tokio::test]
async fn checklist_58_59_privileged_iq_violations_are_answered() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\niq = {{ \"{PUBSUB}\" = \"get\" }}\n"
    );
    let (_prosody, proxy) = setup(&toml);
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    let payload = format!("<pubsub xmlns='{PUBSUB}'><items node='n'/></pubsub>");
    let wrapped = |id: &str, to: &str, kind: &str, inner: &str| {
        format!("<iq type='{kind}' id='{id}' from='{GATEWAY}' to='{to}'><privileged_iq xmlns='urn:xmpp:privilege:2'>{inner}</privileged_iq></iq>")
    };
    let cases = [
        ("domain", wrapped("domain", "localhost", "get", &format!("<iq xmlns='jabber:client' type='get' id='i'>{payload}</iq>")), "forbidden"),
        ("ns", wrapped("ns", "alice@localhost", "get", "<iq xmlns='jabber:client' type='get' id='i'><query xmlns='jabber:iq:version'/></iq>"), "forbidden"),
        ("type", wrapped("type", "alice@localhost", "set", &format!("<iq xmlns='jabber:client' type='set' id='i'>{payload}</iq>")), "forbidden"),
        ("inner-ns", wrapped("inner-ns", "alice@localhost", "get", &format!("<iq xmlns='jabber:component:accept' type='get' id='i'>{payload}</iq>")), "forbidden"),
        ("from", wrapped("from", "alice@localhost", "get", &format!("<iq xmlns='jabber:client' type='get' id='i' from='bob@localhost'>{payload}</iq>")), "forbidden"),
        ("mismatch", wrapped("mismatch", "alice@localhost", "get", &format!("<iq xmlns='jabber:client' type='set' id='i'>{payload}</iq>")), "forbidden"),
        ("name", wrapped("name", "alice@localhost", "get", &format!("<message xmlns='jabber:client' id='i'>{payload}</message>")), "bad-request"),
        ("no-id", wrapped("no-id", "alice@localhost", "get", &format!("<iq xmlns='jabber:client' type='get'>{payload}</iq>")), "bad-request"),
        ("two", wrapped("two", "alice@localhost", "get", &format!("<iq xmlns='jabber:client' type='get' id='i'>{payload}{payload}</iq>")), "bad-request"),
        ("no-ns", wrapped("no-ns", "alice@localhost", "get", "<iq xmlns='jabber:client' type='get' id='i'><query/></iq>"), "bad-request"),
    ];
    for (id, request, condition) in cases {
        gw.send(&request).await;
        let answer = gw
            .until(move |s| s.head().unwrap().id().as_deref() == Some(id))
            .await;
        assert_eq!(
            stanza_error_condition(answer.bytes()).as_deref(),
            Some(condition),
            "{id}: {}",
            text(&answer)
        );
    }
}

#[tokio::test]
async fn checklist_63_no_answer_in_time_is_remote_server_timeout() {
    let Some(_peers) = peers() else { return };
    let toml = grants("[limits]\nprivileged_iq_timeout_ms = 300\n");
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_component(GATEWAY, SECRET)
            .with_component("silent.localhost", SECRET),
    );
    let proxy = Proxy::start(
        &spec(&toml).with_component("silent.localhost", SECRET),
        &prosody,
    );
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    // A component that never answers: the IQ sent as alice waits for nothing.
    let _silent = Raw::component(proxy.ports.component, "silent.localhost", SECRET).await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.send(&format!("<iq type='get' id='slow' from='{GATEWAY}' to='alice@localhost'><privileged_iq xmlns='urn:xmpp:privilege:2'><iq xmlns='jabber:client' type='get' id='i' to='silent.localhost'><pubsub xmlns='{PUBSUB}'><items node='n'/></pubsub></iq></privileged_iq></iq>")).await;
    let answer = gw.until(has_id("slow")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("remote-server-timeout"),
        "{}",
        text(&answer)
    );
}

#[tokio::test]
async fn checklist_64_ordinary_iqs_from_a_privileged_component_pass() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    // A keepalive IQ with no child (ejabberd #4336/#4609 dropped or crashed on it) is
    // relayed untouched. Prosody 0.12 itself throws on it and never answers, so the
    // proof is that the stream stays up and the next IQ is answered.
    gw.send(&format!(
        "<iq type='get' id='k' from='{GATEWAY}' to='localhost'/>"
    ))
    .await;
    gw.send(&format!("<iq type='get' id='d' from='{GATEWAY}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")).await;
    let answer = gw.until(has_id("d")).await;
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&answer)
    );
}

// ---- K. presence --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_65_66_67_69_presence_copies() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut gw = gateway(&peers, &proxy, &[]).await;
    let mut alice1 = Raw::login(proxy.c2s(), "alice").await;
    alice1.send("<presence><show>chat</show></presence>").await;
    // 65: alice's broadcast presence, from her full JID.
    let own = line(&mut gw, "PRESENCE alice@localhost/").await;
    assert!(!own.ends_with("unavailable"), "{own}");
    // 66, 67: bob's presence reaches alice's two sessions; the gateway gets it once.
    let mut alice2 = Raw::connect(proxy.c2s()).await;
    alice2.authenticate("alice").await;
    alice2.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>second</resource></bind></iq>").await;
    alice2.expect_iq("b2").await;
    alice2.send("<presence/>").await;
    line(&mut gw, "PRESENCE alice@localhost/second").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence><status>here</status></presence>").await;
    alice1.expect("presence").await;
    alice2.expect("presence").await;
    let mut bob_line = line(&mut gw, "PRESENCE bob@localhost/").await;
    assert!(!bob_line.ends_with("unavailable"), "{bob_line}");
    // Bob leaves: unavailable copied too.
    bob.send("<presence type='unavailable'/>").await;
    bob_line = line(&mut gw, "PRESENCE bob@localhost/").await;
    assert!(bob_line.ends_with("unavailable"), "{bob_line}");
    alice1.ping("sync").await;
    let out = gw.stop().await;
    let bob_available = out
        .lines()
        .filter(|l| l.starts_with("PRESENCE bob@localhost/") && !l.ends_with("unavailable"))
        .count();
    assert_eq!(bob_available, 1, "each distinct presence once: {out}");
    // 69: no subscription presences and nothing from the gateway itself.
    assert!(!out.contains("SUBSCRIPTION"), "{out}");
    assert!(!out.contains(&format!("PRESENCE {GATEWAY}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_68_connecting_entity_gets_current_presences_first() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.send("<presence/>").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    alice.expect("presence").await; // bob's, so the proxy has seen it
    let mut gw = gateway(&peers, &proxy, &[]).await;
    let mut seen = vec![
        line(&mut gw, "PRESENCE").await,
        line(&mut gw, "PRESENCE").await,
    ];
    seen.sort();
    assert!(
        seen[0].starts_with("PRESENCE alice@localhost/raw"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("PRESENCE bob@localhost/raw"),
        "{seen:?}"
    );
    // Leaving is reported as unavailable even without an explicit presence.
    drop(alice);
    let gone = line(&mut gw, "PRESENCE alice@localhost/").await;
    assert!(gone.ends_with("unavailable"), "{gone}");
}

// ---- on behalf of: subscription completion (checklist 47) ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_47_subscription_both_is_completed_for_gateway_contacts() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup(&grants(""));
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // An interested resource (RFC 6121 §2.1.6): the server pushes her roster changes.
    alice
        .send("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r0").await;
    alice.send("<presence/>").await;
    let puppet = format!("puppet@{GATEWAY}");
    let mut gw = gateway(
        &peers,
        &proxy,
        &["--roster-set", &format!("alice@localhost={puppet}:both")],
    )
    .await;
    line(&mut gw, "ROSTER-SET-OK alice@localhost").await;
    // The proxy completes the contact's side on the gateway's link (the component
    // link route): her pushes follow the item to `both`.
    alice
        .until(|s| {
            s.head().unwrap().name() == "iq"
                && roster_item_subscription(s, &puppet).as_deref() == Some("both")
        })
        .await;
    // Nor was the gateway asked anything: what it printed before a marker from alice
    // holds no subscription presence.
    alice
        .send(&format!(
            "<message to='{puppet}' id='marker'><body>marker</body></message>"
        ))
        .await;
    line(&mut gw, "MESSAGE alice@localhost").await;
    let printed = gw.seen.join("\n");
    assert!(
        !printed.contains("SUBSCRIPTION"),
        "the gateway saw subscription presence:\n{printed}"
    );
}

/// The `subscription` of `jid`'s item in a roster result.
fn roster_item_subscription(roster: &Stanza, jid: &str) -> Option<String> {
    use stanzagate::xml::children::{children, root_attr};
    let query = children(roster.bytes(), None).ok()?.into_iter().next()?;
    let query_bytes = &roster.bytes()[query.range.clone()];
    children(query_bytes, None)
        .ok()?
        .into_iter()
        .map(|item| &query_bytes[item.range])
        .find(|item| root_attr(item, "jid").as_deref() == Some(jid))
        .map(|item| root_attr(item, "subscription").unwrap_or_else(|| "none".into()))
}

// ---- Old components ------------------------------------------------------------------

/// `privilege_namespace = "urn:xmpp:privilege:1"` (Spectrum2 speaks only `:1`): the
/// advertisement comes in `:1` without the permissions `:1` lacks, a `:1` privileged
/// message is honoured, and a `:2` wrapper from that component is not a privilege.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privilege_namespace_1_for_old_components() {
    let Some(_peers) = peers() else { return };
    let toml = format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\n\
message = \"outgoing\"\npresence = \"roster\"\n"
    );
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_subscription("alice", "bob")
            .with_component(GATEWAY, SECRET),
    );
    let spec = ProxySpec::plaintext()
        .with_extra(&format!(
            "[components.\"{GATEWAY}\"]\nsecret = \"{SECRET}\"\nprivilege_namespace = \"urn:xmpp:privilege:1\"\n{toml}"
        ));
    let proxy = Proxy::start(&spec, &prosody);
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    let advertisement = text(&gw.next_stanza().await);
    assert_eq!(
        advertisement,
        format!(
            "<message from='localhost' to='{GATEWAY}'><privilege xmlns='urn:xmpp:privilege:1'>\
<perm access='roster' type='both'/><perm access='message' type='outgoing'/>\
<perm access='presence' type='roster'/></privilege></message>"
        )
    );
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let bob_jid = bob.jid.clone().expect("jid");
    let wrap = |ns: &str, id: &str, body: &str| {
        format!(
            "<message id='{id}' from='{GATEWAY}' to='localhost'><privilege xmlns='{ns}'>\
<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost' \
to='{bob_jid}' type='chat'><body>{body}</body></message></forwarded></privilege></message>"
        )
    };
    gw.send(&wrap("urn:xmpp:privilege:2", "v2", "in version 2"))
        .await;
    gw.send(&wrap("urn:xmpp:privilege:1", "v1", "in version 1"))
        .await;
    let got = bob.expect("message").await;
    let got = text(&got);
    assert!(got.contains("in version 1"), "the :1 wrapper only: {got}");
    assert!(got.contains("from='alice@localhost"), "{got}");
}
