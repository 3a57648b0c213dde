//! The client listeners' front door: PROXY protocol in (v1 and v2) from listed
//! balancers only, per-address limits (connections open at once, logins per minute)
//! applied to the client's real address, direct TLS on the STARTTLS port with ALPN,
//! and certificates chosen by SNI — against a real Prosody.

mod common;

use common::proxy::test_certs;
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};

/// A v1 header announcing `source` as the client.
fn v1(source: &str) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 40000 5222\r\n").into_bytes()
}

/// A v2 header announcing `source` (IPv4) as the client.
fn v2(source: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&5222u16.to_be_bytes());
    header
}

fn prosody() -> Prosody {
    let users = ["carol", "dave", "erin"].map(String::from);
    Prosody::start(&ProsodySpec::default().with_users(users))
}

/// Logs in as `user` through a balancer announcing `header`.
async fn login_via(proxy: &Proxy, header: &[u8], user: &str) -> Raw {
    let mut raw = Raw::connect(proxy.c2s()).await;
    raw.send_bytes(header).await;
    raw.login_on_stream(user).await;
    raw
}

#[tokio::test]
async fn connections_per_real_address_are_limited_behind_a_listed_balancer() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let spec = ProxySpec::plaintext()
        .with_listen("proxy_protocol_from = [\"127.0.0.1\"]\n")
        .with_extra("[limits]\nmax_connections_per_ip = 2\n");
    let proxy = Proxy::start(&spec, &prosody);
    let mut alice = login_via(&proxy, &v1("203.0.113.7"), "alice").await;
    let mut bob = login_via(&proxy, &v2([203, 0, 113, 7]), "bob").await;
    // A third from the same real address, although every TCP peer is 127.0.0.1.
    let mut third = Raw::connect(proxy.c2s()).await;
    third.send_bytes(&v1("203.0.113.7")).await;
    third.send(&Raw::header("localhost")).await;
    assert_eq!(third.expect_stream_error().await, "policy-violation");
    // Another address is not affected, and the first two keep working.
    let mut carol = login_via(&proxy, &v1("203.0.113.8"), "carol").await;
    carol.ping("carol-ok").await;
    alice.ping("alice-ok").await;
    bob.ping("bob-ok").await;
    // Once one of them leaves, the address may connect again.
    alice.send("</stream:stream>").await;
    alice.expect_closed().await;
    let mut admitted = false;
    for _ in 0..50 {
        let mut raw = Raw::connect(proxy.c2s()).await;
        raw.send_bytes(&v1("203.0.113.7")).await;
        raw.send(&Raw::header("localhost")).await;
        // Refused only while the proxy has not finished closing alice's connection.
        if raw
            .expect_any(&["features", "error"])
            .await
            .head()
            .unwrap()
            .name()
            == "features"
        {
            admitted = true;
            break;
        }
    }
    assert!(
        admitted,
        "a slot freed by a closed connection is given again"
    );
}

#[tokio::test]
async fn a_listed_source_without_a_header_and_a_header_from_elsewhere_are_closed() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    // Loopback is listed: a connection from it must bring a header.
    let listed = Proxy::start(
        &ProxySpec::plaintext().with_listen("proxy_protocol_from = [\"127.0.0.0/8\"]\n"),
        &prosody,
    );
    let mut missing = Raw::connect(listed.c2s()).await;
    missing.send(&Raw::header("localhost")).await;
    assert!(
        missing.next().await.is_none(),
        "closed without a word: the peer is a balancer that broke the protocol"
    );
    // Only 10.0.0.0/8 is listed: a header from loopback is refused, a plain client is not.
    let elsewhere = Proxy::start(
        &ProxySpec::plaintext().with_listen("proxy_protocol_from = [\"10.0.0.0/8\"]\n"),
        &prosody,
    );
    let mut forged = Raw::connect(elsewhere.c2s()).await;
    // One write: the proxy closes on the header's first byte, and a second write
    // could meet the reset instead of the close being observed.
    let mut bytes = v1("198.51.100.1");
    bytes.extend_from_slice(Raw::header("localhost").as_bytes());
    let _ = forged.try_send_bytes(&bytes).await;
    assert!(
        forged.next().await.is_none(),
        "a forged header is never read as XMPP"
    );
    let mut plain = Raw::login(elsewhere.c2s(), "alice").await;
    plain.ping("plain-ok").await;
}

#[tokio::test]
async fn logins_per_minute_from_one_address_are_limited() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let spec = ProxySpec::plaintext()
        .with_listen("proxy_protocol_from = [\"127.0.0.1\"]\n")
        .with_extra("[limits]\nlogins_per_ip_per_minute = 2\n");
    let proxy = Proxy::start(&spec, &prosody);
    let _alice = login_via(&proxy, &v1("192.0.2.50"), "alice").await;
    let _bob = login_via(&proxy, &v1("192.0.2.50"), "bob").await;
    let mut third = Raw::connect(proxy.c2s()).await;
    third.send_bytes(&v1("192.0.2.50")).await;
    third.send(&Raw::header("localhost")).await;
    third.expect("features").await;
    third
        .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGNhcm9sAHBhc3N3b3Jk</auth>")
        .await;
    assert_eq!(third.expect_stream_error().await, "policy-violation");
    let mut other = login_via(&proxy, &v1("192.0.2.51"), "carol").await;
    other.ping("other-address-ok").await;
}

#[tokio::test]
async fn the_starttls_port_also_serves_direct_tls_with_alpn() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    // A ClientHello on the STARTTLS port: served as direct TLS, ALPN xmpp-client.
    let (mut raw, _, alpn) =
        Raw::connect_tls_alpn(proxy.c2s(), certs.roots(), &[b"xmpp-client"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"xmpp-client"[..]));
    raw.login_on_stream("alice").await;
    raw.ping("direct-on-starttls-port").await;
    // The same port still speaks STARTTLS to a client that starts in plaintext.
    let mut plain = Raw::connect(proxy.c2s()).await;
    plain.send(&Raw::header("localhost")).await;
    let features = plain.expect("features").await;
    let text = String::from_utf8_lossy(features.bytes()).into_owned();
    assert!(text.contains("starttls"), "{text}");
}

#[tokio::test]
async fn the_certificate_is_chosen_by_the_name_the_client_asks_for() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let (_dir, certs) = test_certs();
    let host = certs.leaf("host");
    let spec = ProxySpec::tls(certs.leaf("default")).with_extra(&format!(
        "[hosts.\"localhost\".tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        host.cert.display(),
        host.key.display()
    ));
    let proxy = Proxy::start(&spec, &prosody);
    // The test client asks for "localhost" (SNI): the host's own certificate.
    let (mut raw, leaf) = Raw::connect_tls(proxy.ports.c2s_direct, certs.roots()).await;
    assert!(leaf == host.der, "the host's certificate, not [tls]'s");
    raw.login_on_stream("bob").await;
    raw.ping("sni").await;
}
