//! Rosters owned by the operator's web app (`[hosts."D".roster_admin]`): fetched over
//! HTTP ([`fetch`], [`cache`]), served to clients and privileged entities in place of
//! the legacy server's roster, kept in sync by the refresh endpoint ([`refresh`]), with
//! presence between contacts carried by the proxy ([`presence`]), since the legacy
//! server's own roster knows nothing of these contacts.

pub mod cache;
pub mod fetch;
pub mod items;
pub mod presence;
pub mod refresh;

use std::sync::Arc;

use std::collections::HashSet;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use dashmap::DashMap;

use crate::config::{ConfigHandle, RosterAdmin};
use crate::hub::{bare, Command, Hub};
use crate::util::Slots;
use crate::xml::writer::{push_attr, stanza_error, StanzaError};
use cache::{Cache, RosterError};
use fetch::Fetcher;
use items::Roster;

/// The roster service shared by every session.
pub struct RosterService {
    pub(crate) hub: Arc<Hub>,
    config: Arc<ConfigHandle>,
    pub cache: Cache,
    fetcher: ArcSwapOption<(usize, Fetcher)>,
    /// Per user (bare JID): full JIDs of sessions that fetched their roster (they get
    /// pushes).
    interested: DashMap<String, HashSet<String>>,
    /// Tasks in progress per session (roster gets, presence fan-outs), bounded by
    /// `limits.max_operations_per_session`.
    tasks: Slots,
}

pub fn split(jid: &str) -> Option<(&str, &str)> {
    let bare = jid.split('/').next().unwrap_or(jid);
    bare.split_once('@')
}

impl RosterService {
    pub fn new(hub: Arc<Hub>, config: Arc<ConfigHandle>) -> Self {
        RosterService {
            hub,
            config,
            cache: Cache::default(),
            fetcher: ArcSwapOption::empty(),
            interested: DashMap::new(),
            tasks: Slots::new("max_operations_per_session"),
        }
    }

    /// Starts a client's roster get in a task of its own; the refusal to send the
    /// client instead when the session has too many operations in progress.
    pub fn start_client_get(
        self: &Arc<Self>,
        full: &str,
        id: String,
        ver: Option<String>,
    ) -> Result<(), Bytes> {
        let Some(slot) = self.task_slot(full) else {
            return Err(stanza_error(&StanzaError {
                name: "iq",
                id: Some(&id),
                from: None,
                to: Some(full),
                error_type: "wait",
                condition: "resource-constraint",
                text: Some("too many roster requests in progress; retry later"),
                xmlns: None,
            }));
        };
        let task = serve_client_get(self.clone(), full.to_owned(), id, ver);
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
        Ok(())
    }

    /// Sends a broadcast presence to the user's contacts in a task of its own; with
    /// too many in progress for the session, this one is skipped (and counted).
    pub fn start_fan_out(self: &Arc<Self>, full: &str, presence: Bytes, first: bool) {
        let Some(slot) = self.task_slot(full) else {
            tracing::warn!(
                full,
                "presence not sent to web-app contacts: too many in progress"
            );
            return;
        };
        let task = presence::fan_out(self.clone(), full.to_owned(), presence, first);
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
    }

    fn task_slot(&self, full: &str) -> Option<crate::util::Slot> {
        let max = self
            .config
            .current()
            .limits
            .quotas
            .max_operations_per_session;
        self.tasks.start(full, max)
    }

    /// The roster-admin settings of `domain`, if the web app owns its rosters.
    pub fn owner(&self, domain: &str) -> Option<RosterAdmin> {
        self.config.current().host(domain)?.roster_admin.clone()
    }

    /// Whether the web app owns `domain`'s rosters (per-stanza check: nothing cloned).
    pub fn owns(&self, domain: &str) -> bool {
        self.config
            .current()
            .host(domain)
            .is_some_and(|host| host.roster_admin.is_some())
    }

