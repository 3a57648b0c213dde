//! Quotas: one peer cannot make the proxy hold unbounded state or starve the others.
//! Each test drives one offender past a (small) quota against a real Prosody and checks
//! that the offender gets the error the README promises while a bystander keeps
//! working, and that nothing owed is dropped silently on a stream that stays open.
//!
//! The old build (a47bdb0) refuses the `[limits]` keys it does not know, so a test that
//! sets one fails there at startup; where the defect also shows with the default
//! limits, a second test without the new keys demonstrates it on the old build.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::raw::text;
use common::raw::RawReader;
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, DOMAIN};
use stanzagate::xml::children::{root_attr, stanza_error_condition};
use stanzagate::xml::{Frame, Stanza};
use tokio::io::AsyncWriteExt;

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";
/// An upper bound on waits that normally end in milliseconds.
const LIMIT: Duration = Duration::from_secs(60);

fn delegation() -> String {
    format!("[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{COMPONENT}\"\n")
}

fn setup(limits: &str) -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default().with_component(COMPONENT, SECRET));
    let extra = match limits {
        "" => delegation(),
        limits => format!("{}[limits]\n{limits}", delegation()),
    };
    let proxy = Proxy::start(
        &ProxySpec::plaintext()
            .with_component(COMPONENT, SECRET)
            .with_extra(&extra),
        &prosody,
    );
    (prosody, proxy)
}

fn delegated_iq(id: &str) -> String {
    format!("<iq type='get' id='{id}'><query xmlns='{NS}'/></iq>")
}

/// A delegated IQ as the delegate sees it.
struct Wrapped {
    wrapper_id: String,
    id: String,
    requester: String,
}

fn unwrap(stanza: &Stanza) -> Option<Wrapped> {
    let head = stanza.head().ok()?;
    if head.name() != "iq" || head.type_().as_deref() != Some("set") {
        return None;
    }
    let bytes = stanza.bytes();
    let at = memchr::memmem::find(bytes, b"<iq xmlns='jabber:client'")?;
    let inner = &bytes[at..];
    Some(Wrapped {
        wrapper_id: head.id()?.into_owned(),
        id: root_attr(inner, "id")?,
        requester: root_attr(inner, "from")?,
    })
}

/// The delegate's result for `w`, with `payload` as the text of `<data/>`.
fn reply(w: &Wrapped, payload: &str) -> String {
    format!(
        "<iq type='result' id='{}' from='{COMPONENT}' to='{DOMAIN}'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='{}' to='{}'>\
<query xmlns='{NS}'><data>{payload}</data></query></iq></forwarded></delegation></iq>",
        w.wrapper_id, w.id, w.requester
    )
}

/// A delegate on a raw component stream that answers every delegated IQ at once with
/// `payload`. It publishes how many it answered, and the id of every message that
/// reaches it (markers: a marker sent after a burst arrives after the burst's wrappers).
struct Delegate {
    task: tokio::task::JoinHandle<usize>,
    answered: tokio::sync::watch::Receiver<usize>,
    messages: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Delegate {
    fn start(component: Raw, payload: String) -> Delegate {
        let (progress, answered) = tokio::sync::watch::channel(0usize);
        let (marker, messages) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let (mut reader, mut writer) = component.split();
            let mut count = 0;
            while let Some(frame) = reader.next(Duration::from_secs(600)).await {
                let Frame::Stanza(stanza) = frame else {
                    continue;
                };
                if let Some(w) = unwrap(&stanza) {
                    if writer
                        .write_all(reply(&w, &payload).as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    count += 1;
                    let _ = progress.send(count);
                } else if let Ok(head) = stanza.head() {
                    if head.name() == "message" {
                        let _ = marker.send(head.id().unwrap_or_default().into_owned());
                    }
                }
            }
            count
        });
        Delegate {
            task,
            answered,
            messages,
        }
    }

