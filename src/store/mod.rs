//! The durable store: what the proxy must remember across restarts on users' behalf.
//! Today that is privileged operations queued for users who are offline, applied on
//! their stream at their next login. It sits behind the small [`Store`] trait so a
//! networked backend can replace the embedded one ([`Embedded`], a `redb` file) when
//! several proxies serve one server.

mod embedded;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use embedded::Embedded;

/// What a queued operation does once its user is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// A privileged message, sent as the user (with a XEP-0203 `<delay/>`).
    Message,
    /// A privileged roster set (its items, validated), applied as the user with the
    /// subscriptions it asks for completed.
    RosterSet,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Message => "message",
            OpKind::RosterSet => "roster_set",
        }
    }

    fn parse(text: &str) -> Option<OpKind> {
        match text {
            "message" => Some(OpKind::Message),
            "roster_set" => Some(OpKind::RosterSet),
            _ => None,
        }
    }
}

/// One operation waiting for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub kind: OpKind,
    /// The entity that asked for it.
    pub entity: String,
    /// When the entity asked (for the `<delay/>` stamp and the age limit).
    pub queued_at: SystemTime,
    /// The stanza to send on the user's stream, re-parsed and standalone.
    pub stanza: Bytes,
}

/// How many operations may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_user: usize,
    pub total: usize,
}

/// An operation read back with its key in the user's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub op: Queued,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("store: {0}")]
    Backend(String),
    #[error("a stored operation could not be read back: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("{user} already has {max} operations waiting (store.max_queued_per_user)")]
    Full { user: String, max: usize },
    #[error("the proxy already keeps {max} operations for offline users (store.max_queued_total)")]
    StoreFull { max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operations of the durable store. Every call is one transaction: it happened
/// completely, or not at all, whatever crashes in between.
pub trait Store: Send + Sync {
    /// Appends `op` to `user`'s queue unless `limits` says there is no room: for the
    /// user, or in the whole store (an entity could otherwise fill the disk with
    /// operations for accounts that never log in).
    fn enqueue(&self, user: &str, op: &Queued, limits: Limits) -> Result<u64, EnqueueError>;

    /// Removes every operation older than `max_age` at `now`, whoever it is for (users
    /// who never log in again); their kinds.
    fn expire(&self, now: SystemTime, max_age: Duration) -> Result<Vec<OpKind>, StoreError>;

    /// `user`'s operations in the order they were queued. Those older than `max_age`
    /// at `now` are removed instead; the second value says of which kinds they were.
    fn queued(
        &self,
        user: &str,
        now: SystemTime,
        max_age: Duration,
    ) -> Result<(Vec<Entry>, Vec<OpKind>), StoreError>;

    /// Removes operations (applied), in one transaction.
    fn remove(&self, user: &str, ids: &[u64]) -> Result<(), StoreError>;

    /// Replaces the mirror of `user`'s roster with `items` (contact bare JID, the
    /// `<item/>` as the server gave it, standalone).
    fn replace_roster(&self, user: &str, items: &[(String, Bytes)]) -> Result<(), StoreError>;

    /// Applies one roster push to the mirror: the item, or `None` for a removal. A
    /// user without a mirror yet is left without one (a push is no whole roster).
    fn update_roster(
        &self,
        user: &str,
        contact: &str,
        item: Option<&Bytes>,
    ) -> Result<(), StoreError>;

    /// The mirrored roster's items; `None` if the server never gave it.
    fn roster(&self, user: &str) -> Result<Option<Vec<Bytes>>, StoreError>;
}

/// Queued operations by kind and outcome: `queued`, `full` (refused to the entity),
/// `error` (the store failed; refused), `applied`, `expired` (too old, dropped).
pub const QUEUED_TOTAL: &str = "stanzagate_queued_operations_total";

pub fn count(kind: OpKind, outcome: &'static str, n: usize) {
    metrics::counter!(QUEUED_TOTAL, "kind" => kind.as_str(), "outcome" => outcome)
        .increment(n as u64);
}

/// Milliseconds since the epoch (0 before it: clocks before 1970 are not worth an
/// error).
fn millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// XEP-0082 DateTime in UTC with milliseconds, for `<delay stamp=…/>` (RFC 3339,
/// which XEP-0082 profiles).
pub fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_xep_0082_utc() {
        assert_eq!(stamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_796_601_600_123);
        assert_eq!(stamp(t), "2026-12-07T00:00:00.123Z");
    }
}
