//! Connected components by name: enforces one connection per name (checklist 4) and
//! lets other tasks hand a component stanzas.
//!
//! Each component has one queue, bounded by `limits.max_component_queue`, with two
//! classes: the proxy's own traffic to the entity (advertisements, presence and
//! roster-push copies, answers) goes first, then stanzas sent for users (delegated
//! IQs) taken round-robin by user, so one user's burst cannot starve the others or
//! the entity's copies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::Notify;

/// Stanzas handed out per [`ComponentQueue::next_batch`] call.
const BATCH: usize = 64;

#[derive(Clone, Debug)]
pub struct ComponentHandle {
    pub id: u64,
    queue: Arc<ComponentQueue>,
}

/// What waits to be written to one component.
#[derive(Debug)]
pub struct ComponentQueue {
    fair: Mutex<Fair>,
    ready: Notify,
    max: usize,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Fair {
    own: VecDeque<Bytes>,
    by_user: HashMap<String, VecDeque<Bytes>>,
    /// Users with queued stanzas, in turn order.
    turns: VecDeque<String>,
    len: usize,
}

/// Why a stanza was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// `limits.max_component_queue` stanzas are waiting: the component is not reading.
    Full,
    /// The component disconnected.
    Gone,
}

impl ComponentQueue {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ComponentQueue {
            fair: Mutex::new(Fair::default()),
            ready: Notify::new(),
            max,
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Fair> {
        crate::util::lock(&self.fair)
    }

    fn push(&self, user: Option<&str>, stanza: Bytes) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Gone);
        }
        {
            let mut fair = self.lock();
            if fair.len >= self.max {
                crate::metrics::quota_exceeded("max_component_queue");
                return Err(QueueError::Full);
            }
            fair.len += 1;
            match user {
                None => fair.own.push_back(stanza),
                Some(user) => {
                    let queue = fair.by_user.entry(user.to_owned()).or_default();
                    queue.push_back(stanza);
                    if queue.len() == 1 {
                        fair.turns.push_back(user.to_owned());
                    }
                }
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Up to a batch of stanzas in fair order; waits while there are none.
    pub async fn next_batch(&self) -> Vec<Bytes> {
        loop {
            let notified = self.ready.notified();
            let batch = self.take(BATCH);
            if !batch.is_empty() {
                return batch;
            }
            notified.await;
        }
    }

    fn take(&self, most: usize) -> Vec<Bytes> {
        let mut fair = self.lock();
        let mut out = Vec::new();
        while out.len() < most {
            if let Some(own) = fair.own.pop_front() {
                out.push(own);
                continue;
            }
            let Some(user) = fair.turns.pop_front() else {
                break;
            };
            let Some(queue) = fair.by_user.get_mut(&user) else {
                continue;
            };
            if let Some(stanza) = queue.pop_front() {
                out.push(stanza);
            }
            if queue.is_empty() {
                fair.by_user.remove(&user);
            } else {
                fair.turns.push_back(user);
            }
        }
        fair.len = fair.len.saturating_sub(out.len());
        out
    }

    /// The component is gone: nothing more is queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

impl ComponentHandle {
    pub fn new(id: u64, queue: Arc<ComponentQueue>) -> Self {
        ComponentHandle { id, queue }
    }

    /// Queues the proxy's own stanza for the component (copies, answers,
    /// advertisements): these go before users' stanzas.
    pub fn send(&self, stanza: Bytes) -> Result<(), QueueError> {
        self.queue.push(None, stanza)
    }

    /// Queues a stanza sent for the user `user` (a delegated IQ), taken in turn with
    /// other users'.
    pub fn send_for(&self, user: &str, stanza: Bytes) -> Result<(), QueueError> {
        self.queue.push(Some(user), stanza)
    }
}

#[derive(Default)]
pub struct ComponentRegistry {
    by_name: DashMap<String, ComponentHandle>,
    /// Signalled whenever a name is released.
    released: Notify,
}

impl ComponentRegistry {
    /// Registers a component, waiting up to `grace` for a previous connection under
    /// the same name to be released: a component that restarts reconnects before the
    /// proxy has read the end of its old connection. `false` if the name stays taken
    /// (a second live instance: `<conflict/>`).
    pub async fn claim_within(
        &self,
        name: &str,
        handle: ComponentHandle,
        grace: std::time::Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.claim(name, handle.clone()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    /// Registers a component; `false` if that name is already connected.
    pub fn claim(&self, name: &str, handle: ComponentHandle) -> bool {
        match self.by_name.entry(name.to_owned()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(handle);
                true
            }
        }
    }

    pub fn release(&self, name: &str, id: u64) {
        if let Some((_, handle)) = self.by_name.remove_if(name, |_, handle| handle.id == id) {
            handle.queue.close();
            self.released.notify_waiters();
        }
    }

    pub fn get(&self, name: &str) -> Option<ComponentHandle> {
        self.by_name.get(name).map(|h| h.clone())
    }

    pub fn is_connected(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_claim_conflicts_until_released() {
        let registry = ComponentRegistry::default();
        let queue = ComponentQueue::new(10);
        assert!(registry.claim("c.example", ComponentHandle::new(1, queue.clone())));
        assert!(!registry.claim("c.example", ComponentHandle::new(2, queue.clone())));
        registry.release("c.example", 2); // not the owner: no effect
        assert!(registry.is_connected("c.example"));
        registry.release("c.example", 1);
        assert!(registry.claim("c.example", ComponentHandle::new(3, queue)));
    }

    #[test]
    fn own_stanzas_first_then_users_in_turn() {
        let queue = ComponentQueue::new(100);
        let handle = ComponentHandle::new(1, queue.clone());
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        for i in 0..5 {
            handle
                .send_for("burst@x/r", Bytes::from(format!("burst{i}")))
                .unwrap();
        }
        handle.send_for("quiet@x/r", b("quiet")).unwrap();
        handle.send(b("copy")).unwrap();
        let order = queue.take(4);
        assert_eq!(order, vec![b("copy"), b("burst0"), b("quiet"), b("burst1")]);
        assert_eq!(queue.take(10).len(), 3);
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_too() {
        let queue = ComponentQueue::new(2);
        let handle = ComponentHandle::new(1, queue.clone());
        handle.send(Bytes::new()).unwrap();
        handle.send_for("u", Bytes::new()).unwrap();
        assert_eq!(handle.send(Bytes::new()), Err(QueueError::Full));
        queue.take(1);
        handle.send(Bytes::new()).unwrap();
        queue.close();
        assert_eq!(handle.send(Bytes::new()), Err(QueueError::Gone));
    }
}
