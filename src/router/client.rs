//! The verdict for each stanza a bound client sends: a pure function of the stanza's
//! head, the session's routing state and the rules. Features are asked in order —
//! web-app rosters, then delegation — and the first that takes the stanza decides.

use super::delegation::intercept::{self, Decision};
use super::privilege::presence::is_broadcast;
use super::roster_admin;
use super::rules::Rules;
use super::session::RouteState;
use super::verdict::{ClientVerdict, PassNote};
use crate::xml::ns::{NS_CARBONS, NS_PRIVILEGE, NS_ROSTER};
use crate::xml::Head;

/// What a verdict may read about the session.
pub struct ClientView<'a> {
    /// The bound full JID.
    pub jid: &'a str,
    /// The served domain of the stream.
    pub domain: &'a str,
    pub rules: &'a Rules,
    pub state: &'a RouteState,
    /// Whether the proxy waits for this session's answer with this id (a user
    /// account that is a delegate answering a delegated IQ).
    pub awaits_reply: &'a dyn Fn(&str) -> bool,
    /// Whether this IQ answers a roster-push copy the proxy sent the entity.
    pub awaits_push_answer: &'a dyn Fn(&Head) -> bool,
}

/// The verdict for a `jabber:client` stanza (`iq`, `message` or `presence`).
pub fn verdict(view: &ClientView<'_>, head: &Head) -> ClientVerdict {
    if privileged_request(view, head) {
        return ClientVerdict::Privileged;
    }
    match head.name() {
        "iq" => iq(view, head),
        "presence" => presence(view, head),
        _ => ClientVerdict::Pass(PassNote::None),
    }
}

/// A user account that is a privileged entity acting as one: a roster get or set
/// addressed to another account, a `<privileged_iq/>`, a `<privilege/>` message to a
/// domain, or an answer to a roster-push copy. Anyone else's such stanza is ordinary traffic (the server refuses it).
fn privileged_request(view: &ClientView<'_>, head: &Head) -> bool {
    let own = crate::hub::bare(view.jid);
    if !view.rules.privileges.is_entity(own) {
        return false;
    }
    // Its answer to a roster-push copy is the proxy's, as a component's is.
    if (view.awaits_push_answer)(head) {
        return true;
    }
    let Some(child) = head.child() else {
        return false;
    };
    let Some(to) = head.to() else {
        return false;
    };
    let (child_name, child_ns) = (child.name(), child.ns());
    match head.name() {
        "iq" if matches!(head.type_().as_deref(), Some("get" | "set")) => {
            let other_account =
                to.contains('@') && !to.contains('/') && crate::hub::bare(&to) != own;
            let roster = child_name == "query" && child_ns == Some(NS_ROSTER);
            let wrapped = child_name == "privileged_iq" && child_ns == Some(NS_PRIVILEGE);
            (roster && other_account) || (wrapped && to.contains('@'))
        }
        "message" => {
            !to.contains('@') && child_name == "privilege" && child_ns == Some(NS_PRIVILEGE)
        }
        _ => false,
    }
}

fn iq(view: &ClientView<'_>, head: &Head) -> ClientVerdict {
    let answer = matches!(head.type_().as_deref(), Some("result" | "error"));
    if answer && head.id().is_some_and(|id| (view.awaits_reply)(&id)) {
        return ClientVerdict::DelegationReply;
    }
    if let Some(taken) = roster_admin::client_iq(view, head) {
        return taken;
    }
    let delegations = &view.rules.delegations;
    let decision = match delegations.is_empty() {
        true => Decision::Pass,
        false => intercept::decide(head, view.domain, delegations),
    };
    match decision {
        Decision::Delegate(rule) => ClientVerdict::Delegate(rule),
        Decision::Probe(rule) => ClientVerdict::Pass(PassNote::Probe(rule)),
        Decision::Pass if is_own_roster_get(view, head) => {
            ClientVerdict::Pass(PassNote::RosterRequested)
        }
        Decision::Pass => ClientVerdict::Pass(carbons_request(head)),
    }
}

/// A request for the user's own roster (RFC 6121 §2.1.3: no `to`, or the bare JID).
fn is_own_roster_get(view: &ClientView<'_>, head: &Head) -> bool {
    head.type_().as_deref() == Some("get")
        && head
            .child()
            .is_some_and(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER))
        && head
            .to()
            .is_none_or(|to| to.as_ref() == crate::hub::bare(view.jid))
}

/// A carbons enable/disable the session must follow (XEP-0280).
fn carbons_request(head: &Head) -> PassNote {
    if head.type_().as_deref() != Some("set") {
        return PassNote::None;
    }
    let Some(child) = head.child().filter(|c| c.ns() == Some(NS_CARBONS)) else {
        return PassNote::None;
    };
    let enable = match child.name() {
        "enable" => true,
        "disable" => false,
        _ => return PassNote::None,
    };
    match head.id() {
        Some(id) => PassNote::Carbons {
            id: id.into_owned(),
            enable,
        },
        None => PassNote::None,
    }
}

fn presence(view: &ClientView<'_>, head: &Head) -> ClientVerdict {
    if let Some(taken) = roster_admin::client_presence(view, head) {
        return taken;
    }
    if head.to().is_none() && is_broadcast(head) {
        return ClientVerdict::Pass(PassNote::Broadcast {
            available: head.type_().is_none(),
        });
    }
    ClientVerdict::Pass(PassNote::None)
}
