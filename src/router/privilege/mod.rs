//! XEP-0356 Privileged Entity retrofitted onto a legacy server that knows nothing of
//! privileges: the proxy advertises what `proxy.toml` grants ([`advertise`]), refuses
//! everything else exactly as for an unprivileged entity, and carries out roster
//! ([`roster`]), message ([`message`]) and IQ ([`iq`]) operations on the user's own
//! stream ([`inject`]). It copies presence ([`presence`]) and roster pushes
//! ([`pushes`]) from the users' streams to the entities entitled to them.

use crate::xml::ns::{NS_PRIVILEGE, NS_ROSTER};

pub mod advertise;
pub mod inject;
pub mod iq;
pub mod message;
pub mod presence;
pub mod pushes;
pub mod roster;
pub mod subscription;
pub mod table;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use metrics::counter;

use crate::config::Config;
use crate::config::ConfigHandle;
use crate::hub::{bare, Hub};
use crate::roster::RosterService;
use crate::xml::writer::{stanza_error, StanzaError};
use crate::xml::{Head, Stanza};
use table::Table;

pub const OPERATIONS_TOTAL: &str = "stanzagate_privileged_operations_total";
pub const COPIES_TOTAL: &str = "stanzagate_privileged_copies_total";

/// A privileged operation, as a metric label.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    RosterGet,
    RosterSet,
    Message,
    Iq,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::RosterGet => "roster_get",
            Op::RosterSet => "roster_set",
            Op::Message => "message",
            Op::Iq => "iq",
        }
    }
}

pub fn count(op: Op, outcome: &'static str) {
    counter!(OPERATIONS_TOTAL, "operation" => op.label(), "outcome" => outcome).increment(1);
}

fn count_copy(kind: &'static str, n: usize) {
    if n > 0 {
        counter!(COPIES_TOTAL, "kind" => kind).increment(n as u64);
    }
}

/// An IQ error to an entity.
pub fn iq_error(
    from: &str,
    to: &str,
    id: &str,
    kind: &str,
    condition: &str,
    text: Option<&str>,
) -> Bytes {
    stanza_error(&StanzaError {
        name: "iq",
        id: Some(id),
        from: Some(from),
        to: Some(to),
        error_type: kind,
        condition,
        text,
        xmlns: None,
    })
}

/// Sends a stanza the proxy made to a connected component.
pub fn answer_component(hub: &Hub, component: &str, stanza: Bytes) {
    match hub.components.get(component) {
        Some(handle) => {
            if handle.send(stanza).is_err() {
                tracing::warn!(
                    component,
                    "component gone or too far behind; stanza dropped"
                );
            }
        }
        None => tracing::debug!(component, "component gone; stanza dropped"),
    }
}

/// The privilege service shared by every session.
pub struct Privilege {
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<ConfigHandle>,
    pub(crate) roster: Arc<RosterService>,
    table: ArcSwap<(Option<Arc<Config>>, Arc<Table>)>,
    pub presence: presence::Book,
    pub pushes: pushes::Pushes,
}

impl Privilege {
    pub fn new(hub: Arc<Hub>, config: Arc<ConfigHandle>, roster: Arc<RosterService>) -> Self {
        Privilege {
            hub,
            config,
            roster,
            table: ArcSwap::from_pointee((None, Arc::new(Table::default()))),
            presence: presence::Book::default(),
            pushes: pushes::Pushes::default(),
        }
    }

    /// The grants of `cfg`, rebuilt only when the config changed.
    pub fn table(&self, cfg: &Arc<Config>) -> Arc<Table> {
        let cached = self.table.load();
        if cached.0.as_ref().is_some_and(|c| Arc::ptr_eq(c, cfg)) {
            return cached.1.clone();
        }
        let table = Arc::new(Table::from_config(cfg));
        self.table
            .store(Arc::new((Some(cfg.clone()), table.clone())));
        table
    }

    /// The grants of the live config.
    pub fn current(&self) -> Arc<Table> {
        self.table(&self.config.current())
    }

