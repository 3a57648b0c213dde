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

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use dashmap::DashSet;

use crate::c2s::Command;
use crate::config::RosterAdmin;
use crate::shared::Shared;
use crate::xml::writer::{push_attr, stanza_error, StanzaError};
use cache::{Cache, RosterError};
use fetch::Fetcher;
use items::Roster;

/// The roster service shared by every session.
#[derive(Default)]
pub struct RosterService {
    pub cache: Cache,
    fetcher: ArcSwapOption<(usize, Fetcher)>,
    /// Full JIDs of sessions that fetched their roster (they get pushes).
    interested: DashSet<String>,
}

/// The roster-admin settings of `domain`, if the web app owns its rosters.
pub fn owner(shared: &Shared, domain: &str) -> Option<RosterAdmin> {
    shared.config.current().host(domain)?.roster_admin.clone()
}

/// Whether the web app owns `domain`'s rosters (per-stanza check: nothing cloned).
pub fn owns(shared: &Shared, domain: &str) -> bool {
    shared
        .config
        .current()
        .host(domain)
        .is_some_and(|host| host.roster_admin.is_some())
}

pub fn split(jid: &str) -> Option<(&str, &str)> {
    let bare = jid.split('/').next().unwrap_or(jid);
    bare.split_once('@')
}

impl RosterService {
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
        self.cache.get(&fetcher.1, admin, domain, user).await
    }

    pub async fn refresh_one(
        &self,
        admin: &RosterAdmin,
        domain: &str,
        user: &str,
    ) -> Result<(Option<Arc<Roster>>, Arc<Roster>), RosterError> {
        let fetcher = self.fetcher(admin)?;
        self.cache.refresh(&fetcher.1, admin, domain, user).await
    }

    pub fn session_ended(&self, full: &str) {
        self.interested.remove(full);
    }

    pub fn interested_sessions(&self, bare: &str) -> Vec<String> {
        self.interested
            .iter()
            .filter(|full| full.split('/').next() == Some(bare))
            .map(|full| full.clone())
            .collect()
    }
}

/// A client's roster get, answered from the web app's roster (checklist 70, XEP-0237:
/// an unchanged `ver` gets an empty result). Runs as its own task; the answer is
/// injected into the session (which consumed the request).
pub async fn serve_client_get(shared: Arc<Shared>, full: String, id: String, ver: Option<String>) {
    let Some((user, domain)) = split(&full).map(|(u, d)| (u.to_owned(), d.to_ascii_lowercase()))
    else {
        return;
    };
    let Some(admin) = owner(&shared, &domain) else {
        return;
    };
    let answer = match shared.roster.get(&admin, &domain, &user).await {
        Ok(roster) => {
            shared.roster.interested.insert(full.clone());
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
    if let Some(session) = shared.sessions.get(&full) {
        let _ = session.send(Command::ToClient(answer));
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
