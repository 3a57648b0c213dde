//! Stream Management (XEP-0198) as the proxy follows it for one client session: when
//! counting starts, which `h` values need translating, what a client that never
//! acknowledges may make the proxy hold (bounded), and what survives for a resumed
//! stream. The per-direction arithmetic is in [`counters`]; reading and rewriting the
//! SM elements on the wire is in [`wire`].

pub mod counters;
pub mod wire;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

use counters::Direction;

use crate::xml::ns::NS_SM2;

/// How long counters of a resumable stream are kept when the server states no `max`.
/// Prosody's default hibernation time.
const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(600);
/// A server's `max` beyond this is taken as this: the proxy's own bound on how long it
/// keeps an ended stream's counters (the value is the server's, so it is not trusted
/// to fit in an `Instant`).
const MAX_RESUME_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Where one session's Stream Management stands.
#[derive(Debug, Default)]
pub enum Sm {
    /// Not negotiated: nothing is counted.
    #[default]
    Off,
    /// The client's `<enable/>` went to the server, which counts the client's stanzas
    /// from here; its `<enabled/>` is awaited.
    Enabling { up: Direction, version: Version },
    /// Both sides count.
    On {
        up: Direction,
        down: Direction,
        resumable: Option<Resumable>,
        /// The proxy sent the client its own `<r/>` and awaits the `<a/>`.
        asked: bool,
        version: Version,
    },
    /// A `<resume/>` was relayed; the old stream's state waits for `<resumed/>`.
    Resuming(Box<PendingResume>),
}

/// The XEP-0198 namespace the client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Version {
    #[default]
    V3,
    V2,
}

impl Version {
    pub fn of(ns: Option<&str>) -> Version {
        match ns {
            Some(NS_SM2) => Version::V2,
            _ => Version::V3,
        }
    }

    /// The proxy's own `<r/>` in this version.
    pub fn request(self) -> Bytes {
        match self {
            Version::V3 => Bytes::from_static(b"<r xmlns='urn:xmpp:sm:3'/>"),
            Version::V2 => Bytes::from_static(b"<r xmlns='urn:xmpp:sm:2'/>"),
        }
    }
}

/// From `<enabled id=… resume='true' max=…/>`.
#[derive(Debug, Clone)]
pub struct Resumable {
    id: String,
    window: Duration,
}

#[derive(Debug)]
pub struct PendingResume {
    version: Version,
    previd: String,
    saved: Saved,
    down: Direction,
    down_unacked: Vec<Bytes>,
}

/// The state kept for a resumable stream after its connection ended.
#[derive(Debug, Clone)]
pub struct Saved {
    pub jid: String,
    pub up: Direction,
    pub down: Direction,
    /// How long the server keeps the stream resumable (its `max`, bounded).
    pub resume_window: Duration,
}

/// What to do with the stanzas re-delivered by the proxy after a resumption.
#[derive(Debug, Default)]
pub struct Resumed {
    pub jid: String,
    pub to_client: Vec<Bytes>,
    pub to_server: Vec<Bytes>,
}

/// A peer that never acknowledges made the proxy hold more than its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{held} stanzas unacknowledged (quota {max})")]
pub struct Overflow {
    pub held: usize,
    pub max: usize,
}

impl Sm {
    pub fn is_counting_up(&self) -> bool {
        matches!(self, Sm::Enabling { .. } | Sm::On { .. })
    }

    pub fn is_counting_down(&self) -> bool {
        matches!(self, Sm::On { .. })
    }

    fn up(&mut self) -> Option<&mut Direction> {
        match self {
            Sm::Enabling { up, .. } | Sm::On { up, .. } => Some(up),
            Sm::Off | Sm::Resuming(_) => None,
        }
    }

    fn down(&mut self) -> Option<&mut Direction> {
        match self {
            Sm::On { down, .. } => Some(down),
            _ => None,
        }
    }

    // ---- counting ----------------------------------------------------------------

    /// A client stanza relayed to the server.
    pub fn relayed_up(&mut self) {
        if let Some(up) = self.up() {
            up.relayed();
        }
    }

