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
use crate::hub::{Command, Hub, QueueError};
use crate::jid::Jid;
use crate::util::Slots;
use crate::xml::{Head, Stanza};
use pending::{AnswerTo, Outcome, Pending, Waiting};
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
    /// Delegated IQs waiting, per requesting session and per component.
    per_session: Slots,
    per_component: Slots,
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
            per_session: Slots::new("max_delegations_per_session"),
            per_component: Slots::new("max_delegations_per_component"),
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

    /// After a reload: each session of a user account whose delegations changed gets
    /// the new advertisement (an empty one for a domain withdrawn), as a component
    /// does on its link.
    pub fn readvertise_users(&self, before: &Table, now: &Table) {
        let mut accounts = before.user_delegates();
        accounts.extend(now.user_delegates());
        for account in accounts {
            for full in self.hub.sessions.resources(&account) {
                let (old, new) = (before.for_session(&full), now.for_session(&full));
                if old == new {
                    continue;
                }
                let Some(session) = self.hub.sessions.get(&full) else {
                    continue;
                };
                let ns = crate::xml::ns::NS_DELEGATION_2;
                for ad in advertise::advertisements(&old, &new, &full, ns) {
                    let _ = session.send(Command::ToClient(ad));
                }
            }
        }
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
        self.delegate_to(rule, stanza, head, sender, AnswerTo::Session)
    }

    /// [`Delegations::delegate`] for an IQ sent as a user (`sender`, a bare JID) by
    /// someone else, e.g. a privileged entity: as the server would route the user's
    /// own IQ, whether the user is online or not. `answer` gets the answer the user's
    /// session would have got; the returned error is that answer when the IQ cannot go.
    pub fn delegate_as_user(
        self: &Arc<Self>,
        rule: &Rule,
        stanza: &Stanza,
        head: &Head,
        sender: &str,
        answer: Box<dyn FnOnce(Bytes) + Send + Sync>,
    ) -> Option<Bytes> {
        self.delegate_to(rule, stanza, head, sender, AnswerTo::Callback(answer))
    }

    fn delegate_to(
        self: &Arc<Self>,
        rule: &Rule,
        stanza: &Stanza,
        head: &Head,
        sender: &str,
        answer_to: AnswerTo,
    ) -> Option<Bytes> {
        let original = Original {
            sender: sender.to_owned(),
            id: head.id().map(|id| id.into_owned()).unwrap_or_default(),
            to: head.to().map(|to| to.into_owned()),
        };
        let Some(delegate) = self.delegate_of(&rule.component) else {
            pending::count(&rule.ns, Outcome::ComponentOffline);
            return Some(reply::service_unavailable(
                &original,
                Some("the service is not connected"),
            ));
        };
        let cfg = self.config.current();
        let quotas = &cfg.limits.quotas;
        let mut slots = Vec::with_capacity(2);
        // A session's own IQs count against its quota; an entity's count against the
        // entity's privileged-operation quota, where they come from.
        if matches!(answer_to, AnswerTo::Session) {
            let Some(session_slot) = self
                .per_session
                .start(sender, quotas.max_delegations_per_session)
            else {
                pending::count(&rule.ns, Outcome::Refused);
                let text = "too many of your requests are waiting for the service";
                return Some(reply::resource_constraint(&original, text));
            };
            slots.push(session_slot);
        }
        let Some(component_slot) = self
            .per_component
            .start(&rule.component, quotas.max_delegations_per_component)
        else {
            pending::count(&rule.ns, Outcome::Refused);
            let text = "the service has too many requests waiting";
            return Some(reply::resource_constraint(&original, text));
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
        slots.push(component_slot);
        let waiting = Waiting::Client {
            original: original.clone(),
            answer_to,
            ns: rule.ns.clone(),
            wrapper_ns: rule.wrapper_ns(),
            started: Instant::now(),
            slots: slots.into_boxed_slice(),
        };
        let timeout = cfg.limits.delegation_timeout;
        self.pending.insert(
            self,
            id.clone(),
            delegate.name().to_owned(),
            waiting,
            timeout,
        );
        tracing::trace!(%id, "delegating");
        if let Err(error) = delegate.send(sender, wrapped) {
            // Whoever takes the entry out answers: the component's departure may have
            // answered it already (exactly once, checklist 7).
            self.pending.remove(&id)?;
            let (outcome, text) = match error {
                QueueError::Full => (Outcome::Refused, "the service is not keeping up"),
                QueueError::Gone => (Outcome::ComponentOffline, "the service is not reachable"),
            };
            pending::count(&rule.ns, outcome);
            return Some(match error {
                QueueError::Full => reply::resource_constraint(&original, text),
                QueueError::Gone => reply::service_unavailable(&original, Some(text)),
            });
        }
        None
    }

    /// Where a rule's delegate is now: its component link, or, for a user account
    /// (XEP-0355 lets one manage a namespace), one of its sessions: the configured
    /// full JID's, or for a bare JID the available session of highest priority.
    fn delegate_of(&self, jid: &str) -> Option<Delegate> {
        if !jid.contains('@') {
            let handle = self.hub.components.get(jid)?;
            return Some(Delegate::Component(jid.to_owned(), handle));
        }
        if jid.contains('/') {
            let session = self.hub.sessions.get(jid)?;
            return Some(Delegate::User(jid.to_owned(), session));
        }
        let (full, _) = self
            .hub
            .sessions
            .available(jid)
            .into_iter()
            .max_by_key(|(_, priority)| *priority)?;
        let session = self.hub.sessions.get(&full)?;
        Some(Delegate::User(full, session))
    }

    /// Whether the proxy waits for an answer with `id` from `component`.
    pub fn awaits_reply(&self, id: &str, component: &str) -> bool {
        self.pending.is_for(id, component)
    }

    /// An answer a user account's session (`session`, its full JID) sent to a
    /// delegation wrapper it got as a delegate: only that session may answer, once.
    pub fn user_reply(&self, session: &str, stanza: &Stanza, head: &Head) {
        let Some(id) = head.id() else { return };
        if !self.pending.is_for(&id, session) {
            return;
        }
        let Some((_, waiting)) = self.pending.remove(&id) else {
            return;
        };
        if let Waiting::Client {
            original,
            answer_to,
            ns,
            wrapper_ns,
            started,
            ..
        } = waiting
        {
            let (answer, outcome) = client_answer(stanza, head, wrapper_ns, &original);
            pending::count(&ns, outcome);
            pending::observe(started);
            self.answer(&original, answer_to, answer);
        }
    }

    /// An answer from `component` to something the proxy asked (see
    /// [`Delegations::awaits_reply`]). Only the exact component JID may answer, once
    /// (checklist 25); from anyone else it is swallowed and the entry keeps waiting.
    pub fn component_reply(&self, component: &str, stanza: &Stanza, head: &Head) {
        let Some(id) = head.id() else { return };
        let from_component = head
            .from()
            .and_then(|from| Jid::parse(&from).ok())
            .is_some_and(|from| from.is_domain() && from.as_str() == component);
        if !from_component {
            tracing::warn!(component, from = ?head.from(), "delegation reply from the wrong JID dropped");
            return;
        }
        let Some((_, waiting)) = self.pending.remove(&id) else {
            return;
        };
        match waiting {
            Waiting::Client {
                original,
                answer_to,
                ns,
                wrapper_ns,
                started,
                ..
            } => {
                let (answer, outcome) = client_answer(stanza, head, wrapper_ns, &original);
                pending::count(&ns, outcome);
                pending::observe(started);
                self.answer(&original, answer_to, answer);
            }
            Waiting::Nesting { domain, ns, level } => {
                self.disco
                    .store(component, &domain, &ns, level, stanza, head);
            }
        }
    }

    /// A component went away: everything waiting on it is answered now (checklist 7).
    pub fn component_gone(&self, component: &str) {
        self.delegate_gone(component);
        self.disco.forget_component(component);
    }

    /// A delegate (a component, or a user account's session by its full JID) is gone
    /// for good: what waits on it is answered now, not at its timeout.
    pub fn delegate_gone(&self, delegate: &str) {
        tracing::debug!(
            delegate,
            pending = self.pending.len(),
            "answering what waits on a gone delegate"
        );
        for (_, waiting) in self.pending.drain_component(delegate) {
            if let Waiting::Client {
                original,
                answer_to,
                ns,
                ..
            } = waiting
            {
                pending::count(&ns, Outcome::ComponentOffline);
                let text = "the service disconnected before answering";
                self.answer(
                    &original,
                    answer_to,
                    reply::service_unavailable(&original, Some(text)),
                );
            }
        }
    }

    /// Hands the answer to whoever waits for it.
    fn answer(&self, original: &Original, to: AnswerTo, answer: Bytes) {
        match to {
            AnswerTo::Session => self.deliver(&original.sender, answer),
            AnswerTo::Callback(callback) => callback(answer),
        }
    }

    /// Hands an answer to the client's session (wherever it is now, e.g. after a
    /// resume).
    pub fn deliver(&self, jid: &str, answer: Bytes) {
        match self.hub.sessions.get(jid) {
            Some(session) => {
                // Owed: a session too far behind to take it has its stream ended.
                if session.owe(Command::ToClient(answer)).is_err() {
                    tracing::warn!(jid, "delegation answer not delivered: session ended");
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
    match reply::unwrap_result(stanza, wrapper_ns, original) {
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

/// Where a delegated IQ goes.
enum Delegate {
    /// A component: (its name, its handle).
    Component(String, crate::hub::ComponentHandle),
    /// A user account's session: (its full JID, its handle).
    User(String, crate::hub::SessionHandle),
}

impl Delegate {
    /// The name answers must come from (the pending entry's key).
    fn name(&self) -> &str {
        match self {
            Delegate::Component(name, _) => name,
            Delegate::User(full, _) => full,
        }
    }

    fn send(&self, sender: &str, wrapped: Bytes) -> Result<(), QueueError> {
        match self {
            Delegate::Component(_, handle) => handle.send_for(sender, wrapped),
            Delegate::User(_, session) => session
                .send(Command::ToClient(wrapped))
                .map_err(|_| QueueError::Gone),
        }
    }
}
