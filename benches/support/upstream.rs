//! A framed upstream for the soak: like [`super::echo`] it speaks just enough XMPP for
//! clients (and the proxy) to log in, but it also knows minimal Stream Management
//! (XEP-0198) and has a component port (XEP-0114), so a proxy with delegation rules can
//! open its own component link to it.
//!
//! Client streams, after bind:
//! - `<message>` is echoed back; any `<iq type='get|set'>` gets an empty result with the
//!   same id; `<presence>` is swallowed.
//! - `<enable xmlns='urn:xmpp:sm:3'/>` gets `<enabled/>` (no resumption) and from then
//!   on stanzas both ways are counted. `<r/>` gets `<a h='received'/>`. As a server does,
//!   the upstream asks for an acknowledgement (`<r/>`) once
//!   [`REQUEST_EVERY`] stanzas it sent are unacknowledged and no request is
//!   outstanding; the client's `<a h/>` must then equal the number of stanzas sent
//!   before that `<r/>` — a wrong `h` is counted in [`UpstreamStats::ack_mismatches`]
//!   (the proxy translates `h` when it injects or consumes stanzas).
//!
//! Component streams: header, any `<handshake/>` accepted, then everything is read and
//! dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use stanzagate::xml::{Frame, Framer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' id='bench' from='bench.local' version='1.0'>";
const SASL_FEATURES: &[u8] =
    b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
<mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const BIND_FEATURES: &[u8] = b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
<sm xmlns='urn:xmpp:sm:3'/></stream:features>";
const SUCCESS: &[u8] = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const COMPONENT_HEADER: &[u8] = b"<stream:stream xmlns='jabber:component:accept' \
xmlns:stream='http://etherx.jabber.org/streams' id='benchcomponent' from='component'>";
const NS_SM: &str = "urn:xmpp:sm:3";

/// Unacknowledged stanzas after which the upstream sends `<r/>`.
pub const REQUEST_EVERY: u64 = 10;

/// What the upstream saw, for the report.
#[derive(Default)]
pub struct UpstreamStats {
    pub client_streams: AtomicU64,
    pub component_streams: AtomicU64,
    /// `<a/>` from a client whose `h` was not the count at the matching `<r/>`.
    pub ack_mismatches: AtomicU64,
    pub acks_checked: AtomicU64,
    /// The first few mismatches, for the report.
    pub mismatch_examples: std::sync::Mutex<Vec<String>>,
}

pub struct Upstream {
    pub c2s: SocketAddr,
    pub component: SocketAddr,
    pub stats: Arc<UpstreamStats>,
}

