//! What routing remembers per client session: answers the server owes for IQs the
//! proxy sent as the user (XEP-0356), whether the client enabled carbons (the server
//! does not copy a sent message back to the session it came from), contacts'
//! subscription acknowledgements to swallow, disco queries probed at the server
//! first (XEP-0355 §7.2.4–5), and whether the client sent its first presence.
//!
//! Verdict functions only read this state; the session's apply step changes it
//! through the methods here. Every collection is bounded: entries whose requester
//! gave up expire, and a full collection refuses new entries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::delegation::table::Rule;
use crate::hub::{ActingError, Reply};
use crate::xml::{Head, Stanza};

/// More outstanding probes than this and the oldest is forgotten (its answer is
/// relayed normally); a client with that many unanswered disco queries misbehaves.
const MAX_PROBES: usize = 64;
/// A contact that has not answered a proxy-sent `subscribe` within this long will
/// not have its late `subscribed` swallowed.
const SUBSCRIBED_WINDOW: Duration = Duration::from_secs(300);

/// An answer the server owes the proxy.
struct Awaiting {
    reply: oneshot::Sender<Reply>,
    /// After this the requester has given up; the entry only consumes the answer.
    deadline: Instant,
}

#[derive(Default)]
pub struct RouteState {
    awaiting: HashMap<String, Awaiting>,
    carbons: bool,
    /// The client's pending carbons request: (id, enable).
    carbons_request: Option<(String, bool)>,
    /// Contacts (bare, prepared) whose `subscribed` answers a proxy-sent `subscribe`.
    expected_subscribed: HashMap<String, Instant>,
    /// Contacts (on a component connected through the proxy) whose `subscribe` the
    /// proxy approves for the user: the user's clients never see the request.
    expected_subscribe: HashMap<String, Instant>,
    probes: HashMap<String, (Stanza, Arc<Rule>)>,
    presence_sent: bool,
    roster_interest: RosterInterest,
    /// The roster version this session last wrote to the mirror.
    mirrored_ver: Option<String>,
}

/// Who made the session an interested resource (RFC 6121 §2.1.6), which decides
/// whether the server's roster pushes are the client's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum RosterInterest {
    /// Nobody asked for the roster: the server sends no pushes.
    #[default]
    Unasked,
    /// Only the proxy did (to see the subscriptions of queued roster sets complete):
    /// the pushes are not the client's, who never asked for the roster.
    Proxy,
    /// The client did: pushes are relayed.
    Client,
}

impl RouteState {
    // ---- read by verdicts ------------------------------------------------------

    /// Whether `id` answers an IQ the proxy sent as the user.
    pub fn awaits(&self, id: &str) -> bool {
        self.awaiting.contains_key(id)
    }

    pub fn carbons_enabled(&self) -> bool {
        self.carbons
    }

    /// The pending carbons request, if this server IQ answers it.
    pub fn carbons_request(&self, id: &str) -> Option<bool> {
        match &self.carbons_request {
            Some((pending, enable)) if pending == id => Some(*enable),
            _ => None,
        }
    }

    /// Whether a `subscribed` from `contact` (bare, prepared) is one the proxy asked
    /// for.
    pub fn expects_subscribed(&self, contact: &str) -> bool {
        self.expected_subscribed
            .get(contact)
            .is_some_and(|at| at.elapsed() < SUBSCRIBED_WINDOW)
    }

    /// Whether the proxy approves `contact`'s `subscribe` for the user.
    pub fn expects_subscribe(&self, contact: &str) -> bool {
        self.expected_subscribe
            .get(contact)
            .is_some_and(|at| at.elapsed() < SUBSCRIBED_WINDOW)
    }

    /// The probe a server IQ answers (same id, from the JID it was sent to).
    pub fn probe(&self, id: &str, head: &Head) -> Option<&(Stanza, Arc<Rule>)> {
        let probe = self.probes.get(id)?;
        let asked = probe.0.head().ok().and_then(|h| h.to());
        let from = head.from();
        match asked {
            Some(to) if Some(&to) != from.as_ref() => None,
            _ => Some(probe),
        }
    }

    /// How many more answers the session may await (of `max`), once those whose
    /// requester gave up are forgotten.
    pub fn room(&mut self, max: usize) -> usize {
        let now = Instant::now();
        self.awaiting.retain(|_, a| a.deadline > now);
        max.saturating_sub(self.awaiting.len())
    }

    /// Whether nobody asked for the roster on this session yet.
    pub fn roster_unasked(&self) -> bool {
        self.roster_interest == RosterInterest::Unasked
    }

    pub fn has_probes(&self) -> bool {
        !self.probes.is_empty()
    }

