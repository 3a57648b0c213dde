//! An authenticated component relayed to its upstream link. Every component stanza is
//! checked for a `from` in the component's own domain (checklist 5) before it reaches
//! the legacy server; stanzas without `to` are bounced with `bad-request`.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::link::Link;
use crate::admin::metrics::{self, Flow, FlowCounters};
use crate::net::{read_some, Conn, Outbox};
use crate::xml::writer::{stanza_error, StanzaError, NS_COMPONENT};
use crate::xml::{Frame, Framer, Stanza, STREAMS_NS};

pub struct ComponentSession {
    name: String,
    conn: Conn,
    framer: Framer,
    out: Outbox,
    link: Link,
    inbox: mpsc::Receiver<Bytes>,
    up: FlowCounters,
    down: FlowCounters,
}

enum Stop {
    ComponentEnded,
    LinkEnded,
    ComponentGone,
    LinkGone,
    ComponentError(&'static str, String),
}

enum Wake {
    Component(std::io::Result<usize>),
    Link(std::io::Result<usize>),
    Inbox(Option<Bytes>),
}

impl ComponentSession {
    pub fn new(
        name: String,
        conn: Conn,
        framer: Framer,
        out: Outbox,
        link: Link,
        inbox: mpsc::Receiver<Bytes>,
    ) -> Self {
        ComponentSession {
            name,
            conn,
            framer,
            out,
            link,
            inbox,
            up: FlowCounters::new(Flow::ComponentToServer),
            down: FlowCounters::new(Flow::ServerToComponent),
        }
    }

    pub async fn run(mut self) {
        let stop = self.relay().await;
        self.stop(stop).await;
    }

    async fn relay(&mut self) -> Stop {
        loop {
            if self.link.out.flush(&mut self.link.conn).await.is_err() {
                return Stop::LinkGone;
            }
            if self.out.flush(&mut self.conn).await.is_err() {
                return Stop::ComponentGone;
            }
            let wake = tokio::select! {
                r = read_some(&mut self.conn, &mut self.framer) => Wake::Component(r),
                r = read_some(&mut self.link.conn, &mut self.link.framer) => Wake::Link(r),
                b = self.inbox.recv() => Wake::Inbox(b),
            };
            let step = match wake {
                Wake::Component(Ok(0)) | Wake::Component(Err(_)) => Err(Stop::ComponentGone),
                Wake::Component(Ok(_)) => self.drain_component(),
                Wake::Link(Ok(0)) | Wake::Link(Err(_)) => Err(Stop::LinkGone),
                Wake::Link(Ok(_)) => self.drain_link(),
                Wake::Inbox(Some(stanza)) => {
                    self.out.push(stanza);
                    Ok(())
                }
                // The registry entry holds the sender until we release it.
                Wake::Inbox(None) => Ok(()),
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    fn drain_component(&mut self) -> Result<(), Stop> {
        let (mut stanzas, mut bytes) = (0u64, 0u64);
        let result = loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    bytes += stanza.len() as u64;
                    stanzas += 1;
                    if let Err(stop) = self.component_stanza(stanza) {
                        break Err(stop);
                    }
                }
                Ok(Some(Frame::Whitespace(ws))) => self.link.out.push(ws),
                Ok(Some(Frame::End(end))) => {
                    self.link.out.push(end);
                    break Err(Stop::ComponentEnded);
                }
                Ok(Some(Frame::Header(_))) => {
                    break Err(Stop::ComponentError(
                        "not-well-formed",
                        "unexpected header".into(),
                    ))
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Stop::ComponentError(e.condition(), e.to_string())),
            }
        };
        self.up.stanzas.increment(stanzas);
        self.up.bytes.increment(bytes);
        result
    }

    fn component_stanza(&mut self, stanza: Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::ComponentError("not-well-formed", e.to_string()))?;
        let is_stanza =
            matches!(head.name(), "iq" | "message" | "presence") && head.ns() == Some(NS_COMPONENT);
        if !is_stanza {
            self.link.out.push(stanza.into_bytes());
            return Ok(());
        }
        let from_ok = head
            .from()
            .is_some_and(|from| domain_of(&from).eq_ignore_ascii_case(&self.name));
        if !from_ok {
            return Err(Stop::ComponentError(
                "invalid-from",
                format!("stanzas from this component must come from {}", self.name),
            ));
        }
        if head.to().is_none() {
            if head.type_().as_deref() != Some("error") {
                let bounce = stanza_error(&StanzaError {
                    name: head.name(),
                    id: head.id().as_deref(),
                    from: None,
                    to: head.from().as_deref(),
                    error_type: "modify",
                    condition: "bad-request",
                    text: Some("a component stanza needs a 'to'"),
                    xmlns: None,
                });
                self.out.push(bounce);
            }
            return Ok(());
        }
        self.link.out.push(stanza.into_bytes());
        Ok(())
    }

    fn drain_link(&mut self) -> Result<(), Stop> {
        let (mut stanzas, mut bytes) = (0u64, 0u64);
        let result = loop {
            match self.link.framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    bytes += stanza.len() as u64;
                    stanzas += 1;
                    if let Ok(head) = stanza.head() {
                        if head.name() == "error" && head.ns() == Some(STREAMS_NS) {
                            metrics::stream_error("upstream-link", "server");
                        }
                    }
                    self.out.push(stanza.into_bytes());
                }
                Ok(Some(Frame::Whitespace(ws))) => self.out.push(ws),
                Ok(Some(Frame::End(end))) => {
                    self.out.push(end);
                    break Err(Stop::LinkEnded);
                }
                Ok(Some(Frame::Header(_))) => {}
                Ok(None) => break Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "upstream component link sent bad XML");
                    break Err(Stop::LinkGone);
                }
            }
        };
        self.down.stanzas.increment(stanzas);
        self.down.bytes.increment(bytes);
        result
    }

    async fn stop(mut self, stop: Stop) {
        let close = Bytes::from_static(b"</stream:stream>");
        match stop {
            Stop::ComponentEnded | Stop::ComponentGone => self.link.out.push(close),
            Stop::LinkEnded => {}
            Stop::LinkGone => {
                metrics::stream_error("remote-connection-failed", "proxy");
                self.out.push(crate::xml::writer::stream_error(
                    "remote-connection-failed",
                    Some("lost the component link to the upstream server"),
                    "</stream:stream>",
                ));
            }
            Stop::ComponentError(condition, text) => {
                tracing::info!(condition, %text, "closing component stream");
                metrics::stream_error(condition, "proxy");
                self.out.push(crate::xml::writer::stream_error(
                    condition,
                    Some(&text),
                    "</stream:stream>",
                ));
                self.link.out.push(close);
            }
        }
        let _ = tokio::time::timeout(crate::c2s::CLOSE_GRACE, async {
            let _ = self.link.out.flush(&mut self.link.conn).await;
            let _ = self.out.flush(&mut self.conn).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.link.conn).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.conn).await;
        })
        .await;
    }
}

/// The domain part of a JID string (no validation: only compared).
fn domain_of(jid: &str) -> &str {
    let without_resource = jid.split('/').next().unwrap_or(jid);
    without_resource
        .rsplit('@')
        .next()
        .unwrap_or(without_resource)
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn domain_of_strips_node_and_resource() {
        assert_eq!(domain_of("pubsub.example.org"), "pubsub.example.org");
        assert_eq!(
            domain_of("user@pubsub.example.org/r@s"),
            "pubsub.example.org"
        );
        assert_eq!(domain_of("pubsub.example.org/x"), "pubsub.example.org");
    }
}
