//! Acting for users as the server would, route by route (README, "What on behalf of
//! the user means"), against a real Prosody with a raw component:
//! - the durable queue: a privileged chat message for a user with no session through
//!   the proxy is kept and sent on the user's stream at the next login, with a
//!   XEP-0203 `<delay/>`, even across a proxy restart; each user's queue is bounded;
//! - local delivery: a pubsub notification or headline reaches recipients connected
//!   through the proxy from the owner's bare JID, owner online or not; with no such
//!   recipient and the owner offline it is refused, never queued.

mod common;

use std::time::Duration;

use common::raw::{has_id, text};
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::children::stanza_error_condition;
use stanzagate::xml::Stanza;

const GATEWAY: &str = "gateway.localhost";
const SECRET: &str = "secret";
const QUEUED: &str = "stanzagate_queued_operations_total{kind=\"message\",outcome=\"queued\"}";

fn setup(extra: &str) -> (Prosody, Proxy) {
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_subscription("alice", "bob")
            .with_component(GATEWAY, SECRET),
    );
    let spec = ProxySpec::plaintext()
        .with_component(GATEWAY, SECRET)
        .with_extra(&format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nmessage = \"outgoing\"\n{extra}"
    ));
    let proxy = Proxy::start(&spec, &prosody);
    (prosody, proxy)
}

/// A privileged message from `from` to `to` with `inner` attributes and payload.
fn privileged(id: &str, from: &str, to: &str, attrs: &str, payload: &str) -> String {
    format!(
        "<message id='{id}' from='{GATEWAY}' to='localhost'><privilege xmlns='urn:xmpp:privilege:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='{from}' to='{to}'{attrs}>\
{payload}</message></forwarded></privilege></message>"
    )
}

/// The answer with `id` the component gets, which must be a `result`.
async fn successful_answer(component: &mut Raw, id: &str) -> Stanza {
    let answer = component.until(has_id(id)).await;
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&answer)
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_an_offline_user_is_sent_at_login_even_after_a_restart() {
    let Some(_peers) = peers() else { return };
    let (_prosody, mut proxy) = setup("");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await; // the advertisement
                            // Alice has no session: the message is kept, and the gateway gets no error.
    let sent_at = std::time::SystemTime::now();
    gw.send(&privileged(
        "q1",
        "alice@localhost",
        "bob@localhost",
        " type='chat'",
        "<body>while you were away</body>",
    ))
    .await;
    common::http::await_metric(proxy.ports.http, QUEUED, "1").await;

    proxy.restart();
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let alice = Raw::login(proxy.c2s(), "alice").await;
    let got = bob.until(|s| s.head().unwrap().name() == "message").await;
    let got = text(&got);
    assert!(got.contains("while you were away"), "{got}");
    assert!(
        got.contains("from='alice@localhost/"),
        "sent on alice's stream: {got}"
    );
    // XEP-0203: stamped with when the gateway sent it, from the server's domain.
    let doc = roxmltree::Document::parse(&got).expect("the message parses");
    let delay = doc
        .descendants()
        .find(|n| n.has_tag_name(("urn:xmpp:delay", "delay")))
        .unwrap_or_else(|| panic!("no <delay/> in {got}"));
    assert_eq!(delay.attribute("from"), Some("localhost"));
    let stamp =
        humantime::parse_rfc3339(delay.attribute("stamp").expect("stamp")).expect("RFC 3339");
    // Between sending and now (the stamp keeps milliseconds only).
    let ms = Duration::from_millis(1);
    assert!(
        stamp + ms >= sent_at,
        "stamped when queued, not before: {got}"
    );
    assert!(
        stamp <= std::time::SystemTime::now(),
        "not in the future: {got}"
    );
    // Once only: applied, then gone from the store.
    let applied = "stanzagate_queued_operations_total{kind=\"message\",outcome=\"applied\"}";
    common::http::await_metric(proxy.ports.http, applied, "1").await;
    drop(alice);
    let mut again = Raw::login(proxy.c2s(), "alice").await;
    again.ping("second-login").await;
    bob.ping("barrier").await;
    assert_eq!(common::http::metric(proxy.ports.http, applied).await, "1");
}

