//! Honouring the `subscription` a privileged entity sets on a roster item (checklist
//! 47; gateways such as slidge set `both` for their contacts). RFC 6121 lets no client
//! set a subscription, so the legacy server keeps `none`; the proxy completes it with
//! presence on the user's stream: `subscribed` pre-approves the contact, `subscribe`
//! asks for the contact's presence. The contact's `subscribed` answer is consumed so
//! the user's clients are not bothered with an acknowledgement they never asked for.

use bytes::Bytes;

use crate::hub::{Command, Expected, Hub};
use crate::xml::writer::push_attr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    Both,
}

impl Wanted {
    pub fn from_attr(value: &str) -> Wanted {
        match value {
            "to" => Wanted::To,
            "from" => Wanted::From,
            "both" => Wanted::Both,
            _ => Wanted::None,
        }
    }

    /// Whether an item with subscription `now` has what `self` asked for.
    pub fn satisfied_by(self, now: Wanted) -> bool {
        match self {
            Wanted::None => true,
            Wanted::Both => now == Wanted::Both,
            wanted => now == wanted || now == Wanted::Both,
        }
    }

    fn approves(self) -> bool {
        matches!(self, Wanted::From | Wanted::Both)
    }

    fn requests(self) -> bool {
        matches!(self, Wanted::To | Wanted::Both)
    }
}

/// Sends the presences that make the server's subscription state match `wanted`, on
/// the session `full` of the user.
pub fn complete(hub: &Hub, full: &str, contact: &str, wanted: Wanted) {
    let Some(session) = hub.sessions.get(full) else {
        return;
    };
    for command in plan(hub, crate::hub::bare(full), contact, wanted) {
        let _ = session.send(command);
    }
}

/// Expectations one component may have waiting (see `crate::hub::Subscriptions`).
const MAX_EXPECTED_PER_COMPONENT: usize = 10_000;

/// What the user's session carries out for `wanted` with `contact`. A contact on a
/// component connected through the proxy gets its side done on that component's
/// link: when the user's `subscribe` reaches it, the proxy answers for the contact,
/// so the item ends exactly as asked without relying on the component, and neither
/// side sees a request.
///
/// For `both`, the user pre-approves the contact first (RFC 6121 §3.4) and the
/// contact's `subscribe` goes before its `subscribed` on the link. The server then
/// approves the contact's request by itself: there is no moment with a request
/// pending for the user, which a presence probe from the component (slidge probes
/// as soon as its roster set is answered) would cancel (the server answers a probe
/// from a contact without a subscription with `unsubscribed`). And the contact's
/// `subscribed`, the last thing the server handles, is the one the user's session
/// awaits. A server without pre-approvals shows the user the contact's request: the
/// session approves it.
///
/// For `from` alone, the user pre-approves the contact and then probes it: the
/// pre-approval never leaves the server, the probe does, after it. When the probe
/// reaches the link, the proxy answers with the contact's `subscribe`, which the
/// server approves by itself.
pub fn plan(hub: &Hub, user: &str, contact: &str, wanted: Wanted) -> Vec<Command> {
    if !on_link(hub, contact, wanted) {
        return commands(contact, wanted);
    }
    let component = component_of(contact);
    // What of the user's reaches the link, and what the contact answers to it.
    let request = if wanted.requests() {
        let mut replies = Vec::with_capacity(2);
        if wanted.approves() {
            replies.push(presence_from(contact, user, "subscribe"));
        }
        replies.push(presence_from(contact, user, "subscribed"));
        Expected::new(user, contact, "subscribe", replies)
    } else {
        // `from` alone: a pre-approval never leaves the server, so a probe follows
        // it, and the contact answers that with the request the server then
        // approves by itself.
        let replies = vec![presence_from(contact, user, "subscribe")];
        Expected::new(user, contact, "probe", replies)
    };
    if !hub
        .subscriptions
        .expect(component, request, MAX_EXPECTED_PER_COMPONENT)
    {
        return commands(contact, wanted);
    }
    let mut out = Vec::new();
    if wanted.approves() {
        // The user's approval of the contact's request (the server's, or the
        // session's) goes to the component too: it is consumed there.
        let approval = Expected::new(user, contact, "subscribed", Vec::new());
        hub.subscriptions
            .expect(component, approval, MAX_EXPECTED_PER_COMPONENT);
        out.push(Command::ToServer(presence("subscribed", contact)));
        out.push(Command::ExpectSubscribe(contact.to_owned()));
    }
    if wanted.requests() {
        out.push(Command::ExpectSubscribed(contact.to_owned()));
        out.push(Command::ToServer(presence("subscribe", contact)));
    } else {
        out.push(Command::ToServer(presence("probe", contact)));
    }
    out
}

/// Whether [`plan`] completes the contact's side of `wanted` on the link of a
/// component connected through the proxy (so no one else has to answer).
pub fn on_link(hub: &Hub, contact: &str, wanted: Wanted) -> bool {
    wanted != Wanted::None
        && !contact.contains('/')
        && hub.components.get(component_of(contact)).is_some()
}

/// The component domain a contact JID (bare) belongs to.
fn component_of(contact: &str) -> &str {
    contact
        .rsplit_once('@')
        .map_or(contact, |(_, domain)| domain)
}

/// A subscription presence as the component's contact sends it on its link.
fn presence_from(from: &str, to: &str, kind: &str) -> Bytes {
    let mut out = String::from("<presence");
    push_attr(&mut out, "type", kind);
    push_attr(&mut out, "from", from);
    push_attr(&mut out, "to", to);
    out.push_str("/>");
    Bytes::from(out)
}

/// What a user's session carries out, in order, to make the subscription with
/// `contact` match `wanted`.
pub fn commands(contact: &str, wanted: Wanted) -> Vec<Command> {
    let mut out = Vec::new();
    if wanted.approves() {
        out.push(Command::ToServer(presence("subscribed", contact)));
    }
    if wanted.requests() {
        out.push(Command::ExpectSubscribed(contact.to_owned()));
        out.push(Command::ToServer(presence("subscribe", contact)));
    }
    out
}

/// A subscription presence of the user's, to `to`, as its session sends it.
pub fn presence(kind: &str, to: &str) -> Bytes {
    let mut out = String::from("<presence");
    push_attr(&mut out, "type", kind);
    push_attr(&mut out, "to", to);
    out.push_str("/>");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::Wanted::{self, Both, From, None, To};

    #[test]
    fn an_item_satisfies_what_was_asked_or_more() {
        let cases: [(Wanted, Wanted, bool); 8] = [
            (Both, Both, true),
            (Both, To, false),
            (Both, From, false),
            (To, To, true),
            (To, Both, true),
            (To, From, false),
            (From, Both, true),
            (None, None, true),
        ];
        for (wanted, now, ok) in cases {
            assert_eq!(wanted.satisfied_by(now), ok, "{wanted:?} by {now:?}");
        }
    }
}
