//! What the proxy is waiting for from components: delegated client IQs and its own
//! disco#info nesting queries, by unguessable wrapper id, each with a deadline.
//! Every client entry ends in exactly one answer: the component's, a timeout, or the
//! component's disconnection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use metrics::{counter, gauge, histogram};
use tokio::task::AbortHandle;

use super::disco::Level;
use super::reply::Original;
use super::Delegations;
use crate::util::Slot;

pub const DELEGATED_TOTAL: &str = "stanzagate_delegated_iqs_total";
pub const PENDING_GAUGE: &str = "stanzagate_delegation_pending";
pub const RTT_SECONDS: &str = "stanzagate_delegation_rtt_seconds";

/// How a delegated IQ ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    ComponentError,
    Malformed,
    Timeout,
    ComponentOffline,
    /// A quota refused it (`resource-constraint` to the client).
    Refused,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::ComponentError => "component_error",
            Outcome::Malformed => "malformed",
            Outcome::Timeout => "timeout",
            Outcome::ComponentOffline => "component_offline",
            Outcome::Refused => "refused",
        }
    }
}

pub fn count(ns: &str, outcome: Outcome) {
    counter!(DELEGATED_TOTAL, "namespace" => ns.to_owned(), "outcome" => outcome.label())
        .increment(1);
}

pub fn observe(started: Instant) {
    histogram!(RTT_SECONDS).record(started.elapsed().as_secs_f64());
}

/// Where the answer to a delegated IQ goes.
pub enum AnswerTo {
    /// The client session that sent it (`Original::sender`, a full JID).
    Session,
    /// Whoever sent it for a user without that user's session (a privileged entity):
    /// handed the answer as the user's session would have got it.
    Callback(Box<dyn FnOnce(bytes::Bytes) + Send + Sync>),
}

impl std::fmt::Debug for AnswerTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerTo::Session => f.write_str("Session"),
            AnswerTo::Callback(_) => f.write_str("Callback"),
        }
    }
}

/// What one wrapper id stands for.
#[derive(Debug)]
pub enum Waiting {
    Client {
        original: Original,
        answer_to: AnswerTo,
        ns: String,
        wrapper_ns: &'static str,
        started: Instant,
        /// Held while the IQ waits: the quotas it counts against (per session, per
        /// component).
        slots: Box<[Slot]>,
    },
    Nesting {
        domain: String,
        ns: String,
        level: Level,
    },
}

struct Entry {
    component: String,
    waiting: Waiting,
    timer: Option<AbortHandle>,
}

#[derive(Default)]
pub struct Pending {
    by_id: DashMap<String, Entry>,
}

impl Pending {
    /// Registers `waiting` under `id`; after `timeout` it is answered as timed out.
    pub fn insert(
        &self,
        service: &Arc<Delegations>,
        id: String,
        component: String,
        waiting: Waiting,
        timeout: Duration,
    ) {
        // The entry exists before its timer can fire, however short the timeout.
        self.by_id.insert(
            id.clone(),
            Entry {
                component,
                waiting,
                timer: None,
            },
        );
        gauge!(PENDING_GAUGE).increment(1.0);
        let service = Arc::downgrade(service);
        let timer_id = id.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(service) = service.upgrade() {
                expire(&service, &timer_id);
            }
        })
        .abort_handle();
        match self.by_id.get_mut(&id) {
            Some(mut entry) => entry.timer = Some(timer),
            None => timer.abort(),
        }
    }

    /// Whether `id` is waiting for an answer from `component`.
    pub fn is_for(&self, id: &str, component: &str) -> bool {
        self.by_id.get(id).is_some_and(|e| e.component == component)
    }

    /// Takes the entry out (at most once: concurrent callers get `None`).
    pub fn remove(&self, id: &str) -> Option<(String, Waiting)> {
        let (_, entry) = self.by_id.remove(id)?;
        if let Some(timer) = entry.timer {
            timer.abort();
        }
        gauge!(PENDING_GAUGE).decrement(1.0);
        Some((entry.component, entry.waiting))
    }

    /// Takes out every entry waiting on `component`.
    pub fn drain_component(&self, component: &str) -> Vec<(String, Waiting)> {
        let ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|e| e.component == component)
            .map(|e| e.key().clone())
            .collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The deadline passed: the client gets `service-unavailable` (checklist 24).
fn expire(service: &Delegations, id: &str) {
    let Some((component, waiting)) = service.pending.remove(id) else {
        return;
    };
    if let Waiting::Client {
        original,
        answer_to,
        ns,
        ..
    } = waiting
    {
        tracing::info!(component, ns, "delegated IQ timed out");
        count(&ns, Outcome::Timeout);
        let text = "the service did not answer in time";
        service.answer(
            &original,
            answer_to,
            super::reply::service_unavailable(&original, Some(text)),
        );
    }
}