    pub fn presence_sent(&self) -> bool {
        self.presence_sent
    }

    /// Whether a whole roster of version `ver` is what this session last mirrored
    /// (a roster without a version never is).
    pub fn mirror_has(&self, ver: Option<&str>) -> bool {
        ver.is_some() && self.mirrored_ver.as_deref() == ver
    }

    /// Whether roster pushes reach this session only because the proxy asked for
    /// the roster: the client must not see them.
    pub fn pushes_unasked(&self) -> bool {
        self.roster_interest == RosterInterest::Proxy
    }

    // ---- changed by apply ------------------------------------------------------

    /// Registers an IQ the proxy sends as the user. At most `max` may be waiting;
    /// entries whose requester gave up are dropped first.
    pub fn await_answer(
        &mut self,
        id: String,
        reply: oneshot::Sender<Reply>,
        timeout: Duration,
        max: usize,
    ) {
        if self.awaiting.len() >= max {
            let now = Instant::now();
            self.awaiting.retain(|_, a| a.deadline > now);
        }
        if self.awaiting.len() >= max {
            let _ = reply.send(Err(ActingError::Busy));
            return;
        }
        let deadline = Instant::now() + timeout;
        self.awaiting.insert(id, Awaiting { reply, deadline });
    }

    /// Hands the server's answer (re-serialised on its own, or why it could not be)
    /// to whoever asked; it may have given up: the answer is consumed anyway.
    pub fn answered(&mut self, id: &str, answer: Result<Bytes, ActingError>) {
        if let Some(awaiting) = self.awaiting.remove(id) {
            let _ = awaiting.reply.send(answer);
        }
    }

    pub fn carbons_requested(&mut self, id: String, enable: bool) {
        self.carbons_request = Some((id, enable));
    }

    pub fn carbons_answered(&mut self, enabled: Option<bool>) {
        if let Some(enabled) = enabled {
            self.carbons = enabled;
        }
        self.carbons_request = None;
    }

    /// A `subscribe` the proxy sent for the user to `contact` (bare, prepared). At
    /// most `max` are remembered; the oldest go first.
    pub fn expect_subscribed(&mut self, contact: String, max: usize) {
        remember(&mut self.expected_subscribed, contact, max);
    }

    pub fn expect_subscribe(&mut self, contact: String, max: usize) {
        remember(&mut self.expected_subscribe, contact, max);
    }

    /// The mirror now holds the roster at version `ver` (a push moves it on too).
    pub fn mirrored(&mut self, ver: Option<String>) {
        self.mirrored_ver = ver;
    }

    /// The client asked for its roster: pushes are its own from now on.
    pub fn roster_requested_by_client(&mut self) {
        self.roster_interest = RosterInterest::Client;
    }

    /// The proxy asked for the roster on the user's stream.
    pub fn roster_requested_by_proxy(&mut self) {
        if self.roster_interest == RosterInterest::Unasked {
            self.roster_interest = RosterInterest::Proxy;
        }
    }

    pub fn subscribe_seen(&mut self, contact: &str) {
        self.expected_subscribe.remove(contact);
    }

    pub fn subscribed_seen(&mut self, contact: &str) {
        self.expected_subscribed.remove(contact);
    }

    pub fn remember_probe(&mut self, stanza: &Stanza, rule: Arc<Rule>) {
        let Some(id) = stanza.head().ok().and_then(|h| h.id()) else {
            return;
        };
        if self.probes.len() >= MAX_PROBES {
            if let Some(any) = self.probes.keys().next().cloned() {
                self.probes.remove(&any);
            }
        }
        self.probes.insert(id.into_owned(), (stanza.clone(), rule));
    }

    pub fn take_probe(&mut self, id: &str) -> Option<(Stanza, Arc<Rule>)> {
        self.probes.remove(id)
    }

    /// Notes the client's broadcast presence; returns whether it is the first.
    pub fn presence_broadcast(&mut self) -> bool {
        !std::mem::replace(&mut self.presence_sent, true)
    }

    /// Everything waiting on this session is answered now: the session ended.
    pub fn session_ended(&mut self) {
        for (_, awaiting) in self.awaiting.drain() {
            let _ = awaiting.reply.send(Err(ActingError::SessionGone));
        }
    }
}

/// Adds `contact` to a bounded map of expectations: expired ones go first, then the
/// oldest, so a peer cannot grow it past `max`.
fn remember(map: &mut HashMap<String, Instant>, contact: String, max: usize) {
    if map.len() >= max {
        map.retain(|_, at| at.elapsed() < SUBSCRIBED_WINDOW);
    }
    if map.len() >= max {
        let oldest = map
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(contact, _)| contact.clone());
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
    map.insert(contact, Instant::now());
}
