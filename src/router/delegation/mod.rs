//! XEP-0355 Namespace Delegation in admin mode: which client IQs go to a component
//! ([`intercept`]), the envelope ([`wrap`]), the answers ([`reply`]), what is waiting
//! for an answer ([`pending`]), what components are told ([`advertise`]), and the
//! disco#info the client sees ([`disco`]).
//!
//! The rules come from the live config on every IQ, so a reload applies to the very
//! next one; entries already waiting are answered whatever the new rules say.

pub mod advertise;
pub mod disco;
pub mod intercept;
pub mod pending;
pub mod reply;
pub mod table;
pub mod wrap;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::{Config, ConfigHandle};
use crate::hub::{Command, Hub};
use crate::xml::{Head, Stanza};
use pending::{Outcome, Pending, Waiting};
use reply::Original;
use table::{Rule, Table};

pub use intercept::Decision;

/// The delegation service shared by every session.
pub struct Delegations {
    hub: Arc<Hub>,
    config: Arc<ConfigHandle>,
    table: ArcSwap<Cached>,
    pub pending: Pending,
    pub disco: disco::DiscoCache,
}

/// The table built for one config generation.
struct Cached {
    config: Option<Arc<Config>>,
    table: Arc<Table>,
}

impl Delegations {
    pub fn new(hub: Arc<Hub>, config: Arc<ConfigHandle>) -> Self {
        Delegations {
            hub,
            config,
            table: ArcSwap::from_pointee(Cached {
                config: None,
                table: Arc::new(Table::default()),
            }),
            pending: Pending::default(),
            disco: disco::DiscoCache::default(),
        }
    }

