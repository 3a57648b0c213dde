//! The proxy's own XEP-0114 connection to the legacy server, opened under the name of
//! the component that just authenticated with the proxy.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::handshake::handshake_digest;
use crate::net::{next_frame, Conn, Outbox, ReadFrameError};
use crate::xml::children::stream_error_condition;
use crate::xml::ns::{NS_COMPONENT, NS_STREAMS};
use crate::xml::writer::{stream_header, HeaderSpec};
use crate::xml::{Frame, Framer, Limits};

/// Connect plus handshake with the legacy server must finish within this.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("the upstream server refused the component: <{0}/>")]
    Refused(String),
    #[error("upstream component link: {0}")]
    Read(#[from] ReadFrameError),
    #[error("upstream sent <{0}/> instead of a handshake answer")]
    Unexpected(String),
    #[error("no answer from the upstream server within {LINK_TIMEOUT:?}")]
    Timeout,
}

pub struct Link {
    pub conn: Conn,
    pub framer: Framer,
    pub out: Outbox,
}

impl Link {
    pub async fn open(
        addr: &str,
        name: &str,
        secret: &str,
        limits: Limits,
    ) -> Result<Link, LinkError> {
        tokio::time::timeout(LINK_TIMEOUT, Self::open_now(addr, name, secret, limits))
            .await
            .map_err(|_| LinkError::Timeout)?
    }

    async fn open_now(
        addr: &str,
        name: &str,
        secret: &str,
        limits: Limits,
    ) -> Result<Link, LinkError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| LinkError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut link = Link {
            conn: Conn::Plain(tcp),
            framer: Framer::new(limits),
            out: Outbox::default(),
        };
        link.out.push(stream_header(&HeaderSpec {
            default_ns: NS_COMPONENT,
            id: None,
            from: None,
            to: Some(name),
            version: false,
        }));
        link.flush().await?;
        let stream_id = link.await_header().await?;
        link.out.push(Bytes::from(format!(
            "<handshake>{}</handshake>",
            handshake_digest(&stream_id, secret)
        )));
        link.flush().await?;
        link.await_handshake().await?;
        Ok(link)
    }

    async fn flush(&mut self) -> Result<(), LinkError> {
        self.out
            .flush(&mut self.conn)
            .await
            .map_err(|e| LinkError::Read(ReadFrameError::Io(e)))
    }

    async fn await_header(&mut self) -> Result<String, LinkError> {
        loop {
            match next_frame(&mut self.conn, &mut self.framer).await? {
                Frame::Header(header) => return Ok(header.id.unwrap_or_default()),
                Frame::Whitespace(_) => {}
                Frame::Stanza(s) => return Err(self.unexpected(&s)),
                Frame::End(_) => return Err(LinkError::Refused("stream closed".into())),
            }
        }
    }

    async fn await_handshake(&mut self) -> Result<(), LinkError> {
        loop {
            match next_frame(&mut self.conn, &mut self.framer).await? {
                Frame::Whitespace(_) | Frame::Header(_) => {}
                Frame::Stanza(s) => {
                    let is_handshake = s
                        .head()
                        .map(|h| h.name() == "handshake" && h.ns() == Some(NS_COMPONENT))
                        .unwrap_or(false);
                    if is_handshake {
                        return Ok(());
                    }
                    return Err(self.unexpected(&s));
                }
                Frame::End(_) => return Err(LinkError::Refused("stream closed".into())),
            }
        }
    }

    fn unexpected(&self, stanza: &crate::xml::Stanza) -> LinkError {
        let Ok(head) = stanza.head() else {
            return LinkError::Unexpected("?".into());
        };
        if head.name() == "error" && head.ns() == Some(NS_STREAMS) {
            let condition = stream_error_condition(stanza.bytes())
                .unwrap_or_else(|| "undefined-condition".into());
            return LinkError::Refused(condition);
        }
        LinkError::Unexpected(head.name().to_owned())
    }
}
