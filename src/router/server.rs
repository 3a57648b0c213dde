//! The verdict for each stanza the server sends to a bound session: a pure function
//! of the stanza, the session's routing state and the rules. Answers to what the
//! proxy asked are consumed; disco results are rewritten under delegation; contacts'
//! presences and roster pushes are noted for privileged entities' copies.

use super::delegation::disco::{rewrite_result, DiscoCache};
use super::privilege::presence::is_broadcast;
use super::roster_admin;
use super::rules::Rules;
use super::session::RouteState;
use super::verdict::{Consumed, Relayed, ServerNote, ServerVerdict};
use crate::config::{PresencePerm, Privileges};
use crate::hub::bare;
use crate::jid::Jid;
use crate::xml::children::stanza_error_condition;
use crate::xml::ns::NS_ROSTER;
use crate::xml::{Head, Stanza};

/// What a verdict may read about the session.
pub struct ServerView<'a> {
    /// The bound full JID.
    pub jid: &'a str,
    pub rules: &'a Rules,
    pub state: &'a RouteState,
    pub disco: &'a DiscoCache,
}

/// The verdict for a `jabber:client` stanza (`iq`, `message` or `presence`).
pub fn verdict(view: &ServerView<'_>, stanza: &Stanza, head: &Head) -> ServerVerdict {
    let relay = |note| ServerVerdict::Relay(Relayed::AsReceived, note);
    match head.name() {
        "iq" => iq(view, stanza, head),
        "presence" => presence(view, head).unwrap_or_else(|| relay(contact_presence(view, head))),
        _ => relay(ServerNote::None),
    }
}

fn iq(view: &ServerView<'_>, stanza: &Stanza, head: &Head) -> ServerVerdict {
    let kind = head.type_();
    let answer = matches!(kind.as_deref(), Some("result" | "error"));
    let id = head.id();
    if let (true, Some(id)) = (answer, id.as_deref()) {
        if view.state.awaits(id) {
            return ServerVerdict::Consume(Consumed::ActingAnswer {
                id: id.to_owned(),
                note: roster_note(view, head),
            });
        }
        if view.state.has_probes() && view.state.probe(id, head).is_some() {
            let unknown_node = kind.as_deref() == Some("error")
                && stanza_error_condition(stanza.bytes()).as_deref() == Some("item-not-found");
            if unknown_node {
                return ServerVerdict::Consume(Consumed::ProbeMiss { id: id.to_owned() });
            }
        }
    }
    if let (Some("set"), Some(id)) = (kind.as_deref(), id.as_deref()) {
        if view.state.pushes_unasked() && is_roster(head) && from_own_account(head, view.jid) {
            return ServerVerdict::Consume(Consumed::UnaskedPush {
                id: id.to_owned(),
                note: roster_note(view, head),
            });
        }
    }
    let note = match id.as_deref().and_then(|id| view.state.carbons_request(id)) {
        Some(enable) => ServerNote::CarbonsAnswered {
            enabled: (kind.as_deref() == Some("result")).then_some(enable),
        },
        None => roster_note(view, head),
    };
    let relayed = match kind.as_deref() == Some("result") && !view.rules.delegations.is_empty() {
        true => rewrite_result(stanza, head, &view.rules.delegations, view.disco)
            .map_or(Relayed::AsReceived, Relayed::Rewritten),
        false => Relayed::AsReceived,
    };
    ServerVerdict::Relay(relayed, note)
}

/// What a roster IQ from the server means to privileges. Only the server's own: a
/// push has no `from` or the user's bare JID (RFC 6121 §2.1.6), and so does the
/// answer to a roster get. A "push" from anyone else is ordinary traffic, never
/// copied or mirrored. Nothing is kept unless some entity may read this roster.
fn roster_note(view: &ServerView<'_>, head: &Head) -> ServerNote {
    if !is_roster(head) || !from_own_account(head, view.jid) {
        return ServerNote::None;
    }
    let wants = |grant: fn(&Privileges) -> bool| view.rules.privileges.wants(view.jid, grant);
    match head.type_().as_deref() {
        Some("set") if wants(|p| p.roster.allows_get() && p.roster_push) => ServerNote::RosterPush,
        Some("set") if wants(|p| p.roster.allows_get()) => ServerNote::RosterMirror,
        Some("result") if wants(|p| p.roster.allows_get()) => ServerNote::RosterResult,
        _ => ServerNote::None,
    }
}

fn is_roster(head: &Head) -> bool {
    head.child()
        .is_some_and(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER))
}

fn from_own_account(head: &Head, full: &str) -> bool {
    let Some(from) = head.from() else { return true };
    match (Jid::parse(&from), Jid::parse(bare(full))) {
        (Ok(Jid::Bare(from)), Ok(own)) => Jid::Bare(from) == own,
        _ => false,
    }
}

/// Presences the proxy takes: acknowledgements it asked for, subscriptions on
/// web-app rosters.
fn presence(view: &ServerView<'_>, head: &Head) -> Option<ServerVerdict> {
    let kind = head.type_();
    if matches!(kind.as_deref(), Some("subscribed" | "subscribe")) {
        if let Some(contact) = head.from().and_then(|f| Jid::parse(&f).ok()) {
            let contact = contact.bare().as_str().to_owned();
            let subscribed = kind.as_deref() == Some("subscribed");
            if subscribed && view.state.expects_subscribed(&contact) {
                return Some(ServerVerdict::Consume(Consumed::ExpectedSubscribed {
                    contact,
                }));
            }
            if !subscribed && view.state.expects_subscribe(&contact) {
                return Some(ServerVerdict::Consume(Consumed::ExpectedSubscribe {
                    contact,
                }));
            }
        }
    }
    roster_admin::server_presence(view.rules.web_roster, head).map(ServerVerdict::Consume)
}

/// A contact's broadcast presence, when some entity holds `presence='roster'`.
fn contact_presence(view: &ServerView<'_>, head: &Head) -> ServerNote {
    let wanted = is_broadcast(head)
        && view.rules.privileges.wants(view.jid, |p: &Privileges| {
            p.presence == PresencePerm::Roster
        });
    match wanted {
        true => ServerNote::ContactPresence,
        false => ServerNote::None,
    }
}
