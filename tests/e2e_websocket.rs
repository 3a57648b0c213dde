//! XMPP over WebSocket (RFC 7395) on `listen.websocket`, in front of a real Prosody:
//! the framing exactly (raw WebSocket client), the same routing as TCP clients
//! (delegation to a slixmpp component, privileged entities, web-app rosters, Stream
//! Management, messages with a TCP client), TLS, and hostile input. Real clients (`@xmpp/client`, Converse.js
//! in headless Chromium) are in `e2e_websocket_clients.rs`.

mod common;

use common::proxy::test_certs;
use common::ws::{name_of, Ws, FRAMING};
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, WebApp};

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";

fn prosody() -> Prosody {
    Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET))
}

fn spec(extra: &str) -> ProxySpec {
    ProxySpec::plaintext()
        .with_component(COMPONENT, SECRET)
        .with_extra(&format!(
            "[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{COMPONENT}\"\n{extra}"
        ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_gets_the_same_routing_as_a_tcp_client() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {"name": "Bob"}}"#);
    let prosody = prosody();
    let proxy = Proxy::start(&spec(&app.toml("t0ken", 3000)), &prosody);
    let _delegate = peers
        .python
        .component("delegate.py", COMPONENT, SECRET, proxy.ports.component, &[])
        .await;

    // The framing: subprotocol agreed, <open/> answered with <open/>, features standing
    // alone with their namespaces declared.
    let mut ws = Ws::open(proxy.ports.websocket).await;
    assert_eq!(ws.protocol.as_deref(), Some("xmpp"));
    ws.send(&Ws::open_element()).await;
    let open = ws.next().await.expect("open");
    assert_eq!(name_of(&open), "open", "{open}");
    assert!(open.contains(FRAMING), "{open}");
    assert!(open.contains("from='localhost'"), "{open}");
    let features = ws.next().await.expect("features");
    assert!(
        features.starts_with("<stream:features xmlns")
            && features.contains("xmlns:stream='http://etherx.jabber.org/streams'"),
        "{features}"
    );
    assert!(
        features.contains("PLAIN"),
        "SASL offered on plain ws: {features}"
    );
    assert!(!features.contains("starttls"), "{features}");
    drop(ws);

    let mut alice = Ws::login(proxy.ports.websocket, "alice").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;

    // Messages both ways with a TCP client; each received message stands alone.
    let bob_jid = bob.jid.clone().expect("jid");
    alice
        .send(&format!("<message xmlns='jabber:client' to='{bob_jid}' type='chat' id='m1'><body>from the web</body></message>"))
        .await;
    let got = bob.expect("message").await;
    assert!(String::from_utf8_lossy(got.bytes()).contains("from the web"));
    let alice_jid = alice.jid.clone().expect("jid");
    bob.send(&format!(
        "<message to='{alice_jid}' type='chat' id='m2'><body>from tcp</body></message>"
    ))
    .await;
    let reply = alice.expect("message").await;
    assert!(reply.contains("from tcp"), "{reply}");
    assert!(
        reply.starts_with("<message xmlns='jabber:client'"),
        "{reply}"
    );
    // A message far larger than the WebSocket read buffer, both ways.
    let big = "0123456789".repeat(10_000);
    alice
        .send(&format!("<message xmlns='jabber:client' to='{bob_jid}' type='chat' id='big'><body>{big}</body></message>"))
        .await;
    let got = bob.expect("message").await;
    assert!(
        String::from_utf8_lossy(got.bytes()).contains(&big),
        "the large message whole"
    );
    bob.send(&format!(
        "<message to='{alice_jid}' type='chat' id='big2'><body>{big}</body></message>"
    ))
    .await;
    let back = alice.expect("message").await;
    assert!(back.contains(&big), "the large message back whole");

    // Delegation to the component.
    alice
        .send(&format!(
            "<iq xmlns='jabber:client' type='get' id='d1' to='localhost'><query xmlns='{NS}'/></iq>"
        ))
        .await;
    let answer = alice.expect("iq").await;
    assert!(
        answer.contains("id='d1'") && answer.contains("type='result'"),
        "{answer}"
    );

    // The roster comes from the web app.
    alice
        .send("<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = alice.expect("iq").await;
    assert!(
        roster.contains("bob@localhost") && roster.contains("Bob"),
        "{roster}"
    );

    // Stream Management.
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    let enabled = alice.expect("enabled").await;
    assert!(enabled.contains("urn:xmpp:sm:3"), "{enabled}");
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let ack = alice.expect("a").await;
    assert!(ack.contains("h='"), "{ack}");

    // <close/> is answered with <close/>, then the WebSocket closes.
    alice.send(&format!("<close xmlns='{FRAMING}'/>")).await;
    let close = alice.expect("close").await;
    assert!(close.contains(FRAMING), "{close}");
    assert!(alice.next().await.is_none(), "closed after <close/>");
    bob.ping("bob-still-here").await;
}

#[tokio::test]
async fn the_upgrade_needs_the_path_and_the_xmpp_subprotocol() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let proxy = Proxy::start(&spec(""), &prosody);
    let port = proxy.ports.websocket;
    let status = |e: tokio_tungstenite::tungstenite::Error| match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("an HTTP refusal, got {other}"),
    };
    let wrong_path = Ws::connect(port, "/ws", Some("xmpp"))
        .await
        .err()
        .map(status);
    assert_eq!(wrong_path, Some(404));
    let no_protocol = Ws::connect(port, "/xmpp-websocket", None)
        .await
        .err()
        .map(status);
    assert_eq!(no_protocol, Some(400));
    let other = Ws::connect(port, "/xmpp-websocket", Some("mqtt"))
        .await
        .err()
        .map(status);
    assert_eq!(other, Some(400));
    // Offered among others, it is the one agreed.
    let ws = Ws::connect(port, "/xmpp-websocket", Some("mqtt, xmpp"))
        .await
        .expect("upgrade");
    assert_eq!(ws.protocol.as_deref(), Some("xmpp"));
}

