//! Local delivery: every local user's session crosses the proxy, so a notification
//! (a stanza a server would neither store nor archive) can be delivered to its
//! recipients' sessions by the proxy itself, keeping the `from` the entity gave (the
//! owner's bare JID, XEP-0163), which the owner's own stream could not.

use bytes::Bytes;

use crate::hub::{Command, Hub};
use crate::jid::Jid;

/// The sessions through the proxy that a message to `to` reaches, as RFC 6121 §8.5
/// routes it: a full JID, that session; a bare JID, each session with an available
/// presence of non-negative priority. Empty when none is connected (or `to` is no
/// JID).
pub fn recipients(hub: &Hub, to: &str) -> Vec<String> {
    let Ok(to) = Jid::parse(to) else {
        return Vec::new();
    };
    match &to {
        Jid::Full(full) => hub
            .sessions
            .get(full.as_str())
            .map(|_| vec![full.as_str().to_owned()])
            .unwrap_or_default(),
        Jid::Bare(bare) => hub
            .sessions
            .available(bare.as_str())
            .into_iter()
            .map(|(full, _)| full)
            .collect(),
    }
}

/// Hands `stanza` to each of `recipients`. A session that cannot take it now is
/// skipped: a notification is not worth holding up the others.
pub fn deliver(hub: &Hub, recipients: &[String], stanza: &Bytes) {
    for full in recipients {
        if let Some(session) = hub.sessions.get(full) {
            let _ = session.send(Command::ToClient(stanza.clone()));
        }
    }
}
