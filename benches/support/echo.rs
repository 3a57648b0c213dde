//! A fast echo upstream: a minimal XMPP server that speaks just enough (header,
//! SASL PLAIN success, restart, bind) for a client or a proxy to reach relay mode, then
//! echoes every complete `<message>` back, batched per read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use stanzagate::xml::{Frame, Framer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' id='bench' from='bench.local' version='1.0'>";
const SASL_FEATURES: &[u8] =
    b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
<mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const BIND_FEATURES: &[u8] =
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
const SUCCESS: &[u8] = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const MESSAGE_END: &[u8] = b"</message>";

static NEXT_USER: AtomicU64 = AtomicU64::new(1);

/// Binds 127.0.0.1 on a free port and serves echo streams until the runtime stops.
pub async fn spawn() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("echo upstream: bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("echo upstream: local addr");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    tokio::spawn(async move {
                        // A peer that misbehaves only ends its own stream.
                        let _ = serve(tcp).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    });
    addr
}

async fn serve(mut tcp: TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    // Bound as the SASL PLAIN user when there is one (the login bench addresses
    // queued work to it), else as the next `user<n>`.
    let mut user = format!("user{}", NEXT_USER.fetch_add(1, Ordering::Relaxed));
    let mut framer = Framer::default();
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut authenticated = false;
    let mut bound = false;
    // Negotiation, cut with the project's framer.
    while !bound {
        if tcp.read_buf(framer.buffer_mut()).await? == 0 {
            return Ok(());
        }
        loop {
            let frame = match framer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return Ok(()),
            };
            match frame {
                Frame::Header(_) => {
                    out.extend_from_slice(HEADER);
                    out.extend_from_slice(if authenticated {
                        BIND_FEATURES
                    } else {
                        SASL_FEATURES
                    });
                }
                Frame::Stanza(stanza) => {
                    let Ok(head) = stanza.head() else {
                        return Ok(());
                    };
                    match head.name() {
                        "auth" => {
                            if let Some(name) = plain_user(stanza.bytes()) {
                                user = name;
                            }
                            out.extend_from_slice(SUCCESS);
                            framer.restart();
                            authenticated = true;
                        }
                        "iq" => {
                            let id = head.id().map(|id| id.into_owned()).unwrap_or_default();
                            out.extend_from_slice(
                                format!(
                                    "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                                     <jid>{user}@bench.local/r</jid></bind></iq>"
                                )
                                .as_bytes(),
                            );
                            bound = true;
                        }
                        "message" => out.extend_from_slice(stanza.bytes()),
                        _ => {}
                    }
                }
                Frame::Whitespace(_) => {}
                Frame::End(_) => {
                    tcp.write_all(b"</stream:stream>").await?;
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            tcp.write_all(&out).await?;
            out.clear();
        }
    }
    // Relay mode: every complete <message> in the buffer goes back in one write.
    let mut buf: BytesMut = std::mem::take(framer.buffer_mut());
    drop(framer);
    loop {
        if let Some(at) = memchr::memmem::rfind(&buf, MESSAGE_END) {
            let end = at + MESSAGE_END.len();
            tcp.write_all(&buf[..end]).await?;
            buf.advance(end);
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The authentication identity of a SASL PLAIN `<auth/>` (`\0user\0password`).
fn plain_user(auth: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let start = memchr::memchr(b'>', auth)? + 1;
    let end = memchr::memmem::rfind(auth, b"</auth>")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.get(start..end)?)
        .ok()?;
    let mut parts = decoded.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    (!user.is_empty()).then(|| user.to_owned())
}
