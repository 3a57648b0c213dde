//! XMPP over WebSocket (RFC 7395) as the byte stream the c2s session already speaks.
//! The HTTP upgrade happens here (path `/xmpp-websocket`, subprotocol `xmpp`); after
//! it, [`WsBridge`] translates in both directions so delegation, privileges, web-app
//! rosters and Stream Management work unchanged:
//!
//! - client → proxy: `<open/>` becomes a `<stream:stream>` header, `<close/>` its
//!   closing tag, and every other text message (one element, namespaces declared) is
//!   passed on unchanged, copied once into the session's read buffer. Nothing is
//!   trusted here: the session's framer parses every byte, as for TCP clients.
//! - proxy → client: the session's stream is cut into frames again; the header
//!   becomes `<open/>`, the end `<close/>`, and each top-level element one message,
//!   with the stream header's namespace declarations it inherits written onto it
//!   (RFC 7395 §3.3.3).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::Conn;
use crate::xml::ns::{NS_CLIENT, NS_FRAMING, NS_SASL, NS_STREAMS};
use crate::xml::{escape_attr, Frame, Framer, Limits, Stanza};

/// The one path the WebSocket listeners serve (as Prosody and Converse.js default to).
pub const PATH: &str = "/xmpp-websocket";
/// The subprotocol a client must offer (RFC 7395 §3.1).
pub const SUBPROTOCOL: &str = "xmpp";

/// tungstenite's read buffer, allocated up front for every connection. Its default
/// (128 KiB) made an idle WebSocket session cost 157 KiB against 11 KiB on TCP; a
/// browser session reads a few stanzas a minute, and larger messages still arrive
/// whole (the buffer grows up to the message limit while one is read).
const READ_BUFFER: usize = 4 * 1024;

/// The closing tag of the stream header the bridge writes for `<open/>`.
const STREAM_END: &[u8] = b"</stream:stream>";

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("WebSocket handshake refused: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
}

/// The HTTP upgrade on `conn`: only `GET /xmpp-websocket` offering the `xmpp`
/// subprotocol is accepted (404 or 400 otherwise, with the reason in the body).
/// Messages are bounded by the largest stanza plus room for the framing.
pub async fn upgrade(conn: Conn, limits: &Limits) -> Result<WsBridge, UpgradeError> {
    // A stanza at the limit, as one frame or one message (frames are not split).
    let largest = limits.max_stanza_bytes.saturating_add(1024);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest));
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(conn, check_request, Some(config)).await?;
    Ok(WsBridge::new(ws, *limits))
}

/// The upgrade request's checks, answered in the handshake itself.
// The signature is tungstenite's handshake callback's.
#[allow(clippy::result_large_err)]
fn check_request(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != PATH {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "XMPP over WebSocket is at /xmpp-websocket",
        ));
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !offered {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "offer the WebSocket subprotocol \"xmpp\" (RFC 7395)",
        ));
    }
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// What one received text message means for the session's byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes to hand to the session.
    Bytes(Bytes),
    /// Nothing (a whitespace-only message).
    Nothing,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("a WebSocket message must hold one XML element (RFC 7395 §3.3.3)")]
    NotAnElement,
    #[error("malformed <{0}/>: {1}")]
    Framing(&'static str, String),
    #[error("binary WebSocket messages are not XMPP (RFC 7395 §3.2)")]
    Binary,
    #[error("WebSocket message too large: {0}")]
    TooLarge(String),
}

impl InboundError {
    /// The stream error the client gets for it.
    pub fn condition(&self) -> &'static str {
        match self {
            InboundError::NotAnElement | InboundError::Framing(..) => "not-well-formed",
            InboundError::Binary => "unsupported-encoding",
            // As for an oversized stanza on TCP.
            InboundError::TooLarge(_) => "policy-violation",
        }
    }
}

/// The refused message behind a read error of a WebSocket client's stream, if that is
/// what the error is.
pub fn refused_message(error: &io::Error) -> Option<&InboundError> {
    error.get_ref()?.downcast_ref::<InboundError>()
}

