//! The same delegation scenario against the reference (Prosody with prosody-modules'
//! mod_delegation, a client connected to it directly) and against stanzagate in front
//! of a plain Prosody: where the reference is correct, the client sees structurally
//! the same answers and the component sees the same forwarded requests.

mod common;

use common::prosody::reference_modules_installed;
use common::{peers, Peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw};
use quick_xml::events::Event;
use stanzagate::xml::Stanza;

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";

/// What one client-visible answer means, independent of attribute order and quoting.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    kind: String,
    id: String,
    from: Option<String>,
    to: Option<String>,
    payload: String,
}

fn answer(stanza: &Stanza) -> Answer {
    let head = stanza.head().unwrap();
    let content = if head.is_empty_element() {
        &[][..]
    } else {
        &stanza.bytes()[head.content_range()]
    };
    Answer {
        kind: head.type_().unwrap_or_default().into_owned(),
        id: head.id().unwrap_or_default().into_owned(),
        from: head.from().map(|f| f.into_owned()),
        to: head.to().map(|t| t.into_owned()),
        payload: canonical(content),
    }
}

/// Elements with sorted attributes and trimmed text, in document order.
fn canonical(xml: &[u8]) -> String {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let mut attrs: Vec<String> = e
                    .attributes()
                    .filter_map(Result::ok)
                    .map(|a| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(a.key.as_ref()),
                            a.unescape_value().unwrap_or_default()
                        )
                    })
                    .collect();
                attrs.sort();
                out.push_str(&format!(
                    "<{}[{}]>",
                    String::from_utf8_lossy(e.name().as_ref()),
                    attrs.join(",")
                ));
            }
            Ok(Event::Text(t)) => out.push_str(t.unescape().unwrap_or_default().trim()),
            Ok(Event::Eof) | Err(_) => return out,
            _ => {}
        }
    }
}

/// One client's view of the scenario on `port`.
async fn client_side(port: u16) -> Vec<Answer> {
    let mut alice = Raw::login(port, "alice").await;
    let mut out = Vec::new();
    for (id, to) in [("to-domain", "localhost"), ("to-bare", "bob@localhost")] {
        alice
            .send(&format!(
                "<iq type='get' id='{id}' to='{to}'><query xmlns='{NS}'/></iq>"
            ))
            .await;
        out.push(answer(&alice.expect_iq(id).await));
    }
    out
}

async fn offline_answer(port: u16) -> Answer {
    let mut alice = Raw::login(port, "alice").await;
    alice
        .send(&format!(
            "<iq type='get' id='offline' to='localhost'><query xmlns='{NS}'/></iq>"
        ))
        .await;
    answer(&alice.expect_iq("offline").await)
}

async fn component(peers: &Peers, port: u16) -> common::python::Running {
    peers
        .python
        .component("delegate.py", COMPONENT, SECRET, port, &[])
        .await
}

/// The component's view: each forwarded request's addresses and namespace.
fn forwarded(log: &str) -> Vec<String> {
    let mut lines: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("DELEGATED "))
        .map(|l| {
            l.split_whitespace()
                .filter(|part| {
                    [
                        "outer-from=",
                        "inner-from=",
                        "inner-to=",
                        "inner-type=",
                        "ns=",
                        "id=",
                    ]
                    .iter()
                    .any(|p| part.starts_with(p))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_results_as_prosody_mod_delegation_where_it_is_correct() {
    let Some(peers) = peers() else { return };
    if !reference_modules_installed() {
        let message = "Debian prosody-modules (mod_delegation) missing; tests/run.sh installs it";
        if std::env::var("STANZAGATE_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return;
    }
    let base = ProsodySpec::default().with_component(COMPONENT, SECRET);

    // Reference: Prosody with mod_delegation, client and component attached directly.
    let reference = Prosody::start(&base.clone().with_reference_delegation(NS, COMPONENT));
    let reference_offline = offline_answer(reference.c2s).await;
    let delegate = component(&peers, reference.component).await;
    let reference_answers = client_side(reference.c2s).await;
    let reference_forwarded = forwarded(&delegate.stop().await);

    // stanzagate in front of a Prosody that knows nothing of delegation.
    let plain = Prosody::start(&base);
    let proxy = Proxy::start(
        &ProxySpec::plaintext()
            .with_component(COMPONENT, SECRET)
            .with_extra(&format!(
                "[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{COMPONENT}\"\n"
            )),
        &plain,
    );
    let proxied_offline = offline_answer(proxy.c2s()).await;
    let delegate = component(&peers, proxy.ports.component).await;
    let proxied_answers = client_side(proxy.c2s()).await;
    let proxied_forwarded = forwarded(&delegate.stop().await);

    assert_eq!(proxied_answers, reference_answers, "client-visible answers");
    assert_eq!(
        proxied_forwarded, reference_forwarded,
        "what the component receives"
    );
    assert_eq!(proxied_offline.kind, reference_offline.kind);
    assert_eq!(proxied_offline.from, reference_offline.from);
    assert!(
        reference_offline.payload.contains("service-unavailable")
            && proxied_offline.payload.contains("service-unavailable"),
        "{reference_offline:?} / {proxied_offline:?}"
    );
    assert!(!reference_answers.is_empty() && reference_answers[0].payload.contains("handled-by"));
}
