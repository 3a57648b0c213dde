//! libervia-pubsub (Debian), the external PEP service operators put behind a server
//! that lacks one, through stanzagate in front of a real Prosody: the pubsub
//! namespaces are delegated to it, and it acts for users with XEP-0356.

mod common;

use common::libervia::{self, Libervia};
use common::raw::text;
use common::{missing_peer, peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::Stanza;

const PUBSUB: &str = "pubsub.localhost";
const SECRET: &str = "secret";

/// The grants and delegations libervia-pubsub's documentation asks of a server.
fn rules() -> String {
    let mut out = format!(
        "[hosts.\"localhost\".privileged_entities.\"{PUBSUB}\"]\n\
roster = \"get\"\nmessage = \"outgoing\"\npresence = \"roster\"\n"
    );
    for ns in [
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#owner",
        "urn:xmpp:delegation:2:bare:disco#info:*",
        "urn:xmpp:delegation:2:bare:disco#items:*",
    ] {
        out.push_str(&format!(
            "[hosts.\"localhost\".delegations.\"{ns}\"]\njid = \"{PUBSUB}\"\n"
        ));
    }
    out.push_str(&format!(
        "[hosts.\"localhost\".delegations.\"urn:xmpp:mam:2\"]\njid = \"{PUBSUB}\"\nfiltering = [\"node\"]\n"
    ));
    out
}

const NODE: &str = "urn:xmpp:test:0";

/// What the publisher sends: one item on `NODE` (auto-created, open to contacts).
fn publish(id: &str, item: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
<publish node='{NODE}'><item id='{item}'><entry xmlns='{NODE}'>{item}</entry></item></publish></pubsub></iq>"
    )
}

/// Whether `stanza` is a PEP notification of `item` on `NODE`.
fn notifies(stanza: &Stanza, item: &str) -> bool {
    let t = text(stanza);
    stanza.head().unwrap().name() == "message"
        && t.contains("http://jabber.org/protocol/pubsub#event")
        && t.contains(&format!("id='{item}'"))
}

/// XEP-0163 end to end with libervia-pubsub as the PEP service: the last item of an
/// owner who is offline reaches a contact who comes online with `+notify` (before
/// local delivery: refused, as only the owner's stream could carry it), and a new
/// item reaches that contact live; both from the owner's bare JID, as clients key
/// PEP data on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_notifications_from_libervia_come_from_the_bare_jid_owner_online_or_not() {
    let Some(_peers) = peers() else { return };
    if let Some(why) = libervia::missing() {
        return missing_peer(why);
    }
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_subscription("alice", "bob")
            .with_component(PUBSUB, SECRET),
    );
    let proxy = Proxy::start(
        &ProxySpec::plaintext()
            .with_component(PUBSUB, SECRET)
            .with_extra(&rules()),
        &prosody,
    );
    let pubsub = Libervia::start(PUBSUB, SECRET, proxy.ports.component);
    pubsub.ready();

    // Alice publishes (the PEP request is delegated to libervia), then leaves.
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.send("<presence/>").await;
    alice.send(&publish("p1", "first")).await;
    let published = alice.expect_iq("p1").await;
    assert_eq!(
        published.head().unwrap().type_().as_deref(),
        Some("result"),
        "{}",
        text(&published)
    );
    alice.send("</stream:stream>").await;
    alice.expect_closed().await;

    // Bob comes online with +notify for the node: libervia asks his client what
    // the caps mean, then sends alice's last item.
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
node='https://stanzagate.test/client' ver='stanzagate-notify-test'/></presence>",
    )
    .await;
    let query = bob
        .until(|s| {
            let h = s.head().unwrap();
            h.name() == "iq"
                && h.from().as_deref() == Some(PUBSUB)
                && text(s).contains("disco#info")
        })
        .await;
    let id = query.head().unwrap().id().unwrap().into_owned();
    bob.send(&format!(
        "<iq type='result' id='{id}' to='{PUBSUB}'><query xmlns='http://jabber.org/protocol/disco#info' \
node='https://stanzagate.test/client#stanzagate-notify-test'><identity category='client' type='pc'/>\
<feature var='http://jabber.org/protocol/disco#info'/><feature var='{NODE}+notify'/></query></iq>"
    ))
    .await;
    let last = bob.until(|s| notifies(s, "first")).await;
    assert_eq!(
        last.head().unwrap().from().as_deref(),
        Some("alice@localhost"),
        "from the owner's bare JID: {}",
        text(&last)
    );

    // Alice back: a new item reaches bob live, from her bare JID too.
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.send("<presence/>").await;
    alice.send(&publish("p2", "second")).await;
    alice.expect_iq("p2").await;
    let live = bob.until(|s| notifies(s, "second")).await;
    assert_eq!(
        live.head().unwrap().from().as_deref(),
        Some("alice@localhost"),
        "{}",
        text(&live)
    );
}
