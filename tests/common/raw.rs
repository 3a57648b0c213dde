//! A byte-level XMPP client for what slixmpp will not send: malformed XML, oversized
//! stanzas, hand-written Stream Management. Uses the proxy's own framer to read.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use stanzagate::net::{next_frame, Conn};
use stanzagate::xml::{Frame, Framer, Limits, Stanza};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{DOMAIN, PASSWORD};

const WAIT: Duration = Duration::from_secs(15);

pub struct Raw {
    pub conn: Conn,
    framer: Framer,
    pub jid: Option<String>,
    /// XEP-0198: stanzas received since `<enabled/>` (set by the test on resumption).
    /// While set, the server's `<r/>` is answered automatically with this count.
    pub sm_received: Option<u32>,
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        Raw::over(Conn::Plain(tcp))
    }

    /// From `source` (any 127.0.0.0/8 address works on Linux loopback), so several
    /// clients have addresses of their own.
    pub async fn connect_from(port: u16, source: std::net::Ipv4Addr) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((source, 0).into()).expect("bind source");
        let tcp = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect");
        Raw::over(Conn::Plain(tcp))
    }

    /// Direct TLS (XEP-0368) trusting `roots`; returns the server's leaf certificate.
    pub async fn connect_tls(port: u16, roots: rustls::RootCertStore) -> (Raw, Vec<u8>) {
        let (raw, leaf, _) = Raw::connect_tls_alpn(port, roots, &[]).await;
        (raw, leaf)
    }

    /// Direct TLS offering the ALPN protocols `alpn`; returns the server's leaf
    /// certificate and the protocol it chose.
    pub async fn connect_tls_alpn(
        port: u16,
        roots: rustls::RootCertStore,
        alpn: &[&[u8]],
    ) -> (Raw, Vec<u8>, Option<Vec<u8>>) {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let connector = super::certs::connector(roots, alpn);
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .expect("server certificate");
        let protocol = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        (Raw::over(Conn::Connected(Box::new(tls))), leaf, protocol)
    }

    fn over(conn: Conn) -> Raw {
        Raw {
            conn,
            framer: Framer::new(Limits {
                max_stanza_bytes: 16 << 20,
                ..Limits::default()
            }),
            jid: None,
            sm_received: None,
        }
    }

    pub async fn send(&mut self, xml: &str) {
        self.send_bytes(xml.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.conn.write_all(bytes).await.expect("write");
        self.conn.flush().await.expect("flush");
    }

    /// Like `send_bytes`, but the peer may already have closed (oversized input).
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(bytes).await?;
        self.conn.flush().await
    }

    pub fn header(to: &str) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>"
        )
    }

    /// The next frame, `None` once the connection is closed. Stream Management is
    /// played honestly: received stanzas are counted and `<r/>` answered.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            let frame = match tokio::time::timeout(
                WAIT,
                next_frame(&mut self.conn, &mut self.framer),
            )
            .await
            {
                Ok(Ok(frame)) => frame,
                Ok(Err(_)) => return None,
                Err(_) => panic!("no frame within {WAIT:?}"),
            };
            if let Frame::Stanza(stanza) = &frame {
                if self.observe_sm(stanza).await {
                    continue;
                }
            }
            return Some(frame);
        }
    }

    /// Counts for XEP-0198; returns true for an `<r/>` it answered itself.
    async fn observe_sm(&mut self, stanza: &Stanza) -> bool {
        let Ok(head) = stanza.head() else {
            return false;
        };
        let sm = head.ns() == Some("urn:xmpp:sm:3");
        match (head.name(), sm) {
            ("enabled", true) => self.sm_received = Some(0),
            ("r", true) => {
                if let Some(h) = self.sm_received {
                    self.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>"))
                        .await;
                    return true;
                }
            }
            ("iq" | "message" | "presence", false) => {
                if let Some(h) = self.sm_received.as_mut() {
                    *h += 1;
                }
            }
            _ => {}
        }
        false
    }

    /// Gives up the stream for a split reader/writer test; the framer comes along.
    pub fn into_parts(self) -> (Conn, Framer) {
        (self.conn, self.framer)
    }

    /// Skips frames until a top-level element named `name`.
    pub async fn expect(&mut self, name: &str) -> Stanza {
        loop {
            match self.next().await {
                Some(Frame::Stanza(stanza)) => {
                    if stanza.head().map(|h| h.name() == name).unwrap_or(false) {
                        return stanza;
                    }
                }
                Some(_) => {}
                None => panic!("connection closed while waiting for <{name}/>"),
            }
        }
    }

    /// Reads until `<stream:error>`; returns its condition, then checks the stream is
    /// closed (close tag and/or EOF follow).
    pub async fn expect_stream_error(&mut self) -> String {
        let error = self.expect("error").await;
        let text = String::from_utf8_lossy(error.bytes()).into_owned();
        let condition = stanzagate::xml::children::stream_error_condition(error.bytes())
            .unwrap_or_else(|| panic!("no condition in {text}"));
        self.expect_closed().await;
        condition
    }

    /// Everything until EOF must be the close tag at most.
    pub async fn expect_closed(&mut self) {
        loop {
            match self.next().await {
                None => return,
                Some(Frame::End(_)) | Some(Frame::Whitespace(_)) => {}
                Some(other) => panic!(
                    "expected the stream to close, got {}",
                    String::from_utf8_lossy(other.bytes())
                ),
            }
        }
    }

    /// Full plaintext login through the proxy: header, SASL PLAIN, restart, bind.
    pub async fn login(port: u16, user: &str) -> Raw {
        let mut raw = Raw::connect(port).await;
        raw.login_on_stream(user).await;
        raw
    }

    /// Login over direct TLS.
    pub async fn login_tls(port: u16, roots: rustls::RootCertStore, user: &str) -> Raw {
        let (mut raw, _) = Raw::connect_tls(port, roots).await;
        raw.login_on_stream(user).await;
        raw
    }

    pub async fn login_on_stream(&mut self, user: &str) {
        self.authenticate(user).await;
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>").await;
        let bound = self.expect("iq").await;
        let jid =
            stanzagate::xml::children::descendant_text(bound.bytes(), "jid").expect("bound jid");
        self.jid = Some(jid);
    }

    /// Header, SASL PLAIN, restart, features: ready to bind (or resume).
    pub async fn authenticate(&mut self, user: &str) {
        self.send(&Raw::header(DOMAIN)).await;
        self.expect("features").await;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        let outcome = self.expect_any(&["success", "failure"]).await;
        assert_eq!(
            outcome.head().unwrap().name(),
            "success",
            "login as {user} failed"
        );
        self.framer.restart();
        self.send(&Raw::header(DOMAIN)).await;
        self.expect("features").await;
    }

    pub async fn expect_any(&mut self, names: &[&str]) -> Stanza {
        loop {
            match self.next().await {
                Some(Frame::Stanza(stanza)) => {
                    let name = stanza
                        .head()
                        .map(|h| h.name().to_owned())
                        .unwrap_or_default();
                    if names.contains(&name.as_str()) {
                        return stanza;
                    }
                }
                Some(_) => {}
                None => panic!("connection closed while waiting for {names:?}"),
            }
        }
    }

    /// An authenticated XEP-0114 component stream.
    pub async fn component(port: u16, name: &str, secret: &str) -> Raw {
        let mut raw = Raw::connect(port).await;
        raw.send(&format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>"
        ))
        .await;
        let id = match raw.next().await {
            Some(Frame::Header(header)) => header.id.clone().expect("stream id"),
            other => panic!("expected a stream header, got {other:?}"),
        };
        raw.send(&format!(
            "<handshake>{}</handshake>",
            stanzagate::component::handshake_digest(&id, secret)
        ))
        .await;
        raw.expect("handshake").await;
        raw
    }

    /// Like [`Raw::component`], but a refusal is returned as its stream error
    /// condition (e.g. `conflict` while the name is still taken), `"closed"` when the
    /// connection ends without one.
    pub async fn try_component(port: u16, name: &str, secret: &str) -> Result<Raw, String> {
        let mut raw = Raw::connect(port).await;
        raw.send(&format!(
            "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>"
        ))
        .await;
        let id = match raw.next().await {
            Some(Frame::Header(header)) => header.id.clone().expect("stream id"),
            Some(Frame::Stanza(s)) if s.head().is_ok_and(|h| h.name() == "error") => {
                return Err(stanzagate::xml::children::stream_error_condition(s.bytes())
                    .unwrap_or_default())
            }
            None => return Err("closed".into()),
            other => panic!("expected a stream header, got {other:?}"),
        };
        // The proxy may hang up as soon as it refuses: a failed write is a refusal too.
        let digest = stanzagate::component::handshake_digest(&id, secret);
        if raw
            .try_send_bytes(format!("<handshake>{digest}</handshake>").as_bytes())
            .await
            .is_err()
        {
            return Err("closed".into());
        }
        loop {
            match raw.next().await {
                Some(Frame::Stanza(s)) => match s.head().map(|h| h.name().to_owned()) {
                    Ok(n) if n == "handshake" => return Ok(raw),
                    Ok(n) if n == "error" => {
                        return Err(stanzagate::xml::children::stream_error_condition(s.bytes())
                            .unwrap_or_default())
                    }
                    _ => {}
                },
                Some(_) => {}
                None => return Err("closed".into()),
            }
        }
    }

    /// The next top-level element, whatever it is.
    pub async fn next_stanza(&mut self) -> Stanza {
        loop {
            match self.next().await {
                Some(Frame::Stanza(stanza)) => return stanza,
                Some(_) => {}
                None => panic!("connection closed while waiting for a stanza"),
            }
        }
    }

    /// Reads until a stanza matches `what`; returns it (others are skipped).
    pub async fn until(&mut self, what: impl Fn(&Stanza) -> bool) -> Stanza {
        loop {
            let stanza = self.next_stanza().await;
            if what(&stanza) {
                return stanza;
            }
        }
    }

    /// Reads until an IQ with this id; returns it.
    pub async fn expect_iq(&mut self, id: &str) -> Stanza {
        loop {
            let iq = self.expect("iq").await;
            if iq.head().unwrap().id().as_deref() == Some(id) {
                return iq;
            }
        }
    }

    /// One IQ round trip (ping to the server) to prove the session still works.
    pub async fn ping(&mut self, id: &str) {
        self.send(&format!(
            "<iq type='get' id='{id}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
        loop {
            let iq = self.expect("iq").await;
            let head = iq.head().unwrap();
            if head.id().as_deref() == Some(id) {
                assert_eq!(head.type_().as_deref(), Some("result"), "ping {id}");
                return;
            }
        }
    }

    pub fn bytes_of(stanza: &Stanza) -> Bytes {
        stanza.bytes().clone()
    }
}

/// The reading half of a [`Raw`] stream, for a peer that writes and reads at once
/// (e.g. a flood written while its answers are read). No Stream Management replies.
pub struct RawReader {
    half: tokio::io::ReadHalf<Conn>,
    framer: Framer,
}

impl RawReader {
    /// The next frame; `None` once the connection is closed or its input cannot be
    /// framed. Panics when nothing arrives within `limit` (an upper bound only).
    pub async fn next(&mut self, limit: Duration) -> Option<Frame> {
        use tokio::io::AsyncReadExt;
        loop {
            match self.framer.next_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(_) => return None,
            }
            let buffer = self.framer.buffer_mut();
            if buffer.capacity() - buffer.len() < 16 * 1024 {
                buffer.reserve(64 * 1024);
            }
            match tokio::time::timeout(limit, self.half.read_buf(buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => panic!("no frame within {limit:?}"),
            }
        }
    }
}

impl Raw {
    /// A client stream header to `to` that also declares `extra` (for example
    /// `xmlns:x='urn:example:x'`, a prefix the client's stanzas may then use).
    pub fn header_with(to: &str, extra: &str) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' {extra} to='{to}' version='1.0'>"
        )
    }

    /// [`Raw::login`] with `header` as the stream header, before and after SASL.
    pub async fn login_with_header(port: u16, user: &str, header: &str) -> Raw {
        let mut raw = Raw::connect(port).await;
        raw.send(header).await;
        raw.expect("features").await;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        raw.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        let outcome = raw.expect_any(&["success", "failure"]).await;
        assert_eq!(
            outcome.head().unwrap().name(),
            "success",
            "login as {user} failed"
        );
        raw.framer.restart();
        raw.send(header).await;
        raw.expect("features").await;
        raw.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>").await;
        let bound = raw.expect("iq").await;
        let jid =
            stanzagate::xml::children::descendant_text(bound.bytes(), "jid").expect("bound jid");
        raw.jid = Some(jid);
        raw
    }

    /// Splits the stream into a reader (which keeps the framer and anything it has
    /// buffered) and the write half.
    pub fn split(self) -> (RawReader, tokio::io::WriteHalf<Conn>) {
        let (half, writer) = tokio::io::split(self.conn);
        (
            RawReader {
                half,
                framer: self.framer,
            },
            writer,
        )
    }

    /// XEP-0198 on: `<enable/>` sent and `<enabled/>` awaited. With `acknowledge`
    /// false the proxy's and server's `<r/>` go unanswered from here on.
    pub async fn enable_sm(&mut self, acknowledge: bool) {
        self.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            .await;
        let enabled = self.expect_any(&["enabled", "failed"]).await;
        assert_eq!(
            enabled.head().unwrap().name(),
            "enabled",
            "{}",
            String::from_utf8_lossy(enabled.bytes())
        );
        if !acknowledge {
            self.sm_received = None;
        }
    }
}

/// A stanza's bytes as text, for assertions and their messages.
pub fn text(stanza: &Stanza) -> String {
    String::from_utf8_lossy(stanza.bytes()).into_owned()
}

/// Matches the stanza with id `id` (for [`Raw::until`]).
pub fn has_id(id: &str) -> impl Fn(&Stanza) -> bool + '_ {
    move |s| s.head().is_ok_and(|h| h.id().as_deref() == Some(id))
}
