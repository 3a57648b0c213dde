//! Subscription presence the proxy expects on a component's upstream link, registered
//! when a privileged roster set asks for a subscription with a contact on that
//! component: when the user's `subscribe` reaches the contact, the proxy answers it
//! (and asks back) for the contact; the user's approval that follows is taken too. So
//! the roster item ends as asked and the component sees no stray presence. Bounded per
//! component; entries expire.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

/// How long an expectation waits for its presence.
const WINDOW: Duration = Duration::from_secs(300);

/// One expected presence `kind` from `user` (bare JID) to `contact` (bare JID).
#[derive(Debug, Clone)]
pub struct Expected {
    pub user: String,
    pub contact: String,
    /// `subscribe`, `subscribed` or `probe`.
    pub kind: &'static str,
    /// What the proxy sends upstream on the component's link when it arrives.
    pub replies: Vec<Bytes>,
    at: Instant,
}

impl Expected {
    pub fn new(user: &str, contact: &str, kind: &'static str, replies: Vec<Bytes>) -> Self {
        Expected {
            user: user.to_owned(),
            contact: contact.to_owned(),
            kind,
            replies,
            at: Instant::now(),
        }
    }
}

#[derive(Default)]
pub struct Subscriptions {
    by_component: DashMap<String, Vec<Expected>>,
}

impl Subscriptions {
    /// Registers `expected` for `component`; `false` when `max` are already waiting.
    pub fn expect(&self, component: &str, expected: Expected, max: usize) -> bool {
        let mut list = self.by_component.entry(component.to_owned()).or_default();
        list.retain(|e| e.at.elapsed() < WINDOW);
        if list.len() >= max {
            return false;
        }
        list.push(expected);
        true
    }

    /// Takes the expectation this presence meets, if any.
    pub fn take(&self, component: &str, user: &str, contact: &str, kind: &str) -> Option<Expected> {
        let mut list = self.by_component.get_mut(component)?;
        list.retain(|e| e.at.elapsed() < WINDOW);
        let at = list
            .iter()
            .position(|e| e.user == user && e.contact == contact && e.kind == kind)?;
        Some(list.remove(at))
    }
}
