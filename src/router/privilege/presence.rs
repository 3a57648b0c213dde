//! XEP-0356 presence permission (checklist 65–69). The proxy sees every presence its
//! users broadcast and every presence they receive, so it copies them to entities
//! holding `managed_entity` (the users' own) or `roster` (also their contacts'), keeps
//! the contacts' current ones for the dump an entity gets when it connects (the users'
//! own live in the session registry), and sends each distinct contact presence once.
//!
//! The contacts' book is bounded (`limits.max_presence_book`) and indexed by the user
//! who receives each presence, so a logout never scans other users' contacts.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use metrics::counter;

use super::table::Table;
use crate::config::PresencePerm;
use crate::hub::{bare, SessionRegistry};
use crate::jid::Jid;
use crate::xml::writer::{attr_span, push_attr};
use crate::xml::{addressed, readdress};
use crate::xml::{Head, Stanza};

pub const BOOK_FULL_TOTAL: &str = "stanzagate_presence_book_full_total";
pub const DROPPED_TOTAL: &str = "stanzagate_presence_copies_dropped_total";

/// Available or unavailable broadcast presence (never subscriptions, probes, errors).
pub fn is_broadcast(head: &Head) -> bool {
    head.name() == "presence" && matches!(head.type_().as_deref(), None | Some("unavailable"))
}

/// A contact's last presence and the users (bare JIDs) who received it.
struct Contact {
    presence: Bytes,
    receivers: HashSet<String>,
}

/// Contacts' current presences, as the proxy has seen them.
pub struct Book {
    /// Full JID of a contact → its last presence (as received, `to` removed).
    contacts: DashMap<String, Contact>,
    /// User (bare) → the contacts (full JIDs) whose presence it received.
    by_receiver: DashMap<String, HashSet<String>>,
    /// Sessions that ended recently, oldest first, and the same as a set: their final
    /// unavailable presence may still reach other users as a contact's.
    ended: Mutex<VecDeque<(Instant, String)>>,
    ended_set: DashMap<String, Instant>,
}

/// After a session ended, its final unavailable presence may still arrive at other
/// users as a contact's for this long.
const LOCAL_GRACE: Duration = Duration::from_secs(30);

impl Default for Book {
    fn default() -> Self {
        Book {
            contacts: DashMap::new(),
            by_receiver: DashMap::new(),
            ended: Mutex::new(VecDeque::new()),
            ended_set: DashMap::new(),
        }
    }
}

