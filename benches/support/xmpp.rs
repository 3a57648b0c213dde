//! A framed XMPP client stream for the benches that need more than message echoes:
//! every read is cut with `stanzagate::xml::Framer`, stream errors are told apart from
//! plain closes, and Stream Management (XEP-0198) can be enabled and counted.

use std::fmt;
use std::io;

use stanzagate::xml::ns::NS_STREAMS;
use stanzagate::xml::{Frame, Framer, Stanza};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::DOMAIN;

pub const NS_SM: &str = "urn:xmpp:sm:3";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// Why a stream stopped being usable.
#[derive(Debug)]
pub enum Ended {
    /// The peer sent `<stream:error>` with this condition.
    StreamError(String),
    /// The peer closed the stream (`</stream:stream>` or EOF) without a stream error.
    Closed,
    /// A read or write failed (e.g. connection reset).
    Io(io::Error),
    /// The peer sent something this client did not expect.
    Protocol(String),
    /// A bounded wait ran out.
    Timeout(&'static str),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::StreamError(condition) => write!(f, "stream error <{condition}/>"),
            Ended::Closed => write!(f, "stream closed by the peer"),
            Ended::Io(e) => write!(f, "I/O error: {e}"),
            Ended::Protocol(what) => write!(f, "protocol: {what}"),
            Ended::Timeout(what) => write!(f, "timed out: {what}"),
        }
    }
}

impl From<io::Error> for Ended {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Ended::Closed,
            _ => Ended::Io(e),
        }
    }
}

impl Ended {
    /// A short key for counting how streams ended.
    pub fn key(&self) -> String {
        match self {
            Ended::StreamError(condition) => format!("stream-error:{condition}"),
            Ended::Closed => "closed".into(),
            Ended::Io(e) => format!("io:{:?}", e.kind()),
            Ended::Protocol(_) => "protocol".into(),
            Ended::Timeout(what) => format!("timeout:{what}"),
        }
    }
}

/// The client stream header for the bench domain.
pub fn header() -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    )
}

/// A client stream cut into frames.
pub struct Xmpp<S> {
    pub io: S,
    pub framer: Framer,
    /// Stanzas (message, presence, iq) received since SM was enabled; `None` while SM
    /// is off.
    pub sm_received: Option<u64>,
    /// Stanzas sent since SM was enabled (kept by callers through [`Xmpp::sent`]).
    pub sm_sent: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Xmpp<S> {
    pub fn new(io: S) -> Self {
        Xmpp {
            io,
            framer: Framer::default(),
            sm_received: None,
            sm_sent: 0,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Ended> {
        self.io.write_all(bytes).await.map_err(Ended::from)
    }

    /// Sends `count` stanzas in `bytes`, counted for SM.
    pub async fn send_stanzas(&mut self, bytes: &[u8], count: u64) -> Result<(), Ended> {
        self.sm_sent += count;
        self.send(bytes).await
    }

    /// The next frame, reading as needed.
    pub async fn frame(&mut self) -> Result<Frame, Ended> {
        loop {
            match self.framer.next_frame() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(Ended::Protocol(format!("bad XML from the peer: {e}"))),
            }
            if self.io.read_buf(self.framer.buffer_mut()).await? == 0 {
                return Err(Ended::Closed);
            }
        }
    }

    /// The next top-level element that is not a stream error; stream errors and the
    /// stream end become [`Ended`]. Stanzas are counted for SM when it is on.
    pub async fn stanza(&mut self) -> Result<Stanza, Ended> {
        loop {
            match self.frame().await? {
                Frame::Stanza(stanza) => {
                    let head = stanza
                        .head()
                        .map_err(|e| Ended::Protocol(format!("unreadable element: {e}")))?;
                    if head.name() == "error" && head.ns() == Some(NS_STREAMS) {
                        let condition = head
                            .child()
                            .map(|c| c.name().to_owned())
                            .unwrap_or_else(|| "undefined-condition".into());
                        return Err(Ended::StreamError(condition));
                    }
                    if let Some(received) = self.sm_received.as_mut() {
                        if matches!(head.name(), "message" | "presence" | "iq") {
                            *received += 1;
                        }
                    }
                    return Ok(stanza);
                }
                Frame::End(_) => return Err(Ended::Closed),
                Frame::Header(_) | Frame::Whitespace(_) => {}
            }
        }
    }

    /// Reads until an element named `name` (others are skipped).
    pub async fn expect(&mut self, name: &str) -> Result<Stanza, Ended> {
        loop {
            let stanza = self.stanza().await?;
            if stanza.head().map(|h| h.name() == name).unwrap_or(false) {
                return Ok(stanza);
            }
        }
    }

    /// Full login as `user` (header, SASL PLAIN, restart, bind with resource `r`).
    pub async fn login(&mut self, user: &str) -> Result<(), Ended> {
        use base64::Engine as _;
        self.send(header().as_bytes()).await?;
        self.expect("features").await?;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0secret"));
        let auth = format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>");
        self.send(auth.as_bytes()).await?;
        loop {
            let stanza = self.stanza().await?;
            let head = stanza.head().map_err(|e| Ended::Protocol(e.to_string()))?;
            match head.name() {
                "success" => break,
                "failure" => return Err(Ended::Protocol("SASL failure".into())),
                _ => {}
            }
        }
        self.framer.restart();
        self.send(header().as_bytes()).await?;
        self.expect("features").await?;
        self.send(
            b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>r</resource></bind></iq>",
        )
        .await?;
        let bound = self.expect("iq").await?;
        let head = bound.head().map_err(|e| Ended::Protocol(e.to_string()))?;
        if head.type_().as_deref() != Some("result") {
            return Err(Ended::Protocol(format!(
                "bind failed: {}",
                String::from_utf8_lossy(bound.bytes())
            )));
        }
        Ok(())
    }

    /// Enables Stream Management (no resumption) and starts counting.
    pub async fn enable_sm(&mut self) -> Result<(), Ended> {
        self.send(format!("<enable xmlns='{NS_SM}'/>").as_bytes())
            .await?;
        loop {
            let stanza = self.stanza().await?;
            let head = stanza.head().map_err(|e| Ended::Protocol(e.to_string()))?;
            if head.ns() != Some(NS_SM) {
                continue;
            }
            match head.name() {
                "enabled" => {
                    self.sm_received = Some(0);
                    self.sm_sent = 0;
                    return Ok(());
                }
                "failed" => return Err(Ended::Protocol("SM <enable/> failed".into())),
                _ => {}
            }
        }
    }
}

/// True if `stanza` is the SM element `name` (`r`, `a`, …).
pub fn is_sm(stanza: &Stanza, name: &str) -> bool {
    stanza
        .head()
        .map(|h| h.name() == name && h.ns() == Some(NS_SM))
        .unwrap_or(false)
}

/// `h` of an `<a/>`.
pub fn ack_h(stanza: &Stanza) -> Option<u64> {
    stanza.head().ok()?.attr("h")?.parse().ok()
}
