//! Accept loops for client connections and the per-connection driver: TLS (direct or
//! STARTTLS) or a WebSocket upgrade, header checks, opening the upstream stream, then
//! relaying.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::Instrument;

use super::client::{check_header, ClientError, ClientSide};
use super::relay::{Ended, Session};
use super::sm::ResumeStore;
use super::upstream::UpstreamSide;
use crate::config::Config;
use crate::metrics::ConnectionGuard;
use crate::net::proxy_protocol::{self, Endpoints};
use crate::net::{websocket, Conn};
use crate::shared::Shared;
use crate::xml::Framer;

/// Which client listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `listen.c2s`: plaintext first, STARTTLS.
    StartTls,
    /// `listen.c2s_direct_tls`: TLS from the first byte (XEP-0368).
    DirectTls,
    /// `listen.websocket`: XMPP over WebSocket (RFC 7395), plaintext HTTP.
    WebSocket,
    /// `listen.websocket_tls`: the same over TLS.
    WebSocketTls,
}

impl ListenerKind {
    fn label(self) -> &'static str {
        match self {
            ListenerKind::StartTls => "c2s",
            ListenerKind::DirectTls => "c2s_direct_tls",
            ListenerKind::WebSocket => "websocket",
            ListenerKind::WebSocketTls => "websocket_tls",
        }
    }
}

/// Accepts client connections forever; each one runs in its own task.
pub async fn serve(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<Shared>,
    resume: Arc<ResumeStore>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let (shared, resume) = (shared.clone(), resume.clone());
                let span = tracing::info_span!(
                    "c2s",
                    %peer,
                    client = tracing::field::Empty,
                    jid = tracing::field::Empty
                );
                tokio::spawn(handle(tcp, peer, kind, shared, resume).instrument(span));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(
    mut tcp: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Arc<Shared>,
    resume: Arc<ResumeStore>,
) {
    let _guard = ConnectionGuard::new(kind.label());
    let _ = tcp.set_nodelay(true);
    tracing::debug!(%peer, "connected");
    let cfg = shared.config.current();
    let deadline = Instant::now() + cfg.limits.handshake_timeout;
    // The client's real address: from a PROXY protocol header when a listed balancer
    // connects, else the peer's. Logs, metrics and per-address limits use it.
    let trusted = &cfg.listen.proxy_protocol_from;
    let endpoints = match proxy_protocol::endpoints(&mut tcp, peer, trusted, deadline).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            metrics::counter!(PROXY_HEADERS_TOTAL, "outcome" => error.label()).increment(1);
            tracing::info!(%error, "connection closed");
            return;
        }
    };
    let client = endpoints.client;
    if client != peer {
        metrics::counter!(PROXY_HEADERS_TOTAL, "outcome" => "accepted").increment(1);
        tracing::Span::current().record("client", tracing::field::display(client));
    }
    // One port for both: a TLS ClientHello (first byte 0x16, a TLS handshake record)
    // on the STARTTLS port is served as direct TLS (XEP-0368).
    let kind = match kind {
        ListenerKind::StartTls if opens_with_tls(&tcp, deadline).await => ListenerKind::DirectTls,
        kind => kind,
    };
    let quotas = &cfg.limits.quotas;
    let admitted = shared
        .admission
        .connect(client.ip(), quotas.max_connections_per_ip);
    let ended = drive(tcp, kind, shared, resume, endpoints, admitted.is_some()).await;
    drop(admitted);
    match ended {
        Ok(()) => tracing::debug!("closed"),
        Err(error) => tracing::info!(%error, "closed"),
    }
}

/// Whether the connection's first byte starts a TLS handshake record. A connection that
/// sends nothing in time is left to the STARTTLS path, which reports the timeout.
async fn opens_with_tls(tcp: &TcpStream, deadline: Instant) -> bool {
    const TLS_HANDSHAKE: u8 = 0x16;
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE
    )
}

/// PROXY protocol headers on the client listeners, by outcome.
pub const PROXY_HEADERS_TOTAL: &str = "stanzagate_proxy_protocol_headers_total";

