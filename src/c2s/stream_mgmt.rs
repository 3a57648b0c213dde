//! The XEP-0198 conversation of one client session as the proxy follows it: when
//! counting starts, which `h` values need translating, and what survives for a
//! resumed stream. The arithmetic itself is in [`super::sm`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;

use super::sm::Direction;
use crate::xml::ns::{NS_SM2, NS_SM3};

/// How long counters of a resumable stream are kept when the server states no `max`.
/// Prosody's default hibernation time.
const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(600);

pub fn is_sm_namespace(ns: Option<&str>) -> bool {
    matches!(ns, Some(NS_SM3) | Some(NS_SM2))
}

/// Counters of one SM-enabled stream.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Client → server: the client sends, the server acknowledges.
    pub up: Option<Direction>,
    /// Server → client: the server sends, the client acknowledges.
    pub down: Option<Direction>,
}

/// What a session remembers about SM between its own events.
#[derive(Debug, Default)]
pub struct StreamManagement {
    pub counters: Counters,
    /// From `<enabled id=… resume='true' max=…/>`: the stream can be resumed.
    resumable: Option<(String, Duration)>,
    /// A `<resume/>` was relayed; holds the old stream's state until `<resumed/>`.
    pending_resume: Option<PendingResume>,
}

#[derive(Debug)]
struct PendingResume {
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
    /// How long the server keeps the stream resumable (its `max`).
    pub resume_window: Duration,
}

/// What to do with the stanzas re-delivered by the proxy after a resumption.
#[derive(Debug, Default)]
pub struct Resumed {
    pub jid: String,
    pub to_client: Vec<Bytes>,
    pub to_server: Vec<Bytes>,
}

impl StreamManagement {
    pub fn is_counting_up(&self) -> bool {
        self.counters.up.is_some()
    }

    pub fn is_counting_down(&self) -> bool {
        self.counters.down.is_some()
    }

    /// The client's `<enable/>` went to the server: the server counts what follows.
    pub fn enable_forwarded(&mut self) {
        self.counters.up = Some(Direction::default());
    }

    /// The server's `<enabled/>` went to the client: both count from here.
    pub fn enabled_relayed(&mut self, id: Option<String>, resume: bool, max: Option<u64>) {
        self.counters.down = Some(Direction::default());
        let window = max
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_RESUME_WINDOW);
        self.resumable = id.filter(|_| resume).map(|id| (id, window));
    }

    /// `<failed/>` from the server: SM is off (or the resumption was refused).
    pub fn failed(&mut self) {
        if self.pending_resume.take().is_none() {
            self.counters = Counters::default();
        }
    }

    /// Client's `<resume previd h/>`: returns the `h` for the server, if the proxy knows
    /// the old stream. Unknown ids are relayed unchanged (the server will refuse them).
    pub fn resume_requested(&mut self, store: &ResumeStore, previd: &str, h: u32) -> Option<u32> {
        let saved = store.take(previd)?;
        let (down, server_h, down_unacked) = saved.down.clone().resume(h);
        self.pending_resume = Some(PendingResume {
            previd: previd.to_owned(),
            saved,
            down,
            down_unacked,
        });
        Some(server_h)
    }

    /// Server's `<resumed h/>`: returns the `h` for the client and what to re-deliver.
    pub fn resumed(&mut self, h: u32) -> Option<(u32, Resumed)> {
        let pending = self.pending_resume.take()?;
        let (up, client_h, up_unacked) = pending.saved.up.clone().resume(h);
        self.counters = Counters {
            up: Some(up),
            down: Some(pending.down),
        };
        self.resumable = Some((pending.previd, pending.saved.resume_window));
        Some((
            client_h,
            Resumed {
                jid: pending.saved.jid,
                to_client: pending.down_unacked,
                to_server: up_unacked,
            },
        ))
    }

    /// At the end of a connection: keeps the counters if the stream can be resumed.
    pub fn save(&self, store: &ResumeStore, jid: Option<&str>) {
        let (Some((id, window)), Some(jid)) = (&self.resumable, jid) else {
            return;
        };
        let (Some(up), Some(down)) = (&self.counters.up, &self.counters.down) else {
            return;
        };
        store.put(
            id.clone(),
            Saved {
                jid: jid.to_owned(),
                up: up.clone(),
                down: down.clone(),
                resume_window: *window,
            },
        );
    }
}

/// Counters of ended resumable streams, by SM id, until their window passes.
#[derive(Default)]
pub struct ResumeStore {
    entries: DashMap<String, (Instant, Saved)>,
}

impl ResumeStore {
    fn put(&self, id: String, saved: Saved) {
        self.expire();
        let deadline = Instant::now() + saved.resume_window;
        self.entries.insert(id, (deadline, saved));
    }

    fn take(&self, id: &str) -> Option<Saved> {
        let (_, (deadline, saved)) = self.entries.remove(id)?;
        (deadline > Instant::now()).then_some(saved)
    }

    fn expire(&self) {
        let now = Instant::now();
        self.entries.retain(|_, (deadline, _)| *deadline > now);
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

    #[test]
    fn resumption_carries_counters_and_unacked_injections() {
        let store = ResumeStore::default();
        let mut sm = StreamManagement::default();
        sm.enable_forwarded();
        sm.enabled_relayed(Some("sm1".into()), true, Some(300));
        let up = sm.counters.up.as_mut().unwrap();
        up.relayed();
        up.consumed(); // delegated IQ
        up.relayed();
        let down = sm.counters.down.as_mut().unwrap();
        down.relayed();
        down.injected(Bytes::from_static(b"<iq type='result' id='d1'/>"));
        sm.save(&store, Some("alice@example.org/res"));
        assert_eq!(store.len(), 1);

        let mut next = StreamManagement::default();
        // The client saw both server→client stanzas before the connection broke.
        assert_eq!(next.resume_requested(&store, "sm1", 2), Some(1));
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
        let mut sm = StreamManagement::default();
        assert_eq!(sm.resume_requested(&store, "nope", 4), None);
        assert!(sm.resumed(4).is_none());
    }

    #[test]
    fn not_resumable_is_not_saved() {
        let store = ResumeStore::default();
        let mut sm = StreamManagement::default();
        sm.enable_forwarded();
        sm.enabled_relayed(Some("x".into()), false, None);
        sm.save(&store, Some("a@b/c"));
        assert!(store.is_empty());
    }

    #[test]
    fn failed_enable_stops_counting() {
        let mut sm = StreamManagement::default();
        sm.enable_forwarded();
        sm.failed();
        assert!(!sm.is_counting_up());
    }
}
