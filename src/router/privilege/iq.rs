//! XEP-0356 IQ permission (checklist 57–64): `<privileged_iq/>` checked field by field,
//! sent as the user, and the answer returned wrapped in `<privilege><forwarded>`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::inject::request;
use super::Privilege;
use super::{answer_entity, count, iq_error, Op};
use crate::config::Privileges;
use crate::jid::Jid;
use crate::router::delegation::Decision;
use crate::util::Slot;
use crate::xml::children::strict_children;
use crate::xml::ns::{NS_CLIENT, NS_FORWARD, NS_PRIVILEGE};
use crate::xml::writer::{close_element, push_attr};
use crate::xml::{extract_children, extract_element, Head, Stanza};

/// A checked privileged IQ, ready to be sent as the user.
#[derive(Debug, Clone)]
pub struct PrivilegedIq {
    pub component: String,
    pub user: String,
    pub top_id: String,
    pub kind: String,
    pub inner_id: String,
    pub inner_to: Option<String>,
    /// The inner IQ's payload element, as received.
    pub payload: Bytes,
}

impl PrivilegedIq {
    /// The IQ sent on the user's stream with the proxy's `id`.
    pub fn request(&self, id: &str) -> Bytes {
        let mut out = String::from("<iq");
        push_attr(&mut out, "type", &self.kind);
        push_attr(&mut out, "id", id);
        if let Some(to) = &self.inner_to {
            push_attr(&mut out, "to", to);
        }
        out.push('>');
        let mut bytes = BytesMut::from(out.as_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes.extend_from_slice(b"</iq>");
        bytes.freeze()
    }
}

/// Checks the wrapper against the grant; the component's error if anything is off.
pub fn check(
    component: &str,
    user: &str,
    stanza: &Stanza,
    head: &Head,
    privileges: Option<&Privileges>,
) -> Result<PrivilegedIq, Bytes> {
    let top_id = head.id().map(|i| i.into_owned()).unwrap_or_default();
    let refuse = |kind: &str, condition: &str, text: &str| {
        iq_error(user, component, &top_id, kind, condition, Some(text))
    };
    let forbidden = |text: &str| refuse("auth", "forbidden", text);
    let kind = head.type_().map(|t| t.into_owned()).unwrap_or_default();
    if !matches!(kind.as_str(), "get" | "set") {
        return Err(refuse(
            "modify",
            "bad-request",
            "a privileged IQ is a get or a set",
        ));
    }
    if !user.contains('@') || user.contains('/') {
        return Err(forbidden(
            "the wrapping IQ must be addressed to a managed bare JID",
        ));
    }
    let Some(privileges) = privileges.filter(|p| !p.iq.is_empty()) else {
        return Err(forbidden("no IQ privilege"));
    };
    if head.child_count() != 1 {
        return Err(refuse(
            "modify",
            "bad-request",
            "exactly one <privileged_iq/> expected",
        ));
    }
    let wrapper = head.child().map(|c| c.range()).unwrap_or_default();
    let kids = strict_children(&stanza.bytes()[wrapper.clone()], Some(NS_PRIVILEGE))
        .map_err(|_| refuse("modify", "bad-request", "malformed <privileged_iq/>"))?;
    let [inner] = kids.as_slice() else {
        return Err(refuse(
            "modify",
            "bad-request",
            "<privileged_iq/> must hold exactly one IQ",
        ));
    };
    if inner.name != "iq" {
        return Err(refuse(
            "modify",
            "bad-request",
            "<privileged_iq/> must hold an <iq/>",
        ));
    }
    if inner.ns.as_deref() != Some(NS_CLIENT) {
        return Err(forbidden("the inner IQ must be in jabber:client"));
    }
    let start = wrapper.start + inner.range.start;
    // With the declarations it relies on from its envelope and the component's stream.
    let not_well_formed = || refuse("modify", "bad-request", "the inner IQ is not well-formed");
    let inner_bytes =
        extract_element(stanza, start..start + inner.range.len()).map_err(|_| not_well_formed())?;
    let inner = Stanza::standalone(inner_bytes).map_err(|_| not_well_formed())?;
    let inner_head = inner
        .head()
        .map_err(|_| refuse("modify", "bad-request", "unreadable inner IQ"))?;
    if let Some(from) = inner_head.from() {
        let same = matches!((Jid::parse(&from), Jid::parse(user)), (Ok(a), Ok(b)) if a == b);
        if !same {
            return Err(forbidden("the inner IQ's 'from' must be the managed JID"));
        }
    }
    if inner_head.type_().as_deref() != Some(kind.as_str()) {
        return Err(forbidden("the inner IQ's type must match the wrapper's"));
    }
    let Some(inner_id) = inner_head.id().map(|i| i.into_owned()) else {
        return Err(refuse("modify", "bad-request", "the inner IQ needs an id"));
    };
    let payload_kids = strict_children(inner.bytes(), Some(NS_CLIENT))
        .map_err(|_| refuse("modify", "bad-request", "text in the inner IQ"))?;
    let [payload] = payload_kids.as_slice() else {
        return Err(refuse(
            "modify",
            "bad-request",
            "the inner IQ must have exactly one payload",
        ));
    };
    // A payload without its own namespace would be in jabber:client: not a payload.
    let Some(ns) = payload.ns.as_deref().filter(|ns| *ns != NS_CLIENT) else {
        return Err(refuse(
            "modify",
            "bad-request",
            "the payload needs a namespace",
        ));
    };
    let granted = privileges
        .iq
        .get(ns)
        .is_some_and(|perm| match kind.as_str() {
            "get" => perm.allows_get(),
            _ => perm.allows_set(),
        });
    if !granted {
        return Err(forbidden("this namespace and type are not granted"));
    }
    let payload = extract_element(&inner, payload.range.clone()).map_err(|_| not_well_formed())?;
    Ok(PrivilegedIq {
        component: component.to_owned(),
        user: user.to_owned(),
        top_id,
        kind,
        inner_id,
        inner_to: inner_head.to().map(|t| t.into_owned()),
        payload,
    })
}

/// Sends it as the user and answers the component.
/// `slot` is the entity's quota slot for the operation: held until it is answered,
/// whichever route it takes.
pub async fn run(service: Arc<Privilege>, iq: PrivilegedIq, slot: Slot) {
    let slot = match via_delegation(&service, &iq, slot) {
        Ok(()) => return,
        Err(slot) => slot,
    };
    let timeout = service.config.current().limits.privileged_iq_timeout;
    let built = |id: &str| iq.request(id);
    let (answer, outcome) = match request(&service.hub, &iq.user, built, timeout).await {
        Ok((_, response)) => wrap_response(&iq, &response),
        Err(error) => {
            let (kind, condition) = error.condition();
            let text = error.to_string();
            let refusal = iq_error(
                &iq.user,
                &iq.component,
                &iq.top_id,
                kind,
                condition,
                Some(&text),
            );
            (refusal, error.label())
        }
    };
    count(Op::Iq, outcome);
    answer_entity(&service.hub, &iq.component, answer);
    drop(slot);
}

/// The delegation route: an IQ in a namespace delegated for the user's domain goes to
/// the delegate as the user's own IQ would (from the user's bare JID), whether the user
/// is online or not, and its answer comes back to the entity. The entity's `slot` goes
/// with the delegation until it is answered; it is handed back when the IQ is not
/// delegated.
fn via_delegation(service: &Privilege, iq: &PrivilegedIq, slot: Slot) -> Result<(), Slot> {
    let Some(domain) = Jid::parse(&iq.user)
        .ok()
        .map(|j| j.domain().as_str().to_owned())
    else {
        return Err(slot);
    };
    let Ok(inner) = Stanza::standalone(iq.request(&iq.inner_id)) else {
        return Err(slot);
    };
    let Ok(head) = inner.head() else {
        return Err(slot);
    };
    let Decision::Delegate(rule) = service.delegation.decide(head, &domain) else {
        return Err(slot);
    };
    let (hub, for_answer) = (service.hub.clone(), iq.clone());
    let on_answer = Box::new(move |answer: Bytes| {
        let (wrapped, outcome) = wrap_response(&for_answer, &answer);
        count(Op::Iq, delegated(outcome));
        answer_entity(&hub, &for_answer.component, wrapped);
        drop(slot);
    });
    // When it cannot go, the error is the answer the user would have had.
    if let Some(error) = service
        .delegation
        .delegate_as_user(&rule, &inner, head, &iq.user, on_answer)
    {
        let (wrapped, outcome) = wrap_response(iq, &error);
        count(Op::Iq, delegated(outcome));
        answer_entity(&service.hub, &iq.component, wrapped);
    }
    Ok(())
}

/// The metric outcome of an IQ that went the delegation route.
fn delegated(outcome: &'static str) -> &'static str {
    match outcome {
        "ok" => "delegated",
        _ => "delegated_error",
    }
}

/// `<iq type=T from=USER to=COMPONENT id=TOP><privilege><forwarded><iq …response…/>`;
/// an error response's `<error/>` is also copied to the outer IQ (checklist 61).
fn wrap_response(iq: &PrivilegedIq, response: &Bytes) -> (Bytes, &'static str) {
    let parsed = Stanza::standalone(response.clone());
    let Some(head) = parsed.as_ref().ok().and_then(|s| s.head().ok()) else {
        let error = "internal-server-error";
        return (
            iq_error(&iq.user, &iq.component, &iq.top_id, "cancel", error, None),
            "error",
        );
    };
    let kind = if head.type_().as_deref() == Some("error") {
        "error"
    } else {
        "result"
    };
    // The answer's children, each with the declarations it relies on.
    let Ok(children) = parsed
        .as_ref()
        .map_err(|_| ())
        .and_then(|s| extract_children(s).map_err(|_| ()))
    else {
        let error = "internal-server-error";
        return (
            iq_error(&iq.user, &iq.component, &iq.top_id, "cancel", error, None),
            "error",
        );
    };
    let content = children.concat();
    let mut out = String::from("<iq");
    push_attr(&mut out, "type", kind);
    push_attr(&mut out, "from", &iq.user);
    push_attr(&mut out, "to", &iq.component);
    push_attr(&mut out, "id", &iq.top_id);
    out.push_str("><privilege xmlns='");
    out.push_str(NS_PRIVILEGE);
    out.push_str("'><forwarded xmlns='");
    out.push_str(NS_FORWARD);
    out.push_str("'><iq xmlns='jabber:client'");
    push_attr(&mut out, "type", kind);
    push_attr(&mut out, "id", &iq.inner_id);
    push_attr(&mut out, "to", &iq.user);
    if let Some(from) = head.from() {
        push_attr(&mut out, "from", &from);
    }
    let mut bytes = BytesMut::from(out.as_bytes());
    close_element(&mut bytes, "iq", &content);
    bytes.extend_from_slice(b"</forwarded></privilege>");
    if kind == "error" {
        let is_error = |c: &&Bytes| {
            [&b"<error "[..], b"<error>", b"<error/"]
                .iter()
                .any(|p| c.starts_with(p))
        };
        let error = children.iter().find(is_error);
        if let Some(error) = error {
            bytes.extend_from_slice(error);
        }
    }
    bytes.extend_from_slice(b"</iq>");
    let outcome = if kind == "error" { "error" } else { "ok" };
    (bytes.freeze(), outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PrivilegedIq {
        PrivilegedIq {
            component: "gw.example.org".into(),
            user: "alice@example.org".into(),
            top_id: "top".into(),
            kind: "set".into(),
            inner_id: "inner".into(),
            inner_to: None,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn error_response_is_wrapped_and_copied_out_checklist_61() {
        let response = Bytes::from_static(b"<iq xmlns='jabber:client' id='sg-1' to='alice@example.org/r' type='error' from='alice@example.org'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        let (out, outcome) = wrap_response(&sample(), &response);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(outcome, "error");
        assert_eq!(
            text,
            "<iq type='error' from='alice@example.org' to='gw.example.org' id='top'><privilege xmlns='urn:xmpp:privilege:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='error' id='inner' to='alice@example.org' from='alice@example.org'>\
<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq></forwarded></privilege>\
<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
    }
}
