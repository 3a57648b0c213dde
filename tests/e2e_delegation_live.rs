//! Delegation in a running system: Stream Management counts that Prosody's
//! `mod_smacks` accepts while the proxy consumes and injects stanzas, configuration
//! swaps under a stream of IQs, and the delegation metrics.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::python::Running;
use common::{peers, Peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use stanzagate::xml::children::stanza_error_condition;
use stanzagate::xml::Frame;
use tokio::io::AsyncWriteExt;

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";
const LIMIT: Duration = Duration::from_secs(60);

fn delegation() -> String {
    format!("[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{COMPONENT}\"\n")
}

fn spec(extra: &str) -> ProxySpec {
    ProxySpec::plaintext()
        .with_component(COMPONENT, SECRET)
        .with_extra(extra)
}

fn setup() -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET));
    let proxy = Proxy::start(&spec(&delegation()), &prosody);
    (prosody, proxy)
}

async fn delegate(peers: &Peers, proxy: &Proxy) -> Running {
    peers
        .python
        .component("delegate.py", COMPONENT, SECRET, proxy.ports.component, &[])
        .await
}

fn delegated_iq(id: &str) -> String {
    format!("<iq type='get' id='{id}' to='localhost'><query xmlns='{NS}'/></iq>")
}

fn message(id: &str) -> String {
    format!("<message to='bob@localhost' type='chat' id='{id}'><body>{id}</body></message>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_counts_stay_consistent_with_consumed_and_injected_stanzas() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let component = delegate(&peers, &proxy).await;
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice
        .send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = alice.expect("enabled").await;
    let smid = enabled.head().unwrap().attr("id").unwrap().into_owned();

    // Interleave relayed and consumed stanzas; the server saw only the messages.
    for i in 0..3 {
        alice.send(&message(&format!("m{i}"))).await;
        alice.send(&delegated_iq(&format!("d{i}"))).await;
    }
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    // The ack and the three injected answers arrive in any order.
    let (mut acked, mut answered) = (None, 0);
    while acked.is_none() || answered < 3 {
        let stanza = alice.next_stanza().await;
        let head = stanza.head().unwrap();
        match head.name() {
            "a" => acked = head.attr("h").map(|h| h.into_owned()),
            "iq" if head.id().is_some_and(|id| id.starts_with('d')) => {
                assert_eq!(head.type_().as_deref(), Some("result"));
                answered += 1;
            }
            _ => {}
        }
    }
    assert_eq!(acked.as_deref(), Some("6"), "the client sent 6 stanzas");
    // The client acknowledges the three injected answers; Prosody must accept the
    // translated count (it closes the stream on a count it did not send).
    let received = alice.sm_received.unwrap();
    assert!(received >= 3);
    alice
        .send(&format!("<a xmlns='urn:xmpp:sm:3' h='{received}'/>"))
        .await;
    alice.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    let a = alice.expect("a").await;
    assert_eq!(a.head().unwrap().attr("h").as_deref(), Some("6"));
    alice.ping("still-open").await;

    // An injected answer the client never acknowledged is delivered again after
    // resumption, and the counts still agree.
    let before = alice.sm_received.unwrap();
    alice.send(&delegated_iq("lost")).await;
    alice.expect_iq("lost").await;
    drop(alice);
    let mut again = Raw::connect(proxy.c2s()).await;
    again.authenticate("alice").await;
    again
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{smid}' h='{before}'/>"
        ))
        .await;
    let resumed = again.expect_any(&["resumed", "failed"]).await;
    assert_eq!(
        resumed.head().unwrap().name(),
        "resumed",
        "{}",
        String::from_utf8_lossy(resumed.bytes())
    );
    // The client sent 6 + the ping + the 'lost' IQ = 8 stanzas.
    assert_eq!(resumed.head().unwrap().attr("h").as_deref(), Some("8"));
    again.sm_received = Some(before);
    let redelivered = again.expect_iq("lost").await;
    assert_eq!(
        redelivered.head().unwrap().type_().as_deref(),
        Some("result")
    );
    let count = again.sm_received.unwrap();
    again
        .send(&format!("<a xmlns='urn:xmpp:sm:3' h='{count}'/>"))
        .await;
    again.ping("after-resume").await;
    drop(component);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_a_stream_of_iqs_answers_each_exactly_once() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let component = delegate(&peers, &proxy).await;
    let alice = Raw::login(proxy.c2s(), "alice").await;
    let (conn, mut framer) = alice.into_parts();
    let (mut reader, mut writer) = tokio::io::split(conn);

    // Reader: collects every IQ answer by id and publishes how many it has.
    let (progress, mut answered) = tokio::sync::watch::channel(0usize);
    let collect = tokio::spawn(async move {
        let mut answers: HashMap<String, Vec<bool>> = HashMap::new();
        let mut total = 0usize;
        loop {
            while let Ok(Some(frame)) = framer.next_frame() {
                if let Frame::Stanza(stanza) = frame {
                    let head = stanza.head().unwrap();
                    if head.name() != "iq" {
                        continue;
                    }
                    let id = head.id().unwrap_or_default().into_owned();
                    let delegated = String::from_utf8_lossy(stanza.bytes()).contains("handled-by");
                    answers.entry(id).or_default().push(delegated);
                    total += 1;
                }
            }
            let _ = progress.send(total);
            if progress.is_closed() {
                return answers;
            }
            let read =
                tokio::time::timeout(LIMIT, read_some_split(&mut reader, framer.buffer_mut()))
                    .await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => panic!("stream ended after {total} answers"),
            }
        }
    });

    // Writer: IQs keep flowing (at most WINDOW unanswered) while the delegation is
    // removed and added back.
    const WINDOW: usize = 40;
    let configs = [spec(""), spec(&delegation()), spec(""), spec(&delegation())];
    let mut sent = 0usize;
    for config in &configs {
        let mark = proxy.log_len();
        proxy.write_config(&proxy.render(config));
        let mut after_reload = 0;
        while after_reload < 20 {
            if proxy.logged_since(mark, "configuration reloaded") {
                after_reload += 1;
            }
            writer
                .write_all(delegated_iq(&format!("x{sent}")).as_bytes())
                .await
                .unwrap();
            writer.flush().await.unwrap();
            sent += 1;
            let target = sent.saturating_sub(WINDOW);
            tokio::time::timeout(LIMIT, answered.wait_for(|n| *n >= target))
                .await
                .expect("answers keep coming")
                .unwrap();
        }
    }
    tokio::time::timeout(LIMIT, answered.wait_for(|n| *n >= sent))
        .await
        .expect("every IQ answered")
        .unwrap();
    drop(answered);
    // Wake the reader once more so it notices it is done.
    writer
        .write_all(b"<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    writer.flush().await.unwrap();
    let mut answers = tokio::time::timeout(LIMIT, collect).await.unwrap().unwrap();
    answers.remove("end");
    assert_eq!(answers.len(), sent, "every IQ answered");
    let twice: Vec<_> = answers.iter().filter(|(_, v)| v.len() != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    let delegated = answers.values().filter(|v| v[0]).count();
    assert!(
        delegated > 0 && delegated < sent,
        "both rule sets were in force: {delegated}/{sent}"
    );
    drop(component);
}

async fn read_some_split(
    reader: &mut tokio::io::ReadHalf<stanzagate::net::Conn>,
    buf: &mut bytes::BytesMut,
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    reader.read_buf(buf).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_metrics_by_namespace_and_outcome() {
    let Some(peers) = peers() else { return };
    let (_prosody, proxy) = setup();
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    // Offline first, then answered.
    alice.send(&delegated_iq("off")).await;
    let answer = alice.expect_iq("off").await;
    assert_eq!(
        stanza_error_condition(answer.bytes()).as_deref(),
        Some("service-unavailable")
    );
    let component = delegate(&peers, &proxy).await;
    for i in 0..3 {
        alice.send(&delegated_iq(&format!("ok{i}"))).await;
        alice.expect_iq(&format!("ok{i}")).await;
    }
    let metrics = common::http::get(proxy.ports.http, "/metrics").await.1;
    for needle in [
        format!("stanzagate_delegated_iqs_total{{namespace=\"{NS}\",outcome=\"answered\"}} 3"),
        format!(
            "stanzagate_delegated_iqs_total{{namespace=\"{NS}\",outcome=\"component_offline\"}} 1"
        ),
        "stanzagate_delegation_pending 0".to_owned(),
        "stanzagate_delegation_rtt_seconds_count 3".to_owned(),
    ] {
        assert!(metrics.contains(&needle), "missing {needle} in\n{metrics}");
    }
    drop(component);
}