/// XEP-0163: subscribers key PEP data on the owner's bare JID. A notification the
/// owner's stream carried would come from a full JID, and not at all while the owner
/// is offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_connected_recipients_from_the_bare_jid() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send("<presence/>").await;
    let bob_full = bob.jid.clone().expect("jid");
    // The proxy records bob's presence as it relays it; the server's echo of it to
    // bob comes after that.
    bob.until(|s| {
        let head = s.head().unwrap();
        head.name() == "presence" && head.from().as_deref() == Some(bob_full.as_str())
    })
    .await;
    let event = "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'><item id='a1'/></items></event>";
    // Alice, the owner, is offline.
    gw.send(&privileged(
        "pep",
        "alice@localhost",
        "bob@localhost",
        "",
        event,
    ))
    .await;
    let got = bob.until(|s| s.head().unwrap().name() == "message").await;
    let head = got.head().unwrap();
    assert_eq!(
        head.from().as_deref(),
        Some("alice@localhost"),
        "{}",
        text(&got)
    );
    assert_eq!(head.ns(), Some("jabber:client"));
    assert!(text(&got).contains("urn:xmpp:avatar:metadata"));
    // A headline to bob's full JID, alice now online: still from the bare JID.
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    gw.send(&privileged(
        "h1",
        "alice@localhost",
        &bob_full,
        " type='headline'",
        "<body>news</body>",
    ))
    .await;
    let got = bob
        .until(|s| s.head().unwrap().name() == "message" && text(s).contains("news"))
        .await;
    assert_eq!(
        got.head().unwrap().from().as_deref(),
        Some("alice@localhost")
    );
}

#[tokio::test]
async fn notifications_for_offline_users_are_refused_not_kept() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    // Nobody connected to deliver to, and the owner offline.
    let event = "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'/></event>";
    for (id, attrs, payload) in [
        ("headline", " type='headline'", "<body>news</body>"),
        ("pep", "", event),
    ] {
        gw.send(&privileged(
            id,
            "alice@localhost",
            "bob@localhost",
            attrs,
            payload,
        ))
        .await;
        let answer = gw.until(has_id(id)).await;
        assert_eq!(
            stanza_error_condition(answer.bytes()).as_deref(),
            Some("recipient-unavailable"),
            "{id}: {}",
            text(&answer)
        );
    }
    assert_eq!(common::http::metric(proxy.ports.http, QUEUED).await, "");
}

#[tokio::test]
async fn each_users_queue_is_bounded() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("[store]\nmax_queued_per_user = 2\n");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    for n in 1..=2 {
        gw.send(&privileged(
            &format!("m{n}"),
            "alice@localhost",
            "bob@localhost",
            "",
            "<body>x</body>",
        ))
        .await;
    }
    common::http::await_metric(proxy.ports.http, QUEUED, "2").await;
    gw.send(&privileged(
        "m3",
        "alice@localhost",
        "bob@localhost",
        "",
        "<body>x</body>",
    ))
    .await;
    let answer = gw.until(has_id("m3")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("resource-constraint"),
        "{}",
        text(&answer)
    );
    // Another user's queue is another queue.
    gw.send(&privileged(
        "c1",
        "carol@localhost",
        "bob@localhost",
        "",
        "<body>x</body>",
    ))
    .await;
    common::http::await_metric(proxy.ports.http, QUEUED, "3").await;
}