    /// Waits (bounded) for the message with this id.
    async fn marker(&mut self, id: &str) {
        let wait = async {
            while let Some(got) = self.messages.recv().await {
                if got == id {
                    return;
                }
            }
            panic!("the delegate's stream ended before marker {id}");
        };
        tokio::time::timeout(LIMIT, wait)
            .await
            .unwrap_or_else(|_| panic!("marker {id} never reached the delegate"));
    }
}

fn marker(id: &str) -> String {
    format!("<message to='{COMPONENT}' id='{id}'><body>{id}</body></message>")
}

/// How one client's delegated IQs ended: answers by id (result or error condition)
/// and the stream error, if any.
#[derive(Default, Debug)]
struct Outcome {
    answers: HashMap<String, Vec<String>>,
    stream_error: Option<String>,
    closed: bool,
}

impl Outcome {
    fn note(&mut self, stanza: &Stanza) {
        let head = stanza.head().unwrap();
        match head.name() {
            "iq" => {
                let id = head.id().unwrap_or_default().into_owned();
                let verdict = match head.type_().as_deref() {
                    Some("result") => "result".to_owned(),
                    _ => {
                        let kind = error_type(stanza).unwrap_or_default();
                        let condition = stanza_error_condition(stanza.bytes()).unwrap_or_default();
                        format!("{kind}/{condition}")
                    }
                };
                self.answers.entry(id).or_default().push(verdict);
            }
            "error" => {
                self.stream_error =
                    stanzagate::xml::children::stream_error_condition(stanza.bytes())
            }
            _ => {}
        }
    }

    /// Ids answered more than once.
    fn twice(&self) -> Vec<&String> {
        self.answers
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(id, _)| id)
            .collect()
    }

    fn count(&self, verdict: &str) -> usize {
        self.answers
            .values()
            .filter(|v| v.first().map(String::as_str) == Some(verdict))
            .count()
    }
}

/// The `type` of an IQ error's `<error/>`.
fn error_type(stanza: &Stanza) -> Option<String> {
    let bytes = stanza.bytes();
    let at = memchr::memmem::find(bytes, b"<error")?;
    root_attr(&bytes[at..], "type")
}

/// Reads `reader` to the end of the stream, or until `done` says the outcome is
/// complete, or until nothing arrives for `limit` (an upper bound: the stream is then
/// open and silent, which the caller judges).
async fn read_outcome(
    reader: &mut RawReader,
    outcome: &mut Outcome,
    limit: Duration,
    done: impl Fn(&Outcome) -> bool,
) {
    while !done(outcome) {
        match tokio::time::timeout(limit, reader.next(limit + LIMIT)).await {
            Ok(Some(Frame::Stanza(stanza))) => outcome.note(&stanza),
            Ok(Some(Frame::End(_))) | Ok(None) => {
                outcome.closed = true;
                return;
            }
            Ok(Some(_)) => {}
            Err(_) => return,
        }
    }
}

// ---- 6. a Stream Management client that never acknowledges ---------------------------

/// Sends delegated IQs one at a time on an SM stream that never answers `<r/>`; returns
/// (answers received, the stream error that ended it). Panics if `max` answers came
/// and the stream is still open.
async fn never_acknowledge(alice: &mut Raw, max: usize, window: usize) -> (usize, String) {
    let mut sent = 0usize;
    let mut answered = 0usize;
    loop {
        while sent < max && sent - answered < window {
            let iq = delegated_iq(&format!("q{sent}"));
            if alice.try_send_bytes(iq.as_bytes()).await.is_err() {
                break;
            }
            sent += 1;
        }
        match alice.next().await {
            Some(Frame::Stanza(stanza)) => {
                let head = stanza.head().unwrap();
                match head.name() {
                    "iq" if head.id().is_some_and(|id| id.starts_with('q')) => {
                        answered += 1;
                        if answered >= max {
                            panic!("{answered} answers and the stream is still open");
                        }
                    }
                    "error" => {
                        let condition =
                            stanzagate::xml::children::stream_error_condition(stanza.bytes())
                                .unwrap_or_default();
                        alice.expect_closed().await;
                        return (answered, condition);
                    }
                    _ => {}
                }
            }
            Some(_) => {}
            None => panic!("closed without a stream error after {answered} answers"),
        }
    }
}

