//! XEP-0356 message permission (checklist 51–56): a `<message/>` the entity forwards
//! in `<privilege/>` is sent as the user, on the user's own stream, so the legacy
//! server archives it and sends carbons as if the user had sent it. When the user is
//! offline, a chat or normal message is queued in the durable store and sent at the
//! next login with a XEP-0203 `<delay/>`; notifications are refused instead.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::{answer_entity, count, Op};
use crate::acting::local;
use crate::config::{MessagePerm, PrivilegeNs, Privileges};
use crate::hub::{Command, Hub};
use crate::jid::Jid;

use super::Privilege;
use crate::store::{OpKind, Queued};
use crate::xml::children::strict_children;
use crate::xml::ns::{NS_CARBONS, NS_CLIENT, NS_COMPONENT, NS_DELAY, NS_FORWARD, NS_PUBSUB_EVENT};
use crate::xml::writer::{element_with, push_attr, stanza_error, StanzaError};
use crate::xml::{extract_stanza_for_stream, Head, Stanza};

/// Whether a component message is a privilege wrapper: addressed to a served domain
/// (no localpart, no resource), not an error, with a `<privilege/>` child in the
/// namespace version spoken with that component (checklist 55). Others are routed as
/// usual.
pub fn is_wrapper(head: &Head, ns: PrivilegeNs) -> bool {
    head.name() == "message"
        && head.type_().as_deref() != Some("error")
        && head
            .child()
            .is_some_and(|c| c.name() == "privilege" && c.ns() == Some(ns.as_str()))
}

/// Handles a wrapper from `component` to `domain`.
pub fn handle(
    service: &Privilege,
    component: &str,
    domain: &str,
    stanza: &Stanza,
    head: &Head,
    privileges: Option<&Privileges>,
) {
    let id = head.id().map(|i| i.into_owned());
    let refuse = |kind: &str, condition: &str, text: &str| {
        stanza_error(&StanzaError {
            name: "message",
            id: id.as_deref(),
            from: Some(domain),
            to: Some(component),
            error_type: kind,
            condition,
            text: Some(text),
            xmlns: None,
        })
    };
    let outcome = match check(stanza, head, domain, privileges) {
        Err((kind, condition, text)) => {
            answer_entity(&service.hub, component, refuse(kind, condition, text));
            condition
        }
        Ok(message) => {
            let notification = !keeps_for_later(&message.stanza);
            // A notification for recipients connected through the proxy: delivered by
            // the proxy itself, from the bare JID as sent (XEP-0163), owner online or
            // not.
            if notification && deliver_locally(&service.hub, &message) {
                "local"
            } else {
                match send_as(&service.hub, &message) {
                    Ok(()) => "ok",
                    Err(NotSent::Busy(text)) => {
                        answer_entity(
                            &service.hub,
                            component,
                            refuse("wait", "resource-constraint", &text),
                        );
                        "busy"
                    }
                    // The user is offline: a notification would be stale by the next
                    // login; a message the server would keep is queued for it.
                    Err(NotSent::Offline(text)) if notification => {
                        let text = format!("{text}; notifications are not queued for later");
                        answer_entity(
                            &service.hub,
                            component,
                            refuse("wait", "recipient-unavailable", &text),
                        );
                        "no_session"
                    }
                    Err(NotSent::Offline(_)) => match queue(service, component, domain, &message) {
                        Ok(()) => "queued",
                        Err((condition, text, outcome)) => {
                            answer_entity(
                                &service.hub,
                                component,
                                refuse("wait", condition, &text),
                            );
                            outcome
                        }
                    },
                }
            }
        }
    };
    count(Op::Message, outcome);
}

/// Queues `message` for its sender's next login, stamped with a XEP-0203 `<delay/>`
/// of now (when the entity sent it). Only for what a server would store for an
/// offline user (the caller checks): chat and normal messages that are not pubsub
/// event notifications. The refusal: `(condition, text, metric outcome)`.
fn queue(
    service: &Privilege,
    component: &str,
    domain: &str,
    message: &Inner,
) -> Result<(), (&'static str, String, &'static str)> {
    let now = SystemTime::now();
    let stanza = with_delay(message, domain, &crate::store::stamp(now)).map_err(|_| {
        let text = "the message could not be stamped".to_owned();
        ("internal-server-error", text, "store_error")
    })?;
    let op = Queued {
        kind: OpKind::Message,
        entity: component.to_owned(),
        queued_at: now,
        stanza,
    };
    service.enqueue(&message.from, &op)
}

