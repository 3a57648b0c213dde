//! A client session's inbox: the commands other tasks queue for it, bounded by
//! `limits.max_session_queue`, and a way to end a session that fell too far behind.
//! A command that cannot be queued is never dropped silently: the sender learns it,
//! and for answers the client is owed (delegation results) the sender ends the
//! session with a stream error instead, so no IQ goes unanswered on an open stream.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use super::command::Command;

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The session has `max_session_queue` commands waiting: it is not keeping up.
    Full,
    /// The session ended.
    Closed,
}

/// Shared between a session and everyone holding its handle.
#[derive(Debug)]
struct Control {
    queued: AtomicUsize,
    max: usize,
    ended: AtomicBool,
    end: Notify,
}

/// What travels through the channel: a command, or the request to end (which never
/// counts against the quota, so it always gets through).
#[derive(Debug)]
enum Item {
    /// Boxed: a channel allocates its slots up front, and idle sessions dominate
    /// memory, so each slot is one pointer rather than a whole command.
    Command(Box<Command>),
    End,
}

/// The sending side, held in the session registry.
#[derive(Clone, Debug)]
pub struct Outlet {
    tx: mpsc::UnboundedSender<Item>,
    control: Arc<Control>,
}

/// The session's side.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Item>,
    control: Arc<Control>,
    /// Every sender is gone (the registry entry was replaced): nothing will come.
    closed: bool,
}

/// A new inbox holding at most `max` commands.
pub fn inbox(max: usize) -> (Outlet, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let control = Arc::new(Control {
        queued: AtomicUsize::new(0),
        max,
        ended: AtomicBool::new(false),
        end: Notify::new(),
    });
    (
        Outlet {
            tx,
            control: control.clone(),
        },
        Inbox {
            rx,
            control,
            closed: false,
        },
    )
}

impl Outlet {
    /// Queues a command unless the session ended or has `max` commands waiting.
    pub fn send(&self, command: Command) -> Result<(), SendError> {
        let control = &self.control;
        if control.queued.fetch_add(1, Ordering::AcqRel) >= control.max {
            control.queued.fetch_sub(1, Ordering::AcqRel);
            crate::metrics::quota_exceeded("max_session_queue");
            return Err(SendError::Full);
        }
        self.tx.send(Item::Command(Box::new(command))).map_err(|_| {
            control.queued.fetch_sub(1, Ordering::AcqRel);
            SendError::Closed
        })
    }

    /// Asks the session to end its client's stream with `<policy-violation/>`: it is
    /// too far behind to be given what it is owed.
    pub fn end(&self) {
        self.control.ended.store(true, Ordering::Release);
        self.control.end.notify_waiters();
        let _ = self.tx.send(Item::End);
    }
}

impl Inbox {
    /// The next command, or `None` once someone asked this session to end. Pends
    /// while nothing is queued (also once every sender is gone).
    pub async fn recv(&mut self) -> Option<Command> {
        if self.closed {
            self.ended().await;
            return None;
        }
        if self.control.ended.load(Ordering::Acquire) {
            return None;
        }
        match self.rx.recv().await {
            Some(Item::Command(command)) => {
                self.control.queued.fetch_sub(1, Ordering::AcqRel);
                Some(*command)
            }
            Some(Item::End) => None,
            None => {
                self.closed = true;
                self.ended().await;
                None
            }
        }
    }

    /// A command already queued, without waiting (`None` also once ended).
    pub fn try_recv(&mut self) -> Option<Command> {
        if self.closed || self.control.ended.load(Ordering::Acquire) {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Item::Command(command)) => {
                self.control.queued.fetch_sub(1, Ordering::AcqRel);
                Some(*command)
            }
            Ok(Item::End) | Err(_) => None,
        }
    }

    /// Resolves once someone asked this session to end (for waits other than
    /// [`Inbox::recv`], such as a write the client does not read).
    pub async fn ended(&self) {
        loop {
            let notified = self.control.end.notified();
            if self.control.ended.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn a_full_inbox_refuses_and_says_so() {
        let (outlet, mut inbox) = inbox(2);
        let cmd = || Command::ToClient(Bytes::from_static(b"<iq/>"));
        outlet.send(cmd()).unwrap();
        outlet.send(cmd()).unwrap();
        assert!(matches!(outlet.send(cmd()), Err(SendError::Full)));
        assert!(inbox.recv().await.is_some());
        outlet.send(cmd()).unwrap();
        outlet.end();
        inbox.ended().await;
        assert!(
            inbox.recv().await.is_none(),
            "an ended inbox yields nothing"
        );
        let (outlet, inbox) = super::inbox(2);
        drop(inbox);
        assert!(matches!(outlet.send(cmd()), Err(SendError::Closed)));
    }
}
