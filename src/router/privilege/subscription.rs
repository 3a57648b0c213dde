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
/// link: when the user's `subscribe` reaches it, the proxy answers `subscribed` for
/// the contact (and, for `both`, asks back with `subscribe`, which the user's session
/// then approves). So the item ends exactly as asked, without relying on the
/// component, and neither side sees a request.
pub fn plan(hub: &Hub, user: &str, contact: &str, wanted: Wanted) -> Vec<Command> {
    let component = contact
        .rsplit_once('@')
        .map_or(contact, |(_, domain)| domain);
    let linked = !contact.contains('/') && hub.components.get(component).is_some();
    if !linked || !wanted.requests() {
        return commands(contact, wanted);
    }
    let mut replies = vec![presence_from(contact, user, "subscribed")];
    if wanted.approves() {
        replies.push(presence_from(contact, user, "subscribe"));
    }
    let request = Expected::new(user, contact, "subscribe", replies);
    if !hub
        .subscriptions
        .expect(component, request, MAX_EXPECTED_PER_COMPONENT)
    {
        return commands(contact, wanted);
    }
    let mut out = Vec::new();
    if wanted.approves() {
        // The user's approval of the contact's request goes to the component too.
        let approval = Expected::new(user, contact, "subscribed", Vec::new());
        hub.subscriptions
            .expect(component, approval, MAX_EXPECTED_PER_COMPONENT);
        out.push(Command::ExpectSubscribe(contact.to_owned()));
    }
    out.push(Command::ExpectSubscribed(contact.to_owned()));
    out.push(Command::ToServer(presence("subscribe", contact)));
    out
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

fn presence(kind: &str, to: &str) -> Bytes {
    let mut out = String::from("<presence");
    push_attr(&mut out, "type", kind);
    push_attr(&mut out, "to", to);
    out.push_str("/>");
    Bytes::from(out)
}
