//! The one place a client session carries out verdicts and other tasks' commands:
//! every stanza that is relayed, consumed or injected goes through the helpers here,
//! which keep the Stream Management counters, the quotas and the metrics in step with
//! what is written. Features never write to a socket or touch SM counters themselves.

use bytes::Bytes;
use metrics::Counter;

use super::relay::{Session, Stop};
use super::stage::Stage;
use crate::acting::mirror;
use crate::hub::{ActingError, Command};
use crate::metrics::{FlowCounters, VERDICTS_TOTAL};
use crate::router::privilege::{presence, roster};
use crate::router::verdict::{
    Answer, ClientVerdict, Consumed, PassNote, Relayed, ServerNote, ServerVerdict,
};
use crate::xml::ns::NS_ROSTER;
use crate::xml::{extract_element, extract_stanza, extract_stanza_for_stream, Head, Stanza};

/// What one read burst did, reported to metrics in one go (no per-stanza metric
/// lookups on the hot path).
#[derive(Default)]
pub struct Tally {
    pub up_stanzas: u64,
    pub up_bytes: u64,
    pub down_stanzas: u64,
    pub down_bytes: u64,
    /// Verdicts other than plain relaying, by label.
    verdicts: Vec<(&'static str, &'static str)>,
}

impl Tally {
    fn verdict(&mut self, direction: &'static str, verdict: &'static str) {
        self.verdicts.push((direction, verdict));
    }

    pub fn report(self, up: &FlowCounters, down: &FlowCounters) {
        let add = |counter: &Counter, n: u64| {
            if n > 0 {
                counter.increment(n);
            }
        };
        add(&up.stanzas, self.up_stanzas);
        add(&up.bytes, self.up_bytes);
        add(&down.stanzas, self.down_stanzas);
        add(&down.bytes, self.down_bytes);
        for (direction, verdict) in self.verdicts {
            metrics::counter!(VERDICTS_TOTAL, "direction" => direction, "verdict" => verdict)
                .increment(1);
        }
    }
}

impl ClientVerdict {
    fn label(&self) -> Option<&'static str> {
        match self {
            ClientVerdict::Pass(_) => None,
            ClientVerdict::Delegate(_) => Some("delegate"),
            ClientVerdict::Answer(_) => Some("answer"),
            ClientVerdict::Reject(_) => Some("reject"),
            ClientVerdict::Drop(dropped) => Some(dropped.label()),
            ClientVerdict::End(_) => Some("end"),
            ClientVerdict::Privileged => Some("privileged"),
            ClientVerdict::DelegationReply => Some("delegation_reply"),
        }
    }
}

impl Session {
    // ---- verdicts ----------------------------------------------------------------