    /// A stanza from `component`: consumed (`true`) when it is a privileged operation
    /// or an answer to a roster push copy. Ordinary stanzas, including IQs without
    /// `<privileged_iq/>`, pass (checklist 64).
    pub fn component_stanza(
        self: &Arc<Self>,
        component: &str,
        stanza: &Stanza,
        head: &Head,
    ) -> bool {
        if self.pushes.is_answer(head) {
            return true;
        }
        let Some(to) = head.to().map(|t| t.into_owned()) else {
            return false;
        };
        let (node, domain) = match to.split_once('@') {
            Some((node, domain)) => (Some(node), domain.to_ascii_lowercase()),
            None => (None, to.to_ascii_lowercase()),
        };
        if to.contains('/') || self.config.current().host(&domain).is_none() {
            return false;
        }
        let table = self.current();
        let privileges = table.get(&domain, component);
        match head.name() {
            "message" if node.is_none() && message::is_wrapper(head) => {
                message::handle(self, component, &domain, stanza, head, privileges);
                true
            }
            "iq" if matches!(head.type_().as_deref(), Some("get" | "set")) => {
                let Some(child) = head.child() else {
                    return false;
                };
                match (child.name(), child.ns()) {
                    ("privileged_iq", Some(NS_PRIVILEGE)) => {
                        match iq::check(component, &to, stanza, head, privileges) {
                            Ok(checked) => {
                                tokio::spawn(iq::run(self.clone(), checked));
                            }
                            Err(refusal) => {
                                count(Op::Iq, "refused");
                                answer_component(&self.hub, component, refusal);
                            }
                        }
                        true
                    }
                    ("query", Some(NS_ROSTER)) if node.is_some() => {
                        let op = roster::RosterOp::parse(component, &to, stanza, head);
                        match op.refused(privileges) {
                            Some(refusal) => {
                                count(
                                    if op.set { Op::RosterSet } else { Op::RosterGet },
                                    "refused",
                                );
                                answer_component(&self.hub, component, refusal);
                            }
                            None if self.roster.owns(&domain) => {
                                tokio::spawn(roster::run_web_app(self.clone(), op, domain));
                            }
                            None => {
                                tokio::spawn(roster::run(self.clone(), op));
                            }
                        }
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// A user's broadcast presence, from the session `full`.
    pub fn user_presence(&self, full: &str, stanza: &Stanza, head: &Head) {
        let copies = self.presence.user(&self.current(), full, stanza, head);
        self.send_copies("presence", copies);
    }

    /// A presence the session `full` received.
    pub fn contact_presence(&self, full: &str, stanza: &Stanza, head: &Head) {
        let table = self.current();
        if !table.wants(full, |p| p.presence == crate::config::PresencePerm::Roster) {
            return;
        }
        let max = self.config.current().limits.quotas.max_presence_book;
        let copies = self
            .presence
            .contact(&self.hub.sessions, max, &table, full, stanza, head);
        self.send_copies("presence", copies);
    }

    /// A roster push the session `full` received.
    pub fn roster_push(&self, full: &str, stanza: &Stanza, head: &Head) {
        let user = full.split('/').next().unwrap_or(full);
        let table = self.current();
        if !table.wants(user, |p| p.roster.allows_get() && p.roster_push) {
            return;
        }
        let copies = self.pushes.push(&table, user, stanza, head);
        self.send_copies("roster_push", copies);
    }

    /// A roster change the proxy made itself (web-app rosters): copied to entities.
    pub fn roster_changed(&self, user: &str, query: Bytes) {
        let copies = self.pushes.copies(&self.current(), user, &query);
        self.send_copies("roster_push", copies);
    }

    /// The session `full` ended (already removed from the session registry), with
    /// its last available presence if it had one.
    pub fn session_ended(&self, full: &str, was_available: bool) {
        let last = self.hub.sessions.resources(bare(full)).is_empty();
        let copies = self
            .presence
            .session_ended(&self.current(), full, was_available, last);
        self.send_copies("presence", copies);
    }

    fn send_copies(&self, kind: &'static str, copies: Vec<(String, Bytes)>) {
        count_copy(kind, copies.len());
        for (entity, stanza) in copies {
            answer_component(&self.hub, &entity, stanza);
        }
    }
}
