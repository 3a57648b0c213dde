//! Rosters owned by a web app (checklist items 70–76), end to end: a real HTTP server
//! as the web app, a real Prosody behind stanzagate, raw and slixmpp clients.

mod common;

use common::raw::{has_id, text};
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, WebApp};
use stanzagate::xml::children::{children, root_attr, stanza_error_condition};
use stanzagate::xml::Stanza;

const TOKEN: &str = "s3cret-token";
const GATEWAY: &str = "gateway.localhost";

async fn refresh(proxy: &Proxy, users: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = common::http::request(
        proxy.ports.http,
        "POST",
        "/roster_admin/refresh",
        &[("Authorization", &auth)],
        users,
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Items of a roster result or push: jid → (subscription, name, groups).
fn items(stanza: &Stanza) -> Vec<(String, String, Option<String>, Vec<String>)> {
    let Some(query) = children(stanza.bytes(), None)
        .ok()
        .and_then(|k| k.into_iter().find(|c| c.name == "query"))
    else {
        return Vec::new();
    };
    let q = &stanza.bytes()[query.range];
    children(q, None)
        .unwrap()
        .into_iter()
        .map(|item| {
            let bytes = &q[item.range];
            let groups = children(bytes, None)
                .unwrap()
                .into_iter()
                .map(|g| {
                    stanzagate::xml::children::descendant_text(&bytes[g.range], "group")
                        .unwrap_or_default()
                })
                .collect();
            (
                root_attr(bytes, "jid").unwrap_or_default(),
                root_attr(bytes, "subscription").unwrap_or_default(),
                root_attr(bytes, "name"),
                groups,
            )
        })
        .collect()
}

async fn roster_get(raw: &mut Raw, id: &str, ver: Option<&str>) -> Stanza {
    let ver = ver.map(|v| format!(" ver='{v}'")).unwrap_or_default();
    raw.send(&format!(
        "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'{ver}/></iq>"
    ))
    .await;
    raw.expect_iq(id).await
}

fn users(extra: &[&str]) -> ProsodySpec {
    ProsodySpec::default().with_users(extra.iter().map(|s| s.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_70_roster_get_is_served_from_the_web_app_with_versioning() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {"name": "Bob", "groups": ["Friends", "Work"]}, "carol@localhost": {}, "bad jid@": {}}"#);
    let prosody = Prosody::start(&users(&["carol"]));
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 3000)),
        &prosody,
    );
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let roster = roster_get(&mut alice, "r1", None).await;
    let mut got = items(&roster);
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "bob@localhost".into(),
                "both".into(),
                Some("Bob".into()),
                vec!["Friends".into(), "Work".into()]
            ),
            ("carol@localhost".into(), "both".into(), None, vec![]),
        ],
        "{}",
        text(&roster)
    );
    let ver = children(roster.bytes(), None)
        .ok()
        .and_then(|k| k.into_iter().next())
        .and_then(|q| root_attr(&roster.bytes()[q.range], "ver"))
        .expect("ver");
    // Unchanged version: an empty result (XEP-0237); later gets come from the cache.
    let again = roster_get(&mut alice, "r2", Some(&ver)).await;
    assert!(again.head().unwrap().is_empty_element(), "{}", text(&again));
    assert_eq!(app.count("alice").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_71_roster_sets_refused_and_subscriptions_dropped() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 3000)),
        &prosody,
    );
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='eve@localhost'/></query></iq>").await;
    let answer = alice.expect_iq("s1").await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("not-allowed"),
        "{}",
        text(&answer)
    );
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    alice
        .send("<presence type='subscribe' to='bob@localhost' id='sub'/>")
        .await;
    alice
        .send("<message to='bob@localhost' id='after' type='chat'><body>marker</body></message>")
        .await;
    // Bob gets the marker but never the subscription request.
    loop {
        let s = bob.next_stanza().await;
        let head = s.head().unwrap();
        assert_ne!(head.type_().as_deref(), Some("subscribe"), "{}", text(&s));
        if head.id().as_deref() == Some("after") {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_72_75_refresh_pushes_changes_to_clients_and_entities() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {"name": "Bob"}, "carol@localhost": {"groups": ["A"]}, "dave@localhost": {}}"#);
    let prosody =
        Prosody::start(&users(&["carol", "dave", "erin"]).with_component(GATEWAY, "secret"));
    let grants =
        format!("[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"get\"\n");
    let spec = ProxySpec::plaintext()
        .with_component(GATEWAY, "secret")
        .with_extra(&format!("{}{grants}", app.toml(TOKEN, 3000)));
    let proxy = Proxy::start(&spec, &prosody);
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, "secret").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    roster_get(&mut alice, "r1", None).await;
    // Renamed, regrouped, removed, added.
    app.set("alice", r#"{"bob@localhost": {"name": "Robert"}, "carol@localhost": {"groups": ["B"]}, "erin@localhost": {}}"#);
    let (status, report) = refresh(&proxy, r#"["alice", "nobody-online"]"#).await;
    assert_eq!(status, 200);
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["updated"], 2);
    assert_eq!(report["errors"], 0);
    let mut pushed = Vec::new();
    while pushed.len() < 4 {
        let push = alice.expect("iq").await;
        let head = push.head().unwrap();
        assert_eq!(head.type_().as_deref(), Some("set"));
        assert!(head.id().is_some(), "75: pushes carry an id");
        assert_eq!(
            head.to().as_deref(),
            alice.jid.as_deref(),
            "75: pushes carry to"
        );
        pushed.extend(items(&push));
    }
    pushed.sort();
    assert_eq!(
        pushed
            .iter()
            .map(|(j, s, n, g)| (j.as_str(), s.as_str(), n.as_deref(), g.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("bob@localhost", "both", Some("Robert"), vec![]),
            ("carol@localhost", "both", None, vec!["B".to_owned()]),
            ("dave@localhost", "remove", None, vec![]),
            ("erin@localhost", "both", None, vec![]),
        ]
    );
    // 75: the privileged entity got the same changes as roster pushes.
    let mut entity = Vec::new();
    while entity.len() < 4 {
        let s = gw.next_stanza().await;
        if s.head().unwrap().name() == "iq" && text(&s).contains("jabber:iq:roster") {
            assert_eq!(s.head().unwrap().from().as_deref(), Some("alice@localhost"));
            entity.extend(items(&s).into_iter().map(|i| i.0));
        }
    }
    entity.sort();
    assert_eq!(
        entity,
        vec![
            "bob@localhost",
            "carol@localhost",
            "dave@localhost",
            "erin@localhost"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checklist_73_74_76_refresh_endpoint_contract() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{}"#);
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 1500)),
        &prosody,
    );
    let http_port = proxy.ports.http;
    // 76: no token, wrong token.
    assert_eq!(
        common::http::request(
            http_port,
            "POST",
            "/roster_admin/refresh",
            &[],
            "[\"alice\"]"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        common::http::request(
            http_port,
            "POST",
            "/roster_admin/refresh",
            &[("Authorization", "Bearer nope")],
            "[\"alice\"]"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        common::http::request(http_port, "GET", "/roster_admin/refresh/alice", &[], "")
            .await
            .0,
        401
    );
    // Bad bodies: 400 with a message.
    for body in ["{\"alice\": 1}", "\"alice\"", "not json", "[1, 2]"] {
        let (status, answer) = refresh(&proxy, body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    // 74: [] answers at once.
    let (status, answer) = refresh(&proxy, "[]").await;
    assert_eq!(
        (status, &answer["updated"], &answer["errors"]),
        (200, &serde_json::json!(0), &serde_json::json!(0))
    );
    // 73: single-user form; offline users are a successful no-op.
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = common::http::request(
        http_port,
        "GET",
        "/roster_admin/refresh/alice",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    // 74: a web app that fails is counted in errors, the request still answers.
    let _alice = {
        let mut alice = Raw::login(proxy.c2s(), "alice").await;
        roster_get(&mut alice, "r", None).await;
        alice
    };
    app.mode("down500").await;
    let (status, answer) = refresh(&proxy, r#"["alice"]"#).await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["errors"], 1);
    app.mode("slow:10").await;
    let (status, answer) = refresh(&proxy, r#"["alice"]"#).await;
    assert_eq!(
        (status, &answer["errors"]),
        (200, &serde_json::json!(1)),
        "bounded by timeout_ms: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_failures_never_close_the_stream_or_leave_an_iq_unanswered() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 1500)),
        &prosody,
    );
    // Nothing cached and the web app fails: internal-server-error with a text.
    for mode in ["down500", "invalid", "slow:10"] {
        app.mode(mode).await;
        let mut alice = Raw::login(proxy.c2s(), "alice").await;
        let answer = roster_get(&mut alice, "r", None).await;
        assert_eq!(
            stanza_error_condition(answer.bytes()).as_deref(),
            Some("internal-server-error"),
            "{mode}: {}",
            text(&answer)
        );
        assert!(text(&answer).contains("<text"), "{mode}");
        alice
            .ping(&format!("alive-{}", mode.replace(':', "-")))
            .await;
    }
    // Transient failures are retried.
    app.mode("flaky:2").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let answer = roster_get(&mut alice, "r-flaky", None).await;
    assert_eq!(items(&answer).len(), 1, "{}", text(&answer));
    // With a cached roster, a failing web app is bridged by the cache.
    app.mode("down500").await;
    let (_, report) = refresh(&proxy, r#"["alice"]"#).await;
    assert_eq!(report["errors"], 1);
    let answer = roster_get(&mut alice, "r-cached", None).await;
    assert_eq!(items(&answer).len(), 1, "{}", text(&answer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_is_percent_encoded_in_the_url() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    app.set("alice#x", r#"{"carol@localhost": {}}"#);
    let prosody = Prosody::start(&users(&["alice#x"]));
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 3000)),
        &prosody,
    );
    let mut tricky = Raw::login(proxy.c2s(), "alice#x").await;
    let answer = roster_get(&mut tricky, "r", None).await;
    let got: Vec<String> = items(&answer).into_iter().map(|i| i.0).collect();
    assert_eq!(
        got,
        vec!["carol@localhost"],
        "alice#x must not get alice's roster"
    );
    assert_eq!(app.count("alice#x").await, 1);
    assert_eq!(app.count("alice").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_of_one_user_cause_one_fetch() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    // A slow web app makes the requests overlap for sure.
    app.mode("slow:0.5").await;
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 5000)),
        &prosody,
    );
    let mut sessions = Vec::new();
    for i in 0..5 {
        let mut raw = Raw::connect(proxy.c2s()).await;
        raw.authenticate("alice").await;
        raw.send(&format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r{i}</resource></bind></iq>")).await;
        raw.expect_iq("b").await;
        sessions.push(raw);
    }
    for raw in sessions.iter_mut() {
        raw.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
    }
    for raw in sessions.iter_mut() {
        let answer = raw.expect_iq("r").await;
        assert_eq!(items(&answer).len(), 1);
    }
    assert_eq!(app.count("alice").await, 1);
}

/// Both users with each other in their web-app rosters see each other come online,
/// change status and leave, in both login orders and with presence pipelined before
/// the roster request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_flows_both_ways_in_both_login_orders() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {}}"#);
    app.set("bob", r#"{"alice@localhost": {}}"#);
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_extra(&app.toml(TOKEN, 3000)),
        &prosody,
    );
    for (first, second) in [("alice", "bob"), ("bob", "alice")] {
        let mut one = Raw::login(proxy.c2s(), first).await;
        // Pipelined: presence before the roster request.
        one.send("<presence/><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        one.expect_iq("r").await;
        let mut two = Raw::login(proxy.c2s(), second).await;
        two.send("<presence/><iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        let sees = |s: &Stanza, who: &str, kind: Option<&str>| {
            let h = s.head().unwrap();
            h.name() == "presence"
                && h.from()
                    .is_some_and(|f| f.starts_with(&format!("{who}@localhost/")))
                && h.type_().as_deref() == kind
        };
        // Each sees the other online.
        two.until(|s| sees(s, first, None)).await;
        one.until(|s| sees(s, second, None)).await;
        // A status change of the second reaches the first. When the first's own
        // fan-out ran after the second came online, the first got the second's
        // initial presence twice (shown from the session table and directed by the
        // second), as a server's probe answer and broadcast may both arrive (RFC 6121
        // §4.2.2): what must arrive is the change.
        two.send("<presence><show>away</show></presence>").await;
        one.until(|s| sees(s, second, None) && text(s).contains("<show>away</show>"))
            .await;
        // The second leaves: the first sees it go.
        two.send("</stream:stream>").await;
        one.until(|s| sees(s, second, Some("unavailable"))).await;
        one.send("</stream:stream>").await;
        one.expect_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_entity_reads_web_app_rosters_of_offline_users_and_cannot_set_them() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {"name": "Bob"}}"#);
    let prosody = Prosody::start(&ProsodySpec::default().with_component(GATEWAY, "secret"));
    let grants =
        format!("[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\n");
    let spec = ProxySpec::plaintext()
        .with_component(GATEWAY, "secret")
        .with_extra(&format!("{}{grants}", app.toml(TOKEN, 3000)));
    let proxy = Proxy::start(&spec, &prosody);
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, "secret").await;
    gw.send(&format!("<iq type='get' id='g' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>")).await;
    let answer = gw.until(has_id("g")).await;
    assert_eq!(
        answer.head().unwrap().from().as_deref(),
        Some("alice@localhost")
    );
    assert_eq!(
        items(&answer).into_iter().map(|i| i.0).collect::<Vec<_>>(),
        vec!["bob@localhost"],
        "{}",
        text(&answer)
    );
    gw.send(&format!("<iq type='set' id='s' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>")).await;
    let answer = gw.until(has_id("s")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("not-allowed")
    );
}

#[tokio::test]
async fn unreachable_web_app_is_an_error_answer_not_a_hang() {
    let Some(_peers) = peers() else { return };
    let dead = common::free_port();
    let toml = format!(
        "[hosts.\"localhost\".roster_admin]\nurl = \"http://127.0.0.1:{dead}/contacts/%s\"\nrefresh_token = \"{TOKEN}\"\ntimeout_ms = 1000\n"
    );
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext().with_extra(&toml), &prosody);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let answer = roster_get(&mut alice, "r", None).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("internal-server-error")
    );
    alice.ping("alive").await;
    let (status, report) = refresh(&proxy, r#"["alice"]"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        (report["status"].as_str(), report["errors"].as_u64()),
        (Some("error"), Some(1)),
        "{report}"
    );
}
