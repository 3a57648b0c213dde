//! Live client sessions by bound full JID, so that other tasks (delegation answers,
//! privileged operations) can hand a session stanzas to inject, and each session's
//! current broadcast presence (what contacts and privileged entities are shown).
//! Lookups by user go through a bare-JID index, so no event scans every session.

use super::command::Command;
use super::inbox::{Outlet, SendError};
use bytes::Bytes;
use dashmap::DashMap;

/// How to reach one session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: u64,
    outlet: Outlet,
}

impl SessionHandle {
    pub fn new(id: u64, outlet: Outlet) -> Self {
        SessionHandle { id, outlet }
    }

    /// Queues a command; fails if the session is gone or hopelessly behind.
    pub fn send(&self, command: Command) -> Result<(), SendError> {
        self.outlet.send(command)
    }

    /// Queues an answer the client is owed; if the session is too far behind to take
    /// it, its stream is ended instead (no answer is lost on an open stream).
    pub fn owe(&self, command: Command) -> Result<(), SendError> {
        let sent = self.outlet.send(command);
        if let Err(SendError::Full) = &sent {
            tracing::warn!(id = self.id, "session too far behind: ending its stream");
            self.outlet.end();
        }
        sent
    }
}

#[derive(Default)]
pub struct SessionRegistry {
    by_jid: DashMap<String, SessionHandle>,
    /// Bare JID → full JIDs online through this proxy (privileged operations act on
    /// any live session of the user).
    by_bare: DashMap<String, Vec<String>>,
    /// Full JID → its last available broadcast presence, as the proxy re-serialised it.
    presence: DashMap<String, Bytes>,
}

impl SessionRegistry {
    pub fn insert(&self, jid: &str, handle: SessionHandle) {
        self.by_jid.insert(jid.to_owned(), handle);
        let mut resources = self.by_bare.entry(bare(jid).to_owned()).or_default();
        if !resources.iter().any(|full| full == jid) {
            resources.push(jid.to_owned());
        }
    }

    /// Removes the entry only if it still belongs to the session `id` (a resumed or
    /// replaced session may have taken the JID over). Returns whether it did, and the
    /// session's last available presence.
    pub fn remove(&self, jid: &str, id: u64) -> Removed {
        if self
            .by_jid
            .remove_if(jid, |_, handle| handle.id == id)
            .is_none()
        {
            return Removed::NotOwner;
        }
        let key = bare(jid);
        if let Some(mut resources) = self.by_bare.get_mut(key) {
            resources.retain(|full| full != jid);
        }
        self.by_bare
            .remove_if(key, |_, resources| resources.is_empty());
        Removed::Removed {
            presence: self.presence.remove(jid).map(|(_, p)| p),
        }
    }

    /// Records a session's broadcast presence: `Some` when available, `None` when it
    /// became unavailable. Ignored for sessions not registered (any more).
    pub fn set_presence(&self, full: &str, presence: Option<Bytes>) {
        match presence {
            Some(p) if self.by_jid.contains_key(full) => {
                self.presence.insert(full.to_owned(), p);
            }
            Some(_) => {}
            None => {
                self.presence.remove(full);
            }
        }
    }

    /// The current available presences of a user's sessions: (full JID, presence).
    pub fn presence_of(&self, bare_jid: &str) -> Vec<(String, Bytes)> {
        self.resources(bare_jid)
            .into_iter()
            .filter_map(|full| {
                let presence = self.presence.get(&full)?.clone();
                Some((full, presence))
            })
            .collect()
    }

    /// The sessions of `bare_jid` a message to the bare JID reaches (RFC 6121 §8.5.2):
    /// available, with a non-negative priority; with each one's priority.
    pub fn available(&self, bare_jid: &str) -> Vec<(String, i8)> {
        self.presence_of(bare_jid)
            .into_iter()
            .map(|(full, presence)| (full, crate::xml::children::presence_priority(&presence)))
            .filter(|(_, priority)| *priority >= 0)
            .collect()
    }

    /// Every available session's presence (for the dump a privileged entity gets).
    pub fn all_presences(&self) -> Vec<(String, Bytes)> {
        self.presence
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// The full JIDs of a user's live sessions.
    pub fn resources(&self, bare_jid: &str) -> Vec<String> {
        self.by_bare
            .get(bare_jid)
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Some live session of the user, with its full JID.
    pub fn any_for_bare(&self, bare_jid: &str) -> Option<(String, SessionHandle)> {
        self.resources(bare_jid)
            .into_iter()
            .find_map(|full| self.get(&full).map(|handle| (full, handle)))
    }

    pub fn get(&self, jid: &str) -> Option<SessionHandle> {
        self.by_jid.get(jid).map(|h| h.clone())
    }

    pub fn len(&self) -> usize {
        self.by_jid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_jid.is_empty()
    }
}

/// What [`SessionRegistry::remove`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// Another session owns the JID now; nothing was removed.
    NotOwner,
    /// The session's entry is gone; `presence` is its last available presence.
    Removed { presence: Option<Bytes> },
}

/// The bare part of a JID string.
pub fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_index_follows_sessions() {
        let registry = SessionRegistry::default();
        let (tx, _rx) = super::super::inbox::inbox(1);
        registry.insert("a@x/1", SessionHandle::new(1, tx.clone()));
        registry.insert("a@x/2", SessionHandle::new(2, tx.clone()));
        assert_eq!(registry.resources("a@x"), vec!["a@x/1", "a@x/2"]);
        assert_eq!(registry.remove("a@x/1", 99), Removed::NotOwner);
        assert_eq!(registry.resources("a@x").len(), 2);
        registry.set_presence("a@x/1", Some(Bytes::from_static(b"<presence/>")));
        registry.set_presence("a@x/9", Some(Bytes::from_static(b"<presence/>")));
        assert_eq!(
            registry.presence_of("a@x").len(),
            1,
            "only registered sessions"
        );
        assert_eq!(
            registry.remove("a@x/1", 1),
            Removed::Removed {
                presence: Some(Bytes::from_static(b"<presence/>"))
            }
        );
        assert!(registry.presence_of("a@x").is_empty());
        assert_eq!(
            registry
                .any_for_bare("a@x")
                .map(|(full, _)| full)
                .as_deref(),
            Some("a@x/2")
        );
        registry.remove("a@x/2", 2);
        assert!(registry.any_for_bare("a@x").is_none());
        assert!(registry.by_bare.is_empty());
    }
}