/// Translates one text message from the client.
pub fn inbound(message: Bytes) -> Result<Inbound, InboundError> {
    let text = message.trim_ascii();
    if text.is_empty() {
        return Ok(Inbound::Nothing);
    }
    // One element: not a declaration, comment, closing tag or bare text. The rest is
    // the session framer's to judge, byte by byte.
    let element = text.first() == Some(&b'<')
        && text.last() == Some(&b'>')
        && !matches!(text.get(1), Some(b'?' | b'!' | b'/'));
    if !element {
        return Err(InboundError::NotAnElement);
    }
    if text.starts_with(b"<open") || text.starts_with(b"<close") {
        return framing(message.slice_ref(text));
    }
    Ok(Inbound::Bytes(message))
}

/// `<open/>` → a stream header carrying the client's attributes; `<close/>` → the
/// header's closing tag.
fn framing(element: Bytes) -> Result<Inbound, InboundError> {
    let stanza =
        Stanza::standalone(element).map_err(|e| InboundError::Framing("open", e.to_string()))?;
    let head = stanza
        .head()
        .map_err(|e| InboundError::Framing("open", e.to_string()))?;
    let name = match head.name() {
        "open" => "open",
        "close" => "close",
        _ => return Ok(Inbound::Bytes(stanza.into_bytes())),
    };
    if head.ns() != Some(NS_FRAMING) {
        return Err(InboundError::Framing(name, format!("not in {NS_FRAMING}")));
    }
    if name == "close" {
        return Ok(Inbound::Bytes(Bytes::from_static(STREAM_END)));
    }
    let mut out = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'"
    );
    for attr in ["to", "from", "version", "xml:lang"] {
        if let Some(value) = head.attr(attr) {
            out.push_str(&format!(" {attr}='{}'", escape_attr(&value)));
        }
    }
    out.push('>');
    Ok(Inbound::Bytes(Bytes::from(out)))
}

/// Translates one frame of the session's outgoing stream into a message's text;
/// `None` for what has no place on a WebSocket (whitespace keepalives: RFC 7395 §3.4
/// uses WebSocket pings instead).
pub fn outbound(frame: &Frame) -> Option<Bytes> {
    match frame {
        Frame::Header(header) => {
            let mut out = format!("<open xmlns='{NS_FRAMING}'");
            let attrs = [
                ("from", &header.from),
                ("to", &header.to),
                ("id", &header.id),
                ("version", &header.version),
                ("xml:lang", &header.lang),
            ];
            for (name, value) in attrs {
                if let Some(value) = value {
                    out.push_str(&format!(" {name}='{}'", escape_attr(value)));
                }
            }
            out.push_str("/>");
            Some(Bytes::from(out))
        }
        Frame::Stanza(stanza) => Some(standalone(stanza)),
        Frame::Whitespace(_) => None,
        Frame::End(_) => Some(Bytes::from(format!("<close xmlns='{NS_FRAMING}'/>"))),
    }
}

/// `stanza` with the declarations it inherits from the stream header written onto its
/// own open tag, unless it redeclares them: each message stands alone.
fn standalone(stanza: &Stanza) -> Bytes {
    let bytes = stanza.bytes();
    let Ok(head) = stanza.head() else {
        // Framed but not resolvable: only the proxy's own writes reach here, and those
        // are checked; pass it as it is rather than guess.
        return bytes.clone();
    };
    let mut decls = String::new();
    for (prefix, uri) in stanza.namespaces().iter() {
        let name = match prefix {
            // Declared only where the element may use it (`stream:features`).
            Some(prefix)
                if memchr::memmem::find(bytes, format!("{prefix}:").as_bytes()).is_none() =>
            {
                continue
            }
            Some(prefix) => format!("xmlns:{prefix}"),
            None => "xmlns".to_owned(),
        };
        if head.attr(&name).is_none() {
            decls.push_str(&format!(" {name}='{}'", escape_attr(uri)));
        }
    }
    if decls.is_empty() {
        return bytes.clone();
    }
    // `<` and the qualified name, then the declarations, then the rest as it was.
    let qname_len = head.prefix().map_or(0, |p| p.len() + 1) + head.name().len();
    let at = (1 + qname_len).min(bytes.len());
    let mut out = BytesMut::with_capacity(bytes.len() + decls.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(decls.as_bytes());
    out.extend_from_slice(&bytes[at..]);
    out.freeze()
}

/// Whether `frame` ends a stream that restarts (SASL success, RFC 6120 §6.4.6): the
/// next header is a new stream's.
fn restarts_stream(frame: &Frame) -> bool {
    match frame {
        Frame::Stanza(stanza) => stanza
            .head()
            .is_ok_and(|h| h.name() == "success" && h.ns() == Some(NS_SASL)),
        _ => false,
    }
}

/// Reading side of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Open,
    /// The client closed the WebSocket; reads return end of file.
    Closed,
}