/// The stream error a WebSocket client gets for `message` after logging in, and that
/// the connection then closes; other sessions are unaffected.
async fn refused(proxy: &Proxy, send: impl AsyncFnOnce(&mut Ws)) -> String {
    let mut ws = Ws::login(proxy.ports.websocket, "alice").await;
    send(&mut ws).await;
    let error = ws.expect("error").await;
    ws.expect_closed().await;
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_messages_get_a_stream_error_and_only_their_session_ends() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let proxy = Proxy::start(&spec("[limits]\nmax_stanza_bytes = 16384\n"), &prosody);
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let cases: [(&str, String); 4] = [
        ("binary", refused(&proxy, async |ws| ws.send_binary(b"<presence/>").await).await),
        ("text", refused(&proxy, async |ws| ws.send("hello").await).await),
        (
            "two elements",
            refused(&proxy, async |ws| {
                ws.send("<presence xmlns='jabber:client'/><presence").await
            })
            .await,
        ),
        (
            "too large",
            refused(&proxy, async |ws| {
                let body = "x".repeat(40_000);
                ws.send(&format!(
                    "<message xmlns='jabber:client' to='bob@localhost'><body>{body}</body></message>"
                ))
                .await
            })
            .await,
        ),
    ];
    let want = [
        ("binary", "unsupported-encoding"),
        ("text", "not-well-formed"),
        ("two elements", "not-well-formed"),
        ("too large", "policy-violation"),
    ];
    for ((case, error), (_, condition)) in cases.iter().zip(want) {
        assert!(error.contains(&format!("<{condition} ")), "{case}: {error}");
    }
    bob.ping("bob-unaffected").await;
}

#[tokio::test]
async fn websocket_tls_serves_the_proxys_certificate_with_http_1_1() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let (mut ws, alpn) = Ws::connect_tls(proxy.ports.websocket_tls, certs.roots()).await;
    assert_eq!(
        alpn.as_deref(),
        Some(&b"http/1.1"[..]),
        "browsers need HTTP/1.1 to upgrade"
    );
    assert_eq!(ws.protocol.as_deref(), Some("xmpp"));
    // TLS is required on this proxy, yet no STARTTLS here: the WebSocket is the TLS.
    ws.login_as("alice").await;
    ws.send("<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = ws.expect("iq").await;
    assert!(pong.contains("type='result'"), "{pong}");
}

/// Privileged entities work for WebSocket users as for TCP ones: the gateway gets a
/// WebSocket user's presence (presence = "roster") and its message on behalf of a TCP
/// user reaches the WebSocket user (message = "outgoing").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_entities_see_and_reach_websocket_users() {
    const GATEWAY: &str = "gateway.localhost";
    let Some(peers) = peers() else { return };
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_subscription("alice", "bob")
            .with_component(GATEWAY, SECRET),
    );
    let spec = ProxySpec::plaintext()
        .with_component(GATEWAY, SECRET)
        .with_extra(&format!(
            "[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"both\"\n\
message = \"outgoing\"\npresence = \"roster\"\n"
        ));
    let proxy = Proxy::start(&spec, &prosody);
    let mut gateway = peers
        .python
        .component("privileged.py", GATEWAY, SECRET, proxy.ports.component, &[])
        .await;
    let limit = std::time::Duration::from_secs(60);
    assert!(gateway.await_line("PRIVILEGES", limit).await.is_some());
    let mut alice = Ws::login(proxy.ports.websocket, "alice").await;
    alice
        .send("<presence xmlns='jabber:client'><show>chat</show></presence>")
        .await;
    let copy = gateway
        .await_line("PRESENCE alice@localhost/ws", limit)
        .await;
    assert!(copy.is_some(), "{}", gateway.seen.join("\n"));
    drop(gateway);

    // A chat message goes out on the sender's own stream (offline, it would wait in
    // the durable queue for bob's next login), so bob logs in.
    let _bob = Raw::login(proxy.c2s(), "bob").await;
    let mut sender = peers
        .python
        .component(
            "privileged.py",
            GATEWAY,
            SECRET,
            proxy.ports.component,
            &[
                "--message",
                "bob@localhost,alice@localhost,on behalf of bob",
            ],
        )
        .await;
    assert!(sender.await_line("MESSAGE-SENT", limit).await.is_some());
    let message = alice.expect("message").await;
    assert!(
        message.contains("on behalf of bob") && message.contains("from='bob@localhost"),
        "{message}"
    );
}

/// `listen.websocket` counts as secure: with `tls.required` (the default), plain `ws://`
/// still offers SASL and no STARTTLS, as Prosody's `consider_websocket_secure`.
#[tokio::test]
async fn plain_websocket_offers_sasl_when_tls_is_required() {
    let Some(_peers) = peers() else { return };
    let prosody = prosody();
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let mut ws = Ws::open(proxy.ports.websocket).await;
    ws.send(&Ws::open_element()).await;
    ws.expect("open").await;
    let features = ws.expect("features").await;
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    assert!(!features.contains("starttls"), "{features}");
    // TCP on the same proxy still requires STARTTLS first.
    let mut tcp = Raw::connect(proxy.c2s()).await;
    tcp.send(&Raw::header("localhost")).await;
    let tcp_features = tcp.expect("features").await;
    let tcp_features = String::from_utf8_lossy(tcp_features.bytes()).into_owned();
    assert!(tcp_features.contains("starttls"), "{tcp_features}");
    assert!(!tcp_features.contains("mechanism"), "{tcp_features}");
}
