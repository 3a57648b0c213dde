//! The client-facing half of a session before and around relaying: reading the stream
//! header, checking the domain, the proxy's own STARTTLS offer, and stream errors the
//! proxy itself sends to the client.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::jid::Domain;
use crate::metrics;
use crate::net::{next_frame, Conn, Outbox, ReadFrameError, CLOSE_GRACE};
use crate::xml::ns::{NS_CLIENT, NS_STREAMS, NS_TLS};
use crate::xml::writer::{stream_error, stream_header, HeaderSpec};
use crate::xml::{Frame, FrameError, Framer, StreamHeader};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client i/o: {0}")]
    Io(#[from] io::Error),
    #[error("client closed the connection during negotiation")]
    Closed,
    #[error("negotiation timed out")]
    Timeout,
    #[error("client sent bad XML: {0}")]
    Framing(#[from] FrameError),
    #[error("stream refused: {0}")]
    Refused(&'static str),
    #[error(transparent)]
    WebSocket(#[from] crate::net::websocket::UpgradeError),
}

impl From<ReadFrameError> for ClientError {
    fn from(error: ReadFrameError) -> Self {
        match error {
            ReadFrameError::Io(e) => ClientError::Io(e),
            ReadFrameError::Closed => ClientError::Closed,
            ReadFrameError::Framing(e) => ClientError::Framing(e),
        }
    }
}

/// The client's connection with its framer and pending output.
pub struct ClientSide {
    pub conn: Conn,
    pub framer: Framer,
    pub out: Outbox,
    /// Closing tag matching the header the client received from us (or `None` if it
    /// has received none yet: errors then need a header first, RFC 6120 §4.9.1.3).
    pub close_tag: Option<String>,
}

impl ClientSide {
    pub fn new(conn: Conn, framer: Framer) -> Self {
        ClientSide {
            conn,
            framer,
            out: Outbox::default(),
            close_tag: None,
        }
    }

    /// Reads until a stream header arrives (whitespace before it is skipped).
    pub async fn read_header(&mut self, deadline: Instant) -> Result<StreamHeader, ClientError> {
        loop {
            match self.next_frame(deadline).await? {
                Frame::Header(header) => return Ok(*header),
                Frame::Whitespace(_) => continue,
                _ => return Err(ClientError::Refused("expected a stream header")),
            }
        }
    }

    async fn next_frame(&mut self, deadline: Instant) -> Result<Frame, ClientError> {
        tokio::time::timeout_at(deadline, next_frame(&mut self.conn, &mut self.framer))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::from)
    }

    /// Sends the proxy's own stream header, if the client has not had one for this
    /// stream yet.
    pub fn ensure_header(&mut self, domain: Option<&str>) {
        if self.close_tag.is_none() {
            let id = crate::util::random_id();
            self.out.push(stream_header(&HeaderSpec {
                default_ns: NS_CLIENT,
                id: Some(&id),
                from: domain,
                to: None,
                version: true,
            }));
            self.close_tag = Some("</stream:stream>".to_owned());
        }
    }

    /// Queues a stream error (with a header first if needed) and the closing tag.
    pub fn push_stream_error(&mut self, domain: Option<&str>, condition: &str, text: Option<&str>) {
        self.ensure_header(domain);
        let close = self
            .close_tag
            .clone()
            .unwrap_or_else(|| "</stream:stream>".into());
        self.out.push(stream_error(condition, text, &close));
        metrics::stream_error(condition, "proxy");
    }

    /// Sends what is queued and closes the connection, within [`CLOSE_GRACE`]: a
    /// client that reads nothing cannot hold the connection open.
    pub async fn finish(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.out.flush(&mut self.conn).await;
            let _ = self.conn.shutdown().await;
        })
        .await;
    }

    /// The proxy's own STARTTLS offer (when `tls.required`): features with
    /// `<starttls><required/>`, then waits for the client's `<starttls/>` and answers
    /// `<proceed/>`. The caller then calls [`ClientSide::upgrade`].
    pub async fn offer_starttls(
        &mut self,
        domain: &str,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        self.ensure_header(Some(domain));
        self.out.push(Bytes::from(format!(
            "<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features>"
        )));
        self.out.flush(&mut self.conn).await?;
        self.await_starttls(deadline).await?;
        self.out
            .push(Bytes::from(format!("<proceed xmlns='{NS_TLS}'/>")));
        self.out.flush(&mut self.conn).await?;
        Ok(())
    }

    async fn await_starttls(&mut self, deadline: Instant) -> Result<(), ClientError> {
        loop {
            match self.next_frame(deadline).await? {
                Frame::Whitespace(_) => continue,
                Frame::Stanza(stanza) => {
                    let head = stanza
                        .head()
                        .map_err(|_| ClientError::Refused("bad element"))?;
                    return match (head.name(), head.ns()) {
                        ("starttls", Some(NS_TLS)) => Ok(()),
                        _ => Err(ClientError::Refused("STARTTLS is required first")),
                    };
                }
                Frame::End(_) => return Err(ClientError::Closed),
                Frame::Header(_) => return Err(ClientError::Refused("unexpected header")),
            }
        }
    }

    /// TLS handshake on the plain connection; the framer forgets plaintext leftovers
    /// (RFC 6120 §5.4.3.3). A failed handshake leaves no channel to report on.
    pub async fn upgrade(
        self,
        acceptor: Arc<TlsAcceptor>,
        deadline: Instant,
    ) -> Result<ClientSide, ClientError> {
        let ClientSide {
            conn, mut framer, ..
        } = self;
        let Conn::Plain(tcp) = conn else {
            return Err(ClientError::Refused("TLS is already established"));
        };
        let tls = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
            .await
            .map_err(|_| ClientError::Timeout)??;
        framer.restart_discarding();
        Ok(ClientSide::new(Conn::Accepted(Box::new(tls)), framer))
    }
}

/// Checks a client's stream header: namespaces, version and a served `to` domain.
/// Returns the domain (lowercased) or the stream error condition to send.
pub fn check_header(header: &StreamHeader, cfg: &Config) -> Result<String, HeaderRefusal> {
    if header.default_ns.as_deref() != Some(NS_CLIENT)
        || header.namespaces.lookup(header.stream_prefix.as_deref()) != Some(NS_STREAMS)
    {
        return Err(HeaderRefusal::new(
            "invalid-namespace",
            "expected jabber:client",
        ));
    }
    let Some(to) = header.to.as_deref() else {
        return Err(HeaderRefusal::new(
            "host-unknown",
            "the stream header has no 'to'",
        ));
    };
    let Ok(domain) = Domain::parse(to) else {
        return Err(HeaderRefusal::new(
            "host-unknown",
            "the stream header's 'to' is not a domain",
        ));
    };
    let domain = domain.as_str().to_owned();
    if cfg.host(&domain).is_none() {
        return Err(HeaderRefusal::new(
            "host-unknown",
            "this proxy does not serve that domain",
        ));
    }
    match header.version.as_deref() {
        Some(v) if v.starts_with("1.") => Ok(domain),
        _ => Err(HeaderRefusal::new(
            "unsupported-version",
            "XMPP 1.0 streams only",
        )),
    }
}

/// Why a client stream header is refused.
#[derive(Debug)]
pub struct HeaderRefusal {
    pub condition: &'static str,
    pub text: &'static str,
}

impl HeaderRefusal {
    fn new(condition: &'static str, text: &'static str) -> Self {
        HeaderRefusal { condition, text }
    }
}
