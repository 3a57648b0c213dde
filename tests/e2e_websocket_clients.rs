//! Real web clients through stanzagate's WebSocket listener, in front of a real
//! Prosody: `@xmpp/client` (Node) with a delegated IQ, Stream Management and a message
//! exchange with a TCP client; Converse.js in headless Chromium logging in and
//! exchanging a message with a TCP client. Both clients are what browsers run.

mod common;

use std::time::Duration;

use common::node::Node;
use common::python::Running;
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, PASSWORD};

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";
const LIMIT: Duration = Duration::from_secs(90);

fn setup() -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET));
    let spec = ProxySpec::plaintext()
        .with_component(COMPONENT, SECRET)
        .with_extra(&format!(
            "[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{COMPONENT}\"\n"
        ));
    let proxy = Proxy::start(&spec, &prosody);
    (prosody, proxy)
}

/// The client's line starting with `prefix`, or a failure showing all it printed.
async fn line(client: &mut Running, prefix: &str) -> String {
    match client.await_line(prefix, LIMIT).await {
        Some(line) => line,
        None => panic!(
            "no {prefix} line; the client printed:\n{}",
            client.seen.join("\n")
        ),
    }
}

/// Bob, over TCP, answers the first chat message he gets; returns its body.
async fn bob_answers(bob: &mut Raw, reply: &str) -> String {
    let message = bob.expect("message").await;
    let text = String::from_utf8_lossy(message.bytes()).into_owned();
    let from = message.head().unwrap().from().expect("from").into_owned();
    bob.send(&format!(
        "<message to='{from}' type='chat' id='re'><body>{reply}</body></message>"
    ))
    .await;
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_js_over_websocket_delegates_enables_sm_and_talks_to_a_tcp_client() {
    let Some(peers) = peers() else { return };
    let Some(node) = Node::find(false) else {
        return;
    };
    let (_prosody, proxy) = setup();
    let _delegate = peers
        .python
        .component("delegate.py", COMPONENT, SECRET, proxy.ports.component, &[])
        .await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let bob_jid = bob.jid.clone().expect("jid");
    let url = format!("ws://127.0.0.1:{}/xmpp-websocket", proxy.ports.websocket);
    let args = [url, "alice".into(), PASSWORD.into(), NS.into(), bob_jid];
    let mut client = node.spawn(&[], "xmpp_client.mjs", &args);
    let online = line(&mut client, "ONLINE").await;
    assert!(online.starts_with("ONLINE alice@localhost/"), "{online}");
    assert_eq!(
        line(&mut client, "IQ").await,
        "IQ result",
        "delegated IQ answered"
    );
    line(&mut client, "SENT").await;
    let got = bob_answers(&mut bob, "hello back, xmpp.js").await;
    assert!(got.contains("hello from xmpp.js"), "{got}");
    let reply = line(&mut client, "MESSAGE").await;
    assert!(reply.ends_with("hello back, xmpp.js"), "{reply}");
    assert_eq!(line(&mut client, "SM").await, "SM enabled");
    line(&mut client, "STOPPED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_js_in_headless_chromium_logs_in_and_talks_to_a_tcp_client() {
    let Some(_peers) = peers() else { return };
    let Some(node) = Node::find(true) else { return };
    let (_prosody, proxy) = setup();
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let bob_jid = bob.jid.clone().expect("jid");
    let url = format!("ws://127.0.0.1:{}/xmpp-websocket", proxy.ports.websocket);
    let args = [url, "alice@localhost".into(), PASSWORD.into(), bob_jid];
    let mut browser = node.spawn(&[], "converse.mjs", &args);
    let connected = line(&mut browser, "CONNECTED").await;
    assert!(
        connected.starts_with("CONNECTED alice@localhost/"),
        "{connected}"
    );
    let got = bob_answers(&mut bob, "hello back, converse").await;
    assert!(got.contains("hello from converse"), "{got}");
    let reply = line(&mut browser, "MESSAGE").await;
    assert!(reply.ends_with("hello back, converse"), "{reply}");
    line(&mut browser, "DONE").await;
}
