//! An authenticated component relayed to its upstream link. Every component stanza is
//! checked for a `from` in the component's own domain (checklist 5) before it reaches
//! the legacy server; stanzas without `to` are bounced with `bad-request`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::link::Link;
use crate::config::{Config, Privileges};
use crate::metrics::{self, Flow, FlowCounters};
use crate::net::{read_some, Conn, Outbox};
use crate::router::delegation::advertise::advertisements;
use crate::router::delegation::table::Rule;
use crate::router::privilege::advertise::advertisements as privilege_advertisements;
use crate::shared::Shared;
use crate::xml::ns::{NS_COMPONENT, NS_DELEGATION_2, NS_STREAMS};
use crate::xml::writer::{stanza_error, StanzaError};
use crate::xml::{Frame, Framer, Stanza};

pub struct ComponentSession {
    shared: Arc<Shared>,
    name: String,
    /// Delegations last advertised, by domain (re-advertised when a reload changes them).
    advertised: BTreeMap<String, Vec<Arc<Rule>>>,
    /// Privileges last advertised, by domain.
    privileges: BTreeMap<String, Privileges>,
    config: watch::Receiver<Arc<Config>>,
    config_open: bool,
    conn: Conn,
    framer: Framer,
    out: Outbox,
    link: Link,
    inbox: mpsc::Receiver<Bytes>,
    /// This connection's claim on the name in the component registry.
    claim: u64,
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
    Config(bool),
}

impl ComponentSession {
    pub fn new(
        shared: Arc<Shared>,
        name: String,
        conn: Conn,
        framer: Framer,
        out: Outbox,
        link: Link,
        inbox: mpsc::Receiver<Bytes>,
        claim: u64,
    ) -> Self {
        let config = shared.config.subscribe();
        ComponentSession {
            shared,
            name,
            advertised: BTreeMap::new(),
            privileges: BTreeMap::new(),
            config,
            config_open: true,
            conn,
            framer,
            out,
            link,
            inbox,
            claim,
            up: FlowCounters::new(Flow::ComponentToServer),
            down: FlowCounters::new(Flow::ServerToComponent),
        }
    }

    pub async fn run(mut self) {
        // Right after <handshake/>, before anything else (checklist 3, 12, 38), then
        // the presences the entity is entitled to (checklist 68).
        self.advertise();
        let table = self.shared.privilege.table(&self.shared.config.current());
        for presence in
            self.shared
                .privilege
                .presence
                .dump(&self.shared.hub.sessions, &table, &self.name)
        {
            self.out.push(presence);
        }
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
                c = self.config.changed(), if self.config_open => Wake::Config(c.is_ok()),
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
                Wake::Config(true) => {
                    self.advertise();
                    Ok(())
                }
                Wake::Config(false) => {
                    self.config_open = false;
                    Ok(())
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Sends the delegation advertisement when it differs from what the component last
    /// got (checklist 12–13), and asks the delegate about newly active namespaces
    /// (checklist 32).
    fn advertise(&mut self) {
        let grants = self
            .shared
            .privilege
            .table(&self.shared.config.current())
            .for_entity(&self.name);
        if grants != self.privileges {
            for message in privilege_advertisements(&self.privileges, &grants, &self.name) {
                self.out.push(message);
            }
            self.privileges = grants;
        }
        let table = self.shared.delegation.table(&self.shared.config.current());
        let rules = table.for_component(&self.name);
        if rules == self.advertised {
            return;
        }
        let cfg = self.shared.config.current();
        let version = cfg
            .component(&self.name)
            .map_or(NS_DELEGATION_2, |c| c.delegation_namespace.as_str());
        for message in advertisements(&self.advertised, &rules, &self.name, version) {
            self.out.push(message);
        }
        let fresh: Vec<Arc<Rule>> = rules
            .values()
            .flatten()
            .filter(|r| !self.advertised.values().flatten().any(|old| old == *r))
            .cloned()
            .collect();
        for query in self.shared.delegation.nesting_queries(&self.name, &fresh) {
            self.out.push(query);
        }
        self.advertised = rules;
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
        if self
            .shared
            .delegation
            .component_reply(&self.name, &stanza, head)
            || self
                .shared
                .privilege
                .component_stanza(&self.name, &stanza, head)
        {
            return Ok(());
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
                        if head.name() == "error" && head.ns() == Some(NS_STREAMS) {
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
        // The name is free and everything waiting on it answered before the closing
        // handshake, so a component that saw its stream close can reconnect at once.
        self.shared
            .hub
            .components
            .release(&self.name, self.claim);
        self.shared.delegation.component_gone(&self.name);
        let close = Bytes::from_static(b"</stream:stream>");
        match stop {
            // The component's own close tag was already relayed.
            Stop::ComponentEnded => {}
            Stop::ComponentGone => self.link.out.push(close),
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
        let _ = tokio::time::timeout(crate::net::CLOSE_GRACE, async {
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