/// slidge at start sets every registered user's roster: for a user who is offline,
/// the set is stored, the gateway gets its result at once, and the user's first roster
/// request after logging in (even after a proxy restart) already shows the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_set_for_an_offline_user_is_answered_and_applied_at_login() {
    let Some(_peers) = peers() else { return };
    let (_prosody, mut proxy) = setup("roster = \"both\"\n");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    gw.send(&format!(
        "<iq type='set' id='rs' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'>\
<item jid='carol@localhost' name='Carol'><group>Friends</group></item></query></iq>"
    ))
    .await;
    successful_answer(&mut gw, "rs").await;
    let queued = "stanzagate_queued_operations_total{kind=\"roster_set\",outcome=\"queued\"}";
    assert_eq!(common::http::metric(proxy.ports.http, queued).await, "1");

    proxy.restart();
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // Her very first stanza after binding.
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = text(&alice.expect_iq("r1").await);
    let doc = roxmltree::Document::parse(&roster).expect("the roster parses");
    let carol = doc
        .descendants()
        .find(|n| {
            n.has_tag_name(("jabber:iq:roster", "item"))
                && n.attribute("jid") == Some("carol@localhost")
        })
        .unwrap_or_else(|| panic!("carol is in the roster: {roster}"));
    assert_eq!(carol.attribute("name"), Some("Carol"));
    let group = carol
        .children()
        .find(|n| n.has_tag_name("group"))
        .and_then(|g| g.text());
    assert_eq!(group, Some("Friends"));
}

/// More queued roster items than the session may await at once
/// (`limits.max_operations_per_session`, 4 here): what does not fit goes as the
/// server's answers free room, and the client waits for all of it, so its first
/// roster request sees every item; a set that could never fit is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_larger_than_the_session_s_quota_is_applied_whole() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("roster = \"both\"\n[limits]\nmax_operations_per_session = 4\n");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    let set = |id: &str, names: &[String]| {
        let items: String = names
            .iter()
            .map(|n| format!("<item jid='{n}@localhost'/>"))
            .collect();
        format!(
            "<iq type='set' id='{id}' from='{GATEWAY}' to='alice@localhost'>\
<query xmlns='jabber:iq:roster'>{items}</query></iq>"
        )
    };
    let mut names = Vec::new();
    for s in 0..3 {
        let these: Vec<String> = (0..3).map(|i| format!("c{s}{i}")).collect();
        gw.send(&set(&format!("s{s}"), &these)).await;
        successful_answer(&mut gw, &format!("s{s}")).await;
        names.extend(these);
    }
    // Four items could never go at once with this limit: refused, not queued.
    let four: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
    gw.send(&set("big", &four)).await;
    let refused = gw.until(has_id("big")).await;
    assert_eq!(
        stanza_error_condition(refused.bytes()).as_deref(),
        Some("policy-violation"),
        "{}",
        text(&refused)
    );

    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = text(&alice.expect_iq("r1").await);
    for name in &names {
        assert!(
            roster.contains(&format!("jid='{name}@localhost'")),
            "{name} is in her first roster: {roster}"
        );
    }
    assert!(!roster.contains("d0@localhost"), "{roster}");
    let applied = "stanzagate_queued_operations_total{kind=\"roster_set\",outcome=\"applied\"}";
    assert_eq!(common::http::metric(proxy.ports.http, applied).await, "3");
    let settled = "stanzagate_login_holds_total{outcome=\"settled\"}";
    assert_eq!(common::http::metric(proxy.ports.http, settled).await, "1");
}

