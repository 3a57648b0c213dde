//! Small helpers with no better home: unguessable identifiers, bounded per-key
//! counters of work in progress, and taking a lock whatever a panicking holder left.

use rand::Rng;

/// A 128-bit random identifier, URL- and XML-safe (for stream ids, wrapper ids).
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// Locks `mutex`; a holder that panicked left data that is still consistent for every
/// use here (queues and maps updated in single steps), so it is taken over rather than
/// poisoning every later caller.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Per-key counters of work in progress, each bounded: a per-entity (or per-session)
/// quota on concurrent operations. A [`Slot`] is held for as long as the operation
/// runs and frees itself when dropped, whatever way the operation ends.
pub struct Slots {
    /// The `[limits]` key, reported when the quota is hit.
    quota: &'static str,
    counts: std::sync::Arc<dashmap::DashMap<String, usize>>,
}

/// One operation in progress under a [`Slots`] key.
pub struct Slot {
    counts: std::sync::Arc<dashmap::DashMap<String, usize>>,
    key: String,
}

impl Slots {
    pub fn new(quota: &'static str) -> Self {
        Slots {
            quota,
            counts: Default::default(),
        }
    }

    /// A slot for `key`, unless `max` are in use (the quota is then counted).
    pub fn start(&self, key: &str, max: usize) -> Option<Slot> {
        let mut count = self.counts.entry(key.to_owned()).or_insert(0);
        if *count >= max {
            drop(count);
            crate::metrics::quota_exceeded(self.quota);
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: self.counts.clone(),
            key: key.to_owned(),
        })
    }

    /// Operations in progress for `key`.
    pub fn in_use(&self, key: &str) -> usize {
        self.counts.get(key).map_or(0, |c| *c)
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Slot").field(&self.key).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.key, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_and_free_themselves() {
        let slots = Slots::new("test");
        let a = slots.start("c", 2).unwrap();
        let _b = slots.start("c", 2).unwrap();
        assert!(slots.start("c", 2).is_none());
        assert!(slots.start("other", 2).is_some());
        drop(a);
        assert_eq!(slots.in_use("c"), 1);
        assert!(slots.start("c", 2).is_some());
    }
}
