//! XEP-0356 roster permission (checklist 43–48): a component's roster get or set on a
//! managed user, carried out on the user's own stream.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::inject::{request, InjectError};
use super::Privilege;
use super::{answer_entity, count, iq_error, Op};
use crate::config::Privileges;
use crate::jid::Jid;
use crate::store::{OpKind, Queued};
use crate::xml::children::{children, Child};
use crate::xml::escape::escape_attr;
use crate::xml::ns::NS_ROSTER;
use crate::xml::writer::{element_with, push_attr};
use crate::xml::{extract_children, extract_element, Head, Stanza};

/// A component IQ to a managed bare JID in `jabber:iq:roster`.
pub struct RosterOp {
    pub component: String,
    pub user: String,
    pub id: String,
    pub set: bool,
    /// The `<item/>`s of a set, each namespace-well-formed on its own.
    pub items: Vec<Bytes>,
}

impl RosterOp {
    pub fn parse(component: &str, user: &str, stanza: &Stanza, head: &Head) -> RosterOp {
        let set = head.type_().as_deref() == Some("set");
        let items = match head.child() {
            Some(query) if set => {
                let range = query.range();
                children(&stanza.bytes()[range.clone()], Some(NS_ROSTER))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.name == "item")
                    // With the declarations they rely on from the envelope and the
                    // component's stream (an item that cannot be is no item: the set is
                    // then refused as empty).
                    .map(|c: Child| {
                        extract_element(
                            stanza,
                            range.start + c.range.start..range.start + c.range.end,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        RosterOp {
            component: component.to_owned(),
            user: user.to_owned(),
            id: head.id().map(|i| i.into_owned()).unwrap_or_default(),
            set,
            items,
        }
    }

    /// Checks the grant; the refusal (from the user's bare JID) if not allowed.
    pub fn refused(&self, privileges: Option<&Privileges>) -> Option<Bytes> {
        let allowed = privileges.is_some_and(|p| {
            if self.set {
                p.roster.allows_set()
            } else {
                p.roster.allows_get()
            }
        });
        (!allowed).then(|| {
            self.error(
                "auth",
                "forbidden",
                Some("no roster privilege for this operation"),
            )
        })
    }

    /// The empty `result` the entity gets for a set done (or stored for later).
    fn result(&self) -> Bytes {
        Bytes::from(format!(
            "<iq type='result' from='{}' to='{}' id='{}'/>",
            escape_attr(&self.user),
            escape_attr(&self.component),
            escape_attr(&self.id)
        ))
    }

    fn error(&self, kind: &str, condition: &str, text: Option<&str>) -> Bytes {
        iq_error(&self.user, &self.component, &self.id, kind, condition, text)
    }
}

/// Carries out a permitted roster operation and answers the component.
pub async fn run(service: Arc<Privilege>, op: RosterOp) {
    let timeout = service.config.current().limits.privileged_iq_timeout;
    let (answer, outcome) = if op.set {
        set(&service, &op, timeout).await
    } else {
        get(&service, &op, timeout).await
    };
    count(if op.set { Op::RosterSet } else { Op::RosterGet }, outcome);
    answer_entity(&service.hub, &op.component, answer);
}

/// The web app owns this user's roster: a get is served from it (offline users
/// included), a set is refused.
pub async fn run_web_app(service: Arc<Privilege>, op: RosterOp, domain: String) {
    let answer = if op.set {
        count(Op::RosterSet, "refused");
        op.error(
            "cancel",
            "not-allowed",
            Some("this roster is managed by the site"),
        )
    } else {
        let user = op.user.split('@').next().unwrap_or_default().to_owned();
        let served = match service.roster.owner(&domain) {
            Some(admin) => service.roster.get(&admin, &domain, &user).await.ok(),
            None => None,
        };
        match served {
            Some(roster) => {
                count(Op::RosterGet, "ok");
                let mut out = String::from("<iq type='result'");
                push_attr(&mut out, "from", &op.user);
                push_attr(&mut out, "to", &op.component);
                push_attr(&mut out, "id", &op.id);
                out.push('>');
                out.push_str(&roster.query());
                out.push_str("</iq>");
                Bytes::from(out)
            }
            None => {
                count(Op::RosterGet, "error");
                op.error(
                    "cancel",
                    "internal-server-error",
                    Some("the roster service is unavailable"),
                )
            }
        }
    };
    answer_entity(&service.hub, &op.component, answer);
}

async fn get(
    service: &Privilege,
    op: &RosterOp,
    timeout: std::time::Duration,
) -> (Bytes, &'static str) {
    match request(&service.hub, &op.user, get_iq, timeout).await {
        Ok((_, answer)) => relay_answer(op, &answer),
        Err(InjectError::NoSession(_)) => from_mirror(service, op),
        Err(error) => (unavailable(op, &error), error.label()),
    }
}

/// A roster get for a user who is offline: the roster the server last gave the user
/// (see [`super::mirror`]).
fn from_mirror(service: &Privilege, op: &RosterOp) -> (Bytes, &'static str) {
    match service.store.roster(&op.user) {
        Ok(Some(items)) => {
            let mut out = BytesMut::from(
                format!(
                    "<iq type='result' from='{}' to='{}' id='{}'><query xmlns='{NS_ROSTER}'>",
                    escape_attr(&op.user),
                    escape_attr(&op.component),
                    escape_attr(&op.id)
                )
                .as_bytes(),
            );
            for item in items {
                out.extend_from_slice(&item);
            }
            out.extend_from_slice(b"</query></iq>");
            (out.freeze(), "mirror")
        }
        Ok(None) => {
            let text = format!(
                "{} has no session through this proxy, and the proxy has not seen their roster yet",
                op.user
            );
            (
                op.error("wait", "recipient-unavailable", Some(&text)),
                "no_session",
            )
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the roster mirror");
            let text = "the proxy could not read its copy of the roster";
            (
                op.error("wait", "internal-server-error", Some(text)),
                "store_error",
            )
        }
    }
}

/// RFC 6121 allows one item per set, so a multi-item set from the entity (slixmpp's
/// `set_roster` sends several) is applied item by item and answered once (checklist 46).
/// For a user with no session through the proxy, the set is queued in the durable
/// store and applied at the next login; the entity gets its result once it is stored.
async fn set(
    service: &Privilege,
    op: &RosterOp,
    timeout: std::time::Duration,
) -> (Bytes, &'static str) {
    let hub = &service.hub;
    if op.items.is_empty() {
        return (
            op.error("modify", "bad-request", Some("a roster set needs an item")),
            "bad_request",
        );
    }
    let mut prepared = Vec::with_capacity(op.items.len());
    for item in &op.items {
        match prepare_item(&op.user, item) {
            Ok(ready) => prepared.push(ready),
            Err((kind, condition, text)) => {
                return (op.error(kind, condition, Some(text)), "invalid")
            }
        }
    }
    if hub.sessions.any_for_bare(&op.user).is_none() {
        return queue(service, op);
    }
    for item in prepared {
        let built = |id: &str| set_iq(id, &item.bytes);
        match request(hub, &op.user, built, timeout).await {
            Ok((full, answer)) => {
                if is_error(&answer) {
                    return relay_answer(op, &answer);
                }
                crate::acting::subscription::complete(hub, &full, &item.jid, item.subscription);
            }
            Err(error) => return (unavailable(op, &error), error.label()),
        }
    }
    (op.result(), "ok")
}

/// A roster get on the user's stream, with this `id`.
pub fn get_iq(id: &str) -> Bytes {
    Bytes::from(format!(
        "<iq type='get' id='{id}'><query xmlns='{NS_ROSTER}'/></iq>"
    ))
}

/// A roster set of one prepared item, with this `id`.
pub fn set_iq(id: &str, item: &[u8]) -> Bytes {
    let mut iq = BytesMut::new();
    iq.extend_from_slice(
        format!("<iq type='set' id='{id}'><query xmlns='{NS_ROSTER}'>").as_bytes(),
    );
    iq.extend_from_slice(item);
    iq.extend_from_slice(b"</query></iq>");
    iq.freeze()
}

/// Stores the set for the user's next login; the entity's answer.
fn queue(service: &Privilege, op: &RosterOp) -> (Bytes, &'static str) {
    // At login its items go at once, each awaited by the user's session, which
    // awaits at most `max_operations_per_session` (one more for its own roster get).
    let max = service
        .config
        .current()
        .limits
        .quotas
        .max_operations_per_session;
    if op.items.len() >= max {
        let text = format!(
            "a roster set for a user who is offline may hold at most {} items",
            max.saturating_sub(1)
        );
        return (
            op.error("modify", "policy-violation", Some(&text)),
            "too_many_items",
        );
    }
    let mut query = BytesMut::from(format!("<query xmlns='{NS_ROSTER}'>").as_bytes());
    for item in &op.items {
        query.extend_from_slice(item);
    }
    query.extend_from_slice(b"</query>");
    let queued = Queued {
        kind: OpKind::RosterSet,
        entity: op.component.clone(),
        queued_at: SystemTime::now(),
        stanza: query.freeze(),
    };
    match service.enqueue(&op.user, &queued) {
        Ok(()) => (op.result(), "queued"),
        Err((condition, text, outcome)) => (op.error("wait", condition, Some(&text)), outcome),
    }
}

/// The items of a roster query stanza (a set queued as [`queue`] stored it, or a
/// server's push), prepared for `user`.
pub fn query_items(stored: &Bytes, user: &str) -> Vec<Prepared> {
    let Ok(stanza) = Stanza::standalone(stored.clone()) else {
        return Vec::new();
    };
    children(stanza.bytes(), Some(NS_ROSTER))
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.name == "item")
        .filter_map(|c| extract_element(&stanza, c.range).ok())
        .filter_map(|item| prepare_item(user, &item).ok())
        .collect()
}

/// One roster item as it goes to the server, and what subscription to complete.
pub struct Prepared {
    /// The item as it goes to the server.
    pub bytes: Bytes,
    /// The contact, prepared.
    pub jid: String,
    pub subscription: crate::acting::subscription::Wanted,
}

/// Validates an item (checklist 45) and drops what a client may not send (`ask`, and
/// `subscription` other than `remove`, which the proxy completes itself instead).
pub fn prepare_item(
    user: &str,
    item: &[u8],
) -> Result<Prepared, (&'static str, &'static str, &'static str)> {
    // Read with the proxy's own parser: the item's open tag ends where the framer says,
    // never at the first `>` (which may sit inside an attribute value).
    let unreadable = ("modify", "bad-request", "unreadable item");
    let stanza = Stanza::standalone(Bytes::copy_from_slice(item)).map_err(|_| unreadable)?;
    let head = stanza.head().map_err(|_| unreadable)?;
    if head.name() != "item" || head.ns() != Some(NS_ROSTER) {
        return Err(("modify", "bad-request", "a roster query holds <item/>s"));
    }
    let mut jid = None;
    let mut kept = String::from("<item");
    let mut subscription = crate::acting::subscription::Wanted::None;
    for (name, value) in head.attrs() {
        match name {
            "jid" => {
                push_attr(&mut kept, "jid", &value);
                jid = Some(value.into_owned());
            }
            "subscription" if value == "remove" => push_attr(&mut kept, "subscription", "remove"),
            "subscription" => subscription = crate::acting::subscription::Wanted::from_attr(&value),
            "ask" => {}
            _ => push_attr(&mut kept, name, &value),
        }
    }
    let jid = jid.ok_or(("modify", "bad-request", "an item needs a jid"))?;
    if jid.contains('/') {
        return Err(("modify", "bad-request", "roster items are bare JIDs"));
    }
    let (Ok(contact), Ok(owner)) = (Jid::parse(&jid), Jid::parse(user)) else {
        return Err((
            "modify",
            "jid-malformed",
            "the item's jid is not a valid JID",
        ));
    };
    if contact == owner {
        return Err((
            "cancel",
            "not-allowed",
            "a user cannot be in their own roster",
        ));
    }
    Ok(Prepared {
        bytes: element_with(&kept, "item", &stanza.bytes()[head.content_range()]),
        // Prepared, as the contact's acknowledgement will be compared with it.
        jid: contact.as_str().to_owned(),
        subscription,
    })
}

/// The server's answer, readdressed to the component (`from` the user's bare JID).
fn relay_answer(op: &RosterOp, answer: &Bytes) -> (Bytes, &'static str) {
    let Ok(stanza) = Stanza::standalone(answer.clone()) else {
        return (
            op.error("cancel", "internal-server-error", Some("unreadable answer")),
            "error",
        );
    };
    let Ok(head) = stanza.head() else {
        return (
            op.error("cancel", "internal-server-error", Some("unreadable answer")),
            "error",
        );
    };
    let kind = head
        .type_()
        .map(|t| t.into_owned())
        .unwrap_or_else(|| "result".into());
    let mut out = String::from("<iq");
    push_attr(&mut out, "type", &kind);
    push_attr(&mut out, "from", &op.user);
    push_attr(&mut out, "to", &op.component);
    push_attr(&mut out, "id", &op.id);
    // Each child with the declarations it relies on (the answer came from the user's
    // stream, with that stream's declarations).
    let Ok(children) = extract_children(&stanza) else {
        return (
            op.error("cancel", "internal-server-error", Some("unreadable answer")),
            "error",
        );
    };
    let bytes = element_with(&out, "iq", &children.concat());
    let outcome = if kind == "error" { "error" } else { "ok" };
    (bytes, outcome)
}

fn is_error(answer: &[u8]) -> bool {
    crate::xml::children::root_attr(answer, "type").as_deref() == Some("error")
}

fn unavailable(op: &RosterOp, error: &InjectError) -> Bytes {
    let (kind, condition) = error.condition();
    op.error(kind, condition, Some(&error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_validated_and_cleaned_checklist_45() {
        // Items arrive extracted, with the roster namespace declared on them.
        let item = |attrs: &str, content: &str| {
            let xml = match content {
                "" => format!("<item xmlns='jabber:iq:roster' {attrs}/>"),
                _ => format!("<item xmlns='jabber:iq:roster' {attrs}>{content}</item>"),
            };
            prepare_item("alice@x", xml.as_bytes())
        };
        let ok = item(
            "jid='bob@x' name='Bob' subscription='both' ask='subscribe'",
            "<group>Friends</group>",
        )
        .unwrap();
        assert_eq!(
            &ok.bytes[..],
            b"<item xmlns='jabber:iq:roster' jid='bob@x' name='Bob'><group>Friends</group></item>"
        );
        assert_eq!(ok.subscription, crate::acting::subscription::Wanted::Both);
        let remove = item("jid='bob@x' subscription='remove'", "").unwrap();
        assert_eq!(
            &remove.bytes[..],
            b"<item xmlns='jabber:iq:roster' jid='bob@x' subscription='remove'/>"
        );
        let code = |r: Result<Prepared, (&str, &'static str, &str)>| r.err().map(|e| e.1);
        assert_eq!(code(item("jid='alice@x'", "")), Some("not-allowed"));
        assert_eq!(code(item("jid='bob@x/r'", "")), Some("bad-request"));
        assert_eq!(code(item("name='x'", "")), Some("bad-request"));
        assert_eq!(
            code(prepare_item(
                "alice@x",
                b"<group xmlns='jabber:iq:roster'/>"
            )),
            Some("bad-request")
        );
    }

    #[test]
    fn a_greater_than_sign_in_a_value_does_not_end_the_tag() {
        // Found by the envelopes fuzz target: the open tag was cut at the first `>`.
        let ok = prepare_item(
            "alice@x",
            b"<item xmlns='jabber:iq:roster' jid='bob@x' note='a>b'/>",
        )
        .unwrap();
        assert_eq!(
            &ok.bytes[..],
            b"<item xmlns='jabber:iq:roster' jid='bob@x' note='a&gt;b'/>"
        );
        Stanza::standalone(ok.bytes).unwrap();
    }
}
