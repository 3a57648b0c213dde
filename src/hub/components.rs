//! Connected components by name: enforces one connection per name (checklist 4) and
//! lets other tasks hand a component stanzas (advertisements, delegated IQs).

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub struct ComponentHandle {
    pub id: u64,
    tx: mpsc::Sender<Bytes>,
}

impl ComponentHandle {
    pub fn new(id: u64, tx: mpsc::Sender<Bytes>) -> Self {
        ComponentHandle { id, tx }
    }

    /// Queues a stanza for the component; fails if it is gone or hopelessly behind.
    pub fn send(&self, stanza: Bytes) -> Result<(), Bytes> {
        self.tx.try_send(stanza).map_err(|e| match e {
            mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
        })
    }
}

#[derive(Default)]
pub struct ComponentRegistry {
    by_name: DashMap<String, ComponentHandle>,
}

impl ComponentRegistry {
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
        self.by_name.remove_if(name, |_, handle| handle.id == id);
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
        let (tx, _rx) = mpsc::channel(1);
        assert!(registry.claim("c.example", ComponentHandle::new(1, tx.clone())));
        assert!(!registry.claim("c.example", ComponentHandle::new(2, tx.clone())));
        registry.release("c.example", 2); // not the owner: no effect
        assert!(registry.is_connected("c.example"));
        registry.release("c.example", 1);
        assert!(registry.claim("c.example", ComponentHandle::new(3, tx)));
    }
}
