//! Opening a client stream to the legacy server on behalf of a client: TCP connect,
//! optional TLS (`upstream.tls`), then the client's own stream header, forwarded as
//! received so the server sees the client's `from`, `xml:lang` and `version`. With
//! `upstream.proxy_protocol` on, a PROXY protocol header comes first, so the server
//! sees the client's address as well.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::{Config, UpstreamTls};
use crate::net::proxy_protocol::{self, Endpoints};
use crate::net::{Conn, Outbox};
use crate::shared::Shared;
use crate::xml::ns::{NS_CLIENT, NS_STREAMS, NS_TLS};
use crate::xml::writer::{stream_header, HeaderSpec};
use crate::xml::{Frame, Framer};

/// Connecting must not eat the whole login budget when the server is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {0:?}", CONNECT_TIMEOUT)]
    ConnectTimeout { addr: String },
    #[error("TLS with the upstream server failed: {0}")]
    Tls(std::io::Error),
    #[error("upstream.tls is set but no TLS connector is configured")]
    NoConnector,
    #[error("upstream STARTTLS failed: {0}")]
    StartTls(String),
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream negotiation timed out")]
    Timeout,
}

/// The proxy's side of the stream to the legacy server.
pub struct UpstreamSide {
    pub conn: Conn,
    pub framer: Framer,
    pub out: Outbox,
}

impl UpstreamSide {
    /// Connects and sends `client_header` (the client's header bytes, verbatim).
    pub async fn open(
        cfg: &Config,
        shared: &Shared,
        domain: &str,
        client_header: Bytes,
        endpoints: Endpoints,
        deadline: Instant,
    ) -> Result<UpstreamSide, UpstreamError> {
        let addr = cfg.upstream.c2s.as_str();
        let connect_deadline = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        let mut tcp = tokio::time::timeout_at(connect_deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                addr: addr.to_owned(),
            })?
            .map_err(|source| UpstreamError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        if let Some(header) = proxy_protocol::header_for(cfg.upstream.proxy_protocol, endpoints) {
            // Before any TLS: the server reads it off the raw connection.
            tokio::time::timeout_at(connect_deadline, tcp.write_all(&header))
                .await
                .map_err(|_| UpstreamError::Timeout)??;
        }
        let limits = cfg.framer_limits();
        let mut framer = Framer::new(limits);
        let conn = match cfg.upstream.tls {
            UpstreamTls::None => Conn::Plain(tcp),
            UpstreamTls::Direct => {
                Conn::Connected(Box::new(tls(shared, domain, tcp, deadline).await?))
            }
            UpstreamTls::StartTls => {
                let tcp = tokio::time::timeout_at(deadline, starttls(tcp, &mut framer, domain))
                    .await
                    .map_err(|_| UpstreamError::Timeout)??;
                framer.restart_discarding();
                Conn::Connected(Box::new(tls(shared, domain, tcp, deadline).await?))
            }
        };
        let mut side = UpstreamSide {
            conn,
            framer,
            out: Outbox::default(),
        };
        side.out.push(client_header);
        Ok(side)
    }
}

/// The TLS handshake with the server, bounded by the login deadline: a server that
/// accepts TCP and then stalls must not hold the client forever.
async fn tls(
    shared: &Shared,
    domain: &str,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, UpstreamError> {
    let connector = shared
        .upstream_tls
        .load_full()
        .ok_or(UpstreamError::NoConnector)?;
    tokio::time::timeout_at(deadline, connector.connect(domain, tcp))
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(UpstreamError::Tls)
}

/// Plaintext prelude of RFC 6120 §5: header, features, `<starttls/>`, `<proceed/>`.
async fn starttls(
    mut tcp: TcpStream,
    framer: &mut Framer,
    domain: &str,
) -> Result<TcpStream, UpstreamError> {
    let header = stream_header(&HeaderSpec {
        default_ns: NS_CLIENT,
        id: None,
        from: None,
        to: Some(domain),
        version: true,
    });
    tcp.write_all(&header).await?;
    let mut offered = false;
    loop {
        match next_frame(&mut tcp, framer).await? {
            Frame::Header(_) | Frame::Whitespace(_) => {}
            Frame::Stanza(stanza) => {
                let head = stanza
                    .head()
                    .map_err(|e| UpstreamError::StartTls(e.to_string()))?;
                match (head.name(), head.ns()) {
                    ("features", Some(NS_STREAMS)) => {
                        offered = has_starttls(stanza.bytes());
                        if !offered {
                            return Err(UpstreamError::StartTls(
                                "the server does not offer STARTTLS".into(),
                            ));
                        }
                        let request = format!("<starttls xmlns='{NS_TLS}'/>");
                        tcp.write_all(request.as_bytes()).await?;
                    }
                    ("proceed", Some(NS_TLS)) if offered => return Ok(tcp),
                    (name, _) => {
                        return Err(UpstreamError::StartTls(format!(
                            "unexpected <{name}/> during STARTTLS"
                        )))
                    }
                }
            }
            Frame::End(_) => {
                return Err(UpstreamError::StartTls(
                    "the server closed the stream".into(),
                ))
            }
        }
    }
}

fn has_starttls(features: &[u8]) -> bool {
    crate::xml::children::children(features, Some(NS_CLIENT))
        .map(|kids| {
            kids.iter()
                .any(|c| c.name == "starttls" && c.ns.as_deref() == Some(NS_TLS))
        })
        .unwrap_or(false)
}

async fn next_frame(tcp: &mut TcpStream, framer: &mut Framer) -> Result<Frame, UpstreamError> {
    loop {
        match framer.next_frame() {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(UpstreamError::StartTls(e.to_string())),
        }
        let buf = framer.buffer_mut();
        buf.reserve(4096);
        if tcp.read_buf(buf).await? == 0 {
            return Err(UpstreamError::StartTls(
                "connection closed during STARTTLS".into(),
            ));
        }
    }
}
