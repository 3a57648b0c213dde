//! One client session in relay mode: both streams are open and each direction reads
//! top to bottom — read → frame → head → verdict → apply → write. Stream-level
//! elements (features, SASL outcomes, Stream Management) go to the negotiation stage
//! and the SM layer; stanzas of a bound stream get a routing verdict, which the apply
//! step ([`super::apply`]) carries out. Writes are batched per read burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::apply::Tally;
use super::client::ClientSide;
use super::features::rewrite_features;
use super::sm::wire::{self, is_sm_namespace};
use super::sm::{ResumeStore, Sm, Version};
use super::stage::{Bound, Hold, Stage};
use super::upstream::UpstreamSide;
use crate::config::{Config, Quotas};
use crate::hub::{inbox, Command, Inbox, SessionHandle};
use crate::jid::{FullJid, Jid};
use crate::metrics::{self, Flow, FlowCounters};
use crate::net::{read_some, websocket, within};
use crate::router::rules::Rules;
use crate::router::session::RouteState;
use crate::router::{client, server};
use crate::shared::Shared;
use crate::xml::children::{descendant_text, stream_error_condition};
use crate::xml::ns::{NS_BIND, NS_CLIENT, NS_SASL, NS_SASL2, NS_STREAMS, NS_TLS};
use crate::xml::{Frame, FrameError, Head, Stanza};

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// How relaying ended.
pub enum Ended {
    /// Both streams are finished.
    Closed,
    /// The plaintext client asked for STARTTLS (offered next to the server's features
    /// when `tls.required = false`): the caller upgrades and starts over.
    StartTls(Box<ClientSide>),
}

/// Why relaying stops, and what each peer is told.
pub(super) enum Stop {
    /// The client closed its stream: close upstream, let it finish within the grace.
    ClientEnded,
    /// The server closed its stream: tell the client, let it finish within the grace.
    UpstreamEnded,
    ClientGone,
    UpstreamGone,
    /// The proxy ends the client stream with this error.
    ClientError(&'static str, String),
    /// The server misbehaved: the client gets this error.
    UpstreamError(&'static str, String),
    StartTls,
}

pub struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) resume: Arc<ResumeStore>,
    pub(super) client: ClientSide,
    pub(super) upstream: UpstreamSide,
    /// The served domain of the stream, prepared.
    pub(super) domain: String,
    /// The client's real address (after PROXY protocol), for per-address limits.
    client_ip: std::net::IpAddr,
    pub(super) id: u64,
    /// Negotiation must end (the stream bound) by then.
    deadline: Instant,
    pub(super) stage: Stage,
    pub(super) sm: Sm,
    /// The quotas and write timeout of the config the session started with (a reload
    /// applies to new sessions).
    pub(super) quotas: Quotas,
    write_timeout: Duration,
    /// The routing rules, refreshed when the config generation changes (one atomic
    /// load per stanza instead of looking the rules up).
    rules: Rules,
    rules_generation: u64,
    up_counters: FlowCounters,
    down_counters: FlowCounters,
    pub(super) tally: Tally,
}

