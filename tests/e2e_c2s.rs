//! Client streams through stanzagate in front of a real Prosody: TLS termination,
//! SASL relayed verbatim, roster, messages, presence, Stream Management, and many
//! concurrent clients without loss.

mod common;

use std::time::Duration;

use common::proxy::test_certs;
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, DOMAIN};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_scram_login_roster_message_and_presence() {
    let Some(peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default().with_subscription("alice", "bob"));
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let ca = certs.ca_pem.display().to_string();
    let port = proxy.c2s().to_string();

    let mut bob = peers.python.spawn(
        "client.py",
        &args(&[
            "--jid",
            "bob@localhost",
            "--port",
            &port,
            "--ca",
            &ca,
            "--mechanism",
            "SCRAM-SHA-1",
            "--roster",
            "--ready-line",
            "--wait-presence",
            "alice@localhost",
            "--expect-messages",
            "1",
            "--wait-unavailable",
            "alice@localhost",
        ]),
    );
    assert!(
        bob.await_line("READY", LIMIT).await.is_some(),
        "bob: {}",
        bob.seen.join("\n")
    );
    let alice = peers
        .python
        .run(
            "client.py",
            &args(&[
                "--jid",
                "alice@localhost",
                "--port",
                &port,
                "--ca",
                &ca,
                "--mechanism",
                "SCRAM-SHA-1",
                "--roster",
                "--wait-presence",
                "bob@localhost",
                "--send",
                "bob@localhost:hello through the proxy",
            ]),
            LIMIT,
        )
        .await;
    assert!(alice.success, "alice: {alice}");
    assert!(alice.has_line("BOUND alice@localhost/"), "{alice}");
    assert!(alice.stdout.contains("mechanism=SCRAM-SHA-1"), "{alice}");
    assert_eq!(alice.lines("ROSTER "), vec!["ROSTER bob@localhost"]);
    assert!(alice.has_line("PRESENCE bob@localhost/"), "{alice}");

    let done = bob.await_line("DONE", LIMIT).await;
    let bob_out = bob.stop().await;
    assert_eq!(done.as_deref(), Some("DONE ok"), "bob: {bob_out}");
    assert!(bob_out.contains("RECV alice@localhost/"), "{bob_out}");
    assert!(bob_out.contains("'hello through the proxy'"), "{bob_out}");
    assert!(bob_out.contains("PRESENCE alice@localhost/"), "{bob_out}");
    assert!(
        bob_out.contains("unavailable"),
        "bob saw alice leave: {bob_out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_login_xep_0368() {
    let Some(peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let run = peers
        .python
        .run(
            "client.py",
            &args(&[
                "--jid",
                "alice@localhost",
                "--port",
                &proxy.ports.c2s_direct.to_string(),
                "--tls",
                "direct",
                "--ca",
                &certs.ca_pem.display().to_string(),
                "--roster",
            ]),
            LIMIT,
        )
        .await;
    assert!(run.success, "{run}");
    assert!(run.has_line("BOUND alice@localhost/"), "{run}");
}

#[tokio::test]
async fn sasl_before_starttls_is_refused_when_tls_is_required() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let mut raw = Raw::connect(proxy.c2s()).await;
    raw.send(&Raw::header(DOMAIN)).await;
    let features = raw.expect("features").await;
    let text = String::from_utf8_lossy(features.bytes()).into_owned();
    assert!(
        text.contains("<starttls") && text.contains("<required/>"),
        "{text}"
    );
    assert!(
        !text.contains("mechanism"),
        "no SASL offered before TLS: {text}"
    );
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHBhc3N3b3Jk</auth>")
        .await;
    assert_eq!(raw.expect_stream_error().await, "policy-violation");
}

#[tokio::test]
async fn unknown_domain_gets_host_unknown() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut raw = Raw::connect(proxy.c2s()).await;
    raw.send(&Raw::header("elsewhere.example")).await;
    assert_eq!(raw.expect_stream_error().await, "host-unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_management_acks_and_resumption_through_the_proxy() {
    let Some(peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);

    // slixmpp with XEP-0198: its <r/> is answered with the server's count, relayed.
    let run = peers
        .python
        .run(
            "client.py",
            &args(&[
                "--jid",
                "alice@localhost",
                "--port",
                &proxy.c2s().to_string(),
                "--tls",
                "none",
                "--sm",
                "--send",
                "bob@localhost:counted",
                "--count",
                "5",
            ]),
            LIMIT,
        )
        .await;
    assert!(run.success, "{run}");
    // 5 messages + initial presence = 6 stanzas the server handled.
    assert!(run.has_line("SM-ACKED 6"), "{run}");

    // Raw: enable with resumption, count, drop the connection, resume.
    let mut raw = Raw::login(proxy.c2s(), "alice").await;
    raw.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = raw.expect("enabled").await;
    let smid = enabled
        .head()
        .unwrap()
        .attr("id")
        .expect("resumable")
        .into_owned();
    for i in 0..3 {
        raw.send(&format!(
            "<message to='bob@localhost' type='chat' id='m{i}'><body>{i}</body></message>"
        ))
        .await;
    }
    raw.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = raw.expect("a").await;
    assert_eq!(a.head().unwrap().attr("h").as_deref(), Some("3"));
    drop(raw);

    let mut again = Raw::connect(proxy.c2s()).await;
    again.authenticate("alice").await;
    again
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{smid}' h='0'/>"
        ))
        .await;
    let resumed = again.expect_any(&["resumed", "failed"]).await;
    let head = resumed.head().unwrap();
    assert_eq!(
        head.name(),
        "resumed",
        "{}",
        String::from_utf8_lossy(resumed.bytes())
    );
    assert_eq!(head.attr("h").as_deref(), Some("3"));
    again.ping("after-resume").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_twenty_messages_each_none_lost() {
    let Some(peers) = peers() else { return };
    let users: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    let prosody = Prosody::start(&ProsodySpec::default().with_users(users));
    let (_dir, certs) = test_certs();
    let proxy = Proxy::start(&ProxySpec::tls(certs.leaf("server")), &prosody);
    let run = peers
        .python
        .run(
            "load_clients.py",
            &args(&[
                "--users",
                "50",
                "--messages",
                "20",
                "--port",
                &proxy.c2s().to_string(),
                "--ca",
                &certs.ca_pem.display().to_string(),
            ]),
            Duration::from_secs(180),
        )
        .await;
    assert!(run.success, "{run}");
    assert!(
        run.has_line("RESULT sent=1000 received=1000 per_user_ok=True"),
        "{run}"
    );
}