/// Whether a server would keep `message` for an offline user (RFC 6121 §8.5.2,
/// XEP-0160): not a headline, not a pubsub event notification (XEP-0163 sends those
/// with no `type`, so the payload decides).
fn keeps_for_later(message: &Stanza) -> bool {
    let Ok(head) = message.head() else {
        return false;
    };
    let kind = head.type_();
    if !matches!(kind.as_deref(), None | Some("normal" | "chat")) {
        return false;
    }
    match strict_children(message.bytes(), head.ns()) {
        Ok(children) => !children
            .iter()
            .any(|c| c.name == "event" && c.ns.as_deref() == Some(NS_PUBSUB_EVENT)),
        Err(_) => false,
    }
}

/// The inner message (from its bare JID) with `<delay from=domain stamp=…/>` added.
fn with_delay(message: &Inner, domain: &str, stamp: &str) -> Result<Bytes, ()> {
    let mut delay = String::from("<delay");
    push_attr(&mut delay, "xmlns", NS_DELAY);
    push_attr(&mut delay, "from", domain);
    push_attr(&mut delay, "stamp", stamp);
    delay.push_str("/>");
    as_client(message, delay.as_bytes())
}

/// The inner message as a standalone `jabber:client` stanza with its own `from` (the
/// bare JID) and `to`, `extra` appended to its content. (slixmpp puts the inner
/// message in `jabber:component:accept`; clients must see `jabber:client`.)
fn as_client(message: &Inner, extra: &[u8]) -> Result<Bytes, ()> {
    let head = message.stanza.head().map_err(|_| ())?;
    let attributes: Vec<(String, String)> = head
        .attrs()
        .filter(|(name, _)| *name != "xmlns")
        .map(|(name, value)| (name.to_owned(), value.into_owned()))
        .collect();
    let mut content = BytesMut::from(&message.stanza.bytes()[head.content_range()]);
    content.extend_from_slice(extra);
    Ok(element(
        "message",
        &attributes,
        &[("xmlns", NS_CLIENT)],
        &content,
    ))
}

/// Delivers a notification to the recipients connected through the proxy (see
/// `crate::acting::local`). `false` when none is connected: the caller then tries the
/// owner's stream.
fn deliver_locally(hub: &Hub, message: &Inner) -> bool {
    let Some(to) = message.stanza.head().ok().and_then(|h| h.to()) else {
        return false;
    };
    let recipients = local::recipients(hub, &to);
    if recipients.is_empty() {
        return false;
    }
    let Ok(stanza) = as_client(message, b"") else {
        return false;
    };
    local::deliver(hub, &recipients, &stanza);
    true
}

/// A queued message (as [`queue`] stored it) ready to send on the user's session
/// `full`: the stanza and its carbon, as for a message sent live.
pub fn replay(stored: Bytes, full: &str) -> Result<(Bytes, Bytes), String> {
    let stanza = Stanza::standalone(stored).map_err(|e| e.to_string())?;
    let from = stanza
        .head()
        .ok()
        .and_then(|h| h.from())
        .map(|f| f.into_owned())
        .ok_or("a queued message without 'from'")?;
    build(&Inner { from, stanza }, full)
}

/// The inner message, ready to send as `from` (a bare JID).
pub struct Inner {
    from: String,
    stanza: Stanza,
}