/// The delegation route: a privileged IQ in a namespace delegated for the user's domain
/// goes to the delegate as the user's own IQ (from the user's bare JID), with the user
/// offline, and the delegate's answer comes back to the entity, wrapped as XEP-0356
/// says. (libervia-pubsub serving PEP through delegation, asked by a gateway.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_iq_in_a_delegated_namespace_goes_to_the_delegate_for_an_offline_user() {
    const DELEGATE: &str = "pubsub.localhost";
    const NS: &str = "urn:example:delegated";
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_component(GATEWAY, SECRET)
            .with_component(DELEGATE, SECRET),
    );
    let spec = ProxySpec::plaintext()
        .with_component(GATEWAY, SECRET)
        .with_component(DELEGATE, SECRET)
        .with_extra(&format!(
            "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\niq = {{ \"{NS}\" = \"get\" }}\n\
[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{DELEGATE}\"\n\
[limits]\nmax_privileged_ops_per_entity = 1\n"
        ));
    let proxy = Proxy::start(&spec, &prosody);
    let mut delegate = Raw::component(proxy.ports.component, DELEGATE, SECRET).await;
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    gw.send(&format!(
        "<iq type='get' id='pi' from='{GATEWAY}' to='alice@localhost'><privileged_iq xmlns='urn:xmpp:privilege:2'>\
<iq xmlns='jabber:client' type='get' id='inner' to='alice@localhost'><query xmlns='{NS}'/></iq></privileged_iq></iq>"
    ))
    .await;
    let wrapper = delegate
        .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("<delegation"))
        .await;
    let wrapped = text(&wrapper);
    assert!(
        wrapped.contains("from='alice@localhost'"),
        "as alice's own IQ: {wrapped}"
    );
    let wrapper_id = wrapper.head().unwrap().id().expect("id").into_owned();
    // Until the delegate answers, the IQ holds the entity's one operation slot.
    gw.send(&format!(
        "<iq type='get' id='pi2' from='{GATEWAY}' to='alice@localhost'><privileged_iq xmlns='urn:xmpp:privilege:2'>\
<iq xmlns='jabber:client' type='get' id='inner2' to='alice@localhost'><query xmlns='{NS}'/></iq></privileged_iq></iq>"
    ))
    .await;
    let busy = gw.until(has_id("pi2")).await;
    assert_eq!(
        stanza_error_condition(busy.bytes()).as_deref(),
        Some("resource-constraint"),
        "{}",
        text(&busy)
    );
    delegate
        .send(&format!(
            "<iq type='result' id='{wrapper_id}' from='{DELEGATE}' to='localhost'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='inner' from='alice@localhost' to='alice@localhost'>\
<query xmlns='{NS}'><answer>42</answer></query></iq></forwarded></delegation></iq>"
        ))
        .await;
    let answer = gw.until(has_id("pi")).await;
    let t = text(&answer);
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{t}"
    );
    assert!(
        t.contains("<privilege xmlns='urn:xmpp:privilege:2'>"),
        "{t}"
    );
    assert!(
        t.contains("<answer>42</answer>"),
        "the delegate's answer: {t}"
    );
    assert!(t.contains("id='inner'"), "the entity's inner id: {t}");
    // Answered: the slot is free again.
    gw.send(&format!(
        "<iq type='get' id='pi3' from='{GATEWAY}' to='alice@localhost'><privileged_iq xmlns='urn:xmpp:privilege:2'>\
<iq xmlns='jabber:client' type='get' id='inner3' to='alice@localhost'><query xmlns='{NS}'/></iq></privileged_iq></iq>"
    ))
    .await;
    delegate
        .until(|s| text(s).contains("<delegation") && text(s).contains("id='inner3'"))
        .await;
}

/// Roster reads for a user who is offline come from the proxy's mirror of the last
/// roster the server gave the user, kept current with the server's pushes; a user
/// whose roster the proxy never saw gets `recipient-unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_get_for_an_offline_user_reads_the_mirror() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("roster = \"both\"\n");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    let get = |id: &str| {
        format!("<iq type='get' id='{id}' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>")
    };
    // Never seen: refused.
    gw.send(&get("g0")).await;
    let answer = gw.until(has_id("g0")).await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("recipient-unavailable")
    );
    // Alice logs in, reads her roster (bob), adds dave: the mirror follows.
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r1").await;
    alice
        .send("<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'/></query></iq>")
        .await;
    alice.expect_iq("r2").await;
    // Asking again for the roster the mirror already has (same version) writes nothing.
    alice
        .send("<iq type='get' id='r3'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r3").await;
    let updates =
        |change: &str| format!("stanzagate_roster_mirror_updates_total{{change=\"{change}\"}}");
    common::http::await_metric(proxy.ports.http, &updates("unchanged"), "1").await;
    assert_eq!(
        common::http::metric(proxy.ports.http, &updates("whole")).await,
        "1"
    );
    drop(alice);
    // Offline again (the proxy saw the connection end): the entity reads the mirror.
    common::http::await_metric(
        proxy.ports.http,
        "stanzagate_connections_open{listener=\"c2s\"}",
        "0",
    )
    .await;
    gw.send(&get("g1")).await;
    let answer = gw.until(has_id("g1")).await;
    let t = text(&answer);
    assert!(
        t.contains("bob@localhost") && t.contains("name='Dave'"),
        "{t}"
    );
    let mirrored =
        "stanzagate_privileged_operations_total{operation=\"roster_get\",outcome=\"mirror\"}";
    assert_ne!(common::http::metric(proxy.ports.http, mirrored).await, "");
}

