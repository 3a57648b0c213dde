//! The embedded store: one `redb` file. redb is a pure-Rust, single-file, ACID
//! key-value store (copy-on-write B-trees, every commit durable before it returns), so
//! it needs no set-up, no C library, and survives a crash mid-write.
//!
//! The queue table is keyed by (user's bare JID, sequence number): a user's operations
//! are one contiguous range, in the order they were queued.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{millis, EnqueueError, Entry, Limits, OpKind, Queued, Store, StoreError};

/// (user, sequence) → a [`Record`] as JSON.
const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// Counters: `next` is the next sequence number (global, so ids never repeat).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Mirrored rosters: (user, contact) → the `<item/>`.
const ROSTER: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("roster");
/// Users whose roster is mirrored → when it was last replaced (ms since the epoch).
const MIRRORED: TableDefinition<&str, u64> = TableDefinition::new("mirrored");

/// A queued operation as stored. JSON, so a record stays readable (and migratable)
/// whatever the proxy's version.
#[derive(Serialize, Deserialize)]
struct Record {
    kind: String,
    entity: String,
    queued_at_ms: u64,
    stanza: String,
}

pub struct Embedded {
    db: Database,
}

impl Embedded {
    /// Opens the store at `path`, creating it if needed.
    pub fn open(path: &Path) -> Result<Embedded, StoreError> {
        let open = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let db = Database::create(path).map_err(|e| open(e.to_string()))?;
        // Both tables exist from the start, so reads never meet a missing table.
        let txn = db.begin_write().map_err(|e| open(e.to_string()))?;
        txn.open_table(QUEUE).map_err(|e| open(e.to_string()))?;
        txn.open_table(META).map_err(|e| open(e.to_string()))?;
        txn.open_table(ROSTER).map_err(|e| open(e.to_string()))?;
        txn.open_table(MIRRORED).map_err(|e| open(e.to_string()))?;
        txn.commit().map_err(|e| open(e.to_string()))?;
        Ok(Embedded { db })
    }
}