/// `(type, condition, text)` of the error the entity gets.
pub type Refusal = (&'static str, &'static str, &'static str);

/// Checks a wrapper field by field (checklist 51–55) and takes out the inner message,
/// re-declared in its own namespace context.
pub fn check(
    stanza: &Stanza,
    head: &Head,
    domain: &str,
    privileges: Option<&Privileges>,
) -> Result<Inner, Refusal> {
    if privileges.map(|p| p.message) != Some(MessagePerm::Outgoing) {
        return Err((
            "auth",
            "forbidden",
            "no outgoing message privilege on this domain",
        ));
    }
    if head.child_count() != 1 {
        return Err(("modify", "bad-request", "exactly one <privilege/> expected"));
    }
    let privilege = head.child().map(|c| c.range()).unwrap_or_default();
    // The wrapper's own version (`is_wrapper` checked it is the component's).
    let wrapper_ns = head.child().and_then(|c| c.ns());
    let bytes = stanza.bytes();
    let kids = strict_children(&bytes[privilege.clone()], wrapper_ns)
        .map_err(|_| ("modify", "bad-request", "malformed <privilege/>"))?;
    let [forwarded] = kids.as_slice() else {
        return Err((
            "modify",
            "bad-request",
            "<privilege/> must hold exactly one <forwarded/>",
        ));
    };
    if forwarded.name != "forwarded" || forwarded.ns.as_deref() != Some(NS_FORWARD) {
        return Err(("modify", "bad-request", "invalid <forwarded/> element"));
    }
    let base = privilege.start + forwarded.range.start;
    let inside = strict_children(&bytes[base..base + forwarded.range.len()], Some(NS_FORWARD))
        .map_err(|_| ("modify", "bad-request", "text inside <forwarded/>"))?;
    let message = match inside.as_slice() {
        [m] => m,
        [delay, m] if delay.name == "delay" && delay.ns.as_deref() == Some(NS_DELAY) => m,
        _ => {
            return Err((
                "modify",
                "bad-request",
                "<forwarded/> must hold exactly one <message/>",
            ))
        }
    };
    let client_ns = matches!(message.ns.as_deref(), Some(NS_CLIENT) | Some(NS_COMPONENT));
    if message.name != "message" || !client_ns {
        return Err((
            "modify",
            "bad-request",
            "the forwarded stanza is not a <message/>",
        ));
    }
    let start = base + message.range.start;
    // With the declarations it relies on from its envelope and the component's
    // stream: what goes on the user's stream is namespace-well-formed on its own.
    let malformed = (
        "modify",
        "bad-request",
        "the forwarded message is not well-formed",
    );
    let scoped = extract_stanza_for_stream(stanza, start..start + message.range.len())
        .map_err(|_| malformed)?;
    let inner = Stanza::standalone(scoped).map_err(|_| malformed)?;
    let from = inner.head().ok().and_then(|h| h.from()).ok_or((
        "auth",
        "forbidden",
        "the forwarded message needs a 'from'",
    ))?;
    let not_managed = (
        "auth",
        "forbidden",
        "'from' must be a bare JID of a managed domain",
    );
    let Jid::Bare(from) = Jid::parse(&from).map_err(|_| not_managed)? else {
        return Err(not_managed);
    };
    if from.domain().as_str() != domain {
        return Err((
            "auth",
            "forbidden",
            "'from' must be on the domain the message is addressed to",
        ));
    }
    if from.is_domain() {
        return Err((
            "cancel",
            "feature-not-implemented",
            "a proxy cannot send as the server itself",
        ));
    }
    Ok(Inner {
        from: from.as_str().to_owned(),
        stanza: inner,
    })
}

/// Why a message could not go out on the user's stream now.
enum NotSent {
    /// No session of the user crosses the proxy.
    Offline(String),
    /// A session exists but cannot take it (queue full, or ending).
    Busy(String),
}

/// Sends the inner message on one of the user's sessions (the server stamps `from`).
fn send_as(hub: &Hub, message: &Inner) -> Result<(), NotSent> {
    let Some((full, session)) = hub.sessions.any_for_bare(&message.from) else {
        return Err(NotSent::Offline(format!(
            "{} has no session through this proxy to send from",
            message.from
        )));
    };
    let (stanza, carbon) = build(message, &full).map_err(NotSent::Busy)?;
    session
        .send(Command::SendAs { stanza, carbon })
        .map_err(|_| NotSent::Busy("the user's session is gone or busy".to_owned()))
}

/// The message to send on the user's stream from its session `full`, and the
/// XEP-0280 carbon that session gets (the server copies a sent message only to the
/// user's other resources).
pub fn build(message: &Inner, full: &str) -> Result<(Bytes, Bytes), String> {
    let Ok(head) = message.stanza.head() else {
        return Err("unreadable message".into());
    };
    let content = &message.stanza.bytes()[head.content_range()];
    // The default namespace is the stream's (a content namespace, checked above);
    // prefix declarations stay, as the content may use them.
    let attributes: Vec<(String, String)> = head
        .attrs()
        .filter(|(name, _)| !matches!(*name, "from" | "xmlns"))
        .map(|(name, value)| (name.to_owned(), value.into_owned()))
        .collect();
    let stanza = element("message", &attributes, &[], content);
    let mut sent = attributes.clone();
    sent.push(("from".into(), full.to_owned()));
    let forwarded = element("message", &sent, &[("xmlns", NS_CLIENT)], content);
    let carbon = carbon(&message.from, full, &forwarded);
    Ok((stanza, carbon))
}

fn element(
    name: &str,
    attributes: &[(String, String)],
    first: &[(&str, &str)],
    content: &[u8],
) -> Bytes {
    let mut out = format!("<{name}");
    for (attr, value) in first {
        push_attr(&mut out, attr, value);
    }
    for (attr, value) in attributes {
        push_attr(&mut out, attr, value);
    }
    element_with(&out, name, content)
}

/// XEP-0280 `<sent/>` copy for the session the message went out on.
fn carbon(bare: &str, full: &str, forwarded: &[u8]) -> Bytes {
    let mut out = String::from("<message type='chat'");
    push_attr(&mut out, "from", bare);
    push_attr(&mut out, "to", full);
    out.push_str("><sent xmlns='");
    out.push_str(NS_CARBONS);
    out.push_str("'><forwarded xmlns='");
    out.push_str(NS_FORWARD);
    out.push_str("'>");
    let mut bytes = BytesMut::from(out.as_bytes());
    bytes.extend_from_slice(forwarded);
    bytes.extend_from_slice(b"</forwarded></sent></message>");
    bytes.freeze()
}