/// The large, short-lived negotiation futures (TLS handshakes, the upstream connect,
/// error reporting) and the session are boxed: this task lives as long as the session,
/// and its size is that of its largest await, so inline they would make every idle
/// session's task 8.7 KiB instead of 2.2 KiB.
async fn drive(
    tcp: TcpStream,
    kind: ListenerKind,
    shared: Arc<Shared>,
    resume: Arc<ResumeStore>,
    endpoints: Endpoints,
    admitted: bool,
) -> Result<(), ClientError> {
    let cfg = shared.config.current();
    let deadline = Instant::now() + cfg.limits.handshake_timeout;
    let framer = Framer::new(cfg.framer_limits());
    let conn = match kind {
        ListenerKind::StartTls => Conn::Plain(tcp),
        ListenerKind::DirectTls => {
            let acceptor = shared.server_tls.acceptor();
            Conn::Accepted(Box::new(accept_tls(acceptor, tcp, deadline).await?))
        }
        ListenerKind::WebSocket => websocket(Conn::Plain(tcp), &cfg, deadline).await?,
        ListenerKind::WebSocketTls => {
            let acceptor = shared.server_tls.web_acceptor();
            let tls = accept_tls(acceptor, tcp, deadline).await?;
            websocket(Conn::Accepted(Box::new(tls)), &cfg, deadline).await?
        }
    };
    let mut client = ClientSide::new(conn, framer);
    loop {
        let header = match client.read_header(deadline).await {
            Ok(header) => header,
            Err(error) => return Box::pin(fail(client, None, error)).await,
        };
        if !admitted {
            // Too many connections from this address: told on a stream of its own.
            let domain = header.to.as_deref();
            client.push_stream_error(
                domain,
                "policy-violation",
                Some("too many connections from your address"),
            );
            client.finish().await;
            return Err(ClientError::Refused("max_connections_per_ip"));
        }
        let domain = match check_header(&header, &cfg) {
            Ok(domain) => domain,
            Err(refusal) => {
                client.push_stream_error(None, refusal.condition, Some(refusal.text));
                client.finish().await;
                return Err(ClientError::Refused(refusal.condition));
            }
        };
        if !client.conn.is_tls() && cfg.tls.required {
            client = match Box::pin(starttls_first(client, &domain, &shared, deadline)).await? {
                Some(upgraded) => upgraded,
                None => return Ok(()),
            };
            continue;
        }
        let opening = UpstreamSide::open(&cfg, &shared, &domain, header.raw, endpoints, deadline);
        let upstream = match Box::pin(opening).await {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::warn!(%error, "upstream unavailable");
                client.push_stream_error(
                    Some(&domain),
                    "remote-connection-failed",
                    Some("the upstream server is unreachable"),
                );
                client.finish().await;
                return Ok(());
            }
        };
        match Box::new(Session::new(
            shared.clone(),
            resume.clone(),
            client,
            upstream,
            domain,
            endpoints.client.ip(),
            deadline,
        ))
        .run()
        .await
        {
            Ended::Closed => return Ok(()),
            Ended::StartTls(plain) => {
                let plain = *plain;
                let acceptor = shared
                    .server_tls
                    .acceptor()
                    .ok_or(ClientError::Refused("no certificate configured"))?;
                client = Box::pin(plain.upgrade(acceptor, deadline)).await?;
            }
        }
    }
}

/// The TLS handshake of a direct-TLS or secure WebSocket client, bounded by the login
/// deadline.
async fn accept_tls(
    acceptor: Option<Arc<tokio_rustls::TlsAcceptor>>,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, ClientError> {
    let acceptor = acceptor.ok_or(ClientError::Refused("no certificate configured"))?;
    let tls = tokio::time::timeout_at(deadline, Box::pin(acceptor.accept(tcp)))
        .await
        .map_err(|_| ClientError::Timeout)??;
    Ok(tls)
}

/// The HTTP upgrade to an XMPP WebSocket, bounded by the login deadline.
async fn websocket(conn: Conn, cfg: &Config, deadline: Instant) -> Result<Conn, ClientError> {
    let limits = cfg.framer_limits();
    let bridge = tokio::time::timeout_at(deadline, Box::pin(websocket::upgrade(conn, &limits)))
        .await
        .map_err(|_| ClientError::Timeout)??;
    Ok(Conn::WebSocket(Box::new(bridge)))
}

/// `tls.required`: the proxy negotiates STARTTLS itself before involving the server.
async fn starttls_first(
    mut client: ClientSide,
    domain: &str,
    shared: &Shared,
    deadline: Instant,
) -> Result<Option<ClientSide>, ClientError> {
    let Some(acceptor) = shared.server_tls.acceptor() else {
        client.push_stream_error(
            Some(domain),
            "internal-server-error",
            Some("TLS is not available"),
        );
        client.finish().await;
        return Ok(None);
    };
    if let Err(error) = client.offer_starttls(domain, deadline).await {
        return fail(client, Some(domain), error).await.map(|_| None);
    }
    client.upgrade(acceptor, deadline).await.map(Some)
}

/// Tells the client why negotiation failed, where there is still a stream to say it on.
async fn fail(
    mut client: ClientSide,
    domain: Option<&str>,
    error: ClientError,
) -> Result<(), ClientError> {
    let (condition, text) = match &error {
        ClientError::Framing(e) => (e.condition(), e.to_string()),
        ClientError::Timeout => ("connection-timeout", "negotiation took too long".to_owned()),
        ClientError::Refused(why) => ("policy-violation", (*why).to_owned()),
        // A WebSocket message that is no XMPP.
        ClientError::Io(e) => match websocket::refused_message(e) {
            Some(bad) => (bad.condition(), bad.to_string()),
            None => return Err(error),
        },
        ClientError::Closed | ClientError::WebSocket(_) => return Err(error),
    };
    client.push_stream_error(domain, condition, Some(&text));
    client.finish().await;
    Err(error)
}