/// Takes `removed` off the store-wide count of queued operations.
fn uncount(txn: &redb::WriteTransaction, removed: u64) -> Result<(), StoreError> {
    if removed == 0 {
        return Ok(());
    }
    let mut meta = txn.open_table(META).map_err(backend)?;
    let total = meta.get("count").map_err(backend)?.map_or(0, |v| v.value());
    meta.insert("count", total.saturating_sub(removed))
        .map_err(backend)?;
    Ok(())
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn encode(op: &Queued) -> Result<Vec<u8>, StoreError> {
    let stanza = std::str::from_utf8(&op.stanza)
        .map_err(|e| StoreError::Corrupt(format!("stanza is not UTF-8: {e}")))?;
    let record = Record {
        kind: op.kind.as_str().to_owned(),
        entity: op.entity.clone(),
        queued_at_ms: millis(op.queued_at),
        stanza: stanza.to_owned(),
    };
    serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<Queued, StoreError> {
    let record: Record =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let kind = OpKind::parse(&record.kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown kind {:?}", record.kind)))?;
    Ok(Queued {
        kind,
        entity: record.entity,
        queued_at: UNIX_EPOCH + Duration::from_millis(record.queued_at_ms),
        stanza: Bytes::from(record.stanza),
    })
}

impl Store for Embedded {
    fn enqueue(&self, user: &str, op: &Queued, limits: Limits) -> Result<u64, EnqueueError> {
        let value = encode(op)?;
        let txn = self.db.begin_write().map_err(backend)?;
        let id = {
            let mut queue = txn.open_table(QUEUE).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let total = meta.get("count").map_err(backend)?.map_or(0, |v| v.value());
            if total >= limits.total as u64 {
                return Err(EnqueueError::StoreFull { max: limits.total });
            }
            let waiting = queue
                .range((user, 0)..=(user, u64::MAX))
                .map_err(backend)?
                .count();
            if waiting >= limits.per_user {
                return Err(EnqueueError::Full {
                    user: user.to_owned(),
                    max: limits.per_user,
                });
            }
            let id = meta.get("next").map_err(backend)?.map_or(1, |v| v.value());
            meta.insert("next", id.saturating_add(1)).map_err(backend)?;
            meta.insert("count", total.saturating_add(1))
                .map_err(backend)?;
            queue
                .insert((user, id), value.as_slice())
                .map_err(backend)?;
            id
        };
        txn.commit().map_err(backend)?;
        Ok(id)
    }

    fn queued(
        &self,
        user: &str,
        now: SystemTime,
        max_age: Duration,
    ) -> Result<(Vec<Entry>, Vec<OpKind>), StoreError> {
        // Every login asks: a read transaction costs no disk write, so an empty queue
        // costs next to nothing. Only expired entries make it write.
        let mut entries = Vec::new();
        let mut expired = Vec::new();
        {
            let txn = self.db.begin_read().map_err(backend)?;
            let queue = txn.open_table(QUEUE).map_err(backend)?;
            for item in queue.range((user, 0)..=(user, u64::MAX)).map_err(backend)? {
                let (key, value) = item.map_err(backend)?;
                let id = key.value().1;
                let op = decode(value.value())?;
                let age = now.duration_since(op.queued_at).unwrap_or_default();
                match age > max_age {
                    true => expired.push((id, op.kind)),
                    false => entries.push(Entry { id, op }),
                }
            }
        }
        if !expired.is_empty() {
            let ids: Vec<u64> = expired.iter().map(|(id, _)| *id).collect();
            self.remove(user, &ids)?;
        }
        Ok((entries, expired.into_iter().map(|(_, kind)| kind).collect()))
    }

    fn replace_roster(&self, user: &str, items: &[(String, Bytes)]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        // A mirror is a cache of the server's roster: losing the last update to a
        // crash costs a stale read until the user's next login, not a lost operation,
        // so it is not worth a disk flush at every login.
        txn.set_durability(redb::Durability::Eventual);
        {
            let mut roster = txn.open_table(ROSTER).map_err(backend)?;
            let old: Vec<String> = roster
                .range((user, "")..)
                .map_err(backend)?
                .map_while(|item| item.ok())
                .take_while(|(key, _)| key.value().0 == user)
                .map(|(key, _)| key.value().1.to_owned())
                .collect();
            for contact in &old {
                roster.remove((user, contact.as_str())).map_err(backend)?;
            }
            for (contact, item) in items {
                roster
                    .insert((user, contact.as_str()), &item[..])
                    .map_err(backend)?;
            }
            let mut mirrored = txn.open_table(MIRRORED).map_err(backend)?;
            mirrored
                .insert(user, millis(SystemTime::now()))
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn update_roster(
        &self,
        user: &str,
        contact: &str,
        item: Option<&Bytes>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(redb::Durability::Eventual);
        {
            let mirrored = txn.open_table(MIRRORED).map_err(backend)?;
            if mirrored.get(user).map_err(backend)?.is_none() {
                return Ok(());
            }
            let mut roster = txn.open_table(ROSTER).map_err(backend)?;
            match item {
                Some(item) => {
                    roster.insert((user, contact), &item[..]).map_err(backend)?;
                }
                None => {
                    roster.remove((user, contact)).map_err(backend)?;
                }
            }
        }
        txn.commit().map_err(backend)
    }

    fn roster(&self, user: &str) -> Result<Option<Vec<Bytes>>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let mirrored = txn.open_table(MIRRORED).map_err(backend)?;
        if mirrored.get(user).map_err(backend)?.is_none() {
            return Ok(None);
        }
        let roster = txn.open_table(ROSTER).map_err(backend)?;
        let mut items = Vec::new();
        for item in roster.range((user, "")..).map_err(backend)? {
            let (key, value) = item.map_err(backend)?;
            if key.value().0 != user {
                break;
            }
            items.push(Bytes::copy_from_slice(value.value()));
        }
        Ok(Some(items))
    }

    fn remove(&self, user: &str, ids: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(backend)?;
            let mut removed = 0u64;
            for id in ids {
                if queue.remove((user, *id)).map_err(backend)?.is_some() {
                    removed += 1;
                }
            }
            uncount(&txn, removed)?;
        }
        txn.commit().map_err(backend)
    }

    fn expire(&self, now: SystemTime, max_age: Duration) -> Result<Vec<OpKind>, StoreError> {
        let mut expired: Vec<(String, u64, OpKind)> = Vec::new();
        {
            let txn = self.db.begin_read().map_err(backend)?;
            let queue = txn.open_table(QUEUE).map_err(backend)?;
            for item in queue.iter().map_err(backend)? {
                let (key, value) = item.map_err(backend)?;
                let (user, id) = key.value();
                // Unreadable records go too: they would never be applied.
                let (kind, at) = match decode(value.value()) {
                    Ok(op) => (op.kind, op.queued_at),
                    Err(_) => (OpKind::Message, UNIX_EPOCH),
                };
                if now.duration_since(at).unwrap_or_default() > max_age {
                    expired.push((user.to_owned(), id, kind));
                }
            }
        }
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(backend)?;
            let mut removed = 0u64;
            for (user, id, _) in &expired {
                if queue
                    .remove((user.as_str(), *id))
                    .map_err(backend)?
                    .is_some()
                {
                    removed += 1;
                }
            }
            uncount(&txn, removed)?;
        }
        txn.commit().map_err(backend)?;
        Ok(expired.into_iter().map(|(_, _, kind)| kind).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_user(per_user: usize) -> Limits {
        Limits {
            per_user,
            total: 1000,
        }
    }

    fn op(text: &str, at: SystemTime) -> Queued {
        Queued {
            kind: OpKind::Message,
            entity: "gw.example.org".into(),
            queued_at: at,
            stanza: Bytes::from(text.to_owned()),
        }
    }

    #[test]
    fn queues_survive_reopening_in_order_per_user_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let now = SystemTime::now();
        {
            let store = Embedded::open(&path).unwrap();
            store
                .enqueue("alice@a", &op("<m1/>", now), per_user(2))
                .unwrap();
            store
                .enqueue("bob@a", &op("<b1/>", now), per_user(2))
                .unwrap();
            store
                .enqueue("alice@a", &op("<m2/>", now), per_user(2))
                .unwrap();
            let full = store.enqueue("alice@a", &op("<m3/>", now), per_user(2));
            assert!(matches!(full, Err(EnqueueError::Full { max: 2, .. })));
        }
        // A new process: the same file, the same queues.
        let store = Embedded::open(&path).unwrap();
        let (alice, expired) = store
            .queued("alice@a", now, Duration::from_secs(60))
            .unwrap();
        assert!(expired.is_empty());
        let stanzas: Vec<&[u8]> = alice.iter().map(|e| &e.op.stanza[..]).collect();
        assert_eq!(stanzas, [&b"<m1/>"[..], b"<m2/>"]);
        assert_eq!(alice[0].op.entity, "gw.example.org");
        store.remove("alice@a", &[alice[0].id]).unwrap();
        let (alice, _) = store
            .queued("alice@a", now, Duration::from_secs(60))
            .unwrap();
        assert_eq!(alice.len(), 1);
        // A prefix of another user's JID is another user.
        let (al, _) = store
            .queued("alice@", now, Duration::from_secs(60))
            .unwrap();
        assert!(al.is_empty());
        let (bob, _) = store.queued("bob@a", now, Duration::from_secs(60)).unwrap();
        assert_eq!(bob.len(), 1);
    }

    #[test]
    fn old_operations_are_dropped_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("s.redb")).unwrap();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(3600);
        store
            .enqueue("alice@a", &op("<old/>", old), per_user(10))
            .unwrap();
        store
            .enqueue("alice@a", &op("<new/>", now), per_user(10))
            .unwrap();
        let (left, expired) = store
            .queued("alice@a", now, Duration::from_secs(60))
            .unwrap();
        assert_eq!(expired, [OpKind::Message]);
        assert_eq!(&left[0].op.stanza[..], b"<new/>");
        let (left, expired) = store
            .queued("alice@a", now, Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            (left.len(), expired.len()),
            (1, 0),
            "expired ones are gone for good"
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let _first = Embedded::open(&path).unwrap();
        assert!(matches!(
            Embedded::open(&path),
            Err(StoreError::Open { .. })
        ));
    }

    #[test]
    fn roster_mirrors_are_replaced_and_updated_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("s.redb")).unwrap();
        let item = |jid: &str| Bytes::from(format!("<item xmlns='jabber:iq:roster' jid='{jid}'/>"));
        assert_eq!(store.roster("alice@a").unwrap(), None, "never mirrored");
        // A push before any whole roster: nothing to apply it to.
        store
            .update_roster("alice@a", "bob@a", Some(&item("bob@a")))
            .unwrap();
        assert_eq!(store.roster("alice@a").unwrap(), None);
        store
            .replace_roster(
                "alice@a",
                &[
                    ("bob@a".into(), item("bob@a")),
                    ("carol@a".into(), item("carol@a")),
                ],
            )
            .unwrap();
        store
            .replace_roster("alice@ab", &[("zed@a".into(), item("zed@a"))])
            .unwrap();
        store
            .update_roster("alice@a", "dave@a", Some(&item("dave@a")))
            .unwrap();
        store.update_roster("alice@a", "bob@a", None).unwrap();
        let got = store.roster("alice@a").unwrap().unwrap();
        assert_eq!(got, [item("carol@a"), item("dave@a")]);
        store.replace_roster("alice@a", &[]).unwrap();
        assert_eq!(
            store.roster("alice@a").unwrap(),
            Some(vec![]),
            "an empty roster is a roster"
        );
        assert_eq!(store.roster("alice@ab").unwrap().unwrap(), [item("zed@a")]);
    }

    #[test]
    fn the_whole_store_is_bounded_and_swept_of_old_operations() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("s.redb")).unwrap();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(3600);
        let limits = Limits {
            per_user: 10,
            total: 3,
        };
        store.enqueue("a@x", &op("<1/>", old), limits).unwrap();
        store.enqueue("b@x", &op("<2/>", old), limits).unwrap();
        store.enqueue("c@x", &op("<3/>", now), limits).unwrap();
        let full = store.enqueue("d@x", &op("<4/>", now), limits);
        assert!(
            matches!(full, Err(EnqueueError::StoreFull { max: 3 })),
            "{full:?}"
        );
        // Users who never log in again: swept by age, which makes room.
        let swept = store.expire(now, Duration::from_secs(60)).unwrap();
        assert_eq!(swept, [OpKind::Message, OpKind::Message]);
        store.enqueue("d@x", &op("<4/>", now), limits).unwrap();
        store.enqueue("e@x", &op("<5/>", now), limits).unwrap();
        assert!(store.enqueue("f@x", &op("<6/>", now), limits).is_err());
        // Applied operations make room too.
        let (c, _) = store.queued("c@x", now, Duration::from_secs(60)).unwrap();
        store.remove("c@x", &[c[0].id]).unwrap();
        store.enqueue("f@x", &op("<6/>", now), limits).unwrap();
    }
}
