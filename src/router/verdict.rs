//! Routing verdicts: what to do with one stanza, as a value. Features compute them
//! (pure functions of the stanza's head, the session's state and the rules); the
//! session's one `apply` step carries them out, with Stream Management accounting,
//! metrics and writes, so no route can forget any of them.

use std::sync::Arc;

use bytes::Bytes;

use super::delegation::table::Rule;

/// What to do with one stanza a bound client sent.
#[derive(Debug)]
pub enum ClientVerdict {
    /// Relay to the server; `note` is what the session must remember or tell others
    /// on the way.
    Pass(PassNote),
    /// Wrap and hand to the rule's component (XEP-0355); the server never sees it.
    Delegate(Arc<Rule>),
    /// The proxy answers itself; the server never sees it.
    Answer(Answer),
    /// Refused with this stanza error (addressed to the client); the server never
    /// sees it.
    Reject(Bytes),
    /// Dropped without an answer; the server never sees it.
    Drop(Dropped),
    /// The client's stream ends with this stream error.
    End(StreamEnd),
    /// A privileged request from a user account that is a privileged entity (a roster
    /// IQ to another user, a `<privileged_iq/>`, a `<privilege/>` message): carried out
    /// as a component's would be; the server never sees it.
    Privileged,
    /// The answer of a user account that is a delegate to a delegated IQ it got; the
    /// server never sees it.
    DelegationReply,
}

/// Side effects of a relayed client stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassNote {
    None,
    /// A carbons enable/disable request: its answer settles whether the client gets
    /// carbons of messages the proxy sends as the user.
    Carbons {
        id: String,
        enable: bool,
    },
    /// A disco query the server answers first; if it does not know the node, the
    /// query goes to the delegate (XEP-0355 §7.2.4–5).
    Probe(Arc<Rule>),
    /// A broadcast presence: recorded as the session's current presence, copied to
    /// privileged entities, and (web-app rosters) sent to the contacts.
    Broadcast {
        available: bool,
    },
    /// The client's own roster request: the server's pushes are the client's.
    RosterRequested,
}

/// An answer the proxy computes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The user's own roster, from the web app (checklist 70).
    WebRoster { id: String, ver: Option<String> },
}

/// Why a stanza was dropped, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Subscription presence on a web-app roster (the web app owns subscriptions).
    WebRosterSubscription,
    /// A roster IQ of another type (result, error) on a web-app roster.
    WebRosterIq,
}

impl Dropped {
    pub fn label(self) -> &'static str {
        match self {
            Dropped::WebRosterSubscription => "web_roster_subscription",
            Dropped::WebRosterIq => "web_roster_iq",
        }
    }
}

/// A stream error the proxy sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    pub condition: &'static str,
    pub text: String,
}

/// What to do with one stanza the server sent to a bound session.
#[derive(Debug)]
pub enum ServerVerdict {
    /// Relay to the client (as received, or rewritten), noting `note` on the way.
    Relay(Relayed, ServerNote),
    /// Taken by the proxy: the client never sees it.
    Consume(Consumed),
}

/// The bytes the client gets for a relayed server stanza.
#[derive(Debug)]
pub enum Relayed {
    AsReceived,
    /// disco#info of a served domain or account under delegation (checklist 31–34).
    Rewritten(Bytes),
}

/// Side effects of a relayed server stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerNote {
    None,
    /// The answer to the client's carbons request: `Some` when it succeeded.
    CarbonsAnswered {
        enabled: Option<bool>,
    },
    /// A contact's presence: copied to entities holding `presence='roster'`.
    ContactPresence,
    /// A roster push from the server: copied to entities holding roster pushes, and
    /// applied to the proxy's mirror of the roster.
    RosterPush,
    /// A roster push no entity wants a copy of, applied to the mirror only (some
    /// entity may read this user's roster).
    RosterMirror,
    /// The user's whole roster as the server gave it: the mirror is replaced (read by
    /// entities while the user is offline).
    RosterResult,
}

/// Why the proxy took a server stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// The answer to an IQ the proxy sent as the user (XEP-0356).
    /// `note`: a roster result is the user's roster all the same (the mirror).
    ActingAnswer { id: String, note: ServerNote },
    /// The server does not know the node of a probed disco query: the original query
    /// goes to the delegate now (checklist 35–36).
    ProbeMiss { id: String },
    /// The contact's `subscribed` answering a `subscribe` the proxy sent as the user.
    ExpectedSubscribed { contact: String },
    /// A component contact's `subscribe` the proxy approves for the user.
    ExpectedSubscribe { contact: String },
    /// Subscription presence on a web-app roster.
    WebRosterSubscription,
    /// A roster push to a session whose client never asked for the roster (the
    /// proxy did): answered by the proxy, with its side effects for entities.
    UnaskedPush { id: String, note: ServerNote },
}

impl Consumed {
    pub fn label(&self) -> &'static str {
        match self {
            Consumed::ActingAnswer { .. } => "acting_answer",
            Consumed::ProbeMiss { .. } => "probe_miss",
            Consumed::ExpectedSubscribed { .. } => "expected_subscribed",
            Consumed::ExpectedSubscribe { .. } => "expected_subscribe",
            Consumed::WebRosterSubscription => "web_roster_subscription",
            Consumed::UnaskedPush { .. } => "unasked_roster_push",
        }
    }
}
