//! A XEP-0114 component for the soak: connects to the proxy's component port,
//! authenticates, answers the proxy's disco#info nesting queries, and answers a
//! delegated IQ only when its payload is in the namespace it was told to answer; every
//! other delegated IQ is left unanswered (the proxy times it out). Counts both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stanzagate::xml::children::children;
use stanzagate::xml::{escape_attr, Frame, Framer, Limits, Namespaces, Stanza};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS_DELEGATION: &str = "urn:xmpp:delegation:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_CLIENT: &str = "jabber:client";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

#[derive(Default)]
pub struct ComponentStats {
    pub answered: AtomicU64,
    pub ignored: AtomicU64,
    pub disco: AtomicU64,
    /// Set when the proxy closed the component stream (it should never).
    pub lost: AtomicBool,
}

/// Connects and authenticates as `name`; then serves in a task. Panics (with the
/// reason) if the proxy does not accept the component within 10 s.
pub async fn start(
    proxy: SocketAddr,
    name: &'static str,
    secret: &str,
    answer_ns: &'static str,
) -> Arc<ComponentStats> {
    let (tcp, framer) = tokio::time::timeout(Duration::from_secs(10), connect(proxy, name, secret))
        .await
        .expect("component: no handshake within 10 s")
        .unwrap_or_else(|e| panic!("component: {e}"));
    let stats = Arc::new(ComponentStats::default());
    let serving = stats.clone();
    tokio::spawn(async move {
        serve(tcp, framer, name, answer_ns, &serving).await;
        serving.lost.store(true, Ordering::SeqCst);
    });
    stats
}

async fn connect(
    proxy: SocketAddr,
    name: &str,
    secret: &str,
) -> std::io::Result<(TcpStream, Framer)> {
    use sha1::Digest as _;
    let mut tcp = TcpStream::connect(proxy).await?;
    tcp.set_nodelay(true)?;
    tcp.write_all(
        format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>"
        )
        .as_bytes(),
    )
    .await?;
    let mut framer = Framer::default();
    let mut stream_id = None;
    loop {
        while let Some(frame) = framer.next_frame().map_err(std::io::Error::other)? {
            match frame {
                Frame::Header(header) => {
                    let id = header.id.clone().unwrap_or_default();
                    let digest = hex::encode(sha1::Sha1::digest(format!("{id}{secret}")));
                    tcp.write_all(format!("<handshake>{digest}</handshake>").as_bytes())
                        .await?;
                    stream_id = Some(id);
                }
                Frame::Stanza(stanza) => {
                    let name = stanza
                        .head()
                        .map(|h| h.name().to_owned())
                        .unwrap_or_default();
                    if name == "handshake" && stream_id.is_some() {
                        return Ok((tcp, framer));
                    }
                    return Err(std::io::Error::other(format!(
                        "refused: {}",
                        String::from_utf8_lossy(stanza.bytes())
                    )));
                }
                Frame::End(_) => return Err(std::io::Error::other("stream closed")),
                Frame::Whitespace(_) => {}
            }
        }
        if tcp.read_buf(framer.buffer_mut()).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn serve(
    mut tcp: TcpStream,
    mut framer: Framer,
    name: &str,
    answer_ns: &str,
    stats: &ComponentStats,
) {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    answer(&stanza, name, answer_ns, stats, &mut out);
                }
                Ok(Some(Frame::End(_))) | Err(_) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        if !out.is_empty() {
            if tcp.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match tcp.read_buf(framer.buffer_mut()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn answer(stanza: &Stanza, name: &str, answer_ns: &str, stats: &ComponentStats, out: &mut Vec<u8>) {
    let Ok(head) = stanza.head() else { return };
    if head.name() != "iq" {
        return;
    }
    let Some(child) = head.child() else { return };
    let push = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
    let id = head.id().unwrap_or_default();
    let from = head.from().unwrap_or_default();
    match (head.type_().as_deref(), child.name(), child.ns()) {
        (Some("get"), "query", Some(NS_DISCO_INFO)) => {
            stats.disco.fetch_add(1, Ordering::Relaxed);
            push(out, "<iq type='result' from='");
            push(out, &escape_attr(&head.to().unwrap_or_default()));
            push(out, "' to='");
            push(out, &escape_attr(&from));
            push(out, "' id='");
            push(out, &escape_attr(&id));
            push(out, "'><query xmlns='");
            push(out, NS_DISCO_INFO);
            push(out, "'");
            if let Some(node) = child.attr("node") {
                push(out, " node='");
                push(out, &escape_attr(&node));
                push(out, "'");
            }
            push(out, "/></iq>");
        }
        (Some("set"), "delegation", Some(NS_DELEGATION)) => {
            let Some(inner) = forwarded_iq(stanza.bytes(), child.range()) else {
                return;
            };
            let Ok(inner_head) = inner.head() else { return };
            let payload_ns = inner_head.child().and_then(|c| c.ns()).unwrap_or_default();
            if payload_ns != answer_ns {
                stats.ignored.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.answered.fetch_add(1, Ordering::Relaxed);
            push(out, "<iq type='result' from='");
            push(out, name);
            push(out, "' to='");
            push(out, &escape_attr(&from));
            push(out, "' id='");
            push(out, &escape_attr(&id));
            push(out, "'><delegation xmlns='");
            push(out, NS_DELEGATION);
            push(out, "'><forwarded xmlns='");
            push(out, NS_FORWARD);
            push(out, "'><iq xmlns='");
            push(out, NS_CLIENT);
            push(out, "' type='result' id='");
            push(out, &escape_attr(&inner_head.id().unwrap_or_default()));
            push(out, "' to='");
            push(out, &escape_attr(&inner_head.from().unwrap_or_default()));
            push(out, "'");
            if let Some(to) = inner_head.to() {
                push(out, " from='");
                push(out, &escape_attr(&to));
                push(out, "'");
            }
            push(out, "><query xmlns='");
            push(out, answer_ns);
            push(out, "'/></iq></forwarded></delegation></iq>");
        }
        _ => {}
    }
}

/// The `jabber:client` IQ inside `<delegation><forwarded>` (the delegation element
/// spans `delegation` within `wrapper`).
fn forwarded_iq(wrapper: &Bytes, delegation: std::ops::Range<usize>) -> Option<Stanza> {
    let forwarded = children(&wrapper[delegation.clone()], Some(NS_DELEGATION))
        .ok()?
        .into_iter()
        .find(|c| c.name == "forwarded" && c.ns.as_deref() == Some(NS_FORWARD))?;
    let base = delegation.start + forwarded.range.start;
    let iq = children(
        &wrapper[base..base + forwarded.range.len()],
        Some(NS_FORWARD),
    )
    .ok()?
    .into_iter()
    .find(|c| c.name == "iq" && c.ns.as_deref() == Some(NS_CLIENT))?;
    let start = base + iq.range.start;
    Stanza::parse(
        wrapper.slice(start..start + iq.range.len()),
        Arc::new(Namespaces::new()),
        &Limits::default(),
    )
    .ok()
}