/// A user account as privileged entity (the reference modules' own example,
/// `privileged_entities = { ["romeo@…"] = { roster = "get" } }`): its session gets
/// the advertisement at login, and its roster get for another user is carried out as
/// a component's would be. Another user's identical request is ordinary traffic, which
/// the server refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_account_as_privileged_entity_reads_another_users_roster() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_users(["romeo".to_owned()])
            .with_subscription("alice", "bob"),
    );
    let spec = ProxySpec::plaintext().with_extra(
        "[hosts.\"localhost\".privileged_entities.\"romeo@localhost\"]\nroster = \"get\"\n",
    );
    let proxy = Proxy::start(&spec, &prosody);
    let _alice = Raw::login(proxy.c2s(), "alice").await;
    let mut romeo = Raw::login(proxy.c2s(), "romeo").await;
    let advertisement = romeo
        .until(|s| {
            s.head().unwrap().name() == "message" && text(s).contains("urn:xmpp:privilege:2")
        })
        .await;
    let t = text(&advertisement);
    assert!(
        t.contains("from='localhost'") && t.contains("<perm access='roster' type='get'/>"),
        "{t}"
    );
    let get = "<iq type='get' id='rg' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>";
    romeo.send(get).await;
    let answer = romeo.expect_iq("rg").await;
    let t = text(&answer);
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{t}"
    );
    assert!(t.contains("bob@localhost"), "alice's roster: {t}");
    // Bob holds no privilege: the same request goes to the server, which refuses it.
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send(get).await;
    let refused = bob.expect_iq("rg").await;
    assert_eq!(
        refused.head().unwrap().type_().as_deref(),
        Some("error"),
        "{}",
        text(&refused)
    );
    // A reload that changes romeo's grants re-advertises them to his open session.
    let more = ProxySpec::plaintext().with_extra(
        "[hosts.\"localhost\".privileged_entities.\"romeo@localhost\"]\nroster = \"get\"\nmessage = \"outgoing\"\n",
    );
    proxy.write_config(&proxy.render(&more));
    let advertisement = romeo
        .until(|s| s.head().unwrap().name() == "message" && text(s).contains("access='message'"))
        .await;
    assert!(text(&advertisement).contains("<perm access='roster' type='get'/>"));
}

