//! Roster pushes to privileged entities (checklist 49–50; neither Prosody nor ejabberd
//! sends them). Every roster push the legacy server sends to a user's sessions is
//! copied, once, to entities holding roster get/both with `push` on; their answers to
//! these copies are consumed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::{DashMap, DashSet};

use super::table::Table;
use crate::xml::writer::push_attr;
use crate::xml::{Head, Stanza};

/// The server sends one push per resource at once; within this window an identical
/// push for the same user is the same change.
const SAME_CHANGE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Pushes {
    /// Per user: recently copied pushes (their query bytes).
    recent: DashMap<String, VecDeque<(Instant, Bytes)>>,
    /// Ids of copies sent to entities, whose answers are consumed.
    sent: DashSet<String>,
}

impl Pushes {
    /// A roster push seen on a session of `user` (bare); the copies to send.
    pub fn push(
        &self,
        table: &Table,
        user: &str,
        stanza: &Stanza,
        head: &Head,
    ) -> Vec<(String, Bytes)> {
        let Some(query) = head.child() else {
            return Vec::new();
        };
        let query = stanza.bytes().slice(query.range());
        if !self.first_time(user, &query) {
            return Vec::new();
        }
        self.copies(table, user, &query)
    }

    /// Copies of one roster change (a `<query/>` with one item) for the entities
    /// entitled to them.
    pub fn copies(&self, table: &Table, user: &str, query: &Bytes) -> Vec<(String, Bytes)> {
        let domain = user.rsplit('@').next().unwrap_or(user).to_ascii_lowercase();
        table
            .holders(&domain)
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
                self.sent.insert(id);
                (entity.clone(), bytes.freeze())
            })
            .collect()
    }

    /// Whether this is an entity's answer to a copy (consumed, checklist 50).
    pub fn is_answer(&self, head: &Head) -> bool {
        if head.name() != "iq" || !matches!(head.type_().as_deref(), Some("result" | "error")) {
            return false;
        }
        head.id()
            .is_some_and(|id| self.sent.remove(id.as_ref()).is_some())
    }

    fn first_time(&self, user: &str, query: &Bytes) -> bool {
        let now = Instant::now();
        let mut recent = self.recent.entry(user.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SAME_CHANGE)
        {
            recent.pop_front();
        }
        if recent.iter().any(|(_, seen)| seen == query) {
            return false;
        }
        recent.push_back((now, query.clone()));
        true
    }
}
