//! Live client sessions by bound full JID, so that other tasks (delegation answers,
//! privileged operations) can hand a session stanzas to inject.

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

/// Something another task asks a client session to do.
#[derive(Debug)]
pub enum Command {
    /// Deliver a stanza the proxy made to the client (counted as injected for SM).
    ToClient(Bytes),
    /// Send a stanza the proxy made to the server on the user's stream.
    ToServer(Bytes),
    /// Send an IQ on the user's stream as the user; the server's answer (the IQ with
    /// `id`) is consumed, never shown to the client, and handed to `reply`.
    Request {
        stanza: Bytes,
        id: String,
        reply: oneshot::Sender<Bytes>,
    },
    /// Send a message on the user's stream as the user (a XEP-0356 privileged
    /// message); the client gets `carbon` if it enabled carbons, since the server
    /// copies a sent message to the user's other resources only.
    SendAs { stanza: Bytes, carbon: Bytes },
    /// A `subscribe` the proxy sent for the user: the contact's `subscribed` answer is
    /// consumed instead of shown to the user's clients.
    ExpectSubscribed(String),
}

/// How to reach one session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: u64,
    /// Boxed: a channel allocates its slots up front, and idle sessions dominate
    /// memory, so each slot is one pointer rather than a whole command.
    tx: mpsc::Sender<Box<Command>>,
}

impl SessionHandle {
    pub fn new(id: u64, tx: mpsc::Sender<Box<Command>>) -> Self {
        SessionHandle { id, tx }
    }

    /// Queues a command; fails if the session is gone or hopelessly behind.
    pub fn send(&self, command: Command) -> Result<(), Command> {
        self.tx.try_send(Box::new(command)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => *c,
        })
    }
}

#[derive(Default)]
pub struct SessionRegistry {
    by_jid: DashMap<String, SessionHandle>,
    /// Bare JID → full JIDs online through this proxy (privileged operations act on
    /// any live session of the user).
    by_bare: DashMap<String, Vec<String>>,
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
    /// replaced session may have taken the JID over).
    pub fn remove(&self, jid: &str, id: u64) {
        if self
            .by_jid
            .remove_if(jid, |_, handle| handle.id == id)
            .is_some()
        {
            let key = bare(jid);
            if let Some(mut resources) = self.by_bare.get_mut(key) {
                resources.retain(|full| full != jid);
            }
            self.by_bare
                .remove_if(key, |_, resources| resources.is_empty());
        }
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
        let (tx, _rx) = mpsc::channel(1);
        registry.insert("a@x/1", SessionHandle::new(1, tx.clone()));
        registry.insert("a@x/2", SessionHandle::new(2, tx.clone()));
        assert_eq!(registry.resources("a@x"), vec!["a@x/1", "a@x/2"]);
        registry.remove("a@x/1", 99); // not the owner
        assert_eq!(registry.resources("a@x").len(), 2);
        registry.remove("a@x/1", 1);
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
