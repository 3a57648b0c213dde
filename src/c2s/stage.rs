//! Where a relayed client stream stands in its negotiation: authenticating (SASL is
//! relayed, and the proxy may offer STARTTLS itself), binding (after SASL success,
//! waiting for the server's bind result), or bound to a full JID. Only a bound stream
//! has a JID and an inbox for other tasks, so nothing can act for a user that is not
//! bound yet.

use tokio::time::Instant;

use crate::acting::subscription::Wanted;
use crate::hub::Inbox;
use crate::router::session::RouteState;

pub enum Stage {
    /// Before SASL success. `starttls_offer`: a plaintext stream where TLS is
    /// optional and a certificate is configured: the proxy offers STARTTLS next to
    /// the server's features.
    Authenticating {
        starttls_offer: bool,
    },
    /// After SASL success; `bind_id` is the client's bind request, once seen.
    Binding {
        bind_id: Option<String>,
    },
    Bound(Box<Bound>),
}

/// A stream bound to a full JID.
pub struct Bound {
    /// As the server bound it.
    pub jid: String,
    /// Commands other tasks queue for this session.
    pub inbox: Inbox,
    /// What routing remembers for this session.
    pub route: RouteState,
    /// Whether the client's stanzas wait for what was applied at login.
    pub hold: Hold,
}

/// Logins whose client waited for what was queued, by how the wait ended: `settled`
/// (every subscription complete, every operation sent) or `deadline`.
pub const HOLDS_TOTAL: &str = "stanzagate_login_holds_total";

/// Whether the client is read. After the login applied what was queued, the client
/// waits while (1) roster sets asking subscriptions of contacts on components
/// connected through the proxy are not yet shown complete by the server's roster
/// pushes (the proxy answers both sides, so this takes round trips through the
/// server only), and (2) queued roster sets wait for room among the session's
/// awaited answers. So its first roster request sees the items as the entity set
/// them; never past a deadline.
pub enum Hold {
    Open,
    Settling {
        /// Contacts (bare, prepared) and the subscription each must reach.
        contacts: Vec<(String, Wanted)>,
        /// Queued operations still wait in the store for room.
        replaying: bool,
        until: Instant,
    },
}

impl Bound {
    /// The deadline while the client waits, or `None` when it is read. A hold whose
    /// deadline has passed ends here (logged and counted).
    pub fn held_until(&mut self) -> Option<Instant> {
        let Hold::Settling {
            contacts,
            replaying,
            until,
        } = &self.hold
        else {
            return None;
        };
        if Instant::now() < *until {
            return Some(*until);
        }
        let waiting: Vec<&String> = contacts.iter().map(|(jid, _)| jid).collect();
        tracing::warn!(
            ?waiting,
            replaying,
            "what was queued is still not complete at the deadline: the client is read again"
        );
        metrics::counter!(HOLDS_TOTAL, "outcome" => "deadline").increment(1);
        self.hold = Hold::Open;
        None
    }

    /// After (a round of) the queue's replay: `more` contacts to wait for, whether
    /// operations still wait in the store, and the deadline for these.
    pub fn hold_for(&mut self, more: Vec<(String, Wanted)>, still: bool, until: Instant) {
        match &mut self.hold {
            Hold::Open if more.is_empty() && !still => {}
            Hold::Open => {
                self.hold = Hold::Settling {
                    contacts: more,
                    replaying: still,
                    until,
                }
            }
            Hold::Settling {
                contacts,
                replaying,
                until: deadline,
            } => {
                contacts.extend(more);
                *replaying = still;
                *deadline = (*deadline).max(until);
                self.end_if_done();
            }
        }
    }

    /// Whether queued operations wait for room (answers to the session's requests).
    pub fn replaying(&self) -> bool {
        matches!(
            self.hold,
            Hold::Settling {
                replaying: true,
                ..
            }
        )
    }

    /// A roster push showed `contact` with subscription `now`: if the hold awaited
    /// it, it is done, and the hold may end with it.
    pub fn roster_pushed(&mut self, contact: &str, now: Wanted) {
        let Hold::Settling { contacts, .. } = &mut self.hold else {
            return;
        };
        contacts.retain(|(jid, wanted)| !(jid == contact && wanted.satisfied_by(now)));
        self.end_if_done();
    }

    fn end_if_done(&mut self) {
        if let Hold::Settling {
            contacts,
            replaying: false,
            ..
        } = &self.hold
        {
            if contacts.is_empty() {
                metrics::counter!(HOLDS_TOTAL, "outcome" => "settled").increment(1);
                self.hold = Hold::Open;
            }
        }
    }

    pub fn is_holding(&self) -> bool {
        matches!(self.hold, Hold::Settling { .. })
    }
}

impl Stage {
    pub fn bound(&self) -> Option<&Bound> {
        match self {
            Stage::Bound(bound) => Some(bound),
            _ => None,
        }
    }

    pub fn inbox_mut(&mut self) -> Option<&mut Inbox> {
        match self {
            Stage::Bound(bound) => Some(&mut bound.inbox),
            _ => None,
        }
    }

    pub fn jid(&self) -> Option<&str> {
        self.bound().map(|b| b.jid.as_str())
    }

    pub fn starttls_offer(&self) -> bool {
        matches!(
            self,
            Stage::Authenticating {
                starttls_offer: true
            }
        )
    }

    /// SASL succeeded: both streams restart and resource binding follows.
    pub fn authenticated(&mut self) {
        if !matches!(self, Stage::Bound(_)) {
            *self = Stage::Binding { bind_id: None };
        }
    }

    /// The client asked to bind with this IQ id.
    pub fn bind_requested(&mut self, id: Option<String>) {
        if let Stage::Binding { bind_id } = self {
            *bind_id = id;
        }
    }

    /// Whether a server IQ with `id` answers the client's bind request.
    pub fn is_bind_answer(&self, id: Option<&str>) -> bool {
        match self {
            Stage::Binding {
                bind_id: Some(bind_id),
            } => id == Some(bind_id.as_str()),
            _ => false,
        }
    }

    /// The bind request was answered with an error: binding may be tried again.
    pub fn bind_failed(&mut self) {
        if let Stage::Binding { bind_id } = self {
            *bind_id = None;
        }
    }
}
