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
pub mod table;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use metrics::counter;

use crate::config::ConfigHandle;
use crate::config::{Config, PrivilegeNs};
use crate::hub::{bare, Command, Hub};
use crate::jid::{BareJid, Domain, Jid};
use crate::roster::RosterService;
use crate::router::delegation::Delegations;
use crate::store::Store;
use crate::xml::writer::{stanza_error, StanzaError};
use crate::xml::{extract_stanza_for_stream, Head, ReaddressError, Stanza};
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

/// Sends a stanza the proxy made to a privileged entity: a connected component by
/// name, or a user account acting as one, to its session (full JID) or to every
/// session of the account (bare JID: presence copies, pushes, advertisements).
pub fn answer_entity(hub: &Hub, entity: &str, stanza: Bytes) {
    if entity.contains('@') {
        let sessions = match entity.contains('/') {
            true => vec![entity.to_owned()],
            false => hub.sessions.resources(entity),
        };
        for full in sessions {
            if let Some(session) = hub.sessions.get(&full) {
                if session.send(Command::ToClient(stanza.clone())).is_err() {
                    tracing::warn!(
                        entity = full,
                        "entity's session gone or busy; stanza dropped"
                    );
                }
            }
        }
        return;
    }
    match hub.components.get(entity) {
        Some(handle) => {
            if handle.send(stanza).is_err() {
                tracing::warn!(
                    component = entity,
                    "component gone or too far behind; stanza dropped"
                );
            }
        }
        None => tracing::debug!(component = entity, "component gone; stanza dropped"),
    }
}

/// A privileged operation a component asked for (see [`Privilege::classify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// The entity's answer to a roster push copy (consumed, checklist 50).
    PushAnswer,
    /// `<message><privilege><forwarded>` to a served domain.
    Message { domain: Domain },
    /// `<iq><privileged_iq>` to a managed bare JID.
    Iq { to: BareJid },
    /// A roster get or set on a managed user.
    Roster {
        user: BareJid,
        domain: Domain,
        /// The web app owns this domain's rosters.
        web_app: bool,
    },
}

/// `wait/resource-constraint` to an entity with too many operations in progress.
fn busy(component: &str, to: &BareJid, head: &Head) -> Bytes {
    let id = head.id().map(|i| i.into_owned()).unwrap_or_default();
    iq_error(
        to.as_str(),
        component,
        &id,
        "wait",
        "resource-constraint",
        Some("too many privileged operations in progress; retry later"),
    )
}

/// The privilege service shared by every session.
pub struct Privilege {
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<ConfigHandle>,
    pub(crate) roster: Arc<RosterService>,
    pub(crate) store: Arc<dyn Store>,
    /// For the delegation route: privileged IQs in a delegated namespace.
    pub(crate) delegation: Arc<Delegations>,
    table: ArcSwap<(Option<Arc<Config>>, Arc<Table>)>,
    pub presence: presence::Book,
    pub pushes: pushes::Pushes,
    /// Operations in progress per entity.
    ops: crate::util::Slots,
}

