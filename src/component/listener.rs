//! Accept loop for components and the per-connection driver: header, handshake,
//! name claim, upstream link, then relaying.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::Instrument;

use super::handshake::{check_handshake, check_header, Refusal};
use super::link::Link;
use super::relay::{Accepted, ComponentSession};
use crate::hub::{ComponentHandle, ComponentQueue};
use crate::jid::Domain;
use crate::metrics::{self, ConnectionGuard};
use crate::net::{next_frame, Conn, Outbox};
use crate::shared::Shared;
use crate::xml::ns::NS_COMPONENT;
use crate::xml::writer::{stream_error, stream_header, HeaderSpec};
use crate::xml::{Frame, Framer};

static NEXT_COMPONENT_ID: AtomicU64 = AtomicU64::new(1);

/// How long a component connecting under a name still held by a previous connection
/// waits for that one to be released before it gets `<conflict/>`.
/// It covers the old connection's closing handshake with the server (at most
/// `CLOSE_GRACE`), after which the server has let go of the name too.
const RECONNECT_GRACE: std::time::Duration =
    crate::net::CLOSE_GRACE.saturating_add(std::time::Duration::from_secs(1));

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let span = tracing::info_span!("component", %peer, name = tracing::field::Empty);
                tokio::spawn(handle(tcp, peer, shared.clone()).instrument(span));
            }
            Err(error) => {
                tracing::warn!(%error, "component accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The component's connection before relaying starts.
struct Accepting {
    conn: Conn,
    framer: Framer,
    out: Outbox,
    stream_id: String,
    header_sent: bool,
}

impl Accepting {
    fn send_header(&mut self, name: Option<&str>) {
        if !self.header_sent {
            self.out.push(stream_header(&HeaderSpec {
                default_ns: NS_COMPONENT,
                id: Some(&self.stream_id),
                from: name,
                to: None,
                version: false,
            }));
            self.header_sent = true;
        }
    }

    async fn refuse(mut self, name: Option<&str>, refusal: Refusal) {
        tracing::info!(
            condition = refusal.condition,
            text = refusal.text,
            "component refused"
        );
        metrics::stream_error(refusal.condition, "proxy");
        self.send_header(name);
        self.out.push(stream_error(
            refusal.condition,
            Some(refusal.text),
            "</stream:stream>",
        ));
        let _ = tokio::time::timeout(crate::net::CLOSE_GRACE, async {
            let _ = self.out.flush(&mut self.conn).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.conn).await;
        })
        .await;
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _guard = ConnectionGuard::new("component");
    let _ = tcp.set_nodelay(true);
    tracing::debug!(%peer, "connected");
    let cfg = shared.config.current();
    let accepting = Accepting {
        conn: Conn::Plain(tcp),
        framer: Framer::new(cfg.framer_limits()),
        out: Outbox::default(),
        stream_id: crate::util::random_id(),
        header_sent: false,
    };
    let deadline = Instant::now() + cfg.limits.handshake_timeout;
    match tokio::time::timeout_at(deadline, authenticate(accepting, &shared)).await {
        Ok(Some((accepting, name))) => relay(accepting, name, shared).await,
        Ok(None) => {}
        Err(_) => tracing::info!("component did not authenticate in time"),
    }
}

/// Header and handshake. Returns the authenticated name, or `None` after refusing.
async fn authenticate(mut a: Accepting, shared: &Shared) -> Option<(Accepting, String)> {
    let cfg = shared.config.current();
    let header = loop {
        match next_frame(&mut a.conn, &mut a.framer).await {
            Ok(Frame::Header(header)) => break header,
            Ok(Frame::Whitespace(_)) => {}
            Ok(_) => {
                a.refuse(
                    None,
                    Refusal {
                        condition: "not-well-formed",
                        text: "expected a stream header",
                    },
                )
                .await;
                return None;
            }
            Err(crate::net::ReadFrameError::Framing(e)) => {
                a.refuse(
                    None,
                    Refusal {
                        condition: e.condition(),
                        text: "bad stream header",
                    },
                )
                .await;
                return None;
            }
            Err(_) => return None,
        }
    };
    let name = match check_header(&header, &cfg) {
        Ok(name) => name,
        Err(refusal) => {
            a.refuse(header.to.as_deref(), refusal).await;
            return None;
        }
    };
    tracing::Span::current().record("name", name.as_str());
    a.send_header(Some(&name));
    if a.out.flush(&mut a.conn).await.is_err() {
        return None;
    }
    let stanza = loop {
        match next_frame(&mut a.conn, &mut a.framer).await {
            Ok(Frame::Stanza(stanza)) => break stanza,
            Ok(Frame::Whitespace(_)) => {}
            Ok(_) => return None,
            Err(crate::net::ReadFrameError::Framing(e)) => {
                a.refuse(
                    Some(&name),
                    Refusal {
                        condition: e.condition(),
                        text: "bad XML",
                    },
                )
                .await;
                return None;
            }
            Err(_) => return None,
        }
    };
    let Some(component) = cfg.component(&name) else {
        a.refuse(
            Some(&name),
            Refusal {
                condition: "host-unknown",
                text: "component removed",
            },
        )
        .await;
        return None;
    };
    if let Err(refusal) = check_handshake(&stanza, &a.stream_id, component.secret.expose()) {
        a.refuse(Some(&name), refusal).await;
        return None;
    }
    Some((a, name))
}

async fn relay(mut a: Accepting, name: String, shared: Arc<Shared>) {
    let id = NEXT_COMPONENT_ID.fetch_add(1, Ordering::Relaxed);
    let Ok(domain) = Domain::parse(&name) else {
        a.refuse(
            None,
            Refusal {
                condition: "host-unknown",
                text: "not a domain",
            },
        )
        .await;
        return;
    };
    // Registered, linked and routed under its prepared name, as the rules name it.
    let name = domain.as_str().to_owned();
    let max = shared.config.current().limits.quotas.max_component_queue;
    let queue = ComponentQueue::new(max);
    let handle = ComponentHandle::new(id, queue.clone());
    if !shared
        .hub
        .components
        .claim_within(&name, handle, RECONNECT_GRACE)
        .await
    {
        a.refuse(
            Some(&name),
            Refusal {
                condition: "conflict",
                text: "this component is already connected",
            },
        )
        .await;
        return;
    }
    let cfg = shared.config.current();
    let link = match (
        cfg.upstream.component.as_deref(),
        cfg.component_secret_for_upstream(&name),
    ) {
        (Some(addr), Some(secret)) => {
            Link::open(addr, &name, secret.expose(), cfg.framer_limits()).await
        }
        _ => {
            // Delegated IQs routed to this name while the link was being opened are
            // answered now, not at their timeout.
            queue.close();
            shared.delegation.component_gone(&name);
            shared.hub.components.release(&name, id);
            a.refuse(
                Some(&name),
                Refusal {
                    condition: "internal-server-error",
                    text: "upstream.component is not configured",
                },
            )
            .await;
            return;
        }
    };
    let link = match link {
        Ok(link) => link,
        Err(error) => {
            tracing::warn!(%error, "cannot open the upstream component link");
            // Delegated IQs routed to this name while the link was being opened are
            // answered now, not at their timeout.
            queue.close();
            shared.delegation.component_gone(&name);
            shared.hub.components.release(&name, id);
            a.refuse(
                Some(&name),
                Refusal {
                    condition: "remote-connection-failed",
                    text: "the upstream server did not accept the component link",
                },
            )
            .await;
            return;
        }
    };
    a.out.push_static(b"<handshake/>");
    tracing::info!("component authenticated");
    let accepted = Accepted {
        conn: a.conn,
        framer: a.framer,
        out: a.out,
    };
    let session = ComponentSession::new(shared.clone(), domain, accepted, link, queue, id);
    session.run().await;
    tracing::info!("component disconnected");
}
