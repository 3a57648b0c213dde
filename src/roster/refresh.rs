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
use super::RosterService;
use crate::config::RosterAdmin;
use crate::hub::Command;
use crate::jid::BareJid;
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

/// What a refresh did: the answer for the web app, and each user's changed roster
/// items (`(bare JID, <query/>)`) for privileged entities entitled to pushes.
pub struct Refreshed {
    pub report: Report,
    pub changes: Vec<(String, Bytes)>,
}

/// Refreshes `users` of `domain` concurrently; never takes longer than the fetch
/// timeout (plus a margin), whatever the web app does.
pub async fn refresh(
    service: Arc<RosterService>,
    domain: String,
    admin: RosterAdmin,
    users: Vec<String>,
) -> Refreshed {
    if users.is_empty() {
        return Refreshed {
            report: report(0, 0),
            changes: Vec::new(),
        };
    }
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (service, domain, admin) = (service.clone(), domain.clone(), admin.clone());
            tokio::spawn(async move { refresh_user(&service, &domain, &admin, &user).await })
        })
        .collect();
    let (mut updated, mut errors) = (0, 0);
    let mut changes = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Some(mut changed)) => {
                updated += 1;
                changes.append(&mut changed);
            }
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
    Refreshed {
        report: report(updated, errors),
        changes,
    }
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

/// One user: the changed items when done (none for an offline user, whose cache is
/// simply dropped); `None` when the web app failed.
async fn refresh_user(
    service: &RosterService,
    domain: &str,
    admin: &RosterAdmin,
    user: &str,
) -> Option<Vec<(String, Bytes)>> {
    // The web app names users as it likes; sessions are keyed by prepared JIDs.
    let Ok(bare) = BareJid::parse(&format!("{user}@{domain}")) else {
        tracing::warn!(user, "refresh for a username that is not a valid JID");
        return None;
    };
    let bare = bare.as_str().to_owned();
    let sessions = service.hub.sessions.resources(&bare);
    if sessions.is_empty() {
        service.cache.invalidate(domain, user);
        return Some(Vec::new());
    }
    let bounded = tokio::time::timeout(
        admin.timeout + super::cache::MARGIN,
        service.refresh_one(admin, domain, user),
    );
    match bounded.await {
        Ok(Ok((before, after))) => {
            let diff = before.as_deref().unwrap_or(&Roster::default()).diff(&after);
            Some(apply(service, &bare, &sessions, &after, &diff))
        }
        Ok(Err(error)) => {
            tracing::warn!(%bare, %error, "roster refresh failed");
            None
        }
        Err(_) => None,
    }
}

/// Pushes and presence for one user's changed roster; returns the changes.
fn apply(
    service: &RosterService,
    bare: &str,
    sessions: &[String],
    roster: &Roster,
    diff: &Diff,
) -> Vec<(String, Bytes)> {
    if diff.is_empty() {
        return Vec::new();
    }
    let hub = &service.hub;
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
    for full in service.interested_sessions(bare) {
        let Some(session) = hub.sessions.get(&full) else {
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
    for full in sessions {
        for contact in &diff.added {
            tell_contact(hub, full, contact, false);
            show_contact(hub, full, contact);
        }
        for contact in &diff.removed {
            tell_contact(hub, full, contact, true);
            hide_contact(hub, full, contact);
        }
    }
    queries
        .into_iter()
        .map(|query| (bare.to_owned(), Bytes::from(query)))
        .collect()
}