    /// A client stanza the proxy handled itself (the server never sees it).
    pub fn consumed_up(&mut self, max: usize) -> Result<(), Overflow> {
        self.up().map_or(Ok(()), |up| {
            up.consumed();
            check(up, max)
        })
    }

    /// A stanza the proxy made for the server on the user's stream.
    pub fn injected_up(&mut self, stanza: &Bytes, max: usize) -> Result<(), Overflow> {
        self.up().map_or(Ok(()), |up| {
            up.injected(stanza.clone());
            check(up, max)
        })
    }

    /// A server stanza relayed to the client.
    pub fn relayed_down(&mut self) {
        if let Some(down) = self.down() {
            down.relayed();
        }
    }

    /// A server stanza the proxy handled itself (the client never sees it).
    pub fn consumed_down(&mut self, max: usize) -> Result<(), Overflow> {
        self.down().map_or(Ok(()), |down| {
            down.consumed();
            check(down, max)
        })
    }

    /// A stanza the proxy made for the client (kept until acknowledged, to deliver it
    /// again on a resumed stream).
    pub fn injected_down(&mut self, stanza: &Bytes, max: usize) -> Result<(), Overflow> {
        self.down().map_or(Ok(()), |down| {
            down.injected(stanza.clone());
            check(down, max)
        })
    }

    /// The server's `<a h/>`, as the client must see it.
    pub fn server_ack(&mut self, h: u32) -> u32 {
        match self.up() {
            Some(up) => up.ack(h).unwrap_or_else(|too_high| {
                tracing::warn!(%too_high, "server acknowledged too many stanzas");
                too_high.translated
            }),
            None => h,
        }
    }

    /// Whether to ask the client for an acknowledgement now: the proxy holds
    /// `threshold` or more of its own stanzas for it and has not asked yet. The server
    /// only asks about what it sent, so a client whose traffic the proxy answers
    /// itself (delegated IQs) would otherwise never be asked, and never acknowledge.
    pub fn should_request_ack(&mut self, threshold: usize) -> Option<Bytes> {
        match self {
            Sm::On {
                down,
                asked,
                version,
                ..
            } if !*asked && down.unacknowledged() >= threshold => {
                *asked = true;
                Some(version.request())
            }
            _ => None,
        }
    }

    /// The client's `<a h/>`, as the server must see it.
    pub fn client_ack(&mut self, h: u32) -> u32 {
        if let Sm::On { asked, .. } = self {
            *asked = false;
        }
        match self.down() {
            Some(down) => down.ack(h).unwrap_or_else(|too_high| {
                tracing::info!(%too_high, "client acknowledged too many stanzas");
                too_high.translated
            }),
            None => h,
        }
    }

    // ---- negotiation -------------------------------------------------------------

    /// The client's `<enable/>` went to the server: the server counts what follows.
    pub fn enable_forwarded(&mut self, version: Version) {
        *self = Sm::Enabling {
            up: Direction::default(),
            version,
        };
    }

    /// The server's `<enabled/>` went to the client: both count from here.
    pub fn enabled_relayed(&mut self, id: Option<String>, resume: bool, max_secs: Option<u64>) {
        let (up, version) = match std::mem::take(self) {
            Sm::Enabling { up, version } | Sm::On { up, version, .. } => (up, version),
            _ => (Direction::default(), Version::default()),
        };
        let window = max_secs
            .map(|secs| Duration::from_secs(secs).min(MAX_RESUME_WINDOW))
            .unwrap_or(DEFAULT_RESUME_WINDOW);
        *self = Sm::On {
            up,
            down: Direction::default(),
            resumable: id.filter(|_| resume).map(|id| Resumable { id, window }),
            asked: false,
            version,
        };
    }

    /// `<failed/>` from the server: SM is off (a refused resumption leaves the fresh
    /// stream uncounted, as it was).
    pub fn failed(&mut self) {
        *self = Sm::Off;
    }

    /// Client's `<resume previd h/>`: returns the `h` for the server, if the proxy knows
    /// the old stream. Unknown ids are relayed unchanged (the server will refuse them).
    pub fn resume_requested(
        &mut self,
        store: &ResumeStore,
        previd: &str,
        h: u32,
        version: Version,
    ) -> Option<u32> {
        let saved = store.take(previd)?;
        let (down, server_h, down_unacked) = saved.down.clone().resume(h);
        *self = Sm::Resuming(Box::new(PendingResume {
            version,
            previd: previd.to_owned(),
            saved,
            down,
            down_unacked,
        }));
        Some(server_h)
    }