/// XEP-0198: the proxy must remember its own injected answers (and the consumed
/// delegated IQs) until the client acknowledges them. A client that enables SM and
/// never acknowledges is ended with `<policy-violation/>` once `max_sm_unacked` are
/// held; a bystander's delegated IQs keep working, and the quota is counted.
/// (The old build lacks the key: see the default-limits test below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_client_that_never_acknowledges_ends_at_max_sm_unacked() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("max_sm_unacked = 20\n");
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let _delegate = Delegate::start(component, "x".into());
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.enable_sm(false).await;
    let (answered, condition) = never_acknowledge(&mut alice, 200, 1).await;
    assert_eq!(condition, "policy-violation", "after {answered} answers");
    assert!(
        answered <= 20,
        "{answered} answers held for a client that acknowledges nothing (quota 20)"
    );
    let metric = common::http::metric(
        proxy.ports.http,
        "stanzagate_quota_exceeded_total{quota=\"max_sm_unacked\"}",
    )
    .await;
    assert_eq!(metric, "1");
    // The quota is the offender's: another client's delegated IQs keep working.
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    for i in 0..60 {
        let id = format!("b{i}");
        bob.send(&delegated_iq(&id)).await;
        let answer = bob.expect_iq(&id).await;
        assert_eq!(answer.head().unwrap().type_().as_deref(), Some("result"));
    }
}

/// An honest SM client (it answers every `<r/>` and asks for acknowledgements itself)
/// whose traffic is all delegated, so the server never asks it for an ack: the proxy
/// holds its injected answers, so it must ask (`<r/>`) rather than end the stream at
/// `max_sm_unacked`. (The old build lacks the key.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_sm_client_is_not_ended_by_max_sm_unacked() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("max_sm_unacked = 20\n");
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let _delegate = Delegate::start(component, "x".into());
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.enable_sm(true).await;
    for i in 0..60 {
        let id = format!("b{i}");
        bob.send(&format!("{}<r xmlns='urn:xmpp:sm:3'/>", delegated_iq(&id)))
            .await;
        let answer = bob.expect_iq(&id).await;
        assert_eq!(answer.head().unwrap().type_().as_deref(), Some("result"));
    }
    bob.ping("bob-alive").await;
}

/// The same with the default `max_sm_unacked` (5000), runnable on the old build, which
/// kept every injected answer of a client that never acknowledges, without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sm_client_that_never_acknowledges_ends_with_default_limits() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let _delegate = Delegate::start(component, "x".into());
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.enable_sm(false).await;
    // Pipelined within the per-session delegation quota (100).
    let (answered, condition) = never_acknowledge(&mut alice, 6000, 50).await;
    assert_eq!(condition, "policy-violation", "after {answered} answers");
    assert!(answered <= 5000, "{answered} answers held (quota 5000)");
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.send(&delegated_iq("b")).await;
    let answer = bob.expect_iq("b").await;
    assert_eq!(answer.head().unwrap().type_().as_deref(), Some("result"));
}

// ---- 7. a client that stops reading ----------------------------------------------------

