//! Presence between contacts of web-app rosters. The legacy server's own roster has no
//! subscriptions for them, so its broadcasts reach nobody; the proxy sends the user's
//! presence as directed presence to each contact on the user's stream (the server then
//! also sends `unavailable` to them when the session ends), and gives a session the
//! current presence of its online contacts. It waits for the roster however the client
//! pipelines its first presence and its roster request (Prosody's module loses that race).

use std::sync::Arc;

use bytes::Bytes;

use super::{owner, split};
use crate::c2s::Command;
use crate::router::privilege::presence::readdress;
use crate::shared::Shared;

/// A broadcast presence of the session `full` on a web-app host.
pub async fn fan_out(shared: Arc<Shared>, full: String, presence: Bytes, first: bool) {
    let Some((user, domain)) = split(&full).map(|(u, d)| (u.to_owned(), d.to_ascii_lowercase()))
    else {
        return;
    };
    let Some(admin) = owner(&shared, &domain) else {
        return;
    };
    let roster = match shared.roster.get(&admin, &domain, &user).await {
        Ok(roster) => roster,
        Err(error) => {
            tracing::warn!(%full, %error, "no roster: presence not sent to contacts");
            return;
        }
    };
    let Some(session) = shared.sessions.get(&full) else {
        return;
    };
    for contact in roster.items.keys() {
        let _ = session.send(Command::ToServer(readdress(&presence, None, contact)));
    }
    let available = crate::xml::children::root_attr(&presence, "type").is_none();
    if first && available {
        for contact in roster.items.keys() {
            show_contact(&shared, &full, contact);
        }
    }
}

/// Gives the session `full` the current presence of `contact`'s sessions.
pub fn show_contact(shared: &Shared, full: &str, contact: &str) {
    let Some(session) = shared.sessions.get(full) else {
        return;
    };
    for (contact_full, presence) in shared.privilege.presence.current_of(contact) {
        let _ = session.send(Command::ToClient(readdress(
            &presence,
            Some(&contact_full),
            full,
        )));
    }
}

/// Tells the session `full` that `contact` is gone (a removed contact).
pub fn hide_contact(shared: &Shared, full: &str, contact: &str) {
    let Some(session) = shared.sessions.get(full) else {
        return;
    };
    for (contact_full, _) in shared.privilege.presence.current_of(contact) {
        let mut out = String::from("<presence type='unavailable'");
        crate::xml::writer::push_attr(&mut out, "from", &contact_full);
        crate::xml::writer::push_attr(&mut out, "to", full);
        out.push_str("/>");
        let _ = session.send(Command::ToClient(Bytes::from(out)));
    }
}

/// The user's current presence on `full`, sent to a newly added contact (or an
/// unavailable one to a removed contact), on the user's stream.
pub fn tell_contact(shared: &Shared, full: &str, contact: &str, removed: bool) {
    let Some(session) = shared.sessions.get(full) else {
        return;
    };
    let bare = full.split('/').next().unwrap_or(full);
    let stanza = if removed {
        let mut out = String::from("<presence type='unavailable'");
        crate::xml::writer::push_attr(&mut out, "to", contact);
        out.push_str("/>");
        Bytes::from(out)
    } else {
        let current = shared
            .privilege
            .presence
            .current_of(bare)
            .into_iter()
            .find(|(f, _)| f == full);
        match current {
            Some((_, presence)) => readdress(&presence, None, contact),
            None => return,
        }
    };
    let _ = session.send(Command::ToServer(stanza));
}
