//! XEP-0356 presence permission (checklist 65–69). The proxy sees every presence its
//! users broadcast and every presence they receive, so it copies them to entities
//! holding `managed_entity` (the users' own) or `roster` (also their contacts'), keeps
//! the current ones for the dump an entity gets when it connects, and sends each
//! distinct contact presence once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;

use super::table::Table;
use crate::config::PresencePerm;
use crate::xml::escape::escape_attr;
use crate::xml::writer::{attr_span, push_attr};
use crate::xml::{Head, Stanza};

/// Available or unavailable broadcast presence (never subscriptions, probes, errors).
pub fn is_broadcast(head: &Head) -> bool {
    head.name() == "presence" && matches!(head.type_().as_deref(), None | Some("unavailable"))
}

/// Current presences, as the proxy has seen them.
#[derive(Default)]
pub struct Book {
    /// Full JID of a user online through the proxy → its last available presence.
    users: DashMap<String, Bytes>,
    /// Full JID of a contact → its last presence (as received) and the users (bare)
    /// who receive it.
    contacts: DashMap<String, (Bytes, HashSet<String>)>,
    /// Users of the proxy (full JIDs), and when their session ended: their presence
    /// reaches entities as theirs, so not again as a contact's.
    local: DashMap<String, Option<Instant>>,
}

/// After a session ended, its final unavailable presence may still arrive at other
/// users as a contact's for this long.
const LOCAL_GRACE: Duration = Duration::from_secs(30);

impl Book {
    /// A user's broadcast presence; returns the copies to send `(entity, stanza)`.
    pub fn user(
        &self,
        table: &Table,
        full: &str,
        stanza: &Stanza,
        head: &Head,
    ) -> Vec<(String, Bytes)> {
        let domain = domain_of(full);
        if !self.local.get(full).is_some_and(|e| e.is_none()) {
            self.local.insert(full.to_owned(), None);
        }
        if head.type_().is_none() {
            self.users.insert(full.to_owned(), stanza.bytes().clone());
        } else {
            self.users.remove(full);
        }
        table
            .holders(&domain)
            .filter(|(_, p)| p.presence != PresencePerm::None)
            .map(|(entity, _)| (entity.clone(), addressed(stanza, head, Some(full), entity)))
            .collect()
    }

    /// A presence a user received from a contact; copies for `roster` holders. A
    /// presence identical to the last one from that contact is not sent again.
    pub fn contact(
        &self,
        table: &Table,
        user_full: &str,
        stanza: &Stanza,
        head: &Head,
    ) -> Vec<(String, Bytes)> {
        let Some(from) = head.from().map(|f| f.into_owned()) else {
            return Vec::new();
        };
        let user_bare = bare(user_full).to_owned();
        if bare(&from).eq_ignore_ascii_case(&user_bare) || self.is_local(&from) {
            return Vec::new();
        }
        let comparable = without_to(stanza, head);
        let mut fresh = true;
        {
            let mut entry = self
                .contacts
                .entry(from.clone())
                .or_insert_with(|| (Bytes::new(), HashSet::new()));
            if entry.0 == comparable {
                fresh = false;
            } else {
                entry.0 = comparable;
            }
            entry.1.insert(user_bare);
        }
        if head.type_().as_deref() == Some("unavailable") {
            self.contacts.remove(&from);
        }
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

    /// The current available presences of a user's sessions: (full JID, presence).
    pub fn current_of(&self, bare_jid: &str) -> Vec<(String, Bytes)> {
        self.users
            .iter()
            .filter(|e| bare(e.key()).eq_ignore_ascii_case(bare_jid))
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    fn is_local(&self, full: &str) -> bool {
        match self.local.get(full).map(|e| *e) {
            Some(None) => true,
            Some(Some(ended)) => ended.elapsed() < LOCAL_GRACE,
            None => false,
        }
    }

    /// A user's session ended: an unavailable copy if it was available, and the user
    /// no longer receives contacts' presence through it.
    pub fn session_ended(
        &self,
        table: &Table,
        full: &str,
        last_resource: bool,
    ) -> Vec<(String, Bytes)> {
        self.local.insert(full.to_owned(), Some(Instant::now()));
        self.local
            .retain(|_, ended| ended.is_none_or(|at| at.elapsed() < LOCAL_GRACE));
        if last_resource {
            let user_bare = bare(full).to_owned();
            self.contacts.retain(|_, (_, receivers)| {
                receivers.remove(&user_bare);
                !receivers.is_empty()
            });
        }
        if self.users.remove(full).is_none() {
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

    /// What an entity that just connected must get first (checklist 68).
    pub fn dump(&self, table: &Table, entity: &str) -> Vec<Bytes> {
        let granted = table.for_entity(entity);
        let mut out = Vec::new();
        for user in self.users.iter() {
            let domain = domain_of(user.key());
            if granted
                .get(&domain)
                .is_some_and(|p| p.presence != PresencePerm::None)
            {
                out.push(readdress(user.value(), Some(user.key()), entity));
            }
        }
        for contact in self.contacts.iter() {
            if self.is_local(contact.key()) {
                continue;
            }
            let (presence, receivers) = contact.value();
            let wanted = receivers.iter().any(|user| {
                granted
                    .get(&domain_of(user))
                    .is_some_and(|p| p.presence == PresencePerm::Roster)
            });
            if wanted && domain_of(contact.key()) != entity {
                out.push(readdress(presence, None, entity));
            }
        }
        out
    }
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn domain_of(jid: &str) -> String {
    let b = bare(jid);
    b.rsplit('@').next().unwrap_or(b).to_ascii_lowercase()
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

/// The presence addressed to `entity` (and `from` set when given), other bytes kept.
fn addressed(stanza: &Stanza, head: &Head, from: Option<&str>, entity: &str) -> Bytes {
    let mut bytes = stanza.bytes().to_vec();
    let mut spans = Vec::new();
    for name in ["to", "from"] {
        if name == "from" && from.is_none() {
            continue;
        }
        if let Some(span) = head
            .attr_range(name)
            .and_then(|r| attr_span(stanza.bytes(), r, name))
        {
            spans.push(span);
        }
    }
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for span in spans {
        bytes.drain(span);
    }
    insert_addresses(&bytes, from, entity)
}

/// Re-addresses a stored presence (which may carry `to`) to `entity`, with `from`
/// set when given.
pub fn readdress(stored: &Bytes, from: Option<&str>, entity: &str) -> Bytes {
    let Ok(stanza) = Stanza::standalone(stored.clone()) else {
        return stored.clone();
    };
    match stanza.head() {
        Ok(head) => addressed(&stanza, head, from, entity),
        Err(_) => stored.clone(),
    }
}

fn insert_addresses(bytes: &[u8], from: Option<&str>, entity: &str) -> Bytes {
    let name_end = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
        .unwrap_or(bytes.len());
    let mut out = BytesMut::with_capacity(bytes.len() + 96);
    out.extend_from_slice(&bytes[..name_end]);
    if let Some(from) = from {
        out.extend_from_slice(b" from='");
        out.extend_from_slice(escape_attr(from).as_bytes());
        out.extend_from_slice(b"'");
    }
    out.extend_from_slice(b" to='");
    out.extend_from_slice(escape_attr(entity).as_bytes());
    out.extend_from_slice(b"'");
    out.extend_from_slice(&bytes[name_end..]);
    out.freeze()
}