/// Sends `count` delegated IQs without reading while the delegate answers each with a
/// `payload_kib` KiB payload; once the delegate has answered them all (or stopped
/// getting through), reads everything. Every IQ must have been answered exactly once,
/// or the stream ended with `<policy-violation/>`: never an answer missing on a stream
/// left open. Returns the outcome.
async fn stalled_reader(proxy: &Proxy, count: usize, payload_kib: usize) -> Outcome {
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let mut delegate = Delegate::start(component, "y".repeat(payload_kib << 10));
    let alice = Raw::login(proxy.c2s(), "alice").await;
    let (mut reader, mut writer) = alice.split();
    let mut burst = String::new();
    for i in 0..count {
        burst.push_str(&delegated_iq(&format!("s{i}")));
    }
    // The marker goes through the server to the delegate, after every wrapper of the
    // burst: once it arrives, the delegate has answered all it was given.
    burst.push_str(&marker("stalled"));
    writer.write_all(burst.as_bytes()).await.unwrap();
    writer.flush().await.unwrap();
    delegate.marker("stalled").await;
    eprintln!(
        "the delegate answered {} of {count}; the client reads now",
        *delegate.answered.borrow()
    );
    let mut outcome = Outcome::default();
    read_outcome(&mut reader, &mut outcome, Duration::from_secs(20), |o| {
        o.answers.len() >= count
    })
    .await;
    delegate.task.abort();
    outcome
}

fn assert_each_answered_or_policy_violation(outcome: &Outcome, count: usize) {
    assert!(
        outcome.twice().is_empty(),
        "answered twice: {:?}",
        outcome.twice()
    );
    match outcome.stream_error.as_deref() {
        Some(condition) => assert_eq!(condition, "policy-violation", "{outcome:?}"),
        None => {
            let missing: Vec<String> = (0..count)
                .map(|i| format!("s{i}"))
                .filter(|id| !outcome.answers.contains_key(id))
                .collect();
            assert!(
                missing.is_empty(),
                "{} of {count} IQs never answered, no stream error (stream closed: {}): first missing {:?}",
                missing.len(),
                outcome.closed,
                missing.iter().take(5).collect::<Vec<_>>()
            );
        }
    }
}

/// A client that stops reading while its delegated IQs are answered (100 KiB each, in
/// all far more than the loopback socket buffers hold). With `max_session_queue = 10`
/// (and the per-session delegation quota raised so the queue is what fills), the client
/// afterwards finds every answer or a `<policy-violation/>`; a bystander works.
/// (The old build lacks these keys: see the default-limits test below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_gets_every_answer_or_policy_violation() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("max_session_queue = 10\nmax_delegations_per_session = 1000\n");
    let count = 300;
    let outcome = stalled_reader(&proxy, count, 100).await;
    eprintln!(
        "stream error {:?}, {} answers",
        outcome.stream_error,
        outcome.answers.len()
    );
    assert_each_answered_or_policy_violation(&outcome, count);
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.ping("bob-alive").await;
}

/// The same with the default limits, runnable on the old build: there, the session's
/// 256-command queue filled while the client did not read and further answers were
/// dropped with a log line, on a stream left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_loses_no_answer_with_default_limits() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    let count = 600;
    let outcome = stalled_reader(&proxy, count, 100).await;
    eprintln!(
        "stream error {:?}, {} answers, {} results",
        outcome.stream_error,
        outcome.answers.len(),
        outcome.count("result")
    );
    assert_each_answered_or_policy_violation(&outcome, count);
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    bob.ping("bob-alive").await;
}

// ---- 8. fairness toward a component ------------------------------------------------------

