//! An authenticated component relayed to its upstream link. Each direction reads top
//! to bottom — read → frame → head → verdict → apply → write: every component stanza
//! gets a verdict ([`crate::router::component`]) before anything reaches the legacy
//! server; what the proxy queued for the component (copies, delegated IQs) is written
//! in fair order from its queue.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::advertise::Advertised;
use super::link::Link;
use crate::config::Config;
use crate::hub::ComponentQueue;
use crate::jid::Domain;
use crate::metrics::{self as proxy_metrics, Flow, FlowCounters};
use crate::net::{read_some, until_end, within, Conn, Outbox, CLOSE_GRACE};
use crate::router::component::{self, ComponentVerdict, ComponentView};
use crate::shared::Shared;
use crate::xml::ns::NS_STREAMS;
use crate::xml::writer::stream_error;
use crate::xml::{Frame, Framer, Head, Stanza};

/// The component's connection as relaying takes it over.
pub struct Accepted {
    pub conn: Conn,
    pub framer: Framer,
    pub out: Outbox,
}

pub struct ComponentSession {
    shared: Arc<Shared>,
    name: Domain,
    advertised: Advertised,
    config: watch::Receiver<Arc<Config>>,
    config_open: bool,
    conn: Conn,
    framer: Framer,
    out: Outbox,
    link: Link,
    queue: Arc<ComponentQueue>,
    /// This connection's claim on the name in the component registry.
    claim: u64,
    up: FlowCounters,
    down: FlowCounters,
}

enum Stop {
    ComponentEnded,
    LinkEnded,
    ComponentGone,
    /// Writing to the component failed; what it sent before may still be readable.
    ComponentUnwritable,
    LinkGone,
    ComponentError(&'static str, String),
}

impl Stop {
    fn label(&self) -> &'static str {
        match self {
            Stop::ComponentEnded => "component ended its stream",
            Stop::LinkEnded => "server ended the link",
            Stop::ComponentGone => "component connection lost",
            Stop::ComponentUnwritable => "writing to the component failed",
            Stop::LinkGone => "link lost",
            Stop::ComponentError(..) => "component stream error",
        }
    }
}

enum Wake {
    Component(std::io::Result<usize>),
    Link(std::io::Result<usize>),
    Queued(Vec<Bytes>),
    Config(bool),
}

impl ComponentSession {
    pub fn new(
        shared: Arc<Shared>,
        name: Domain,
        accepted: Accepted,
        link: Link,
        queue: Arc<ComponentQueue>,
        claim: u64,
    ) -> Self {
        let config = shared.config.subscribe();
        ComponentSession {
            shared,
            name,
            advertised: Advertised::default(),
            config,
            config_open: true,
            conn: accepted.conn,
            framer: accepted.framer,
            out: accepted.out,
            link,
            queue,
            claim,
            up: FlowCounters::new(Flow::ComponentToServer),
            down: FlowCounters::new(Flow::ServerToComponent),
        }
    }

    pub async fn run(mut self) {
        // Right after <handshake/>, before anything else (checklist 3, 12, 38), then
        // the presences the entity is entitled to (checklist 68).
        self.advertise();
        let privilege = &self.shared.privilege;
        let dump = privilege.presence.dump(
            &self.shared.hub.sessions,
            &privilege.current(),
            self.name.as_str(),
        );
        for presence in dump {
            self.out.push(presence);
        }
        let stop = self.relay().await;
        self.stop(stop).await;
    }

    async fn relay(&mut self) -> Stop {
        let write_timeout = self.shared.config.current().limits.write_timeout;
        loop {
            let flushed = within(write_timeout, async {
                if self.link.out.flush(&mut self.link.conn).await.is_err() {
                    return Err(Stop::LinkGone);
                }
                if self.out.flush(&mut self.conn).await.is_err() {
                    return Err(Stop::ComponentUnwritable);
                }
                Ok(())
            })
            .await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(stop)) => return stop,
                Err(_) => {
                    tracing::info!("component or link read nothing for {write_timeout:?}");
                    return Stop::ComponentGone;
                }
            }
            let wake = tokio::select! {
                r = read_some(&mut self.conn, &mut self.framer) => Wake::Component(r),
                r = read_some(&mut self.link.conn, &mut self.link.framer) => Wake::Link(r),
                batch = self.queue.next_batch() => Wake::Queued(batch),
                c = self.config.changed(), if self.config_open => Wake::Config(c.is_ok()),
            };
            let step = match wake {
                Wake::Component(Ok(0)) | Wake::Component(Err(_)) => Err(Stop::ComponentGone),
                Wake::Component(Ok(_)) => self.drain_component(),
                Wake::Link(Ok(0)) | Wake::Link(Err(_)) => Err(Stop::LinkGone),
                Wake::Link(Ok(_)) => self.drain_link(),
                Wake::Queued(batch) => {
                    for stanza in batch {
                        self.out.push(stanza);
                    }
                    Ok(())
                }
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

    fn advertise(&mut self) {
        for message in self.advertised.update(&self.shared, self.name.as_str()) {
            self.out.push(message);
        }
    }

    // ---- component → server ------------------------------------------------------

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
        let name = self.name.as_str();
        let (delegation, privilege) = (&self.shared.delegation, &self.shared.privilege);
        let ns = self
            .shared
            .config
            .current()
            .component(name)
            .map(|c| c.privilege_namespace)
            .unwrap_or_default();
        let view = ComponentView {
            name: &self.name,
            awaits_reply: &|id| delegation.awaits_reply(id, name),
            privileged: &|head| privilege.classify(head, ns),
        };
        let verdict = component::verdict(&view, head);
        self.apply(&stanza, head, verdict)
    }