/// A user account as the delegate of a namespace: the delegated IQ reaches its
/// available session of highest priority, and its answer (from its client stream)
/// goes back to the requester; with no session online the requester gets
/// `service-unavailable`; a delegation to a full JID reaches that resource only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_account_as_delegate_answers_a_delegated_iq() {
    const NS: &str = "urn:example:by-a-user";
    const NS_FULL: &str = "urn:example:by-a-resource";
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default().with_users(["romeo".to_owned()]));
    let spec = ProxySpec::plaintext().with_extra(&format!(
        "[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"romeo@localhost\"\n\
[hosts.\"localhost\".delegations.\"{NS_FULL}\"]\njid = \"romeo@localhost/raw\"\n"
    ));
    let proxy = Proxy::start(&spec, &prosody);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let ask =
        |id: &str| format!("<iq type='get' id='{id}' to='localhost'><query xmlns='{NS}'/></iq>");
    // Romeo offline: nobody to answer.
    alice.send(&ask("q0")).await;
    let answer = alice.expect_iq("q0").await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("service-unavailable")
    );
    let mut romeo = Raw::login(proxy.c2s(), "romeo").await;
    let romeo_jid = romeo.jid.clone().expect("jid");
    // Told what he manages at login, as a component is at its handshake.
    let advertisement = romeo
        .until(|s| {
            s.head().unwrap().name() == "message" && text(s).contains("urn:xmpp:delegation:2")
        })
        .await;
    assert!(
        text(&advertisement).contains(&format!("<delegated namespace='{NS}'")),
        "{}",
        text(&advertisement)
    );
    romeo
        .send("<presence><priority>5</priority></presence>")
        .await;
    romeo
        .until(|s| {
            let head = s.head().unwrap();
            head.name() == "presence" && head.from().as_deref() == Some(romeo_jid.as_str())
        })
        .await;
    alice.send(&ask("q1")).await;
    let wrapper = romeo
        .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("<delegation"))
        .await;
    let wrapped = text(&wrapper);
    assert!(
        wrapped.contains("from='alice@localhost/"),
        "alice's IQ: {wrapped}"
    );
    let wrapper_id = wrapper.head().unwrap().id().expect("id").into_owned();
    let alice_jid = alice.jid.clone().expect("jid");
    romeo
        .send(&format!(
            "<iq type='result' id='{wrapper_id}' to='localhost'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='q1' from='localhost' to='{alice_jid}'>\
<query xmlns='{NS}'><answer>from romeo</answer></query></iq></forwarded></delegation></iq>"
        ))
        .await;
    let answer = alice.expect_iq("q1").await;
    let t = text(&answer);
    assert_eq!(
        answer.head().unwrap().type_().as_deref(),
        Some("result"),
        "{t}"
    );
    assert!(t.contains("from romeo"), "{t}");

    // A second resource with a higher priority takes the bare-JID delegation; the
    // full-JID one stays with the resource it names.
    let mut desk = Raw::connect(proxy.c2s()).await;
    desk.authenticate("romeo").await;
    desk.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>").await;
    desk.expect_iq("b").await;
    desk.send("<presence><priority>10</priority></presence>")
        .await;
    desk.until(|s| {
        let head = s.head().unwrap();
        head.name() == "presence" && head.from().as_deref() == Some("romeo@localhost/desk")
    })
    .await;
    let ask_full = |id: &str| {
        format!("<iq type='get' id='{id}' to='localhost'><query xmlns='{NS_FULL}'/></iq>")
    };
    for (id, ns_ask, to) in [
        ("q2", ask("q2"), &mut desk),
        ("q3", ask_full("q3"), &mut romeo),
    ] {
        alice.send(&ns_ask).await;
        let wrapper = to
            .until(|s| s.head().unwrap().name() == "iq" && text(s).contains("<delegation"))
            .await;
        assert!(
            text(&wrapper).contains(&format!("id='{id}'")),
            "{}",
            text(&wrapper)
        );
        let wrapper_id = wrapper.head().unwrap().id().expect("id").into_owned();
        to.send(&format!(
            "<iq type='result' id='{wrapper_id}' to='localhost'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='{id}' from='localhost' to='{alice_jid}'/>\
</forwarded></delegation></iq>"
        ))
        .await;
        let answer = alice.expect_iq(id).await;
        assert_eq!(
            answer.head().unwrap().type_().as_deref(),
            Some("result"),
            "{}",
            text(&answer)
        );
    }
    // A reload that withdraws the resource's own namespace tells that session, in one
    // advertisement of what it still manages.
    let fewer = ProxySpec::plaintext().with_extra(&format!(
        "[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"romeo@localhost\"\n"
    ));
    proxy.write_config(&proxy.render(&fewer));
    let advertisement = romeo
        .until(|s| {
            s.head().unwrap().name() == "message" && text(s).contains("urn:xmpp:delegation:2")
        })
        .await;
    let t = text(&advertisement);
    assert!(t.contains(&format!("namespace='{NS}'")), "{t}");
    assert!(!t.contains(NS_FULL), "{t}");
    // A delegate session that leaves without answering: the requester hears at once,
    // not at the delegation timeout (30 s, past this wait).
    alice.send(&ask("q4")).await;
    desk.until(|s| text(s).contains("<delegation") && text(s).contains("id='q4'"))
        .await;
    drop(desk);
    let answer = alice.expect_iq("q4").await;
    let t = text(&answer);
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("service-unavailable"),
        "{t}"
    );
    assert!(t.contains("disconnected before answering"), "{t}");
}

