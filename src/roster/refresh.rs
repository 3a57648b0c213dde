//! The web app's refresh call (`POST /roster_admin/refresh` with a JSON array of
//! usernames, `GET /roster_admin/refresh/USERNAME`): online users' rosters are fetched
//! again and the differences pushed — to every resource that fetched the roster, to
//! privileged entities with roster access — with presence updated both ways; offline
//! users' cached rosters are dropped. Every call answers within the fetch timeout.

use std::sync::Arc;

use bytes::Bytes;
use metrics::counter;
use serde::Serialize;

use super::items::{push_item, Diff, Roster};
use super::presence::{hide_contact, show_contact, tell_contact};
use crate::c2s::Command;
use crate::config::RosterAdmin;
use crate::shared::Shared;
use crate::xml::ns::NS_ROSTER;
use crate::xml::writer::push_attr;

pub const REFRESHES_TOTAL: &str = "stanzagate_roster_refreshes_total";
pub const PUSHES_TOTAL: &str = "stanzagate_roster_pushes_total";

/// The JSON answer of the refresh endpoints.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub status: &'static str,
    pub message: String,
    pub updated: usize,
    pub errors: usize,
}

/// Refreshes `users` of `domain` concurrently; never takes longer than the fetch
/// timeout (plus a margin), whatever the web app does.
pub async fn refresh(
    shared: Arc<Shared>,
    domain: String,
    admin: RosterAdmin,
    users: Vec<String>,
) -> Report {
    if users.is_empty() {
        return report(0, 0);
    }
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (shared, domain, admin) = (shared.clone(), domain.clone(), admin.clone());
            tokio::spawn(async move { refresh_user(&shared, &domain, &admin, &user).await })
        })
        .collect();
    let (mut updated, mut errors) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(true) => updated += 1,
            _ => errors += 1,
        }
    }
    let result = if errors == 0 {
        "ok"
    } else if updated == 0 {
        "error"
    } else {
        "partial"
    };
    counter!(REFRESHES_TOTAL, "result" => result).increment(1);
    report(updated, errors)
}

fn report(updated: usize, errors: usize) -> Report {
    let all_failed = errors > 0 && updated == 0;
    Report {
        status: if all_failed { "error" } else { "ok" },
        message: if errors == 0 {
            "roster update complete".to_owned()
        } else {
            format!("{errors} of {} roster updates failed", updated + errors)
        },
        updated,
        errors,
    }
}

/// One user: `true` when done (an offline user's cache is simply dropped).
async fn refresh_user(shared: &Shared, domain: &str, admin: &RosterAdmin, user: &str) -> bool {
    let bare = format!("{user}@{domain}");
    let sessions = shared.sessions.resources(&bare);
    if sessions.is_empty() {
        shared.roster.cache.invalidate(domain, user);
        return true;
    }
    let bounded = tokio::time::timeout(
        admin.timeout + super::cache::MARGIN,
        shared.roster.refresh_one(admin, domain, user),
    );
    match bounded.await {
        Ok(Ok((before, after))) => {
            let diff = before.as_deref().unwrap_or(&Roster::default()).diff(&after);
            apply(shared, &bare, &sessions, &after, &diff);
            true
        }
        Ok(Err(error)) => {
            tracing::warn!(%bare, %error, "roster refresh failed");
            false
        }
        Err(_) => false,
    }
}

/// Pushes and presence for one user's changed roster.
fn apply(shared: &Shared, bare: &str, sessions: &[String], roster: &Roster, diff: &Diff) {
    if diff.is_empty() {
        return;
    }
    let version = roster.version();
    let mut queries = Vec::new();
    for (jid, item) in &diff.upserted {
        let mut query = format!("<query xmlns='{NS_ROSTER}' ver='{version}'>");
        push_item(&mut query, jid, Some(item));
        query.push_str("</query>");
        queries.push(query);
    }
    for jid in &diff.removed {
        let mut query = format!("<query xmlns='{NS_ROSTER}' ver='{version}'>");
        push_item(&mut query, jid, None);
        query.push_str("</query>");
        queries.push(query);
    }
    for full in shared.roster.interested_sessions(bare) {
        let Some(session) = shared.sessions.get(&full) else {
            continue;
        };
        for query in &queries {
            let mut push = String::from("<iq type='set'");
            push_attr(
                &mut push,
                "id",
                &format!("sgr-{}", crate::util::random_id()),
            );
            push_attr(&mut push, "to", &full);
            push.push('>');
            push.push_str(query);
            push.push_str("</iq>");
            if session.send(Command::ToClient(Bytes::from(push))).is_ok() {
                counter!(PUSHES_TOTAL, "to" => "client").increment(1);
            }
        }
    }
    for query in &queries {
        shared
            .privilege
            .roster_changed(shared, bare, Bytes::from(query.clone()));
    }
    for full in sessions {
        for contact in &diff.added {
            tell_contact(shared, full, contact, false);
            show_contact(shared, full, contact);
        }
        for contact in &diff.removed {
            tell_contact(shared, full, contact, true);
            hide_contact(shared, full, contact);
        }
    }
}