impl Book {
    /// A user's broadcast presence (re-serialised for another stream); returns the
    /// copies to send `(entity, stanza)`, each with `from` the user's full JID.
    pub fn user(&self, table: &Table, full: &str, scoped: &Bytes) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        for (entity, _) in table
            .holders(&domain_of(full))
            .filter(|(_, p)| p.presence != PresencePerm::None)
        {
            match readdress(scoped, Some(full), entity) {
                Ok(copy) => out.push((entity.clone(), copy)),
                Err(error) => dropped(&error),
            }
        }
        out
    }

    /// A presence a user received from a contact; copies for `roster` holders. A
    /// presence identical to the last one from that contact is not sent again. At
    /// most `max_contacts` contacts are remembered.
    pub fn contact(
        &self,
        sessions: &SessionRegistry,
        max_contacts: usize,
        table: &Table,
        user_full: &str,
        stanza: &Stanza,
        head: &Head,
    ) -> Vec<(String, Bytes)> {
        let Some(from) = head.from().map(|f| f.into_owned()) else {
            return Vec::new();
        };
        let user_bare = bare(user_full).to_owned();
        // Prepared, as the book's keys and the session registry's are.
        let Ok(from) = Jid::parse(&from) else {
            return Vec::new();
        };
        let from = from.as_str().to_owned();
        if bare(&from) == user_bare || self.is_local(sessions, &from) {
            return Vec::new();
        }
        let fresh = if head.type_().as_deref() == Some("unavailable") {
            self.forget(&from)
        } else {
            self.remember(&from, &user_bare, without_to(stanza, head), max_contacts)
        };
        if !fresh {
            return Vec::new();
        }
        table
            .holders(&domain_of(user_full))
            .filter(|(entity, p)| {
                p.presence == PresencePerm::Roster && domain_of(&from) != **entity
            })
            .map(|(entity, _)| (entity.clone(), addressed(stanza, head, None, entity)))
            .collect()
    }

    /// Records an available presence; `false` if it repeats the last one.
    fn remember(&self, from: &str, user_bare: &str, comparable: Bytes, max: usize) -> bool {
        let fresh = match self.contacts.get_mut(from) {
            Some(mut entry) => {
                let fresh = entry.presence != comparable;
                entry.presence = comparable;
                entry.receivers.insert(user_bare.to_owned());
                fresh
            }
            None if self.contacts.len() >= max => {
                // Full: the copy still goes out, only the dump will lack this contact.
                counter!(BOOK_FULL_TOTAL).increment(1);
                return true;
            }
            None => {
                let receivers = HashSet::from([user_bare.to_owned()]);
                self.contacts.insert(
                    from.to_owned(),
                    Contact {
                        presence: comparable,
                        receivers,
                    },
                );
                true
            }
        };
        self.by_receiver
            .entry(user_bare.to_owned())
            .or_default()
            .insert(from.to_owned());
        fresh
    }

    /// A contact became unavailable; `false` if it was not known as available.
    fn forget(&self, from: &str) -> bool {
        let Some((_, contact)) = self.contacts.remove(from) else {
            return true;
        };
        for receiver in contact.receivers {
            self.by_receiver.remove_if_mut(&receiver, |_, contacts| {
                contacts.remove(from);
                contacts.is_empty()
            });
        }
        true
    }

    fn is_local(&self, sessions: &SessionRegistry, full: &str) -> bool {
        sessions.get(full).is_some()
            || self
                .ended_set
                .get(full)
                .is_some_and(|at| at.elapsed() < LOCAL_GRACE)
    }

    /// A user's session ended: an unavailable copy if it was available, and the user
    /// no longer receives contacts' presence through it once its last resource left.
    pub fn session_ended(
        &self,
        table: &Table,
        full: &str,
        was_available: bool,
        last_resource: bool,
    ) -> Vec<(String, Bytes)> {
        self.mark_ended(full);
        if last_resource {
            self.drop_receiver(bare(full));
        }
        if !was_available {
            return Vec::new();
        }
        table
            .holders(&domain_of(full))
            .filter(|(_, p)| p.presence != PresencePerm::None)
            .map(|(entity, _)| {
                let mut out = String::from("<presence type='unavailable'");
                push_attr(&mut out, "from", full);
                push_attr(&mut out, "to", entity);
                out.push_str("/>");
                (entity.clone(), Bytes::from(out))
            })
            .collect()
    }

    /// Remembers an ended session for the grace period; expired ones are dropped
    /// from the front of the queue, so each end costs amortised O(1).
    fn mark_ended(&self, full: &str) {
        let now = Instant::now();
        let mut ended = crate::util::lock(&self.ended);
        while let Some((at, old)) = ended.front() {
            if now.duration_since(*at) < LOCAL_GRACE {
                break;
            }
            self.ended_set.remove_if(old, |_, t| t == at);
            ended.pop_front();
        }
        ended.push_back((now, full.to_owned()));
        self.ended_set.insert(full.to_owned(), now);
    }

    /// The user no longer receives anything: its contacts lose it as a receiver.
    fn drop_receiver(&self, user_bare: &str) {
        let Some((_, contacts)) = self.by_receiver.remove(user_bare) else {
            return;
        };
        for contact in contacts {
            self.contacts.remove_if_mut(&contact, |_, entry| {
                entry.receivers.remove(user_bare);
                entry.receivers.is_empty()
            });
        }
    }

    /// What an entity that just connected must get first (checklist 68): the users'
    /// current presences (from the session registry) and their contacts'.
    pub fn dump(&self, sessions: &SessionRegistry, table: &Table, entity: &str) -> Vec<Bytes> {
        let granted = table.for_entity(entity);
        let mut out = Vec::new();
        for (full, presence) in sessions.all_presences() {
            let domain = domain_of(&full);
            if granted
                .get(&domain)
                .is_some_and(|p| p.presence != PresencePerm::None)
            {
                push_readdressed(&mut out, &presence, Some(&full), entity);
            }
        }
        for contact in self.contacts.iter() {
            if self.is_local(sessions, contact.key()) {
                continue;
            }
            let wanted = contact.receivers.iter().any(|user| {
                granted
                    .get(&domain_of(user))
                    .is_some_and(|p| p.presence == PresencePerm::Roster)
            });
            if wanted && domain_of(contact.key()) != entity {
                push_readdressed(&mut out, &contact.presence, None, entity);
            }
        }
        out
    }

    pub fn contacts_len(&self) -> usize {
        self.contacts.len()
    }
}

/// A stored presence re-addressed for `entity`; one that cannot be re-parsed is
/// dropped and counted, never sent as it was.
fn push_readdressed(out: &mut Vec<Bytes>, stored: &Bytes, from: Option<&str>, entity: &str) {
    match readdress(stored, from, entity) {
        Ok(bytes) => out.push(bytes),
        Err(error) => dropped(&error),
    }
}

/// A presence the proxy could not re-parse on its own: never passed on as it was.
pub fn dropped(error: &dyn std::fmt::Display) {
    counter!(DROPPED_TOTAL, "reason" => "unparsable").increment(1);
    tracing::warn!(%error, "presence dropped: it cannot be re-parsed on its own");
}

/// The domain of a prepared JID.
fn domain_of(jid: &str) -> String {
    let b = bare(jid);
    b.rsplit_once('@')
        .map_or(b, |(_, domain)| domain)
        .to_owned()
}

/// The presence with `to` removed, for comparing repeats.
fn without_to(stanza: &Stanza, head: &Head) -> Bytes {
    match head
        .attr_range("to")
        .and_then(|r| attr_span(stanza.bytes(), r, "to"))
    {
        Some(span) => {
            let bytes = stanza.bytes();
            let mut out = BytesMut::with_capacity(bytes.len());
            out.extend_from_slice(&bytes[..span.start]);
            out.extend_from_slice(&bytes[span.end..]);
            out.freeze()
        }
        None => stanza.bytes().clone(),
    }
}