    fn fetcher(&self, admin: &RosterAdmin) -> Result<Arc<(usize, Fetcher)>, RosterError> {
        if let Some(current) = self.fetcher.load_full() {
            if current.0 == admin.max_concurrent_fetches {
                return Ok(current);
            }
        }
        let fetcher = Fetcher::new(admin.max_concurrent_fetches)
            .map_err(|e| RosterError::Fetch(fetch::FetchError::Transport(e.to_string())))?;
        let fresh = Arc::new((admin.max_concurrent_fetches, fetcher));
        self.fetcher.store(Some(fresh.clone()));
        Ok(fresh)
    }

    /// The roster of `user@domain` (cached, fetched, or stale on web app failure).
    pub async fn get(
        &self,
        admin: &RosterAdmin,
        domain: &str,
        user: &str,
    ) -> Result<Arc<Roster>, RosterError> {
        let fetcher = self.fetcher(admin)?;
        let max = self.config.current().limits.quotas.max_roster_cache;
        self.cache.get(&fetcher.1, admin, domain, user, max).await
    }

    pub async fn refresh_one(
        &self,
        admin: &RosterAdmin,
        domain: &str,
        user: &str,
    ) -> Result<(Option<Arc<Roster>>, Arc<Roster>), RosterError> {
        let fetcher = self.fetcher(admin)?;
        let max = self.config.current().limits.quotas.max_roster_cache;
        self.cache
            .refresh(&fetcher.1, admin, domain, user, max)
            .await
    }

    pub fn session_ended(&self, full: &str) {
        self.interested.remove_if_mut(bare(full), |_, sessions| {
            sessions.remove(full);
            sessions.is_empty()
        });
    }

    /// The sessions of `bare_jid` that fetched their roster (indexed: a refresh or a
    /// logout never scans other users).
    pub fn interested_sessions(&self, bare_jid: &str) -> Vec<String> {
        self.interested
            .get(bare_jid)
            .map(|sessions| sessions.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn interested_in(&self, full: &str) {
        self.interested
            .entry(bare(full).to_owned())
            .or_default()
            .insert(full.to_owned());
    }
}

/// A client's roster get, answered from the web app's roster (checklist 70, XEP-0237:
/// an unchanged `ver` gets an empty result). Runs as its own task; the answer is
/// injected into the session (which consumed the request).
pub async fn serve_client_get(
    service: Arc<RosterService>,
    full: String,
    id: String,
    ver: Option<String>,
) {
    let Some((user, domain)) = split(&full).map(|(u, d)| (u.to_owned(), d.to_owned())) else {
        return;
    };
    let Some(admin) = service.owner(&domain) else {
        return;
    };
    let answer = match service.get(&admin, &domain, &user).await {
        Ok(roster) => {
            service.interested_in(&full);
            let mut out = String::from("<iq type='result'");
            push_attr(&mut out, "id", &id);
            push_attr(&mut out, "to", &full);
            if ver.as_deref() == Some(roster.version().as_str()) {
                out.push_str("/>");
            } else {
                out.push('>');
                out.push_str(&roster.query());
                out.push_str("</iq>");
            }
            Bytes::from(out)
        }
        Err(error) => stanza_error(&StanzaError {
            name: "iq",
            id: Some(&id),
            from: None,
            to: Some(&full),
            error_type: "cancel",
            condition: "internal-server-error",
            text: Some(&format!("the roster service is unavailable: {error}")),
            xmlns: None,
        }),
    };
    if let Some(session) = service.hub.sessions.get(&full) {
        let _ = session.owe(Command::ToClient(answer));
    }
}

/// A client's roster set: the web app owns the roster (checklist 71).
pub fn client_set_refusal(full: &str, id: Option<&str>) -> Bytes {
    stanza_error(&StanzaError {
        name: "iq",
        id,
        from: None,
        to: Some(full),
        error_type: "cancel",
        condition: "not-allowed",
        text: Some("this roster is managed by the site; change it there"),
        xmlns: None,
    })
}

/// Subscription presences have no meaning for web-app rosters: dropped both ways
/// (as Prosody's mod_block_subscriptions does).
pub fn is_subscription(kind: Option<&str>) -> bool {
    matches!(
        kind,
        Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")
    )
}
