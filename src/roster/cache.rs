//! Rosters fetched from the web app, per user, with single-flight: concurrent logins
//! of one user share one request; fresh rosters are served without asking
//! (`cache_ttl_s`), stale ones are revalidated with the ETag and still served when the
//! web app fails.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use metrics::{counter, histogram};

use super::fetch::{url_for, FetchError, Fetched, Fetcher};
use super::items::Roster;
use crate::config::RosterAdmin;

pub const FETCHES_TOTAL: &str = "stanzagate_roster_fetches_total";
pub const FETCH_SECONDS: &str = "stanzagate_roster_fetch_seconds";
pub const CACHE_HITS_TOTAL: &str = "stanzagate_roster_cache_hits_total";

#[derive(Debug, Clone, thiserror::Error)]
pub enum RosterError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Json(String),
}

struct Cached {
    roster: Arc<Roster>,
    etag: Option<String>,
    fetched: Instant,
}

/// One user's slot; its lock is what makes concurrent requests share one fetch.
#[derive(Default)]
struct Slot {
    cached: tokio::sync::Mutex<Option<Cached>>,
}

/// Per user; at most `limits.max_roster_cache` users, the least recently added
/// evicted first (never one whose fetch is in progress).
#[derive(Default)]
pub struct Cache {
    slots: DashMap<(String, String), Arc<Slot>>,
    order: std::sync::Mutex<VecDeque<(String, String)>>,
}

impl Cache {
    fn slot(&self, domain: &str, user: &str, max: usize) -> Arc<Slot> {
        let key = (domain.to_owned(), user.to_owned());
        if let Some(slot) = self.slots.get(&key) {
            return slot.clone();
        }
        self.make_room(max);
        let slot = self.slots.entry(key.clone()).or_default().clone();
        self.order().push_back(key);
        slot
    }

    /// Evicts the oldest entries no fetch is using until there is room for one more.
    fn make_room(&self, max: usize) {
        let mut order = self.order();
        let mut busy = Vec::new();
        while self.slots.len() >= max {
            let Some(key) = order.pop_front() else { break };
            let evicted = self
                .slots
                .remove_if(&key, |_, slot| Arc::strong_count(slot) == 1)
                .is_some();
            if evicted {
                crate::metrics::quota_exceeded("max_roster_cache");
            } else if self.slots.contains_key(&key) {
                busy.push(key);
            }
        }
        // In use now: kept, and first in line next time.
        for key in busy.into_iter().rev() {
            order.push_front(key);
        }
        if order.len() > 2 * self.slots.len() + 64 {
            order.retain(|key| self.slots.contains_key(key));
        }
    }

    fn order(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        crate::util::lock(&self.order)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The user's roster: cached while fresh, otherwise fetched (or revalidated).
    pub async fn get(
        &self,
        fetcher: &Fetcher,
        admin: &RosterAdmin,
        domain: &str,
        user: &str,
        max: usize,
    ) -> Result<Arc<Roster>, RosterError> {
        let slot = self.slot(domain, user, max);
        let mut cached = slot.cached.lock().await;
        if let Some(hit) = cached
            .as_ref()
            .filter(|c| c.fetched.elapsed() < admin.cache_ttl)
        {
            counter!(CACHE_HITS_TOTAL).increment(1);
            return Ok(hit.roster.clone());
        }
        load(&mut cached, fetcher, admin, domain, user).await
    }

    /// Fetches now whatever the cache says (a refresh); returns the roster before and
    /// after. On failure the cache is kept as it was.
    pub async fn refresh(
        &self,
        fetcher: &Fetcher,
        admin: &RosterAdmin,
        domain: &str,
        user: &str,
        max: usize,
    ) -> Result<(Option<Arc<Roster>>, Arc<Roster>), RosterError> {
        let slot = self.slot(domain, user, max);
        let mut cached = slot.cached.lock().await;
        let before = cached.as_ref().map(|c| c.roster.clone());
        if let Some(c) = cached.as_mut() {
            // Force a full answer: the web app asked us to look again.
            c.etag = None;
        }
        let fresh = fetch_into(&mut cached, fetcher, admin, domain, user).await?;
        Ok((before, fresh))
    }

    /// The web app changed an offline user's roster: fetch again next time.
    pub fn invalidate(&self, domain: &str, user: &str) {
        self.slots.remove(&(domain.to_owned(), user.to_owned()));
    }
}

/// Fetch or revalidate; a stale roster is served when the web app fails.
async fn load(
    cached: &mut Option<Cached>,
    fetcher: &Fetcher,
    admin: &RosterAdmin,
    domain: &str,
    user: &str,
) -> Result<Arc<Roster>, RosterError> {
    match fetch_into(cached, fetcher, admin, domain, user).await {
        Ok(roster) => Ok(roster),
        Err(error) => match cached.as_ref() {
            Some(stale) => {
                tracing::warn!(user, domain, %error, "web app failed; serving the cached roster");
                counter!(FETCHES_TOTAL, "outcome" => "stale_served").increment(1);
                Ok(stale.roster.clone())
            }
            None => Err(error),
        },
    }
}

async fn fetch_into(
    cached: &mut Option<Cached>,
    fetcher: &Fetcher,
    admin: &RosterAdmin,
    domain: &str,
    user: &str,
) -> Result<Arc<Roster>, RosterError> {
    let url = url_for(&admin.url, user);
    let etag = cached.as_ref().and_then(|c| c.etag.clone());
    let started = Instant::now();
    let result = fetcher.fetch(&url, etag.as_deref(), admin.timeout).await;
    histogram!(FETCH_SECONDS).record(started.elapsed().as_secs_f64());
    match result {
        Ok(Fetched::NotModified) => match cached.as_mut() {
            Some(c) => {
                counter!(FETCHES_TOTAL, "outcome" => "not_modified").increment(1);
                c.fetched = Instant::now();
                Ok(c.roster.clone())
            }
            None => {
                counter!(FETCHES_TOTAL, "outcome" => "error").increment(1);
                Err(RosterError::Fetch(FetchError::Status(304)))
            }
        },
        Ok(Fetched::Body { body, etag }) => {
            let owner = format!("{user}@{domain}");
            match Roster::from_json(&body, &owner) {
                Ok((roster, skipped)) => {
                    for entry in &skipped {
                        tracing::warn!(user, domain, entry, "roster entry skipped");
                    }
                    counter!(FETCHES_TOTAL, "outcome" => "ok").increment(1);
                    let roster = Arc::new(roster);
                    *cached = Some(Cached {
                        roster: roster.clone(),
                        etag,
                        fetched: Instant::now(),
                    });
                    Ok(roster)
                }
                Err(error) => {
                    tracing::warn!(user, domain, %error, "invalid roster from the web app");
                    counter!(FETCHES_TOTAL, "outcome" => "error").increment(1);
                    Err(RosterError::Json(error.to_string()))
                }
            }
        }
        Err(error) => {
            tracing::warn!(user, domain, %error, "roster fetch failed");
            counter!(FETCHES_TOTAL, "outcome" => "error").increment(1);
            Err(RosterError::Fetch(error))
        }
    }
}

/// A safety margin on top of `timeout_ms` for callers that bound a whole operation.
pub const MARGIN: Duration = Duration::from_millis(500);
