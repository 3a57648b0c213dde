//! PROXY protocol out (`upstream.proxy_protocol`), against a real Debian ejabberd whose
//! c2s listener reads the header (`use_proxy_protocol: true`). ejabberd must report each
//! client's own address for its session, and its `mod_fail2ban` must ban the address
//! that failed logins, not every client behind the proxy. The control half shows the
//! problem the setting solves: without it ejabberd sees the proxy's address, and one
//! client's wrong passwords lock everyone out.
//!
//! Clients get addresses of their own by binding 127.0.0.x before connecting.

mod common;

use std::net::Ipv4Addr;

use common::ejabberd::{self, Ejabberd};
use common::{peers, Proxy, ProxySpec, Raw, DOMAIN, PASSWORD};

/// ejabberd bans an address after this many failed logins (its default is 20; fewer
/// keeps the test short without changing what it shows).
const MAX_AUTH_FAILURES: u32 = 3;

/// What the server said to one login attempt.
#[derive(Debug)]
enum Attempt {
    Success,
    Failure,
    /// A stream error (ejabberd's ban), with its text.
    StreamError(String),
}

/// One SASL PLAIN attempt as `user` from `source`, through the proxy on `port`.
async fn attempt(port: u16, source: Ipv4Addr, user: &str, password: &str) -> Attempt {
    use base64::Engine as _;
    let mut raw = Raw::connect_from(port, source).await;
    raw.send(&Raw::header(DOMAIN)).await;
    let first = raw.expect_any(&["features", "error"]).await;
    if name(&first) == "error" {
        return Attempt::StreamError(String::from_utf8_lossy(first.bytes()).into_owned());
    }
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    raw.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    let outcome = raw.expect_any(&["success", "failure", "error"]).await;
    match name(&outcome).as_str() {
        "success" => Attempt::Success,
        "failure" => Attempt::Failure,
        _ => Attempt::StreamError(String::from_utf8_lossy(outcome.bytes()).into_owned()),
    }
}

fn name(stanza: &stanzagate::xml::Stanza) -> String {
    stanza
        .head()
        .map(|h| h.name().to_owned())
        .unwrap_or_default()
}

/// Wrong passwords from `source` until ejabberd bans it; returns the ban's text.
async fn fail_until_banned(port: u16, source: Ipv4Addr) -> String {
    for _ in 0..=MAX_AUTH_FAILURES {
        match attempt(port, source, "mallory", "wrong").await {
            Attempt::Failure => {}
            Attempt::StreamError(text) => return text,
            Attempt::Success => panic!("a wrong password was accepted"),
        }
    }
    panic!("no ban after {} failed logins", MAX_AUTH_FAILURES + 1)
}

/// A bound session as `user` from `source`.
async fn session_from(port: u16, source: Ipv4Addr, user: &str) -> Raw {
    let mut raw = Raw::connect_from(port, source).await;
    raw.login_on_stream(user).await;
    raw
}

#[tokio::test]
async fn ejabberd_sees_each_clients_address_and_bans_only_the_one_that_failed() {
    let Some(_peers) = peers() else { return };
    let Some(()) = ejabberd::available() else {
        return;
    };
    let server = Ejabberd::start(&["alice", "bob", "carol", "mallory"], MAX_AUTH_FAILURES);
    // Nothing listens there: no component takes part.
    let no_component = format!("127.0.0.1:{}", common::free_port());
    let (alice_ip, mallory_ip) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));

    // v2 (binary): ejabberd reports alice's own address for her session.
    let v2 = Proxy::start_with_upstream(
        &ProxySpec::plaintext().with_upstream("proxy_protocol = \"v2\"\n"),
        &server.proxied_addr(),
        &no_component,
    );
    let mut alice = session_from(v2.c2s(), alice_ip, "alice").await;
    alice.ping("alice-v2").await;
    let sessions = server.sessions_of("alice");
    assert!(
        sessions.contains("\t127.0.0.2\t"),
        "ejabberd reports alice's address: {sessions}"
    );

    // Mallory's wrong passwords ban her address, named in ejabberd's own words...
    let ban = fail_until_banned(v2.c2s(), mallory_ip).await;
    assert!(ban.contains("policy-violation"), "a ban: {ban}");
    assert!(
        ban.contains("(127.0.0.3)"),
        "mallory's address is banned: {ban}"
    );
    // ...and only hers: alice logs in again, mallory's address stays refused.
    drop(alice);
    let mut alice = session_from(v2.c2s(), alice_ip, "alice").await;
    alice.ping("alice-after-ban").await;
    match attempt(v2.c2s(), mallory_ip, "mallory", PASSWORD).await {
        Attempt::StreamError(text) => assert!(text.contains("policy-violation"), "{text}"),
        other => panic!("mallory's address is still banned, got {other:?}"),
    }

    // v1 (text) to the same listener: bob's address arrives too.
    let v1 = Proxy::start_with_upstream(
        &ProxySpec::plaintext().with_upstream("proxy_protocol = \"v1\"\n"),
        &server.proxied_addr(),
        &no_component,
    );
    let mut bob = session_from(v1.c2s(), Ipv4Addr::new(127, 0, 0, 4), "bob").await;
    bob.ping("bob-v1").await;
    let sessions = server.sessions_of("bob");
    assert!(
        sessions.contains("\t127.0.0.4\t"),
        "ejabberd reports bob's address: {sessions}"
    );

    // Control, proxy_protocol off: ejabberd sees the proxy's address for everyone, so
    // mallory's failures from one address lock out alice at another.
    let off =
        Proxy::start_with_upstream(&ProxySpec::plaintext(), &server.plain_addr(), &no_component);
    let mut carol = session_from(off.c2s(), Ipv4Addr::new(127, 0, 0, 6), "carol").await;
    carol.ping("carol-off").await;
    let sessions = server.sessions_of("carol");
    assert!(
        sessions.contains("\t127.0.0.1\t"),
        "without the header ejabberd sees the proxy: {sessions}"
    );
    let ban = fail_until_banned(off.c2s(), Ipv4Addr::new(127, 0, 0, 5)).await;
    assert!(
        ban.contains("(127.0.0.1)"),
        "the proxy's address is banned: {ban}"
    );
    match attempt(off.c2s(), Ipv4Addr::new(127, 0, 0, 7), "alice", PASSWORD).await {
        Attempt::StreamError(text) => assert!(text.contains("policy-violation"), "{text}"),
        other => panic!("without PROXY protocol alice is locked out too, got {other:?}"),
    }
    // The sessions opened before the ban are untouched.
    alice.ping("alice-still").await;
    bob.ping("bob-still").await;
}
