//! Web-app rosters (roster admin) as routing hooks: the user's own roster queries are
//! answered by the proxy from the web app (checklist 70–71), and subscription
//! presences are dropped both ways, since the web app owns subscriptions (as
//! Prosody's mod_block_subscriptions does).

use super::client::ClientView;
use super::verdict::{Answer, ClientVerdict, Consumed, Dropped};
use crate::hub::bare;
use crate::jid::Jid;
use crate::xml::ns::NS_ROSTER;
use crate::xml::writer::{stanza_error, StanzaError};
use crate::xml::Head;

/// A client roster IQ on its own roster, when the web app owns it.
pub fn client_iq(view: &ClientView<'_>, head: &Head) -> Option<ClientVerdict> {
    if !view.rules.web_roster {
        return None;
    }
    let roster_query = head
        .child()
        .is_some_and(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER));
    if !roster_query || !addressed_to_self(head, view.jid) {
        return None;
    }
    let id = head.id().map(|i| i.into_owned());
    Some(match head.type_().as_deref() {
        Some("get") => ClientVerdict::Answer(Answer::WebRoster {
            id: id.unwrap_or_default(),
            ver: head
                .child()
                .and_then(|c| c.attr("ver"))
                .map(|v| v.into_owned()),
        }),
        Some("set") => ClientVerdict::Reject(stanza_error(&StanzaError {
            name: "iq",
            id: id.as_deref(),
            from: None,
            to: Some(view.jid),
            error_type: "cancel",
            condition: "not-allowed",
            text: Some("this roster is managed by the site; change it there"),
            xmlns: None,
        })),
        _ => ClientVerdict::Drop(Dropped::WebRosterIq),
    })
}

/// No `to`, or the user's own bare JID (compared prepared).
fn addressed_to_self(head: &Head, full: &str) -> bool {
    let Some(to) = head.to() else { return true };
    match (Jid::parse(&to), Jid::parse(bare(full))) {
        (Ok(to), Ok(own)) => to == own,
        _ => false,
    }
}

/// A client presence on a web-app roster host: subscriptions are dropped.
pub fn client_presence(view: &ClientView<'_>, head: &Head) -> Option<ClientVerdict> {
    (view.rules.web_roster && is_subscription(head.type_().as_deref()))
        .then_some(ClientVerdict::Drop(Dropped::WebRosterSubscription))
}

/// A server presence on a web-app roster host: subscriptions are consumed.
pub fn server_presence(web_roster: bool, head: &Head) -> Option<Consumed> {
    (web_roster && is_subscription(head.type_().as_deref()))
        .then_some(Consumed::WebRosterSubscription)
}

fn is_subscription(kind: Option<&str>) -> bool {
    matches!(
        kind,
        Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")
    )
}
