//! Live client sessions by bound full JID, so that other tasks (delegation answers,
//! privileged operations) can hand a session stanzas to inject.

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

/// Something another task asks a client session to do.
#[derive(Debug)]
pub enum Command {
    /// Deliver a stanza the proxy made to the client (counted as injected for SM).
    ToClient(Bytes),
    /// Send a stanza the proxy made to the server on the user's stream.
    ToServer(Bytes),
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
}

impl SessionRegistry {
    pub fn insert(&self, jid: &str, handle: SessionHandle) {
        self.by_jid.insert(jid.to_owned(), handle);
    }

    /// Removes the entry only if it still belongs to the session `id` (a resumed or
    /// replaced session may have taken the JID over).
    pub fn remove(&self, jid: &str, id: u64) {
        self.by_jid.remove_if(jid, |_, handle| handle.id == id);
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