enum Wake {
    Client(std::io::Result<usize>),
    Upstream(std::io::Result<usize>),
    Command(Command),
    Ended,
    Deadline,
    /// The client's hold reached its deadline (see `Hold`).
    HoldOver,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        resume: Arc<ResumeStore>,
        client: ClientSide,
        upstream: UpstreamSide,
        domain: String,
        client_ip: std::net::IpAddr,
        deadline: Instant,
    ) -> Self {
        let starttls_offer = !client.conn.is_tls() && shared.server_tls.acceptor().is_some();
        let rules_generation = shared.config.generation();
        let cfg = shared.config.current();
        let rules = rules_for(&shared, &cfg, &domain);
        Session {
            shared,
            resume,
            client,
            upstream,
            domain,
            client_ip,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            deadline,
            stage: Stage::Authenticating { starttls_offer },
            sm: Sm::default(),
            quotas: cfg.limits.quotas.clone(),
            write_timeout: cfg.limits.write_timeout,
            rules,
            rules_generation,
            up_counters: FlowCounters::new(Flow::ClientToServer),
            down_counters: FlowCounters::new(Flow::ServerToClient),
            tally: Tally::default(),
        }
    }

    pub async fn run(mut self: Box<Self>) -> Ended {
        let stop = self.relay().await;
        self.report();
        // Only a connection that dropped without closing its stream can be resumed
        // (XEP-0198); a closed or refused stream's counters are not worth keeping.
        let resumable = matches!(stop, Stop::ClientGone | Stop::UpstreamGone);
        self.unregister(resumable);
        // Boxed: the closing path's future owns the session and the linger/flush
        // futures (~4 KiB); inline it would enlarge every session's task for its whole
        // life, though it only exists once relaying is over.
        Box::pin((*self).stop(stop)).await
    }

    async fn relay(&mut self) -> Stop {
        loop {
            // What other tasks queued goes first (a delegation answer is already here
            // when the stanza that was sent after it arrives from the server); the
            // queue is bounded, so reads cannot starve.
            while let Some(command) = self.stage.inbox_mut().and_then(Inbox::try_recv) {
                if let Err(stop) = self.command(command) {
                    return stop;
                }
            }
            if let Err(stop) = self.flush().await {
                return stop;
            }
            let wake = match &mut self.stage {
                Stage::Bound(bound) => {
                    let held = bound.held_until();
                    let Bound { inbox, .. } = &mut **bound;
                    tokio::select! {
                        r = read_some(&mut self.client.conn, &mut self.client.framer), if held.is_none() => Wake::Client(r),
                        r = read_some(&mut self.upstream.conn, &mut self.upstream.framer) => Wake::Upstream(r),
                        c = inbox.recv() => match c {
                            Some(command) => Wake::Command(command),
                            None => Wake::Ended,
                        },
                        _ = tokio::time::sleep_until(held.unwrap_or(self.deadline)), if held.is_some() => Wake::HoldOver,
                    }
                }
                _ => tokio::select! {
                    r = read_some(&mut self.client.conn, &mut self.client.framer) => Wake::Client(r),
                    r = read_some(&mut self.upstream.conn, &mut self.upstream.framer) => Wake::Upstream(r),
                    _ = tokio::time::sleep_until(self.deadline) => Wake::Deadline,
                },
            };
            let step = match wake {
                Wake::Client(Ok(0)) => Err(Stop::ClientGone),
                Wake::Client(Ok(_)) => self.drain_client(),
                Wake::Client(Err(e)) => match websocket::refused_message(&e) {
                    // A WebSocket message that is no XMPP: the client hears why.
                    Some(bad) => Err(Stop::ClientError(bad.condition(), bad.to_string())),
                    None => {
                        tracing::debug!(error = %e, "client read failed");
                        Err(Stop::ClientGone)
                    }
                },
                Wake::Upstream(Ok(0)) => Err(Stop::UpstreamGone),
                Wake::Upstream(Ok(_)) => self.drain_upstream(),
                Wake::Upstream(Err(e)) => {
                    tracing::debug!(error = %e, "upstream read failed");
                    Err(Stop::UpstreamGone)
                }
                Wake::Command(command) => self.command(command),
                Wake::Ended => Err(Stop::ClientError(
                    "policy-violation",
                    "the client is too far behind reading what it is owed".into(),
                )),
                Wake::HoldOver => Ok(()),
                Wake::Deadline => Err(Stop::ClientError(
                    "connection-timeout",
                    "not authenticated in time".into(),
                )),
            };
            self.report();
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Writes what the last burst produced. A peer that accepts nothing for
    /// `limits.write_timeout` is given up on; a session asked to end stops waiting.
    /// Nearly every flush completes at once: the timer and the end signal are only
    /// armed when a write has to wait.
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.upstream.out.is_empty() && self.client.out.is_empty() {
            return Ok(());
        }
        let timeout = self.write_timeout;
        let writes = async {
            if !self.upstream.out.is_empty() {
                self.upstream
                    .out
                    .flush(&mut self.upstream.conn)
                    .await
                    .map_err(|_| Stop::UpstreamGone)?;
            }
            if !self.client.out.is_empty() {
                self.client
                    .out
                    .flush(&mut self.client.conn)
                    .await
                    .map_err(|_| Stop::ClientGone)?;
            }
            Ok(())
        };
        let inbox = self.stage.bound().map(|bound| &bound.inbox);
        let ended = async {
            match inbox {
                Some(inbox) => inbox.ended().await,
                None => std::future::pending().await,
            }
        };
        // Biased: the writes are polled first, so a flush that completes at once never
        // touches the end signal.
        tokio::select! {
            biased;
            result = within(timeout, writes) => match result {
                Ok(result) => result,
                Err(_) => {
                    tracing::info!("a peer read nothing for {timeout:?}: closing");
                    Err(Stop::ClientGone)
                }
            },
            // What is not written yet stays queued: the stream error follows it.
            () = ended => Err(Stop::ClientError(
                "policy-violation",
                "the client is too far behind reading what it is owed".into(),
            )),
        }
    }

    // ---- client → server -------------------------------------------------------

    fn drain_client(&mut self) -> Result<(), Stop> {
        loop {
            match self.client.framer.next_frame() {
                Ok(Some(frame)) => self.client_frame(frame)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(client_framing(e)),
            }
        }
    }

    fn client_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        match frame {
            Frame::Whitespace(ws) => self.upstream.out.push(ws),
            Frame::Header(header) => {
                // A restart after SASL success: same domain, forwarded as received.
                let same = header
                    .to
                    .as_deref()
                    .and_then(|to| Jid::parse(to).ok())
                    .is_some_and(|to| to.as_str() == self.domain);
                if !same {
                    return Err(Stop::ClientError(
                        "host-unknown",
                        "a restarted stream must keep its domain".into(),
                    ));
                }
                self.upstream.out.push(header.raw);
            }
            Frame::Stanza(stanza) => self.client_element(stanza)?,
            Frame::End(end) => {
                self.upstream.out.push(end);
                return Err(Stop::ClientEnded);
            }
        }
        Ok(())
    }

    fn client_element(&mut self, stanza: Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::ClientError("not-well-formed", e.to_string()))?;
        let ns = head.ns();
        if is_sm_namespace(ns) {
            let bytes = wire::from_client(&mut self.sm, &self.resume, &stanza, head);
            self.upstream.out.push(bytes);
            return Ok(());
        }
        match (head.name(), ns) {
            ("starttls", Some(NS_TLS)) => Err(match self.stage.starttls_offer() {
                true => Stop::StartTls,
                false => Stop::ClientError(
                    "policy-violation",
                    "STARTTLS is not available on this stream".into(),
                ),
            }),
            ("iq" | "message" | "presence", Some(NS_CLIENT)) => self.client_stanza(&stanza, head),
            ("auth", Some(NS_SASL)) | ("authenticate", Some(NS_SASL2)) => {
                // An authentication attempt: bounded per real address and minute.
                let max = self.quotas.logins_per_ip_per_minute;
                if !self.shared.admission.login(self.client_ip, max) {
                    return Err(Stop::ClientError(
                        "policy-violation",
                        "too many login attempts from your address; wait a minute".into(),
                    ));
                }
                self.forward(stanza.bytes().clone());
                Ok(())
            }
            _ => {
                self.forward(stanza.bytes().clone());
                Ok(())
            }
        }
    }

    fn client_stanza(&mut self, stanza: &Stanza, head: &Head) -> Result<(), Stop> {
        self.refresh_rules();
        let verdict = match &self.stage {
            Stage::Bound(bound) => {
                let delegation = &self.shared.delegation;
                let jid = bound.jid.as_str();
                let view = client::ClientView {
                    jid,
                    domain: &self.domain,
                    rules: &self.rules,
                    state: &bound.route,
                    awaits_reply: &|id| delegation.awaits_reply(id, jid),
                    awaits_push_answer: &|head| self.shared.privilege.awaits_push_answer(head),
                };
                client::verdict(&view, head)
            }
            _ => {
                let is_bind = head.name() == "iq"
                    && head.type_().as_deref() == Some("set")
                    && head
                        .child()
                        .is_some_and(|c| c.name() == "bind" && c.ns() == Some(NS_BIND));
                if is_bind {
                    self.stage
                        .bind_requested(head.id().map(|id| id.into_owned()));
                }
                crate::router::verdict::ClientVerdict::Pass(crate::router::verdict::PassNote::None)
            }
        };
        self.apply_client(stanza, head, verdict)
    }

    /// Takes the rules of a newly published config (a reload applies from the next
    /// stanza on).
    fn refresh_rules(&mut self) {
        let generation = self.shared.config.generation();
        if generation != self.rules_generation {
            let cfg = self.shared.config.current();
            self.rules = rules_for(&self.shared, &cfg, &self.domain);
            self.rules_generation = generation;
        }
    }

    // ---- server → client -------------------------------------------------------

    fn drain_upstream(&mut self) -> Result<(), Stop> {
        loop {
            match self.upstream.framer.next_frame() {
                Ok(Some(frame)) => self.upstream_frame(frame)?,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(Stop::UpstreamError(
                        "internal-server-error",
                        format!("the upstream server sent bad XML: {e}"),
                    ))
                }
            }
        }
    }

    pub(super) fn upstream_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        match frame {
            Frame::Whitespace(ws) => self.client.out.push(ws),
            Frame::Header(header) => {
                self.client.close_tag = Some(match &header.stream_prefix {
                    Some(p) => format!("</{p}:stream>"),
                    None => "</stream>".to_owned(),
                });
                self.client.out.push(header.raw);
            }
            Frame::Stanza(stanza) => self.upstream_element(stanza)?,
            Frame::End(end) => {
                self.client.out.push(end);
                return Err(Stop::UpstreamEnded);
            }
        }
        Ok(())
    }

    fn upstream_element(&mut self, stanza: Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::UpstreamError("internal-server-error", format!("upstream: {e}")))?;
        let ns = head.ns();
        if is_sm_namespace(ns) {
            let (bytes, resumed) = wire::from_server(&mut self.sm, &stanza, head);
            self.client.out.push(bytes);
            if let Some(resumed) = resumed {
                self.bound(resumed.jid.clone());
                for stanza in resumed.to_client {
                    self.inject_down(stanza)?;
                }
                for stanza in resumed.to_server {
                    self.inject_up(stanza)?;
                }
                // Back after a break: what was queued meanwhile goes out now.
                self.logged_in()?;
            }
            return Ok(());
        }
        match (head.name(), ns) {
            ("features", Some(NS_STREAMS)) => {
                let features = self.features(&stanza);
                self.client.out.push(features);
            }
            ("success", Some(NS_SASL)) => {
                self.relay_down(stanza.bytes().clone());
                // RFC 6120 §6.4.6: both sides restart; the client's new header may
                // already be buffered, so the client framer keeps its bytes.
                self.client.framer.restart();
                self.upstream.framer.restart();
                self.stage.authenticated();
            }
            ("success", Some(NS_SASL2)) => {
                self.stage.authenticated();
                if let Some(jid) = descendant_text(stanza.bytes(), "authorization-identifier") {
                    if jid.contains('/') {
                        self.bound(jid);
                    }
                }
                if let Some((id, resume, max)) = wire::inline_enabled(stanza.bytes()) {
                    self.sm.enable_forwarded(Version::V3);
                    self.sm.enabled_relayed(id, resume, max);
                }
                self.relay_down(stanza.bytes().clone());
                // Bound inline (Bind2): the login is complete.
                if self.stage.bound().is_some() {
                    self.logged_in()?;
                }
            }
            ("error", Some(NS_STREAMS)) => {
                let condition = stream_error_condition(stanza.bytes())
                    .unwrap_or_else(|| "undefined-condition".into());
                metrics::stream_error(&condition, "server");
                self.relay_down(stanza.bytes().clone());
            }
            ("iq" | "message" | "presence", Some(NS_CLIENT)) => {
                return self.upstream_stanza(&stanza, head)
            }
            _ => self.relay_down(stanza.bytes().clone()),
        }
        Ok(())
    }

    fn upstream_stanza(&mut self, stanza: &Stanza, head: &Head) -> Result<(), Stop> {
        self.refresh_rules();
        let Stage::Bound(bound) = &self.stage else {
            let mut just_bound = false;
            if head.name() == "iq" && self.stage.is_bind_answer(head.id().as_deref()) {
                let jid = (head.type_().as_deref() == Some("result"))
                    .then(|| descendant_text(stanza.bytes(), "jid"))
                    .flatten();
                match jid {
                    Some(jid) => {
                        self.bound(jid);
                        just_bound = true;
                    }
                    None => self.stage.bind_failed(),
                }
            }
            self.sm.relayed_down();
            self.tally.down_stanzas += 1;
            self.relay_down(stanza.bytes().clone());
            if just_bound {
                // Right after the bind result, before any client stanza is relayed.
                self.logged_in()?;
            }
            return Ok(());
        };
        let view = server::ServerView {
            jid: &bound.jid,
            rules: &self.rules,
            state: &bound.route,
            disco: &self.shared.delegation.disco,
        };
        let verdict = server::verdict(&view, stanza, head);
        self.apply_server(stanza, head, verdict)
    }

    /// The server's features as this client must see them (see [`rewrite_features`]).
    fn features(&self, stanza: &Stanza) -> Bytes {
        let strip_caps = self.shared.delegation.current().delegates(&self.domain);
        rewrite_features(stanza, self.stage.starttls_offer(), strip_caps)
    }

    // ---- binding ---------------------------------------------------------------

    /// The stream is bound to `jid` (bind result, SASL2 authorization identifier, or
    /// a resumed stream): other tasks can reach it from now on.
    fn bound(&mut self, jid: String) {
        // The server prepared it; preparing again makes sure every registry key and
        // comparison uses the one form (an address the crate refuses, e.g. with a
        // character newer than Unicode 3.2, is kept as the server wrote it).
        let jid = FullJid::parse(&jid).map_or(jid, |full| full.as_str().to_owned());
        tracing::Span::current().record("jid", jid.as_str());
        tracing::debug!("bound");
        let (outlet, inbox) = inbox(self.quotas.max_session_queue);
        self.shared
            .hub
            .sessions
            .insert(&jid, SessionHandle::new(self.id, outlet));
        let route = match std::mem::replace(&mut self.stage, Stage::Binding { bind_id: None }) {
            // A resumed stream keeps what routing knew on this connection.
            Stage::Bound(old) => old.route,
            _ => RouteState::default(),
        };
        self.stage = Stage::Bound(Box::new(Bound {
            jid,
            inbox,
            route,
            hold: Hold::Open,
        }));
    }

    fn unregister(&mut self, resumable: bool) {
        let jid = match &mut self.stage {
            Stage::Bound(bound) => {
                bound.route.session_ended();
                Some(bound.jid.clone())
            }
            _ => None,
        };
        if let Some(jid) = &jid {
            if let crate::hub::Removed::Removed { presence } =
                self.shared.hub.sessions.remove(jid, self.id)
            {
                self.shared.privilege.session_ended(jid, presence.is_some());
            }
            // A session that may come back keeps what it was asked as a delegate.
            if !(resumable && self.sm.can_resume()) {
                self.shared.delegation.delegate_gone(jid);
            }
            self.shared.roster.session_ended(jid);
        }
        if resumable {
            self.sm.save(
                &self.resume,
                jid.as_deref(),
                self.quotas.max_resumable_sessions,
            );
        }
    }

    fn report(&mut self) {
        let tally = std::mem::take(&mut self.tally);
        tally.report(&self.up_counters, &self.down_counters);
    }
}

/// The routing rules of `cfg` for a session on `domain`.
fn rules_for(shared: &Shared, cfg: &Arc<Config>, domain: &str) -> Rules {
    Rules {
        delegations: shared.delegation.table(cfg),
        privileges: shared.privilege.table(cfg),
        web_roster: cfg
            .host(domain)
            .is_some_and(|host| host.roster_admin.is_some()),
    }
}

fn client_framing(error: FrameError) -> Stop {
    Stop::ClientError(error.condition(), error.to_string())
}
