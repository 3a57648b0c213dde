//! Roster pushes to privileged entities (checklist 49–50; neither Prosody nor ejabberd
//! sends them). Every roster push the legacy server sends to a user's sessions is
//! copied, once, to entities holding roster get/both with `push` on; their answers to
//! these copies are consumed.
//!
//! Both what was recently copied (to send a change once, although the server pushes
//! it to every resource) and the copies awaiting an answer are bounded: the first by
//! time, the second by `limits.max_push_copies`, oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::util::lock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::table::Table;
use crate::xml::writer::push_attr;
use crate::xml::{extract_element, Head, Stanza};

/// The server sends one push per resource at once; within this window an identical
/// push for the same user is the same change.
const SAME_CHANGE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Pushes {
    recent: Mutex<Recent>,
    sent: Mutex<Sent>,
}

/// Recently copied pushes per user, and the order they expire in.
#[derive(Default)]
struct Recent {
    by_user: HashMap<String, VecDeque<(Instant, Bytes)>>,
    order: VecDeque<(Instant, String)>,
}

/// Ids of copies sent to entities, whose answers are consumed, oldest first.
#[derive(Default)]
struct Sent {
    ids: HashMap<String, Instant>,
    order: VecDeque<String>,
}

impl Pushes {
    /// A roster push seen on a session of `user` (bare); the copies to send.
    pub fn push(
        &self,
        table: &Table,
        user: &str,
        stanza: &Stanza,
        head: &Head,
        max: usize,
    ) -> Vec<(String, Bytes)> {
        let Some(query) = head.child() else {
            return Vec::new();
        };
        // With the server stream's declarations: it goes to a component's stream.
        let Ok(query) = extract_element(stanza, query.range()) else {
            return Vec::new();
        };
        if !self.first_time(user, &query) {
            return Vec::new();
        }
        self.copies(table, user, &query, max)
    }

    /// Copies of one roster change (a `<query/>` with one item) for the entities
    /// entitled to them; at most `max` copies await answers.
    pub fn copies(
        &self,
        table: &Table,
        user: &str,
        query: &Bytes,
        max: usize,
    ) -> Vec<(String, Bytes)> {
        // `user` is prepared (a session's bare JID, or one the web app's refresh named).
        let domain = user.rsplit_once('@').map_or(user, |(_, domain)| domain);
        table
            .holders(domain)
            .filter(|(_, p)| p.roster.allows_get() && p.roster_push)
            .map(|(entity, _)| {
                let id = format!("sgp-{}", crate::util::random_id());
                let mut out = String::from("<iq type='set'");
                push_attr(&mut out, "from", user);
                push_attr(&mut out, "to", entity);
                push_attr(&mut out, "id", &id);
                out.push('>');
                let mut bytes = BytesMut::from(out.as_bytes());
                bytes.extend_from_slice(query);
                bytes.extend_from_slice(b"</iq>");
                self.sent(id, max);
                (entity.clone(), bytes.freeze())
            })
            .collect()
    }

    fn sent(&self, id: String, max: usize) {
        let mut sent = lock(&self.sent);
        while sent.ids.len() >= max {
            let Some(oldest) = sent.order.pop_front() else {
                break;
            };
            if sent.ids.remove(&oldest).is_some() {
                crate::metrics::quota_exceeded("max_push_copies");
            }
        }
        sent.ids.insert(id.clone(), Instant::now());
        sent.order.push_back(id);
        // Answered ids leave stale entries in the order queue; keep it near the map.
        if sent.order.len() > 2 * sent.ids.len() + 64 {
            let Sent { ids, order } = &mut *sent;
            order.retain(|id| ids.contains_key(id));
        }
    }

    /// Whether this is an entity's answer to a copy (consumed, checklist 50).
    pub fn awaits(&self, head: &Head) -> bool {
        if head.name() != "iq" || !matches!(head.type_().as_deref(), Some("result" | "error")) {
            return false;
        }
        head.id()
            .is_some_and(|id| lock(&self.sent).ids.contains_key(id.as_ref()))
    }

    /// The entity answered a copy: forgotten.
    pub fn answered(&self, head: &Head) {
        if let Some(id) = head.id() {
            lock(&self.sent).ids.remove(id.as_ref());
        }
    }

    fn first_time(&self, user: &str, query: &Bytes) -> bool {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        let Recent { by_user, order } = &mut *recent;
        while let Some((at, old_user)) = order.front() {
            if now.duration_since(*at) <= SAME_CHANGE {
                break;
            }
            if let Some(seen) = by_user.get_mut(old_user) {
                seen.retain(|(t, _)| now.duration_since(*t) <= SAME_CHANGE);
                if seen.is_empty() {
                    by_user.remove(old_user);
                }
            }
            order.pop_front();
        }
        let seen = by_user.entry(user.to_owned()).or_default();
        if seen.iter().any(|(_, q)| q == query) {
            return false;
        }
        seen.push_back((now, query.clone()));
        order.push_back((now, user.to_owned()));
        true
    }

    pub fn awaiting(&self) -> usize {
        lock(&self.sent).ids.len()
    }
}