    /// The one place a component stanza's verdict is carried out.
    fn apply(
        &mut self,
        stanza: &Stanza,
        head: &Head,
        verdict: ComponentVerdict,
    ) -> Result<(), Stop> {
        let name = self.name.as_str();
        if let Some(label) = verdict.label() {
            ::metrics::counter!(proxy_metrics::VERDICTS_TOTAL, "direction" => "component", "verdict" => label)
                .increment(1);
        }
        match verdict {
            ComponentVerdict::Pass => self.link.out.push(stanza.bytes().clone()),
            ComponentVerdict::DelegationReply => {
                self.shared.delegation.component_reply(name, stanza, head)
            }
            ComponentVerdict::Privileged(operation) => self
                .shared
                .privilege
                .carry_out(name, stanza, head, operation),
            ComponentVerdict::Bounce(error) => self.out.push(error),
            ComponentVerdict::Drop => {}
            ComponentVerdict::End(end) => {
                return Err(Stop::ComponentError(end.condition, end.text))
            }
        }
        Ok(())
    }

    // ---- server → component --------------------------------------------------------

    fn drain_link(&mut self) -> Result<(), Stop> {
        let (mut stanzas, mut bytes) = (0u64, 0u64);
        let result = loop {
            match self.link.framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    bytes += stanza.len() as u64;
                    stanzas += 1;
                    if let Ok(head) = stanza.head() {
                        if head.name() == "error" && head.ns() == Some(NS_STREAMS) {
                            proxy_metrics::stream_error("upstream-link", "server");
                        }
                        // A subscription step the proxy does for the component's
                        // contact: answered on the link, never shown to the component.
                        if let Some(replies) = self.expected_presence(head) {
                            for reply in replies {
                                self.link.out.push(reply);
                            }
                            continue;
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

    /// The replies of the expectation a subscription presence from the server meets
    /// (see `crate::hub::Subscriptions`), if it meets one.
    fn expected_presence(&self, head: &Head) -> Option<Vec<bytes::Bytes>> {
        if head.name() != "presence" {
            return None;
        }
        let kind = head.type_()?;
        // A probe only when expected: it follows a pre-approval (`from` alone).
        if !matches!(kind.as_ref(), "subscribe" | "subscribed" | "probe") {
            return None;
        }
        let user = crate::jid::Jid::parse(&head.from()?).ok()?;
        let contact = crate::jid::Jid::parse(&head.to()?).ok()?;
        let (user, contact) = (user.bare(), contact.bare());
        let expected = self.shared.hub.subscriptions.take(
            self.name.as_str(),
            user.as_str(),
            contact.as_str(),
            &kind,
        )?;
        Some(expected.replies)
    }

    // ---- ending ----------------------------------------------------------------------

    async fn stop(mut self, stop: Stop) {
        tracing::debug!(reason = stop.label(), "component relay ends");
        if let Stop::ComponentUnwritable = stop {
            self.salvage().await;
        }
        // Nothing more is queued for this connection, and everything still waiting on
        // it is answered now (checklist 7), exactly once.
        let name = self.name.as_str().to_owned();
        self.queue.close();
        self.shared.delegation.component_gone(&name);
        let close = Bytes::from_static(b"</stream:stream>");
        let mut await_link_close = true;
        match stop {
            // The component's own close tag was already relayed.
            Stop::ComponentEnded => {}
            Stop::ComponentGone | Stop::ComponentUnwritable => self.link.out.push(close),
            Stop::LinkEnded => await_link_close = false,
            Stop::LinkGone => {
                await_link_close = false;
                proxy_metrics::stream_error("remote-connection-failed", "proxy");
                self.out.push(stream_error(
                    "remote-connection-failed",
                    Some("lost the component link to the upstream server"),
                    "</stream:stream>",
                ));
            }
            Stop::ComponentError(condition, text) => {
                tracing::info!(condition, %text, "closing component stream");
                proxy_metrics::stream_error(condition, "proxy");
                self.out
                    .push(stream_error(condition, Some(&text), "</stream:stream>"));
                self.link.out.push(close);
            }
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            let _ = self.out.flush(&mut self.conn).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.conn).await;
            let _ = self.link.out.flush(&mut self.link.conn).await;
            // The server must have let go of the name before a reconnecting component
            // gets it: its close tag says so.
            if await_link_close {
                until_end(&mut self.link.conn, &mut self.link.framer).await;
            }
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.link.conn).await;
        })
        .await;
        // Only now may another connection claim the name (it waits for this, see
        // `ComponentRegistry::claim_within`).
        self.shared.hub.components.release(&name, self.claim);
    }

    /// Reads what the component sent before writing to it failed (delegation answers
    /// among it): the kernel keeps received bytes readable after the peer is gone.
    async fn salvage(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            loop {
                match read_some(&mut self.conn, &mut self.framer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if self.drain_component().is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .await;
    }
}