/// Binds two listeners on 127.0.0.1 and serves until the runtime stops.
pub async fn spawn() -> Upstream {
    let stats = Arc::new(UpstreamStats::default());
    let c2s = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("upstream: bind 127.0.0.1:0");
    let component = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("upstream: bind 127.0.0.1:0");
    let addrs = (
        c2s.local_addr().expect("upstream: c2s address"),
        component.local_addr().expect("upstream: component address"),
    );
    let for_clients = stats.clone();
    tokio::spawn(async move {
        loop {
            match c2s.accept().await {
                Ok((tcp, _)) => {
                    let stats = for_clients.clone();
                    stats.client_streams.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        // A peer that misbehaves only ends its own stream.
                        let _ = serve_client(tcp, &stats).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    });
    let for_components = stats.clone();
    tokio::spawn(async move {
        loop {
            match component.accept().await {
                Ok((tcp, _)) => {
                    for_components
                        .component_streams
                        .fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let _ = serve_component(tcp).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    });
    Upstream {
        c2s: addrs.0,
        component: addrs.1,
        stats,
    }
}

static NEXT_USER: AtomicU64 = AtomicU64::new(1);

/// SM state of one client stream (upstream side).
struct Sm {
    /// Stanzas received from the client.
    received: u64,
    /// Stanzas sent to the client.
    sent: u64,
    /// Stanzas acknowledged by the client.
    acked: u64,
    /// `sent` when the outstanding `<r/>` went out.
    requested_at: Option<u64>,
}

async fn serve_client(mut tcp: TcpStream, stats: &UpstreamStats) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let user = NEXT_USER.fetch_add(1, Ordering::Relaxed);
    let jid = format!("user{user}@bench.local/r");
    let mut framer = Framer::default();
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut authenticated = false;
    let mut sm: Option<Sm> = None;
    loop {
        if tcp.read_buf(framer.buffer_mut()).await? == 0 {
            return Ok(());
        }
        loop {
            let frame = match framer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return Ok(()),
            };
            let stanza = match frame {
                Frame::Header(_) => {
                    out.extend_from_slice(HEADER);
                    out.extend_from_slice(if authenticated {
                        BIND_FEATURES
                    } else {
                        SASL_FEATURES
                    });
                    continue;
                }
                Frame::Whitespace(_) => continue,
                Frame::End(_) => {
                    out.extend_from_slice(b"</stream:stream>");
                    tcp.write_all(&out).await?;
                    return Ok(());
                }
                Frame::Stanza(stanza) => stanza,
            };
            let Ok(head) = stanza.head() else {
                return Ok(());
            };
            if head.ns() == Some(NS_SM) {
                match head.name() {
                    "enable" => {
                        out.extend_from_slice(b"<enabled xmlns='urn:xmpp:sm:3'/>");
                        sm = Some(Sm {
                            received: 0,
                            sent: 0,
                            acked: 0,
                            requested_at: None,
                        });
                    }
                    "r" => {
                        if let Some(sm) = &sm {
                            out.extend_from_slice(
                                format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", sm.received)
                                    .as_bytes(),
                            );
                        }
                    }
                    "a" => {
                        if let Some(sm) = sm.as_mut() {
                            let h: Option<u64> = head.attr("h").and_then(|h| h.parse().ok());
                            if let Some(expected) = sm.requested_at.take() {
                                stats.acks_checked.fetch_add(1, Ordering::Relaxed);
                                if h != Some(expected) {
                                    stats.ack_mismatches.fetch_add(1, Ordering::Relaxed);
                                    let mut examples = stats
                                        .mismatch_examples
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner());
                                    if examples.len() < 5 {
                                        examples.push(format!(
                                            "{jid}: <a h='{h:?}'/> after <r/> at {expected} \
                                             stanzas sent"
                                        ));
                                    }
                                }
                            }
                            if let Some(h) = h {
                                sm.acked = sm.acked.max(h);
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let counted = matches!(head.name(), "message" | "iq" | "presence");
            if let (Some(sm), true) = (sm.as_mut(), counted) {
                sm.received += 1;
            }
            let mut answered = false;
            match head.name() {
                "auth" => {
                    out.extend_from_slice(SUCCESS);
                    framer.restart();
                    authenticated = true;
                }
                "iq" if matches!(head.type_().as_deref(), Some("get" | "set")) => {
                    let id = head.id().map(|id| id.into_owned()).unwrap_or_default();
                    let id = stanzagate::xml::escape_attr(&id);
                    let bind = head.child().map(|c| c.name() == "bind").unwrap_or(false);
                    if bind {
                        out.extend_from_slice(
                            format!(
                                "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                                 <jid>{jid}</jid></bind></iq>"
                            )
                            .as_bytes(),
                        );
                    } else {
                        out.extend_from_slice(
                            format!("<iq type='result' id='{id}' to='{jid}'/>").as_bytes(),
                        );
                    }
                    answered = true;
                }
                "message" => {
                    out.extend_from_slice(stanza.bytes());
                    answered = true;
                }
                _ => {}
            }
            if let (Some(sm), true) = (sm.as_mut(), answered) {
                sm.sent += 1;
                if sm.requested_at.is_none() && sm.sent - sm.acked >= REQUEST_EVERY {
                    out.extend_from_slice(b"<r xmlns='urn:xmpp:sm:3'/>");
                    sm.requested_at = Some(sm.sent);
                }
            }
        }
        if !out.is_empty() {
            tcp.write_all(&out).await?;
            out.clear();
        }
    }
}

async fn serve_component(mut tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut framer = Framer::default();
    loop {
        if tcp.read_buf(framer.buffer_mut()).await? == 0 {
            return Ok(());
        }
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Header(_))) => tcp.write_all(COMPONENT_HEADER).await?,
                Ok(Some(Frame::Stanza(stanza))) => {
                    if stanza
                        .head()
                        .map(|h| h.name() == "handshake")
                        .unwrap_or(false)
                    {
                        tcp.write_all(b"<handshake/>").await?;
                    }
                }
                Ok(Some(Frame::End(_))) => {
                    tcp.write_all(b"</stream:stream>").await?;
                    return Ok(());
                }
                Ok(Some(Frame::Whitespace(_))) => {}
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
    }
}
