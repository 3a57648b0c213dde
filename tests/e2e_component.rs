//! XEP-0114 components through the proxy: handshake checks (checklist 1–5) and the
//! proxied link that makes the component reachable through the legacy server.

mod common;

use std::time::Duration;

use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::component::handshake_digest;

const NAME: &str = "echo.localhost";
const SECRET: &str = "s3cr3t";

fn setup() -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default().with_component(NAME, SECRET));
    let proxy = Proxy::start(
        &ProxySpec::plaintext().with_component(NAME, SECRET),
        &prosody,
    );
    (prosody, proxy)
}

fn header(to: Option<&str>, ns: &str) -> String {
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    format!("<stream:stream xmlns='{ns}' xmlns:stream='http://etherx.jabber.org/streams'{to}>")
}

/// Opens a component stream and returns (raw, stream id).
async fn open(port: u16, to: &str) -> (Raw, String) {
    let mut raw = Raw::connect(port).await;
    raw.send(&header(Some(to), "jabber:component:accept")).await;
    let id = match raw.next().await {
        Some(stanzagate::xml::Frame::Header(h)) => h.id.expect("stream id"),
        other => panic!("expected a header, got {other:?}"),
    };
    (raw, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_is_reachable_through_the_proxied_link() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let mut component = peers.python.spawn(
        "component.py",
        &[
            "--jid".into(),
            NAME.into(),
            "--secret".into(),
            SECRET.into(),
            "--port".into(),
            proxy.ports.component.to_string(),
        ],
    );
    let limit = Duration::from_secs(60);
    assert!(
        component.await_line("CONNECTED", limit).await.is_some(),
        "{}",
        component.seen.join("\n")
    );
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send(&format!(
            "<message to='{NAME}' type='chat' id='e1'><body>ping me</body></message>"
        ))
        .await;
    let echo = alice.expect("message").await;
    let text = String::from_utf8_lossy(echo.bytes()).into_owned();
    assert!(text.contains("echo: ping me"), "{text}");
    assert_eq!(echo.head().unwrap().from().as_deref(), Some(NAME));
    let out = component.stop().await;
    assert!(out.contains("ECHO alice@localhost/raw 'ping me'"), "{out}");
}

#[tokio::test]
async fn handshake_with_a_wrong_secret_is_not_authorized() {
    // checklist 2
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let (mut raw, id) = open(proxy.ports.component, NAME).await;
    raw.send(&format!(
        "<handshake>{}</handshake>",
        handshake_digest(&id, "wrong")
    ))
    .await;
    assert_eq!(raw.expect_stream_error().await, "not-authorized");
}

#[tokio::test]
async fn handshake_with_child_elements_is_not_authorized() {
    // checklist 2
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let (mut raw, id) = open(proxy.ports.component, NAME).await;
    let digest = handshake_digest(&id, SECRET);
    raw.send(&format!("<handshake>{digest}<x/></handshake>"))
        .await;
    assert_eq!(raw.expect_stream_error().await, "not-authorized");
}

#[tokio::test]
async fn uppercase_digest_is_accepted_and_second_connection_conflicts() {
    // checklist 2 (case-insensitive), checklist 4 (conflict on the new stream)
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let (mut first, id) = open(proxy.ports.component, NAME).await;
    first
        .send(&format!(
            "<handshake>{}</handshake>",
            handshake_digest(&id, SECRET).to_uppercase()
        ))
        .await;
    first.expect("handshake").await;
    let (mut second, id2) = open(proxy.ports.component, NAME).await;
    second
        .send(&format!(
            "<handshake>{}</handshake>",
            handshake_digest(&id2, SECRET)
        ))
        .await;
    assert_eq!(second.expect_stream_error().await, "conflict");
    // The first one is untouched: it can still talk to the server.
    first
        .send(&format!("<iq type='get' id='p1' from='{NAME}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .await;
    let pong = first.expect("iq").await;
    assert_eq!(pong.head().unwrap().type_().as_deref(), Some("result"));
}

#[tokio::test]
async fn unknown_component_name_is_host_unknown() {
    // checklist 1
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let mut raw = Raw::connect(proxy.ports.component).await;
    raw.send(&header(Some("nobody.localhost"), "jabber:component:accept"))
        .await;
    assert_eq!(raw.expect_stream_error().await, "host-unknown");
}

#[tokio::test]
async fn missing_to_is_improper_addressing_and_wrong_namespace_is_invalid_namespace() {
    // checklist 1
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let mut raw = Raw::connect(proxy.ports.component).await;
    raw.send(&header(None, "jabber:component:accept")).await;
    assert_eq!(raw.expect_stream_error().await, "improper-addressing");
    let mut raw = Raw::connect(proxy.ports.component).await;
    raw.send(&header(Some(NAME), "jabber:client")).await;
    assert_eq!(raw.expect_stream_error().await, "invalid-namespace");
}

#[tokio::test]
async fn foreign_from_is_invalid_from_and_missing_to_bounces() {
    // checklist 5
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let (mut raw, id) = open(proxy.ports.component, NAME).await;
    raw.send(&format!(
        "<handshake>{}</handshake>",
        handshake_digest(&id, SECRET)
    ))
    .await;
    raw.expect("handshake").await;
    raw.send(&format!(
        "<message from='user@{NAME}' id='n1'><body>no to</body></message>"
    ))
    .await;
    let bounce = raw.expect("message").await;
    let text = String::from_utf8_lossy(bounce.bytes()).into_owned();
    assert!(
        text.contains("type='error'") && text.contains("bad-request"),
        "{text}"
    );
    raw.send("<message from='alice@localhost' to='bob@localhost'><body>spoof</body></message>")
        .await;
    assert_eq!(raw.expect_stream_error().await, "invalid-from");
}
