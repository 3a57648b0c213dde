//! What a session remembers while the proxy acts as its user (XEP-0356): answers the
//! server owes for IQs the proxy sent, whether the client enabled carbons (the server
//! does not copy a sent message back to the session it came from), and subscription
//! acknowledgements to swallow.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::xml::ns::NS_CARBONS;
use crate::xml::Head;

#[derive(Default)]
pub struct Acting {
    awaiting: HashMap<String, oneshot::Sender<Bytes>>,
    carbons: bool,
    /// The client's pending carbons request: (id, enable).
    carbons_request: Option<(String, bool)>,
    expected_subscribed: HashSet<String>,
}

impl Acting {
    pub fn await_answer(&mut self, id: String, reply: oneshot::Sender<Bytes>) {
        self.awaiting.insert(id, reply);
    }

    /// A server IQ answering the proxy: handed over (`true`) instead of relayed.
    pub fn take_answer(&mut self, head: &Head, stanza: &Bytes) -> bool {
        if self.awaiting.is_empty() || !matches!(head.type_().as_deref(), Some("result" | "error"))
        {
            return false;
        }
        let Some(reply) = head.id().and_then(|id| self.awaiting.remove(id.as_ref())) else {
            return false;
        };
        // The requester may have given up (timeout): the answer is still consumed.
        let _ = reply.send(stanza.clone());
        true
    }

    pub fn carbons_enabled(&self) -> bool {
        self.carbons
    }

    /// A client IQ: notes a carbons enable/disable request.
    pub fn client_iq(&mut self, head: &Head) {
        if head.type_().as_deref() != Some("set") {
            return;
        }
        let Some(child) = head.child().filter(|c| c.ns() == Some(NS_CARBONS)) else {
            return;
        };
        let enable = match child.name() {
            "enable" => true,
            "disable" => false,
            _ => return,
        };
        if let Some(id) = head.id() {
            self.carbons_request = Some((id.into_owned(), enable));
        }
    }

    /// A server IQ: the answer to the carbons request settles the state.
    pub fn server_iq(&mut self, head: &Head) {
        let Some((id, enable)) = &self.carbons_request else {
            return;
        };
        if head.id().as_deref() == Some(id.as_str()) {
            if head.type_().as_deref() == Some("result") {
                self.carbons = *enable;
            }
            self.carbons_request = None;
        }
    }

    pub fn expect_subscribed(&mut self, contact: String) {
        self.expected_subscribed
            .insert(contact.to_ascii_lowercase());
    }

    /// A server presence: the contact's `subscribed` that answers the proxy's
    /// `subscribe` is swallowed (`true`), once.
    pub fn swallow_subscribed(&mut self, head: &Head) -> bool {
        if self.expected_subscribed.is_empty() || head.type_().as_deref() != Some("subscribed") {
            return false;
        }
        let Some(from) = head.from() else {
            return false;
        };
        let bare = from.split('/').next().unwrap_or(&from).to_ascii_lowercase();
        self.expected_subscribed.remove(&bare)
    }
}