/// A client's WebSocket as an XMPP byte stream (see the module documentation).
pub struct WsBridge {
    ws: WebSocketStream<Conn>,
    /// Translated bytes of the last message, not yet read by the session.
    inbound: Bytes,
    read_state: ReadState,
    /// What the session wrote, cut into frames to become messages.
    outbound: Framer,
    /// Messages translated and waiting for the socket, in order.
    pending: VecDeque<Message>,
}

impl WsBridge {
    fn new(ws: WebSocketStream<Conn>, limits: Limits) -> Self {
        WsBridge {
            ws,
            inbound: Bytes::new(),
            read_state: ReadState::Open,
            outbound: Framer::new(limits),
            pending: VecDeque::new(),
        }
    }

    /// The connection under the WebSocket.
    pub fn conn(&self) -> &Conn {
        self.ws.get_ref()
    }

    /// Sends what is pending, as far as the socket takes it.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_io)?;
            if let Some(message) = self.pending.pop_front() {
                Pin::new(&mut self.ws).start_send(message).map_err(ws_io)?;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Cuts complete frames off what the session wrote into messages.
    fn translate(&mut self) -> io::Result<()> {
        loop {
            let frame = match self.outbound.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
            };
            if let Some(text) = outbound(&frame) {
                // The framer checked the UTF-8 of every frame it yields.
                let text = tokio_tungstenite::tungstenite::Utf8Bytes::try_from(text)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                self.pending.push_back(Message::Text(text));
            }
            if restarts_stream(&frame) {
                self.outbound.restart();
            }
        }
    }
}

fn ws_io(error: tokio_tungstenite::tungstenite::Error) -> io::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match error {
        E::Io(io) => io,
        E::ConnectionClosed | E::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl WsBridge {
    /// True when translated bytes wait (or the end of the stream does): a read returns
    /// at once.
    pub fn has_buffered_input(&self) -> bool {
        !self.inbound.is_empty() || self.read_state == ReadState::Closed
    }

    /// Ready once a read can return without waiting: the next message has arrived and
    /// been translated (or the client closed). This is the readiness the session waits
    /// for with its read buffer released, as TCP sessions wait on their socket.
    /// Cancel-safe: a message taken off the WebSocket is kept until it is read.
    pub fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.has_buffered_input() {
                return Poll::Ready(Ok(()));
            }
            let next = Pin::new(&mut self.ws).poll_next(cx);
            if next.is_pending() {
                // About to wait: a session idles here, so the outgoing framer's buffer
                // goes too (freed only when it holds nothing).
                self.outbound.release_buffer();
            }
            let message = match ready!(next) {
                Some(Ok(message)) => message,
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(error))) => {
                    let error = InboundError::TooLarge(error.to_string());
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
                }
                Some(Err(error)) => return Poll::Ready(Err(ws_io(error))),
                None => {
                    self.read_state = ReadState::Closed;
                    continue;
                }
            };
            let translated = match message {
                Message::Text(text) => inbound(Bytes::from(text)),
                Message::Binary(_) => Err(InboundError::Binary),
                Message::Close(_) => {
                    self.read_state = ReadState::Closed;
                    continue;
                }
                // Pings are answered by tungstenite itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            match translated {
                Ok(Inbound::Bytes(bytes)) => self.inbound = bytes,
                Ok(Inbound::Nothing) => {}
                Err(error) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)))
                }
            }
        }
    }
}

