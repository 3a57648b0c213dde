//! Bad input and failures: each offending stream gets the right stream error and is
//! closed, every other session keeps working, the proxy never goes down.

mod common;

use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, DOMAIN};

#[tokio::test]
async fn malformed_xml_closes_only_that_stream() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut bystander = Raw::login(proxy.c2s(), "bob").await;
    let mut bad = Raw::login(proxy.c2s(), "alice").await;
    bad.send("<message to='bob@localhost'><body>unclosed</message>")
        .await;
    assert_eq!(bad.expect_stream_error().await, "not-well-formed");
    bystander.ping("still-alive").await;
}

#[tokio::test]
async fn restricted_xml_is_refused() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    for (i, evil) in [
        "<!-- a comment -->",
        "<?php echo 1; ?>",
        "<!DOCTYPE x [<!ENTITY lol 'lol'>]>",
        "<message><body>&lol;</body></message>",
    ]
    .iter()
    .enumerate()
    {
        let mut raw = Raw::login(proxy.c2s(), "alice").await;
        raw.send(evil).await;
        assert_eq!(
            raw.expect_stream_error().await,
            "restricted-xml",
            "case {i}: {evil}"
        );
    }
}

#[tokio::test]
async fn two_mebibyte_stanza_is_a_policy_violation() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut bystander = Raw::login(proxy.c2s(), "bob").await;
    let mut big = Raw::login(proxy.c2s(), "alice").await;
    let mut stanza = b"<message to='bob@localhost'><body>".to_vec();
    stanza.resize(2 << 20, b'x');
    stanza.extend_from_slice(b"</body></message>");
    // The proxy stops reading after ~256 KiB and closes: the write may fail midway.
    let _ = big.try_send_bytes(&stanza).await;
    assert_eq!(big.expect_stream_error().await, "policy-violation");
    bystander.ping("after-big").await;
}

#[tokio::test]
async fn upstream_stop_gives_a_stream_error_and_logins_resume_when_it_is_back() {
    let Some(_peers) = peers() else { return };
    let mut prosody = Prosody::start(&ProsodySpec::default());
    let mut proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    prosody.stop();
    // Prosody says <system-shutdown/>; the proxy relays it and closes.
    let condition = alice.expect_stream_error().await;
    assert!(
        condition == "system-shutdown" || condition == "remote-connection-failed",
        "got {condition}"
    );
    // While the server is down, a new client is told so, not left hanging.
    let mut early = Raw::connect(proxy.c2s()).await;
    early.send(&Raw::header(DOMAIN)).await;
    assert_eq!(
        early.expect_stream_error().await,
        "remote-connection-failed"
    );
    assert!(proxy.is_running(), "the proxy must stay up");
    prosody.restart();
    let mut back = Raw::login(proxy.c2s(), "alice").await;
    back.ping("back").await;
}

#[tokio::test]
async fn unreachable_upstream_is_remote_connection_failed() {
    let Some(_peers) = peers() else { return };
    let dead = format!("127.0.0.1:{}", common::free_port());
    let proxy = Proxy::start_with_upstream(&ProxySpec::plaintext(), &dead, &dead);
    let mut raw = Raw::connect(proxy.c2s()).await;
    raw.send(&Raw::header(DOMAIN)).await;
    assert_eq!(raw.expect_stream_error().await, "remote-connection-failed");
}

#[tokio::test]
async fn client_close_is_propagated_and_both_sockets_close_quickly() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut raw = Raw::login(proxy.c2s(), "alice").await;
    raw.send("</stream:stream>").await;
    // The server answers our close with its own; the proxy relays it and hangs up
    // (expect_closed reads to EOF and fails on anything but the close tag).
    raw.expect_closed().await;
    // Prosody saw the session end: a new login with the same resource is not a conflict.
    let mut again = Raw::login(proxy.c2s(), "alice").await;
    again.ping("again").await;
}

#[tokio::test]
async fn no_connection_or_socket_outlives_its_session() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let pid = proxy.pid().expect("proxy pid");
    let baseline = open_fds(pid);
    for round in 0..5 {
        // A clean close, an abrupt drop, a malformed stream and a refused header.
        let mut clean = Raw::login(proxy.c2s(), "alice").await;
        clean.send("</stream:stream>").await;
        clean.expect_closed().await;
        drop(Raw::login(proxy.c2s(), "bob").await);
        let mut bad = Raw::login(proxy.c2s(), "alice").await;
        bad.send("<iq><</iq>").await;
        assert_eq!(
            bad.expect_stream_error().await,
            "not-well-formed",
            "round {round}"
        );
        let mut lost = Raw::connect(proxy.c2s()).await;
        lost.send(&Raw::header("nowhere.example")).await;
        assert_eq!(lost.expect_stream_error().await, "host-unknown");
    }
    // The proxy's own count of open client connections drains to zero…
    let metrics_port = proxy.ports.http;
    let mut open = String::new();
    for _ in 0..200 {
        open = common::http::metric(
            metrics_port,
            "stanzagate_connections_open{listener=\"c2s\"}",
        )
        .await;
        if open == "0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(open, "0", "client connections still counted as open");
    // …and so does its file descriptor table (dropped sockets are closed).
    let mut now = open_fds(pid);
    for _ in 0..200 {
        if now <= baseline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        now = open_fds(pid);
    }
    assert!(
        now <= baseline,
        "proxy has {now} fds open, {baseline} before the sessions"
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn upstream_tls_starttls_and_direct_are_verified_against_ca_file() {
    let Some(_peers) = peers() else { return };
    let (_dir, certs) = common::proxy::test_certs();
    let server = certs.leaf("upstream");
    let prosody = Prosody::start(&ProsodySpec::default().with_tls(&server.cert, &server.key));
    for (mode, addr) in [
        ("starttls", prosody.c2s_addr()),
        ("direct", format!("127.0.0.1:{}", prosody.c2s_direct)),
    ] {
        let spec = ProxySpec::plaintext().with_upstream_tls(mode, &certs.ca_pem);
        let proxy = Proxy::start_with_upstream(&spec, &addr, &prosody.component_addr());
        let mut raw = Raw::login(proxy.c2s(), "alice").await;
        raw.ping(mode).await;
    }
}