    /// The rules of `cfg`, rebuilt only when the config changed.
    pub fn table(&self, cfg: &Arc<Config>) -> Arc<Table> {
        let cached = self.table.load();
        if cached.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, cfg)) {
            return cached.table.clone();
        }
        let table = Arc::new(Table::from_config(cfg));
        self.table.store(Arc::new(Cached {
            config: Some(cfg.clone()),
            table: table.clone(),
        }));
        table
    }

    /// The rules of the live config.
    pub fn current(&self) -> Arc<Table> {
        self.table(&self.config.current())
    }

    /// The decision for one client stanza of a session on `domain`.
    pub fn decide(&self, head: &Head, domain: &str) -> Decision {
        let table = self.current();
        if table.is_empty() {
            return Decision::Pass;
        }
        intercept::decide(head, domain, &table)
    }

    /// Wraps a client IQ and hands it to the rule's component. Returns the error the
    /// client must get instead when that is impossible (checklist 22).
    pub fn delegate(
        self: &Arc<Self>,
        rule: &Rule,
        stanza: &Stanza,
        head: &Head,
        sender: &str,
    ) -> Option<Bytes> {
        let original = Original {
            sender: sender.to_owned(),
            id: head.id().map(|id| id.into_owned()).unwrap_or_default(),
            to: head.to().map(|to| to.into_owned()),
        };
        let Some(component) = self.hub.components.get(&rule.component) else {
            pending::count(&rule.ns, Outcome::ComponentOffline);
            return Some(reply::service_unavailable(
                &original,
                Some("the service is not connected"),
            ));
        };
        let id = crate::util::random_id();
        let wrapped = wrap::wrapper(
            stanza,
            head,
            &rule.domain,
            &rule.component,
            &id,
            rule.wrapper_ns(),
            sender,
        );
        let waiting = Waiting::Client {
            original: original.clone(),
            ns: rule.ns.clone(),
            wrapper_ns: rule.wrapper_ns(),
            started: Instant::now(),
        };
        let timeout = self.config.current().limits.delegation_timeout;
        self.pending
            .insert(self, id.clone(), rule.component.clone(), waiting, timeout);
        tracing::trace!(%id, "delegating");
        if component.send(wrapped).is_err() {
            self.pending.remove(&id);
            pending::count(&rule.ns, Outcome::ComponentOffline);
            return Some(reply::service_unavailable(
                &original,
                Some("the service is not reachable"),
            ));
        }
        None
    }

    /// A stanza from `component`: consumed (`true`) if it answers something the proxy
    /// asked. Only the exact component JID may answer, once (checklist 25).
    pub fn component_reply(&self, component: &str, stanza: &Stanza, head: &Head) -> bool {
        if head.name() != "iq" || !matches!(head.type_().as_deref(), Some("result" | "error")) {
            return false;
        }
        let Some(id) = head.id() else { return false };
        tracing::trace!(%id, known = self.pending.is_for(&id, component), "component reply");
        if !self.pending.is_for(&id, component) {
            return false;
        }
        if head.from().as_deref() != Some(component) {
            // Right id, wrong sender: swallowed, the entry keeps waiting for the real one.
            tracing::warn!(component, from = ?head.from(), "delegation reply from the wrong JID dropped");
            return true;
        }
        let Some((_, waiting)) = self.pending.remove(&id) else {
            return true;
        };
        match waiting {
            Waiting::Client {
                original,
                ns,
                wrapper_ns,
                started,
            } => {
                let (answer, outcome) = client_answer(stanza, head, wrapper_ns, &original);
                pending::count(&ns, outcome);
                pending::observe(started);
                self.deliver(&original.sender, answer);
            }
            Waiting::Nesting { domain, ns, level } => {
                self.disco
                    .store(component, &domain, &ns, level, stanza, head);
            }
        }
        true
    }

    /// A component went away: everything waiting on it is answered now (checklist 7).
    pub fn component_gone(&self, component: &str) {
        tracing::debug!(
            component,
            pending = self.pending.len(),
            "answering what waits on a gone component"
        );
        for (_, waiting) in self.pending.drain_component(component) {
            if let Waiting::Client { original, ns, .. } = waiting {
                pending::count(&ns, Outcome::ComponentOffline);
                let text = "the service disconnected before answering";
                self.deliver(
                    &original.sender,
                    reply::service_unavailable(&original, Some(text)),
                );
            }
        }
        self.disco.forget_component(component);
    }

    /// Hands an answer to the client's session (wherever it is now, e.g. after a
    /// resume).
    pub fn deliver(&self, jid: &str, answer: Bytes) {
        match self.hub.sessions.get(jid) {
            Some(session) => {
                if session.send(Command::ToClient(answer)).is_err() {
                    tracing::warn!(
                        jid,
                        "session gone or too far behind; delegation answer dropped"
                    );
                }
            }
            None => tracing::debug!(jid, "session gone; delegation answer dropped"),
        }
    }

    /// The disco#info queries to send a component whose delegations just became
    /// active (checklist 32), registered as pending so their answers are consumed.
    pub fn nesting_queries(self: &Arc<Self>, component: &str, rules: &[Arc<Rule>]) -> Vec<Bytes> {
        let timeout = self.config.current().limits.delegation_timeout;
        disco::nesting_queries(component, rules, |id, waiting| {
            self.pending
                .insert(self, id, component.to_owned(), waiting, timeout)
        })
    }
}

/// The client's answer to a component reply, and how to count it.
fn client_answer(
    stanza: &Stanza,
    head: &Head,
    wrapper_ns: &str,
    original: &Original,
) -> (Bytes, Outcome) {
    if head.type_().as_deref() == Some("error") {
        let text = "the service returned an error";
        return (
            reply::service_unavailable(original, Some(text)),
            Outcome::ComponentError,
        );
    }
    match reply::unwrap_result(stanza.bytes(), wrapper_ns, original) {
        Ok(answer) => (answer, Outcome::Answered),
        Err(rejected) => {
            tracing::warn!(%rejected, "malformed delegation reply");
            let text = "the service sent a malformed reply";
            (
                reply::service_unavailable(original, Some(text)),
                Outcome::Malformed,
            )
        }
    }
}
