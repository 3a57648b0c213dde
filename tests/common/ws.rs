//! A raw XMPP-over-WebSocket client (RFC 7395): exact messages in both directions, for
//! checking the framing and for hostile input. Every wait is bounded.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use stanzagate::xml::Stanza;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use super::{DOMAIN, PASSWORD};

const WAIT: Duration = Duration::from_secs(15);
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Plain TCP or TLS under the WebSocket.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct Ws {
    ws: WebSocketStream<Box<dyn Io>>,
    /// The subprotocol the server agreed to.
    pub protocol: Option<String>,
    pub jid: Option<String>,
}

/// A message's element name (`""` if it does not parse on its own).
pub fn name_of(text: &str) -> String {
    Stanza::standalone(Bytes::from(text.to_owned()))
        .ok()
        .and_then(|s| s.head().ok().map(|h| h.name().to_owned()))
        .unwrap_or_default()
}

impl Ws {
    /// The upgrade on `path`, offering `protocol` if given.
    pub async fn connect(port: u16, path: &str, protocol: Option<&str>) -> Result<Ws, Error> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        Ws::handshake(Box::new(tcp), port, path, protocol).await
    }

    /// `wss://` trusting `roots`; returns the ALPN protocol the server picked too.
    pub async fn connect_tls(port: u16, roots: rustls::RootCertStore) -> (Ws, Option<Vec<u8>>) {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // What browsers offer.
        let connector = super::certs::connector(roots, &[b"h2", b"http/1.1"]);
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let ws = Ws::handshake(Box::new(tls), port, "/xmpp-websocket", Some("xmpp"))
            .await
            .expect("upgrade");
        (ws, alpn)
    }

    async fn handshake(
        io: Box<dyn Io>,
        port: u16,
        path: &str,
        protocol: Option<&str>,
    ) -> Result<Ws, Error> {
        let mut request = format!("ws://127.0.0.1:{port}{path}").into_client_request()?;
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(protocol).expect("header value"),
            );
        }
        let (ws, response) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, io))
                .await
                .expect("handshake in time")?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Ws {
            ws,
            protocol,
            jid: None,
        })
    }

    pub async fn open(port: u16) -> Ws {
        Ws::connect(port, "/xmpp-websocket", Some("xmpp"))
            .await
            .expect("WebSocket upgrade")
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .await
            .expect("send");
    }

    /// The next text message; `None` once the WebSocket is closed.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message within {WAIT:?}"));
            match message {
                Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message whose element is `name`, skipping others.
    pub async fn expect(&mut self, name: &str) -> String {
        loop {
            match self.next().await {
                Some(text) if name_of(&text) == name => return text,
                Some(_) => {}
                None => panic!("WebSocket closed while waiting for <{name}/>"),
            }
        }
    }

    pub fn open_element() -> String {
        format!("<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>")
    }

    /// Open, SASL PLAIN, restart, bind.
    pub async fn login(port: u16, user: &str) -> Ws {
        let mut ws = Ws::open(port).await;
        ws.login_as(user).await;
        ws
    }

    /// Open, SASL PLAIN, restart, bind on this WebSocket.
    pub async fn login_as(&mut self, user: &str) {
        let ws = self;
        ws.send(&Ws::open_element()).await;
        ws.expect("open").await;
        ws.expect("features").await;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        ws.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        ws.expect("success").await;
        ws.send(&Ws::open_element()).await;
        ws.expect("open").await;
        ws.expect("features").await;
        ws.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>")
            .await;
        let bound = ws.expect("iq").await;
        ws.jid = stanzagate::xml::children::descendant_text(&Bytes::from(bound), "jid");
        assert!(ws.jid.is_some(), "bound");
    }

    /// Waits until the server closes: a `<close/>` and/or the WebSocket close.
    pub async fn expect_closed(&mut self) {
        while let Some(text) = self.next().await {
            assert!(
                matches!(name_of(&text).as_str(), "close" | "error"),
                "unexpected {text}"
            );
        }
    }
}
