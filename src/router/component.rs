//! The verdict for each top-level element a component sends: a pure function of the
//! element's head, the component's name and what the proxy is waiting for. A
//! component is trusted only within its grants: every stanza, in whatever namespace,
//! must come from its own domain; anything that is not a stanza ends its stream.

use bytes::Bytes;

use super::privilege::Operation;
use super::verdict::StreamEnd;
use crate::jid::{Domain, Jid};
use crate::xml::ns::{NS_CLIENT, NS_COMPONENT};
use crate::xml::writer::{stanza_error, StanzaError};
use crate::xml::Head;

/// What to do with one element from a component.
#[derive(Debug)]
pub enum ComponentVerdict {
    /// Relay to the server on the component's link.
    Pass,
    /// Answers a delegated IQ or a nesting query: delegation takes it.
    DelegationReply,
    /// A privileged operation, or an answer to a roster push copy: privilege takes it.
    Privileged(Operation),
    /// Sent back to the component with this error.
    Bounce(Bytes),
    /// Dropped without an answer (an error stanza that cannot be bounced).
    Drop,
    /// The component's stream ends with this error.
    End(StreamEnd),
}

impl ComponentVerdict {
    /// As a metric label; `None` for plain relaying (not counted per stanza).
    pub fn label(&self) -> Option<&'static str> {
        match self {
            ComponentVerdict::Pass => None,
            ComponentVerdict::DelegationReply => Some("delegation_reply"),
            ComponentVerdict::Privileged(_) => Some("privileged"),
            ComponentVerdict::Bounce(_) => Some("bounce"),
            ComponentVerdict::Drop => Some("drop"),
            ComponentVerdict::End(_) => Some("end"),
        }
    }
}

/// What a verdict may read.
pub struct ComponentView<'a> {
    /// The component's name (its domain), prepared.
    pub name: &'a Domain,
    /// Whether delegation waits for a reply with this id from this component.
    pub awaits_reply: &'a dyn Fn(&str) -> bool,
    /// What privileges make of the stanza.
    pub privileged: &'a dyn Fn(&Head) -> Option<Operation>,
}

pub fn verdict(view: &ComponentView<'_>, head: &Head) -> ComponentVerdict {
    let stanza = matches!(head.name(), "iq" | "message" | "presence");
    if !stanza {
        return ComponentVerdict::End(StreamEnd {
            condition: "unsupported-stanza-type",
            text: format!("<{}/> is not a stanza", head.name()),
        });
    }
    // Checked whatever the namespace: a stanza in another namespace must not slip a
    // forged sender past the check (the server may still route it).
    let from_ok = head
        .from()
        .and_then(|from| Jid::parse(&from).ok())
        .is_some_and(|from| Domain::from(from.domain()) == *view.name);
    if !from_ok {
        return ComponentVerdict::End(StreamEnd {
            condition: "invalid-from",
            text: format!("stanzas from this component must come from {}", view.name),
        });
    }
    if !matches!(head.ns(), Some(NS_COMPONENT | NS_CLIENT)) {
        return ComponentVerdict::End(StreamEnd {
            condition: "invalid-namespace",
            text: "stanzas on a component stream are in jabber:component:accept".into(),
        });
    }
    let answer = head.name() == "iq" && matches!(head.type_().as_deref(), Some("result" | "error"));
    if answer && head.id().is_some_and(|id| (view.awaits_reply)(&id)) {
        return ComponentVerdict::DelegationReply;
    }
    if let Some(operation) = (view.privileged)(head) {
        return ComponentVerdict::Privileged(operation);
    }
    if head.to().is_none() {
        if head.type_().as_deref() == Some("error") {
            return ComponentVerdict::Drop;
        }
        return ComponentVerdict::Bounce(stanza_error(&StanzaError {
            name: head.name(),
            id: head.id().as_deref(),
            from: None,
            to: head.from().as_deref(),
            error_type: "modify",
            condition: "bad-request",
            text: Some("a component stanza needs a 'to'"),
            xmlns: None,
        }));
    }
    ComponentVerdict::Pass
}