impl Privilege {
    pub fn new(
        hub: Arc<Hub>,
        config: Arc<ConfigHandle>,
        roster: Arc<RosterService>,
        store: Arc<dyn Store>,
        delegation: Arc<Delegations>,
    ) -> Self {
        Privilege {
            hub,
            config,
            roster,
            store,
            delegation,
            table: ArcSwap::from_pointee((None, Arc::new(Table::default()))),
            presence: presence::Book::default(),
            pushes: pushes::Pushes::default(),
            ops: crate::util::Slots::new("max_privileged_ops_per_entity"),
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

    fn max_ops(&self) -> usize {
        self.config
            .current()
            .limits
            .quotas
            .max_privileged_ops_per_entity
    }

    /// The grants of the live config.
    pub fn current(&self) -> Arc<Table> {
        self.table(&self.config.current())
    }

    /// Whether `head` answers a roster-push copy sent to an entity.
    pub fn awaits_push_answer(&self, head: &Head) -> bool {
        self.pushes.awaits(head)
    }

    /// What a stanza from a component spoken to in `ns` is to privileges (`None`:
    /// ordinary traffic, including IQs without `<privileged_iq/>`, checklist 64).
    /// Reads only.
    pub fn classify(&self, head: &Head, ns: PrivilegeNs) -> Option<Operation> {
        if self.pushes.awaits(head) {
            return Some(Operation::PushAnswer);
        }
        let to = Jid::parse(&head.to()?).ok()?;
        let Jid::Bare(to) = to else { return None };
        let domain = Domain::from(to.domain());
        self.config.current().host(domain.as_str())?;
        let user = (!to.is_domain()).then(|| to.clone());
        match (head.name(), user) {
            ("message", None) if message::is_wrapper(head, ns) => {
                Some(Operation::Message { domain })
            }
            ("iq", user) if matches!(head.type_().as_deref(), Some("get" | "set")) => {
                let child = head.child()?;
                match (child.name(), child.ns(), user) {
                    ("privileged_iq", Some(NS_PRIVILEGE), _) => Some(Operation::Iq { to }),
                    ("query", Some(NS_ROSTER), Some(user)) => Some(Operation::Roster {
                        web_app: self.roster.owns(domain.as_str()),
                        user,
                        domain,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Carries out what [`Privilege::classify`] found: checks the grant field by
    /// field, answers refusals at once, and runs permitted operations in a task of
    /// their own (at most `max_privileged_ops_per_entity` at once per entity).
    pub fn carry_out(
        self: &Arc<Self>,
        component: &str,
        stanza: &Stanza,
        head: &Head,
        operation: Operation,
    ) {
        let table = self.current();
        // Grants and quotas are the entity's: a component's name, or a user account's
        // bare JID when the request came from one of its sessions (`component` is then
        // that session's full JID, where answers go).
        let entity = crate::hub::bare(component);
        match operation {
            Operation::PushAnswer => self.pushes.answered(head),
            Operation::Message { domain } => {
                let privileges = table.get(domain.as_str(), entity);
                message::handle(self, component, domain.as_str(), stanza, head, privileges);
            }
            Operation::Iq { to } => {
                let domain = Domain::from(to.domain());
                let privileges = table.get(domain.as_str(), entity);
                match iq::check(component, to.as_str(), stanza, head, privileges) {
                    Ok(checked) => match self.ops.start(entity, self.max_ops()) {
                        Some(slot) => {
                            let service = self.clone();
                            tokio::spawn(iq::run(service, checked, slot));
                        }
                        None => {
                            count(Op::Iq, "busy");
                            answer_entity(&self.hub, component, busy(component, &to, head));
                        }
                    },
                    Err(refusal) => {
                        count(Op::Iq, "refused");
                        answer_entity(&self.hub, component, refusal);
                    }
                }
            }
            Operation::Roster {
                user,
                domain,
                web_app,
            } => {
                let privileges = table.get(domain.as_str(), entity);
                let op = roster::RosterOp::parse(component, user.as_str(), stanza, head);
                let kind = if op.set { Op::RosterSet } else { Op::RosterGet };
                if let Some(refusal) = op.refused(privileges) {
                    count(kind, "refused");
                    answer_entity(&self.hub, component, refusal);
                    return;
                }
                let Some(slot) = self.ops.start(entity, self.max_ops()) else {
                    count(kind, "busy");
                    answer_entity(&self.hub, component, busy(component, &user, head));
                    return;
                };
                let service = self.clone();
                tokio::spawn(async move {
                    match web_app {
                        true => roster::run_web_app(service, op, domain.as_str().to_owned()).await,
                        false => roster::run(service, op).await,
                    }
                    drop(slot);
                });
            }
        }
    }

    /// A user's broadcast presence, from the session `full`.
    /// `scoped` is the presence as the proxy re-serialised it for another stream
    /// ([`crate::xml::extract_stanza_for_stream`]).
    pub fn user_presence(&self, full: &str, scoped: &Bytes) {
        let copies = self.presence.user(&self.current(), full, scoped);
        self.send_copies("presence", copies);
    }

    /// A presence the session `full` received.
    pub fn contact_presence(&self, full: &str, stanza: &Stanza) {
        let table = self.current();
        if !table.wants(full, |p| p.presence == crate::config::PresencePerm::Roster) {
            return;
        }
        // Re-parsed in the server stream's namespace context: what reaches the entity
        // is namespace-well-formed on its own, or nothing does.
        let scoped = extract_stanza_for_stream(stanza, 0..stanza.len())
            .map_err(ReaddressError::from)
            .and_then(|scoped| Ok(Stanza::standalone(scoped)?));
        let scoped = match scoped {
            Ok(scoped) => scoped,
            Err(error) => {
                presence::dropped(&error);
                return;
            }
        };
        let Ok(head) = scoped.head() else { return };
        let max = self.config.current().limits.quotas.max_presence_book;
        let copies = self
            .presence
            .contact(&self.hub.sessions, max, &table, full, &scoped, head);
        self.send_copies("presence", copies);
    }

    /// A roster push the session `full` received.
    pub fn roster_push(&self, full: &str, stanza: &Stanza, head: &Head) {
        let user = full.split('/').next().unwrap_or(full);
        let table = self.current();
        if !table.wants(user, |p| p.roster.allows_get() && p.roster_push) {
            return;
        }
        let max = self.config.current().limits.quotas.max_push_copies;
        let copies = self.pushes.push(&table, user, stanza, head, max);
        self.send_copies("roster_push", copies);
    }

    /// After a reload: every user account whose grants changed gets the new
    /// advertisement on all its sessions (an empty one when they were withdrawn), as a
    /// component does on its link.
    pub fn readvertise_users(&self, before: &Table, now: &Table) {
        let users: std::collections::BTreeSet<&str> = before
            .user_entities()
            .union(&now.user_entities())
            .copied()
            .collect();
        for user in users {
            let (old, new) = (before.for_entity(user), now.for_entity(user));
            if old == new {
                continue;
            }
            for ad in advertise::advertisements(&old, &new, user, PrivilegeNs::V2) {
                answer_entity(&self.hub, user, ad);
            }
        }
    }

    /// Stores `op` for `user`'s next login, counted. The refusal the entity gets
    /// otherwise: `(condition, text, metric outcome)`, all of type `wait`.
    pub(crate) fn enqueue(
        &self,
        user: &str,
        op: &crate::store::Queued,
    ) -> Result<(), (&'static str, String, &'static str)> {
        use crate::store::{count, EnqueueError};
        let store = &self.config.current().store;
        let limits = crate::store::Limits {
            per_user: store.max_queued_per_user,
            total: store.max_queued_total,
        };
        match self.store.enqueue(user, op, limits) {
            Ok(_) => {
                count(op.kind, "queued", 1);
                Ok(())
            }
            Err(error @ (EnqueueError::Full { .. } | EnqueueError::StoreFull { .. })) => {
                count(op.kind, "full", 1);
                Err(("resource-constraint", error.to_string(), "queue_full"))
            }
            Err(EnqueueError::Store(error)) => {
                tracing::error!(%error, kind = op.kind.as_str(), "cannot queue an operation");
                count(op.kind, "error", 1);
                let text = "the proxy could not store the operation".to_owned();
                Err(("internal-server-error", text, "store_error"))
            }
        }
    }

    /// A roster IQ the server sent the session `full`: kept in the roster mirror.
    pub fn mirror(
        &self,
        full: &str,
        stanza: &Stanza,
        head: &Head,
        change: crate::acting::mirror::Change,
    ) {
        let user = full.split('/').next().unwrap_or(full);
        crate::acting::mirror::apply(self.store.as_ref(), user, stanza, head, change);
    }

    /// A roster change the proxy made itself (web-app rosters): copied to entities.
    pub fn roster_changed(&self, user: &str, query: Bytes) {
        let max = self.config.current().limits.quotas.max_push_copies;
        let copies = self.pushes.copies(&self.current(), user, &query, max);
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
            answer_entity(&self.hub, &entity, stanza);
        }
    }
}