    /// Server's `<resumed h/>`: returns the `h` for the client and what to re-deliver.
    pub fn resumed(&mut self, h: u32) -> Option<(u32, Resumed)> {
        let Sm::Resuming(pending) = std::mem::take(self) else {
            return None;
        };
        let PendingResume {
            previd,
            saved,
            down,
            down_unacked,
            version,
        } = *pending;
        let (up, client_h, up_unacked) = saved.up.resume(h);
        *self = Sm::On {
            up,
            down,
            resumable: Some(Resumable {
                id: previd,
                window: saved.resume_window,
            }),
            asked: false,
            version,
        };
        Some((
            client_h,
            Resumed {
                jid: saved.jid,
                to_client: down_unacked,
                to_server: up_unacked,
            },
        ))
    }

    /// At the end of a connection: keeps the counters if the stream can be resumed.
    /// Whether the client enabled resumption (XEP-0198): a dropped connection may
    /// come back as this session.
    pub fn can_resume(&self) -> bool {
        matches!(
            self,
            Sm::On {
                resumable: Some(_),
                ..
            }
        )
    }

    pub fn save(&self, store: &ResumeStore, jid: Option<&str>, max: usize) {
        let (
            Sm::On {
                up,
                down,
                resumable: Some(resumable),
                ..
            },
            Some(jid),
        ) = (self, jid)
        else {
            return;
        };
        store.put(
            resumable.id.clone(),
            Saved {
                jid: jid.to_owned(),
                up: up.clone(),
                down: down.clone(),
                resume_window: resumable.window,
            },
            max,
        );
    }
}

fn check(direction: &Direction, max: usize) -> Result<(), Overflow> {
    let held = direction.unacknowledged();
    if held > max {
        return Err(Overflow { held, max });
    }
    Ok(())
}

/// Counters of ended resumable streams, by SM id, until their window passes. Expiry
/// walks a queue ordered by deadline, so saving a stream never scans the others.
#[derive(Default)]
pub struct ResumeStore {
    entries: DashMap<String, (Instant, Saved)>,
    /// (deadline, id), in insertion order; windows differ, so a deadline may be out
    /// of order by at most the spread of windows (bounded by `MAX_RESUME_WINDOW`).
    expiry: Mutex<VecDeque<(Instant, String)>>,
}

impl ResumeStore {
    fn put(&self, id: String, saved: Saved, max: usize) {
        let now = Instant::now();
        self.expire(now);
        if self.entries.len() >= max {
            crate::metrics::quota_exceeded("max_resumable_sessions");
            tracing::info!(max, "resumption store full: this stream cannot be resumed");
            return;
        }
        let deadline = now + saved.resume_window;
        self.lock().push_back((deadline, id.clone()));
        self.entries.insert(id, (deadline, saved));
    }

    fn take(&self, id: &str) -> Option<Saved> {
        let (_, (deadline, saved)) = self.entries.remove(id)?;
        (deadline > Instant::now()).then_some(saved)
    }

