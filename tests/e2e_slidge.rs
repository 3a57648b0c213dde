//! The real slidge gateway (0.4.2, from PyPI) through stanzagate in front of a real
//! Prosody, with the test legacy network in `tests/peers/slidge_legacy/`. slidge acts
//! for its users with XEP-0356 (a roster set adding itself with `subscription='both'`
//! at every start, one per legacy contact) and does not log a user into the legacy
//! network when that roster set fails: before the durable queue, every user offline
//! when the gateway (re)started silently lost their bridge.

mod common;

use std::path::Path;

use common::raw::text;
use common::slidge::{Slidge, START};
use common::{missing_peer, peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::Stanza;

const GATEWAY: &str = "slidge.localhost";
const SECRET: &str = "secret";
const ROSTER_QUEUED: &str =
    "stanzagate_queued_operations_total{kind=\"roster_set\",outcome=\"queued\"}";
const ROSTER_APPLIED: &str =
    "stanzagate_queued_operations_total{kind=\"roster_set\",outcome=\"applied\"}";

/// The grants slidge's documentation asks of a server, in `proxy.toml` form.
fn grants() -> String {
    format!(
        "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\n\
roster = \"both\"\nmessage = \"outgoing\"\npresence = \"roster\"\n\
iq = {{ \"http://jabber.org/protocol/pubsub\" = \"both\", \"http://jabber.org/protocol/pubsub#owner\" = \"set\" }}\n"
    )
}

/// The legacy network: each user's friends there.
fn network(path: &Path, alice_friends: &[&str]) {
    let list = alice_friends
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(path, format!("{{\"alice@localhost\": [{list}]}}")).expect("network file");
}

/// `jid`'s roster item in a roster result, as `(subscription, ask)`.
fn item(roster: &Stanza, jid: &str) -> Option<(String, Option<String>)> {
    let xml = text(roster);
    let doc = roxmltree::Document::parse(&xml).expect("roster parses");
    doc.descendants()
        .find(|n| n.has_tag_name("item") && n.attribute("jid") == Some(jid))
        .map(|n| {
            (
                n.attribute("subscription").unwrap_or("none").to_owned(),
                n.attribute("ask").map(str::to_owned),
            )
        })
}

/// Fails on a subscription request or acknowledgement: the user must see none.
fn no_prompt(stanza: &Stanza) {
    let head = stanza.head().unwrap();
    if head.name() == "presence" {
        assert!(
            !matches!(
                head.type_().as_deref(),
                Some("subscribe" | "subscribed" | "unsubscribed")
            ),
            "no subscription prompt: {}",
            text(stanza)
        );
    }
}

/// Reads `raw`'s stream up to the answer to a roster get with `id`, with no prompt
/// before it.
async fn roster_without_prompts(raw: &mut Raw, id: &str) -> Stanza {
    raw.send(&format!(
        "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await;
    loop {
        let stanza = raw.next_stanza().await;
        no_prompt(&stanza);
        let head = stanza.head().unwrap();
        if head.name() == "iq" && head.id().as_deref() == Some(id) {
            return stanza;
        }
    }
}

/// Reads `raw`'s stream until a roster push has shown each of `jids` with
/// `subscription='both'`, with no prompt on the way.
async fn pushes_to_both(raw: &mut Raw, jids: &[&str]) {
    let mut missing: Vec<&str> = jids.to_vec();
    while !missing.is_empty() {
        let stanza = raw.next_stanza().await;
        no_prompt(&stanza);
        if stanza.head().unwrap().name() == "iq" {
            missing.retain(|jid| item(&stanza, jid) != Some(("both".to_owned(), None)));
        }
    }
}

fn assert_both(roster: &Stanza, jid: &str) {
    assert_eq!(
        item(roster, jid),
        Some(("both".to_owned(), None)),
        "{jid} in {}",
        text(roster)
    );
}

/// slidge restarted while its user is offline: its roster sets are queued and
/// answered, so it logs her into the legacy network; they survive a proxy restart;
/// at her next login her roster has the gateway and every legacy contact with
/// `subscription='both'`, and she was never prompted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slidge_restarted_while_its_user_is_offline_keeps_her_bridge() {
    let Some(_peers) = peers() else { return };
    let slidge = match Slidge::find() {
        Ok(slidge) => slidge,
        Err(why) => return missing_peer(why),
    };
    let prosody = Prosody::start(&ProsodySpec::default().with_component(GATEWAY, SECRET));
    let mut proxy = Proxy::start(
        &ProxySpec::plaintext()
            .with_component(GATEWAY, SECRET)
            .with_extra(&grants()),
        &prosody,
    );
    let state = tempfile::tempdir().expect("tempdir");
    let home = state.path().join("slidge");
    let legacy = state.path().join("network.json");
    network(&legacy, &["juliet"]);
    let port = proxy.ports.component;
    let mut gateway = slidge.start(GATEWAY, SECRET, port, &home, &legacy).await;

    // Alice registers with the gateway while online: slidge adds itself and her
    // legacy friend to her roster through her stream.
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    alice.expect_iq("r0").await;
    alice.send("<presence/>").await;
    alice
        .send(&format!(
            "<iq type='set' id='reg' to='{GATEWAY}'><query xmlns='jabber:iq:register'/></iq>"
        ))
        .await;
    let registered = alice.expect_iq("reg").await;
    assert_eq!(
        registered.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&registered)
    );
    let login = gateway
        .take_line("LEGACY-LOGIN alice@localhost", START)
        .await
        .expect("slidge logs alice in at registration");
    assert_eq!(login, "LEGACY-LOGIN alice@localhost juliet=added");
    // The subscriptions complete after slidge's roster sets were answered: her
    // roster pushes follow them to `both`, with no prompt on the way.
    pushes_to_both(&mut alice, &[GATEWAY, "juliet@slidge.localhost"]).await;
    let roster = roster_without_prompts(&mut alice, "r1").await;
    assert_both(&roster, GATEWAY);
    assert_both(&roster, "juliet@slidge.localhost");
    alice.send("</stream:stream>").await;
    alice.expect_closed().await;

    // slidge restarts while she is offline, and her legacy network has a new friend.
    gateway.stop().await;
    network(&legacy, &["juliet", "romeo"]);
    let mut gateway = slidge.start(GATEWAY, SECRET, port, &home, &legacy).await;
    let login = gateway
        .take_line("LEGACY-LOGIN alice@localhost", START)
        .await
        .unwrap_or_else(|| panic!("slidge logs alice in although she is offline"));
    assert_eq!(
        login,
        "LEGACY-LOGIN alice@localhost juliet=added romeo=added"
    );
    // Its own item (it re-adds itself at every start) and romeo's.
    common::http::await_metric(proxy.ports.http, ROSTER_QUEUED, "2").await;

    // The queue outlives the proxy (slidge exits when its link drops, and a new
    // slidge re-adds only itself: romeo's item must come from the store).
    gateway.stop().await;
    proxy.restart();
    let gateway = slidge.start(GATEWAY, SECRET, port, &home, &legacy).await;
    common::http::await_metric(proxy.ports.http, ROSTER_QUEUED, "1").await;

    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    let roster = roster_without_prompts(&mut alice, "r2").await;
    assert_both(&roster, GATEWAY);
    assert_both(&roster, "juliet@slidge.localhost");
    assert_both(&roster, "romeo@slidge.localhost");
    common::http::await_metric(proxy.ports.http, ROSTER_APPLIED, "3").await;
    // She was held until the server's pushes showed the subscriptions complete, not
    // until the hold's deadline.
    let holds = |outcome: &str| format!("stanzagate_login_holds_total{{outcome=\"{outcome}\"}}");
    assert_eq!(
        common::http::metric(proxy.ports.http, &holds("settled")).await,
        "1"
    );
    assert_eq!(
        common::http::metric(proxy.ports.http, &holds("deadline")).await,
        ""
    );

    // The bridge works: a message to a legacy contact comes back from it.
    alice.send("<presence/>").await;
    alice
        .send("<message type='chat' to='romeo@slidge.localhost' id='m1'><body>hi</body></message>")
        .await;
    let echo = alice
        .until(|s| s.head().unwrap().name() == "message" && text(s).contains("echo: hi"))
        .await;
    assert!(
        text(&echo).contains("from='romeo@slidge.localhost"),
        "{}",
        text(&echo)
    );
    gateway.stop().await;
}