/// alice floods delegated IQs (each with a payload, far more than the socket buffers
/// toward the delegate hold) that the delegate holds unanswered; bob then sends one.
/// The delegate answers only once bob's IQ has reached it. bob must get the result,
/// not an error caused by alice's burst; alice gets `wait/resource-constraint` for
/// every IQ beyond `max_delegations_per_session` (default 100) and the result for the
/// others (checklist 23: waiting for the delegate blocks nobody else). Default
/// limits: on the old build the component's shared 1024-slot queue
/// filled with alice's burst and bob got `service-unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_burst_does_not_starve_another_user_of_the_delegate() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    const BURST: usize = 4000;
    const PER_SESSION: usize = 100;
    let payload = "z".repeat(4 << 10);
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let alice = Raw::login(proxy.c2s(), "alice").await;
    let mut bob = Raw::login(proxy.c2s(), "bob").await;
    let bob_jid = bob.jid.clone().unwrap();

    let (mut a_reader, mut a_writer) = alice.split();
    let mut burst = String::with_capacity(BURST * (payload.len() + 100));
    for i in 0..BURST {
        burst.push_str(&format!(
            "<iq type='get' id='a{i}'><query xmlns='{NS}'><data>{payload}</data></query></iq>"
        ));
    }
    // In order on alice's stream: once the ping is answered, every IQ of the burst has
    // been delegated or refused.
    burst.push_str("<iq type='get' id='a-ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    let writing = tokio::spawn(async move {
        a_writer.write_all(burst.as_bytes()).await.unwrap();
        a_writer.flush().await.unwrap();
        a_writer
    });
    let mut alice_outcome = Outcome::default();
    read_outcome(&mut a_reader, &mut alice_outcome, LIMIT, |o| {
        o.answers.contains_key("a-ping")
    })
    .await;
    assert!(
        alice_outcome.answers.contains_key("a-ping"),
        "alice's stream: {alice_outcome:?}"
    );
    let _a_writer = writing.await.unwrap();

    // The delegate reads nothing until bob's IQ was sent, then answers what it holds
    // once bob's wrapper is among it, and everything after at once.
    bob.send(&delegated_iq("b1")).await;
    let delegate = tokio::spawn(async move {
        let (mut reader, mut writer) = component.split();
        let mut held = Vec::new();
        let mut seen_bob = false;
        while let Some(frame) = reader.next(Duration::from_secs(600)).await {
            let Frame::Stanza(stanza) = frame else {
                continue;
            };
            let Some(w) = unwrap(&stanza) else { continue };
            seen_bob |= w.requester == bob_jid;
            held.push(w);
            if seen_bob {
                for w in held.drain(..) {
                    if writer
                        .write_all(reply(&w, "done").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let answer = bob.expect_iq("b1").await;
    assert_eq!(
        (
            answer.head().unwrap().type_().as_deref(),
            stanza_error_condition(answer.bytes())
        ),
        (Some("result"), None),
        "bob's IQ, after alice's burst: {}",
        text(&answer)
    );

    read_outcome(&mut a_reader, &mut alice_outcome, LIMIT, |o| {
        o.answers.len() > BURST
    })
    .await;
    delegate.abort();
    assert!(
        alice_outcome.twice().is_empty(),
        "answered twice: {:?}",
        alice_outcome.twice()
    );
    assert_eq!(
        alice_outcome.answers.len(),
        BURST + 1,
        "every IQ of the burst answered: stream error {:?}",
        alice_outcome.stream_error
    );
    assert_eq!(
        (
            alice_outcome.count("result"),
            alice_outcome.count("wait/resource-constraint")
        ),
        (PER_SESSION + 1, BURST - PER_SESSION),
        "alice: {PER_SESSION} delegated (and the ping), the rest refused"
    );
}

// ---- 9. slow admin HTTP connections ------------------------------------------------------

/// Reads until the peer closes (EOF or reset), within `limit`; returns what was read,
/// or `None` if the connection is still open at the end.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

fn admin_proxy(limits: &str) -> (Prosody, Proxy) {
    let prosody = Prosody::start(&ProsodySpec::default());
    let extra = match limits {
        "" => String::new(),
        limits => format!("[limits]\n{limits}"),
    };
    let proxy = Proxy::start(&ProxySpec::plaintext().with_extra(&extra), &prosody);
    (prosody, proxy)
}

async fn partial_request_is_closed(proxy: &Proxy, limit: Duration) {
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", proxy.ports.http))
        .await
        .unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    let answer = read_until_closed(&mut slow, limit).await;
    assert!(
        answer.is_some(),
        "a connection that never finishes its request line is still open after {limit:?}"
    );
    let (status, _) = common::http::get(proxy.ports.http, "/healthz").await;
    assert_eq!(status, 200);
}

/// An admin connection that sends part of a request line and then nothing is closed
/// after `admin_header_timeout_ms`. (The old build lacks the key: see below.)
#[tokio::test]
async fn admin_connection_that_never_finishes_its_request_is_closed() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = admin_proxy("admin_header_timeout_ms = 500\n");
    partial_request_is_closed(&proxy, Duration::from_secs(20)).await;
}

/// The same with the default `admin_header_timeout_ms` (10 s), runnable on the old
/// build, which kept such connections open forever.
#[tokio::test]
async fn admin_connection_that_never_finishes_its_request_is_closed_with_default_limits() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = admin_proxy("");
    partial_request_is_closed(&proxy, Duration::from_secs(40)).await;
}

/// With `admin_max_connections = 4` held by idle connections, further connections are
/// closed without an answer (even to a complete request); once the idle ones are done,
/// `/healthz` works on a fresh connection. (The old build lacks the key and answered
/// every connection.)
#[tokio::test]
async fn admin_connections_beyond_the_cap_are_refused() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) =
        admin_proxy("admin_max_connections = 4\nadmin_header_timeout_ms = 60000\n");
    let port = proxy.ports.http;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        idle.push(tcp);
    }
    for i in 0..4 {
        let mut extra = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        // A complete request: only a refusal leaves it unanswered.
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await;
        let answer = read_until_closed(&mut extra, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("connection {} beyond the cap left open", i + 5));
        assert!(
            !answer.contains(" 200 "),
            "connection {} beyond the cap was served: {answer}",
            i + 5
        );
    }
    // The idle ones held the slots: they finish their requests and are answered.
    for (i, tcp) in idle.iter_mut().enumerate() {
        tcp.write_all(b"Host: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(tcp, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("idle connection {i} not answered"));
        assert!(answer.contains(" 200 "), "idle connection {i}: {answer}");
    }
    drop(idle);
    // A slot is given back when its connection task ends, which the client cannot
    // observe: a fresh request is retried (bounded) until one is served.
    let mut served = false;
    for _ in 0..100 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = tcp
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await;
        let answer = read_until_closed(&mut tcp, Duration::from_secs(20)).await;
        if answer.is_some_and(|a| a.contains(" 200 ")) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "/healthz never served after the idle connections ended"
    );
}

