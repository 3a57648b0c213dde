//! Presence between contacts of web-app rosters. The legacy server's own roster has no
//! subscriptions for them, so its broadcasts reach nobody; the proxy sends the user's
//! presence as directed presence to each contact on the user's stream (the server then
//! also sends `unavailable` to them when the session ends), and gives a session the
//! current presence of its online contacts. It waits for the roster however the client
//! pipelines its first presence and its roster request (Prosody's module loses that race).

use std::sync::Arc;

use bytes::Bytes;

use super::{split, RosterService};
use crate::hub::{Command, Hub};
use crate::xml::readdress;

/// A broadcast presence of the session `full` on a web-app host.
pub async fn fan_out(service: Arc<RosterService>, full: String, presence: Bytes, first: bool) {
    let Some((user, domain)) = split(&full).map(|(u, d)| (u.to_owned(), d.to_owned())) else {
        return;
    };
    let Some(admin) = service.owner(&domain) else {
        return;
    };
    let roster = match service.get(&admin, &domain, &user).await {
        Ok(roster) => roster,
        Err(error) => {
            tracing::warn!(%full, %error, "no roster: presence not sent to contacts");
            return;
        }
    };
    let hub = &service.hub;
    let Some(session) = hub.sessions.get(&full) else {
        return;
    };
    for contact in roster.items.keys() {
        match readdress(&presence, None, contact) {
            Ok(directed) => {
                let _ = session.send(Command::ToServer(directed));
            }
            Err(error) => {
                tracing::warn!(%full, %error, "presence not re-addressable: not sent to contacts");
                return;
            }
        }
    }
    let available = crate::xml::children::root_attr(&presence, "type").is_none();
    if first && available {
        for contact in roster.items.keys() {
            show_contact(hub, &full, contact);
        }
    }
}

/// Gives the session `full` the current presence of `contact`'s sessions.
pub fn show_contact(hub: &Hub, full: &str, contact: &str) {
    let Some(session) = hub.sessions.get(full) else {
        return;
    };
    for (contact_full, presence) in hub.sessions.presence_of(contact) {
        match readdress(&presence, Some(&contact_full), full) {
            Ok(shown) => {
                let _ = session.send(Command::ToClient(shown));
            }
            Err(error) => tracing::warn!(%contact_full, %error, "stored presence dropped"),
        }
    }
}

/// Tells the session `full` that `contact` is gone (a removed contact).
pub fn hide_contact(hub: &Hub, full: &str, contact: &str) {
    let Some(session) = hub.sessions.get(full) else {
        return;
    };
    for (contact_full, _) in hub.sessions.presence_of(contact) {
        let mut out = String::from("<presence type='unavailable'");
        crate::xml::writer::push_attr(&mut out, "from", &contact_full);
        crate::xml::writer::push_attr(&mut out, "to", full);
        out.push_str("/>");
        let _ = session.send(Command::ToClient(Bytes::from(out)));
    }
}

/// The user's current presence on `full`, sent to a newly added contact (or an
/// unavailable one to a removed contact), on the user's stream.
pub fn tell_contact(hub: &Hub, full: &str, contact: &str, removed: bool) {
    let Some(session) = hub.sessions.get(full) else {
        return;
    };
    let bare = full.split('/').next().unwrap_or(full);
    let stanza = if removed {
        let mut out = String::from("<presence type='unavailable'");
        crate::xml::writer::push_attr(&mut out, "to", contact);
        out.push_str("/>");
        Bytes::from(out)
    } else {
        let current = hub
            .sessions
            .presence_of(bare)
            .into_iter()
            .find(|(f, _)| f == full);
        let Some((_, presence)) = current else {
            return;
        };
        match readdress(&presence, None, contact) {
            Ok(directed) => directed,
            Err(error) => {
                tracing::warn!(%full, %error, "stored presence dropped");
                return;
            }
        }
    };
    let _ = session.send(Command::ToServer(stanza));
}