    /// Drops entries whose deadline passed, from the front of the queue.
    fn expire(&self, now: Instant) {
        let mut expiry = self.lock();
        while let Some((deadline, id)) = expiry.front() {
            if *deadline > now {
                break;
            }
            self.entries.remove_if(id, |_, (d, _)| d == deadline);
            expiry.pop_front();
        }
        // Ids taken by a resumption leave stale queue entries behind; never let the
        // queue outgrow the map by much.
        if expiry.len() > 2 * self.entries.len() + 64 {
            expiry.retain(|(d, id)| self.entries.get(id).is_some_and(|e| e.0 == *d));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, String)>> {
        crate::util::lock(&self.expiry)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1000;

    #[test]
    fn resumption_carries_counters_and_unacked_injections() {
        let store = ResumeStore::default();
        let mut sm = Sm::default();
        sm.enable_forwarded(Version::V3);
        sm.enabled_relayed(Some("sm1".into()), true, Some(300));
        sm.relayed_up();
        sm.consumed_up(MAX).unwrap(); // delegated IQ
        sm.relayed_up();
        sm.relayed_down();
        sm.injected_down(&Bytes::from_static(b"<iq type='result' id='d1'/>"), MAX)
            .unwrap();
        sm.save(&store, Some("alice@example.org/res"), MAX);
        assert_eq!(store.len(), 1);

        let mut next = Sm::default();
        // The client saw both server→client stanzas before the connection broke.
        assert_eq!(
            next.resume_requested(&store, "sm1", 2, Version::V3),
            Some(1)
        );
        assert!(store.is_empty());
        // The server received both forwarded stanzas: the client sent three.
        let (client_h, resumed) = next.resumed(2).unwrap();
        assert_eq!(client_h, 3);
        assert_eq!(resumed.jid, "alice@example.org/res");
        assert!(
            resumed.to_client.is_empty(),
            "the injected answer was acknowledged"
        );
        assert!(resumed.to_server.is_empty());
        assert!(next.is_counting_up() && next.is_counting_down());
    }

    #[test]
    fn unknown_previd_is_left_to_the_server() {
        let store = ResumeStore::default();
        let mut sm = Sm::default();
        assert_eq!(sm.resume_requested(&store, "nope", 4, Version::V3), None);
        assert!(sm.resumed(4).is_none());
    }

    #[test]
    fn not_resumable_is_not_saved() {
        let store = ResumeStore::default();
        let mut sm = Sm::default();
        sm.enable_forwarded(Version::V3);
        sm.enabled_relayed(Some("x".into()), false, None);
        sm.save(&store, Some("a@b/c"), MAX);
        assert!(store.is_empty());
    }

    #[test]
    fn failed_enable_stops_counting() {
        let mut sm = Sm::default();
        sm.enable_forwarded(Version::V3);
        sm.failed();
        assert!(!sm.is_counting_up());
    }

    #[test]
    fn a_huge_server_max_cannot_overflow_the_deadline() {
        let store = ResumeStore::default();
        let mut sm = Sm::default();
        sm.enable_forwarded(Version::V3);
        sm.enabled_relayed(Some("big".into()), true, Some(u64::MAX));
        sm.save(&store, Some("a@b/c"), MAX);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_client_that_never_acks_hits_the_quota() {
        let mut sm = Sm::default();
        sm.enable_forwarded(Version::V3);
        sm.enabled_relayed(None, false, None);
        let answer = Bytes::from_static(b"<iq type='result' id='x'/>");
        for _ in 0..3 {
            sm.injected_down(&answer, 3).unwrap();
        }
        assert_eq!(
            sm.injected_down(&answer, 3),
            Err(Overflow { held: 4, max: 3 })
        );
        // Once acknowledged, the bookkeeping is released.
        sm.client_ack(4);
        sm.injected_down(&answer, 3).unwrap();
    }

    #[test]
    fn the_client_is_asked_once_until_it_answers() {
        let mut sm = Sm::default();
        assert!(sm.should_request_ack(1).is_none(), "not before SM is on");
        sm.enable_forwarded(Version::V3);
        sm.enabled_relayed(None, false, None);
        let answer = Bytes::from_static(b"<iq type='result' id='x'/>");
        sm.injected_down(&answer, MAX).unwrap();
        assert!(sm.should_request_ack(2).is_none());
        sm.injected_down(&answer, MAX).unwrap();
        assert!(sm.should_request_ack(2).is_some());
        sm.injected_down(&answer, MAX).unwrap();
        assert!(sm.should_request_ack(2).is_none(), "asked already");
        sm.client_ack(3);
        sm.injected_down(&answer, MAX).unwrap();
        sm.injected_down(&answer, MAX).unwrap();
        assert!(
            sm.should_request_ack(2).is_some(),
            "asked again after the answer"
        );
    }

    #[test]
    fn the_resumption_store_is_bounded() {
        let store = ResumeStore::default();
        for i in 0..5 {
            let mut sm = Sm::default();
            sm.enable_forwarded(Version::V3);
            sm.enabled_relayed(Some(format!("s{i}")), true, None);
            sm.save(&store, Some("a@b/c"), 3);
        }
        assert_eq!(store.len(), 3);
    }
}