    /// Carries out the verdict for a client stanza (`iq`, `message`, `presence`).
    pub(super) fn apply_client(
        &mut self,
        stanza: &Stanza,
        head: &Head,
        verdict: ClientVerdict,
    ) -> Result<(), Stop> {
        if let Some(label) = verdict.label() {
            self.tally.verdict("client", label);
        }
        match verdict {
            ClientVerdict::Pass(note) => {
                self.client_note(stanza, note);
                self.sm.relayed_up();
                self.tally.up_stanzas += 1;
                self.forward(stanza.bytes().clone());
                Ok(())
            }
            ClientVerdict::Delegate(rule) => {
                self.consume_up()?;
                let Some(jid) = self.stage.jid() else {
                    return Ok(());
                };
                match self.shared.delegation.delegate(&rule, stanza, head, jid) {
                    Some(refusal) => self.inject_down(refusal),
                    None => Ok(()),
                }
            }
            ClientVerdict::Answer(Answer::WebRoster { id, ver }) => {
                self.consume_up()?;
                let Some(jid) = self.stage.jid() else {
                    return Ok(());
                };
                match self.shared.roster.start_client_get(jid, id, ver) {
                    Ok(()) => Ok(()),
                    Err(refusal) => self.inject_down(refusal),
                }
            }
            ClientVerdict::Reject(error) => {
                self.consume_up()?;
                self.inject_down(error)
            }
            ClientVerdict::Drop(_) => self.consume_up(),
            ClientVerdict::End(end) => Err(Stop::ClientError(end.condition, end.text)),
            ClientVerdict::DelegationReply => {
                self.consume_up()?;
                if let Some(jid) = self.stage.jid() {
                    self.shared.delegation.user_reply(jid, stanza, head);
                }
                Ok(())
            }
            ClientVerdict::Privileged => {
                self.consume_up()?;
                let Some(jid) = self.stage.jid().map(str::to_owned) else {
                    return Ok(());
                };
                // As a component's request, answered to this session (its full JID).
                let privilege = &self.shared.privilege;
                match privilege.classify(head, crate::config::PrivilegeNs::V2) {
                    Some(operation) => privilege.carry_out(&jid, stanza, head, operation),
                    None => {
                        let error =
                            crate::xml::writer::stanza_error(&crate::xml::writer::StanzaError {
                                name: head.name(),
                                id: head.id().as_deref(),
                                from: None,
                                to: Some(&jid),
                                error_type: "modify",
                                condition: "bad-request",
                                text: Some("not a privileged request this proxy can carry out"),
                                xmlns: None,
                            });
                        self.inject_down(error)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// What a relayed client stanza tells the session or others.
    fn client_note(&mut self, stanza: &Stanza, note: PassNote) {
        let Stage::Bound(bound) = &mut self.stage else {
            return;
        };
        match note {
            PassNote::None => {}
            PassNote::Carbons { id, enable } => bound.route.carbons_requested(id, enable),
            PassNote::Probe(rule) => bound.route.remember_probe(stanza, rule),
            PassNote::RosterRequested => bound.route.roster_requested_by_client(),
            PassNote::Broadcast { available } => {
                let jid = bound.jid.as_str();
                let shared = &self.shared;
                // What others get of it is re-serialised in this stream's namespace
                // context; the client's own bytes never reach anyone but the server.
                let scoped = match extract_stanza_for_stream(stanza, 0..stanza.len()) {
                    Ok(scoped) => scoped,
                    Err(error) => return presence::dropped(&error),
                };
                shared
                    .hub
                    .sessions
                    .set_presence(jid, available.then(|| scoped.clone()));
                shared.privilege.user_presence(jid, &scoped);
                if shared.roster.owns(&self.domain) {
                    let first = bound.route.presence_broadcast();
                    shared.roster.start_fan_out(jid, scoped, first);
                }
            }
        }
    }

    /// Carries out the verdict for a server stanza to a bound session.
    pub(super) fn apply_server(
        &mut self,
        stanza: &Stanza,
        head: &Head,
        verdict: ServerVerdict,
    ) -> Result<(), Stop> {
        self.settle_hold(stanza, head);
        match verdict {
            ServerVerdict::Relay(relayed, note) => {
                self.server_note(stanza, head, note);
                self.sm.relayed_down();
                self.tally.down_stanzas += 1;
                match relayed {
                    Relayed::AsReceived => self.relay_down(stanza.bytes().clone()),
                    Relayed::Rewritten(bytes) => {
                        self.tally.verdict("server", "rewrite");
                        self.relay_down(bytes)
                    }
                }
                Ok(())
            }
            ServerVerdict::Consume(consumed) => {
                self.tally.verdict("server", consumed.label());
                self.consume_down()?;
                self.consumed(stanza, consumed)
            }
        }
    }

    /// While the client waits for subscriptions asked at login (see `Hold`), the
    /// server's roster pushes say which are complete.
    fn settle_hold(&mut self, stanza: &Stanza, head: &Head) {
        let Stage::Bound(bound) = &mut self.stage else {
            return;
        };
        if !bound.is_holding() || head.name() != "iq" || head.type_().as_deref() != Some("set") {
            return;
        }
        let bare = crate::hub::bare(&bound.jid).to_owned();
        let own = head.from().is_none_or(|from| from.as_ref() == bare);
        let Some(query) = head
            .child()
            .filter(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER))
        else {
            return;
        };
        if !own {
            return;
        }
        // The `<query/>` on its own, with its declarations, as a queued set is kept.
        let Ok(query) = extract_element(stanza, query.range()) else {
            return;
        };
        for item in roster::query_items(&query, &bare) {
            bound.roster_pushed(&item.jid, item.subscription);
        }
    }

    fn server_note(&mut self, stanza: &Stanza, head: &Head, note: ServerNote) {
        let Stage::Bound(bound) = &mut self.stage else {
            return;
        };
        let privilege = &self.shared.privilege;
        match note {
            ServerNote::None => {}
            ServerNote::CarbonsAnswered { enabled } => bound.route.carbons_answered(enabled),
            ServerNote::ContactPresence => privilege.contact_presence(&bound.jid, stanza),
            ServerNote::RosterPush => {
                privilege.roster_push(&bound.jid, stanza, head);
                privilege.mirror(&bound.jid, stanza, head, mirror::Change::Push);
                bound.route.mirrored(mirror::version(head));
            }
            ServerNote::RosterMirror => {
                privilege.mirror(&bound.jid, stanza, head, mirror::Change::Push);
                bound.route.mirrored(mirror::version(head));
            }
            ServerNote::RosterResult => {
                let ver = mirror::version(head);
                if bound.route.mirror_has(ver.as_deref()) {
                    mirror::unchanged();
                } else {
                    privilege.mirror(&bound.jid, stanza, head, mirror::Change::Whole);
                    bound.route.mirrored(ver);
                }
            }
        }
    }

    fn consumed(&mut self, stanza: &Stanza, consumed: Consumed) -> Result<(), Stop> {
        let Stage::Bound(bound) = &mut self.stage else {
            return Ok(());
        };
        match consumed {
            Consumed::ActingAnswer { id, note } => {
                // With the server stream's declarations, so the requester can take it
                // apart and re-wrap its payload for a component.
                let answer = extract_stanza(stanza).map_err(|_| ActingError::Unreadable);
                bound.route.answered(&id, answer);
                let resume = bound.replaying();
                // A roster the proxy asked for as the user keeps the mirror current.
                if let Ok(head) = stanza.head() {
                    self.server_note(stanza, head, note);
                }
                // An answer frees room for what of the queue did not fit.
                if resume {
                    return self.apply_queued();
                }
            }
            Consumed::ExpectedSubscribed { contact } => bound.route.subscribed_seen(&contact),
            Consumed::ExpectedSubscribe { contact } => {
                bound.route.subscribe_seen(&contact);
                // Approved on the user's behalf, as the roster set asked.
                let approve = crate::acting::subscription::presence("subscribed", &contact);
                return self.inject_up(approve);
            }
            Consumed::WebRosterSubscription => {}
            Consumed::UnaskedPush { id, note } => {
                if let Ok(head) = stanza.head() {
                    self.server_note(stanza, head, note);
                }
                // RFC 6121 §2.1.6: a push is answered; the client cannot, it never
                // asked for its roster.
                let mut result = String::from("<iq type='result'");
                crate::xml::writer::push_attr(&mut result, "id", &id);
                result.push_str("/>");
                return self.inject_up(Bytes::from(result));
            }
            Consumed::ProbeMiss { id } => {
                // The server does not know the node: the original query goes to the
                // delegate, as if it had been delegated in the first place.
                let Some((original, rule)) = bound.route.take_probe(&id) else {
                    return Ok(());
                };
                let Ok(original_head) = original.head() else {
                    return Ok(());
                };
                let delegation = self.shared.delegation.clone();
                if let Some(refusal) =
                    delegation.delegate(&rule, &original, original_head, &bound.jid)
                {
                    self.inject_down(refusal)?;
                }
            }
        }
        Ok(())
    }

    // ---- commands from other tasks -------------------------------------------------

    pub(super) fn command(&mut self, command: Command) -> Result<(), Stop> {
        match command {
            Command::ToClient(stanza) => self.inject_down(stanza),
            Command::ToServer(stanza) => self.inject_up(stanza),
            Command::Request { stanza, id, reply } => {
                let Stage::Bound(bound) = &mut self.stage else {
                    return Ok(());
                };
                let cfg = self.shared.config.current();
                bound.route.await_answer(
                    id.clone(),
                    reply,
                    cfg.limits.privileged_iq_timeout,
                    self.quotas.max_operations_per_session,
                );
                if bound.route.awaits(&id) {
                    self.inject_up(stanza)?;
                }
                Ok(())
            }
            Command::SendAs { stanza, carbon } => {
                self.inject_up(stanza)?;
                let carbons = self
                    .stage
                    .bound()
                    .is_some_and(|b| b.route.carbons_enabled());
                if carbons {
                    self.inject_down(carbon)?;
                }
                Ok(())
            }
            Command::ExpectSubscribed(contact) => {
                if let Stage::Bound(bound) = &mut self.stage {
                    let max = self.quotas.max_operations_per_session;
                    bound.route.expect_subscribed(contact, max);
                }
                Ok(())
            }
            Command::ExpectSubscribe(contact) => {
                if let Stage::Bound(bound) = &mut self.stage {
                    let max = self.quotas.max_operations_per_session;
                    bound.route.expect_subscribe(contact, max);
                }
                Ok(())
            }
        }
    }

    // ---- writes, with SM accounting ---------------------------------------------------

    /// Client bytes to the server as received (stanzas are counted by the caller).
    pub(super) fn forward(&mut self, bytes: Bytes) {
        self.tally.up_bytes += bytes.len() as u64;
        self.upstream.out.push(bytes);
    }

    /// Server bytes to the client as received or rewritten.
    pub(super) fn relay_down(&mut self, bytes: Bytes) {
        self.tally.down_bytes += bytes.len() as u64;
        self.client.out.push(bytes);
    }

    /// A client stanza the proxy handled itself: it never reaches the server, but the
    /// client counts it as sent, so the server's acknowledgements are raised.
    fn consume_up(&mut self) -> Result<(), Stop> {
        self.sm
            .consumed_up(self.quotas.max_sm_unacked)
            .map_err(sm_overflow)
    }

    /// A server stanza the proxy handled itself: the client never sees it.
    fn consume_down(&mut self) -> Result<(), Stop> {
        self.sm
            .consumed_down(self.quotas.max_sm_unacked)
            .map_err(sm_overflow)?;
        self.request_ack_if_due();
        Ok(())
    }

    /// A stanza the proxy made for the client, counted as such for SM.
    pub(super) fn inject_down(&mut self, stanza: Bytes) -> Result<(), Stop> {
        self.sm
            .injected_down(&stanza, self.quotas.max_sm_unacked)
            .map_err(sm_overflow)?;
        self.client.out.push(stanza);
        self.request_ack_if_due();
        Ok(())
    }

    /// Asks the client to acknowledge once the proxy holds a quarter of its quota for
    /// it: an honest client then never reaches the quota.
    fn request_ack_if_due(&mut self) {
        let threshold = (self.quotas.max_sm_unacked / 4).max(1);
        if let Some(request) = self.sm.should_request_ack(threshold) {
            self.client.out.push(request);
        }
    }

    /// A stanza the proxy made for the server on this user's stream.
    pub(super) fn inject_up(&mut self, stanza: Bytes) -> Result<(), Stop> {
        self.sm
            .injected_up(&stanza, self.quotas.max_sm_unacked)
            .map_err(sm_overflow)?;
        self.upstream.out.push(stanza);
        Ok(())
    }
}

/// A client that does not acknowledge what the proxy must hold for it.
fn sm_overflow(overflow: super::sm::Overflow) -> Stop {
    crate::metrics::quota_exceeded("max_sm_unacked");
    Stop::ClientError(
        "policy-violation",
        format!("too many unacknowledged stanzas: {overflow}"),
    )
}
