//! The proxy's mirror of users' rosters, for entities that read the roster of a user
//! who is offline (the server's answer needs the user's stream). Each whole roster the
//! server gives the user replaces it; each push from the server updates it. Only
//! rosters some entity may read are kept (see `router::server::roster_note`), and a
//! whole roster whose version the session last mirrored is not written again (a
//! client asking for an unchanged roster over and over costs no write).

use bytes::Bytes;

use crate::jid::Jid;
use crate::store::Store;
use crate::xml::children::children;
use crate::xml::ns::NS_ROSTER;
use crate::xml::{extract_element, Head, Stanza};

/// Mirror updates by `change`: `whole`, `push`, or `unchanged` (a whole roster of
/// the version already mirrored, not written).
pub const MIRROR_UPDATES_TOTAL: &str = "stanzagate_roster_mirror_updates_total";

/// What to keep of a roster IQ from the server.
pub enum Change {
    /// A roster result: the whole roster.
    Whole,
    /// A push: the items it changes.
    Push,
}

/// Applies a roster IQ the server sent the user `bare` to the mirror. Failures are
/// logged: the mirror is a cache, and the user's session goes on.
pub fn apply(store: &dyn Store, bare: &str, stanza: &Stanza, head: &Head, change: Change) {
    let label = match change {
        Change::Whole => "whole",
        Change::Push => "push",
    };
    metrics::counter!(MIRROR_UPDATES_TOTAL, "change" => label).increment(1);
    let items = items(stanza, head);
    let outcome = match change {
        Change::Whole => {
            let kept: Vec<(String, Bytes)> = items
                .into_iter()
                .filter_map(|(contact, item)| item.map(|item| (contact, item)))
                .collect();
            store.replace_roster(bare, &kept)
        }
        Change::Push => items
            .iter()
            .try_for_each(|(contact, item)| store.update_roster(bare, contact, item.as_ref())),
    };
    if let Err(error) = outcome {
        tracing::warn!(%error, "roster mirror not updated");
    }
}

/// A whole roster of the version the session already mirrored: nothing is written.
pub fn unchanged() {
    metrics::counter!(MIRROR_UPDATES_TOTAL, "change" => "unchanged").increment(1);
}

/// The roster version (`ver`, XEP-0237 / RFC 6121 §2.6) of a roster IQ, if any.
pub fn version(head: &Head) -> Option<String> {
    head.child()?.attr("ver").map(|v| v.into_owned())
}

/// The items of the roster query: (contact's prepared bare JID, the item standalone,
/// or `None` for `subscription='remove'`). Unreadable items are skipped.
fn items(stanza: &Stanza, head: &Head) -> Vec<(String, Option<Bytes>)> {
    let Some(query) = head.child() else {
        return Vec::new();
    };
    let range = query.range();
    children(&stanza.bytes()[range.clone()], Some(NS_ROSTER))
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.name == "item" && c.ns.as_deref() == Some(NS_ROSTER))
        .filter_map(|c| {
            let item = extract_element(
                stanza,
                range.start + c.range.start..range.start + c.range.end,
            )
            .ok()?;
            let parsed = Stanza::standalone(item.clone()).ok()?;
            let head = parsed.head().ok()?;
            let contact = Jid::parse(&head.attr("jid")?).ok()?;
            let removed = head.attr("subscription").as_deref() == Some("remove");
            Some((
                contact.bare().as_str().to_owned(),
                (!removed).then_some(item),
            ))
        })
        .collect()
}