impl AsyncRead for WsBridge {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_input(cx))?;
        // Empty only at the end of the stream: then nothing is put, which reads as EOF.
        let n = this.inbound.len().min(buf.remaining());
        buf.put_slice(&this.inbound.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WsBridge {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Back-pressure: nothing new is taken while earlier messages wait.
        ready!(this.poll_send_pending(cx))?;
        this.outbound.buffer_mut().extend_from_slice(buf);
        this.translate()?;
        // Start sending now; what the socket does not take yet goes with the flush.
        if let Poll::Ready(Err(error)) = this.poll_send_pending(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        Pin::new(&mut this.ws).poll_flush(cx).map_err(ws_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_pending(cx))?;
        // A WebSocket close frame, then the connection's own shutdown.
        match ready!(Pin::new(&mut this.ws).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(error) => match ws_io(error) {
                e if e.kind() == io::ErrorKind::BrokenPipe => Poll::Ready(Ok(())),
                e => Poll::Ready(Err(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn bytes_of(inbound: Result<Inbound, InboundError>) -> String {
        match inbound.unwrap() {
            Inbound::Bytes(b) => text(b),
            Inbound::Nothing => String::new(),
        }
    }

    #[test]
    fn open_and_close_become_the_stream_header_and_end() {
        let open = Bytes::from_static(
            b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0' xml:lang='de'/>",
        );
        assert_eq!(
            bytes_of(inbound(open)),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0' xml:lang='de'>"
        );
        let close = Bytes::from_static(b"<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\"/>");
        assert_eq!(bytes_of(inbound(close)), "</stream:stream>");
        let wrong = Bytes::from_static(b"<open xmlns='jabber:client' to='x'/>");
        assert!(matches!(
            inbound(wrong),
            Err(InboundError::Framing("open", _))
        ));
    }

    #[test]
    fn stanzas_pass_as_received_and_non_elements_are_refused() {
        let message = Bytes::from_static(
            b"<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
        );
        let Inbound::Bytes(out) = inbound(message.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(out, message);
        // The very same buffer: no copy.
        assert_eq!(out.as_ptr(), message.as_ptr());
        assert_eq!(
            inbound(Bytes::from_static(b"  \n")).unwrap(),
            Inbound::Nothing
        );
        for bad in [
            &b"hello"[..],
            b"<?xml version='1.0'?>",
            b"</stream:stream>",
            b"<!-- x -->",
            b"<message",
        ] {
            assert_eq!(
                inbound(Bytes::from_static(bad)),
                Err(InboundError::NotAnElement),
                "{bad:?}"
            );
        }
    }

    fn frames(stream: &str) -> Vec<Frame> {
        let mut framer = Framer::new(Limits::default());
        framer.buffer_mut().extend_from_slice(stream.as_bytes());
        let mut frames = Vec::new();
        while let Some(frame) = framer.next_frame().unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn the_servers_stream_becomes_standalone_messages() {
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='s1' version='1.0' xml:lang='en'>\
<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features> \
<message from='a@example.org' to='b@example.org'><body>hi</body></message>\
<iq xmlns='jabber:client' type='result' id='1'/></stream:stream>";
        let out: Vec<String> = frames(stream)
            .iter()
            .filter_map(outbound)
            .map(text)
            .collect();
        assert_eq!(
            out,
            [
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='s1' version='1.0' xml:lang='en'/>",
                "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
                "<message xmlns='jabber:client' from='a@example.org' to='b@example.org'><body>hi</body></message>",
                "<iq xmlns='jabber:client' type='result' id='1'/>",
                "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            ]
        );
        // Each message parses on its own, in the namespace it had in the stream.
        for message in &out[1..4] {
            let stanza = Stanza::standalone(Bytes::from(message.clone())).unwrap();
            let head = stanza.head().unwrap();
            assert!(head.ns().is_some(), "{message}");
        }
    }

    #[test]
    fn sasl_success_restarts_the_outgoing_stream() {
        let success = frames(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        );
        assert!(restarts_stream(&success[1]));
        let failure = frames(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
<success xmlns='urn:xmpp:sasl:2'/>",
        );
        assert!(
            !restarts_stream(&failure[1]),
            "SASL2 does not restart the stream"
        );
    }
}