// ---- 10. the server's <a/> while the stream closes -----------------------------------

/// An SM client sends 3 delegated IQs (consumed by the proxy, answered by the
/// delegate) and a ping (relayed), gets the answers, then `<r/>` and its stream close
/// in one write. The `<a/>` it receives before the stream ends must count all 4 of its
/// stanzas, translated as on an open stream; the old build relayed Prosody's `h='1'`
/// untranslated while closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_ack_during_close_is_translated() {
    let Some(_peers) = peers() else { return };
    let (_prosody, proxy) = setup("");
    let component = Raw::component(proxy.ports.component, COMPONENT, SECRET).await;
    let _delegate = Delegate::start(component, "x".into());
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.enable_sm(true).await;
    for i in 0..3 {
        let id = format!("d{i}");
        alice.send(&delegated_iq(&id)).await;
        let answer = alice.expect_iq(&id).await;
        assert_eq!(answer.head().unwrap().type_().as_deref(), Some("result"));
    }
    alice.ping("relayed").await;
    // From here nothing is written back (the stream is closing).
    alice.sm_received = None;
    alice
        .send("<r xmlns='urn:xmpp:sm:3'/></stream:stream>")
        .await;
    let mut acks = Vec::new();
    loop {
        match alice.next().await {
            Some(Frame::Stanza(stanza)) => {
                let head = stanza.head().unwrap();
                if head.name() == "a" && head.ns() == Some("urn:xmpp:sm:3") {
                    acks.push(head.attr("h").map(|h| h.into_owned()));
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    // Prosody may acknowledge twice (the request, then on closing): every <a/> counts.
    assert!(
        !acks.is_empty() && acks.iter().all(|h| h.as_deref() == Some("4")),
        "each <a/> before the close must count the client's 4 stanzas: {acks:?}"
    );
}