/// The component link route for `subscription` (set by the gateway on a contact of
/// its own domain): alice's roster pushes follow the item there, and nothing she sees
/// is a subscription request or acknowledgement; the gateway sees none of the
/// presence types in `unseen` (its next stanza of interest is a marker).
async fn link_route_ends_as_asked(
    contact: &str,
    subscription: &str,
    available: bool,
    unseen: &[&str],
) {
    let (_prosody, proxy) = setup("roster = \"both\"\n");
    let mut gw = Raw::component(proxy.ports.component, GATEWAY, SECRET).await;
    gw.next_stanza().await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // An interested resource (RFC 6121 §2.1.6): she gets the roster pushes.
    alice
        .send("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r0").await;
    if available {
        alice.send("<presence/>").await;
    }
    gw.send(&format!(
        "<iq type='set' id='rs' from='{GATEWAY}' to='alice@localhost'><query xmlns='jabber:iq:roster'>\
<item jid='{contact}' name='Legacy' subscription='{subscription}'/></query></iq>"
    ))
    .await;
    successful_answer(&mut gw, "rs").await;
    let wanted = format!("subscription='{subscription}'");
    loop {
        let stanza = alice.next_stanza().await;
        let head = stanza.head().unwrap();
        let t = text(&stanza);
        if head.name() == "presence" {
            assert!(
                !matches!(head.type_().as_deref(), Some("subscribe" | "subscribed")),
                "alice is not prompted: {t}"
            );
        }
        if head.name() == "iq" && t.contains(contact) && t.contains(&wanted) {
            break;
        }
    }
    alice
        .send(&format!(
            "<message to='{contact}' id='marker'><body>m</body></message>"
        ))
        .await;
    loop {
        let stanza = gw.next_stanza().await;
        let head = stanza.head().unwrap();
        if head.name() == "presence" {
            let kind = head.type_().unwrap_or_default();
            assert!(
                !unseen.contains(&kind.as_ref()),
                "the gateway is not bothered: {}",
                text(&stanza)
            );
        }
        if head.id().as_deref() == Some("marker") {
            break;
        }
    }
}

/// The component link route: a gateway sets `subscription='both'` with a contact on
/// its own domain (as slidge does for its contacts). The proxy completes the
/// contact's side on the gateway's upstream link, so the item ends `both`, the user's
/// client sees no subscription request and the gateway no subscription presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_with_a_gateway_contact_ends_both_without_prompts() {
    let Some(_peers) = peers() else { return };
    let contact = "juliet-legacy@gateway.localhost";
    link_route_ends_as_asked(contact, "both", true, &["subscribe", "subscribed"]).await;
}

/// The component link route for `from` alone: the contact ends subscribed to the
/// user's presence (the user pre-approves, then probes; the proxy answers the probe
/// on the gateway's link with the contact's request, which the server approves), the
/// user is not prompted and the gateway sees no subscription presence or probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_subscription_with_a_gateway_contact_ends_from_without_prompts() {
    let Some(_peers) = peers() else { return };
    let contact = "romeo-legacy@gateway.localhost";
    let unseen = ["subscribe", "subscribed", "probe"];
    link_route_ends_as_asked(contact, "from", false, &unseen).await;
}

/// Presence copies for a user account that is a privileged entity reach its sessions
/// (`presence = "managed_entity"`): alice is not in romeo's roster, yet her available
/// presence reaches him, from her full JID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_copies_reach_a_user_account_entity() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default().with_users(["romeo".to_owned()]));
    let spec = ProxySpec::plaintext().with_extra(
        "[hosts.\"localhost\".privileged_entities.\"romeo@localhost\"]\npresence = \"managed_entity\"\n",
    );
    let proxy = Proxy::start(&spec, &prosody);
    let mut romeo = Raw::login(proxy.c2s(), "romeo").await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let alice_jid = alice.jid.clone().expect("jid");
    alice
        .send("<presence><status>copied</status></presence>")
        .await;
    let copy = romeo
        .until(|s| {
            let head = s.head().unwrap();
            head.name() == "presence" && head.from().as_deref() == Some(alice_jid.as_str())
        })
        .await;
    assert!(text(&copy).contains("copied"), "{}", text(&copy));
}
