//! One client session in relay mode: both streams are open and every element read on
//! one side is passed to the other as the received bytes, except the few the proxy
//! must look at (stream features, SASL outcomes, resource binding, Stream Management)
//! and the stanzas other tasks ask it to inject. Writes are batched per read burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::acting::Acting;
use super::client::ClientSide;
use super::features::rewrite_features;
use super::probes::Probes;
use super::stream_mgmt::{is_sm_namespace, ResumeStore, StreamManagement};
use super::upstream::UpstreamSide;
use crate::hub::{Command, Removed, SessionHandle};
use crate::metrics::{self, Flow, FlowCounters};
use crate::net::read_some;
use crate::net::CLOSE_GRACE;
use crate::router::delegation::disco::rewrite_result;
use crate::router::delegation::Decision;
use crate::router::privilege::presence::is_broadcast;

use crate::shared::Shared;
use crate::xml::children::{descendant_text, stanza_error_condition, stream_error_condition};
use crate::xml::ns::{NS_BIND, NS_CLIENT, NS_ROSTER, NS_SASL, NS_SASL2, NS_STREAMS, NS_TLS};
use crate::xml::writer::splice;
use crate::xml::{Frame, FrameError, Head, Stanza};

/// Injection requests a session may have queued before senders are told it is behind.
const COMMAND_QUEUE: usize = 256;

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
enum Stop {
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
    shared: Arc<Shared>,
    resume: Arc<ResumeStore>,
    client: ClientSide,
    upstream: UpstreamSide,
    domain: String,
    id: u64,
    deadline: Instant,
    /// Bound full JID, once the server said so.
    jid: Option<String>,
    /// `id` of the client's bind request, to recognise the result.
    bind_id: Option<String>,
    /// A SASL `<success/>` was relayed: both streams restart.
    plaintext_starttls_offer: bool,
    sm: StreamManagement,
    /// Disco queries the legacy server answers first (XEP-0355 `:*` pseudo-namespaces).
    probes: Probes,
    /// The proxy acting as this session's user (XEP-0356).
    acting: Acting,
    /// Whether the client sent its first broadcast presence (web-app rosters then
    /// show it its contacts' presence).
    presence_sent: bool,
    commands: Option<mpsc::Receiver<Box<Command>>>,
    up_counters: FlowCounters,
    down_counters: FlowCounters,
    burst: Burst,
}

/// Stanza and byte counts of one read burst, reported to metrics in one go.
#[derive(Default)]
struct Burst {
    up_stanzas: u64,
    up_bytes: u64,
    down_stanzas: u64,
    down_bytes: u64,
}

enum Wake {
    Client(std::io::Result<usize>),
    Upstream(std::io::Result<usize>),
    Command(Option<Box<Command>>),
    Deadline,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        resume: Arc<ResumeStore>,
        client: ClientSide,
        upstream: UpstreamSide,
        domain: String,
        deadline: Instant,
    ) -> Self {
        let plaintext_starttls_offer =
            !client.conn.is_tls() && shared.server_tls.acceptor().is_some();
        Session {
            shared,
            resume,
            client,
            upstream,
            domain,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            deadline,
            jid: None,
            bind_id: None,
            plaintext_starttls_offer,
            sm: StreamManagement::default(),
            probes: Probes::default(),
            acting: Acting::default(),
            presence_sent: false,
            commands: None,
            up_counters: FlowCounters::new(Flow::ClientToServer),
            down_counters: FlowCounters::new(Flow::ServerToClient),
            burst: Burst::default(),
        }
    }

    pub async fn run(mut self: Box<Self>) -> Ended {
        let stop = self.relay().await;
        self.report_burst();
        self.unregister();
        // Boxed: the closing path's future owns the session and the linger/flush
        // futures (~4 KiB); inline it would enlarge every session's task for its whole
        // life, though it only exists once relaying is over.
        Box::pin((*self).stop(stop)).await
    }

    async fn relay(&mut self) -> Stop {
        loop {
            if let Err(stop) = self.flush().await {
                return stop;
            }
            let authenticated = self.jid.is_some();
            let wake = tokio::select! {
                r = read_some(&mut self.client.conn, &mut self.client.framer) => Wake::Client(r),
                r = read_some(&mut self.upstream.conn, &mut self.upstream.framer) => Wake::Upstream(r),
                c = recv(&mut self.commands) => Wake::Command(c),
                _ = tokio::time::sleep_until(self.deadline), if !authenticated => Wake::Deadline,
            };
            let step = match wake {
                Wake::Client(Ok(0)) => Err(Stop::ClientGone),
                Wake::Client(Ok(_)) => self.drain_client(),
                Wake::Client(Err(e)) => {
                    tracing::debug!(error = %e, "client read failed");
                    Err(Stop::ClientGone)
                }
                Wake::Upstream(Ok(0)) => Err(Stop::UpstreamGone),
                Wake::Upstream(Ok(_)) => self.drain_upstream(),
                Wake::Upstream(Err(e)) => {
                    tracing::debug!(error = %e, "upstream read failed");
                    Err(Stop::UpstreamGone)
                }
                Wake::Command(Some(command)) => {
                    self.command(*command);
                    Ok(())
                }
                Wake::Command(None) => {
                    self.commands = None;
                    Ok(())
                }
                Wake::Deadline => Err(Stop::ClientError(
                    "connection-timeout",
                    "not authenticated in time".into(),
                )),
            };
            self.report_burst();
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Stop> {
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
                    .is_some_and(|to| to.eq_ignore_ascii_case(&self.domain));
                if !same {
                    return Err(Stop::ClientError(
                        "host-unknown",
                        "a restarted stream must keep its domain".into(),
                    ));
                }
                self.upstream.out.push(header.raw);
            }
            Frame::Stanza(stanza) => self.client_stanza(stanza)?,
            Frame::End(end) => {
                self.upstream.out.push(end);
                return Err(Stop::ClientEnded);
            }
        }
        Ok(())
    }

    fn client_stanza(&mut self, stanza: Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::ClientError("not-well-formed", e.to_string()))?;
        let ns = head.ns();
        if is_sm_namespace(ns) {
            return self.client_sm(&stanza);
        }
        match (head.name(), ns) {
            ("starttls", Some(NS_TLS)) => {
                if self.plaintext_starttls_offer && self.jid.is_none() {
                    return Err(Stop::StartTls);
                }
                return Err(Stop::ClientError(
                    "policy-violation",
                    "STARTTLS is not available on this stream".into(),
                ));
            }
            ("iq", Some(NS_CLIENT)) => self.client_iq(stanza),
            ("presence", Some(NS_CLIENT)) => self.client_presence(stanza),
            ("message", Some(NS_CLIENT)) => self.forward_counted(stanza),
            _ => self.forward(stanza),
        }
        Ok(())
    }

    /// Client IQs: resource binding is watched, delegated namespaces are taken over.
    fn client_iq(&mut self, stanza: Stanza) {
        let Ok(head) = stanza.head() else {
            return self.forward_counted(stanza);
        };
        let Some(jid) = self.jid.clone() else {
            let is_bind = head.type_().as_deref() == Some("set")
                && head
                    .child()
                    .is_some_and(|c| c.name() == "bind" && c.ns() == Some(NS_BIND));
            if is_bind {
                self.bind_id = head.id().map(|id| id.into_owned());
            }
            return self.forward_counted(stanza);
        };
        self.acting.client_iq(head);
        if self.web_roster_iq(head, &jid) {
            return;
        }
        let shared = self.shared.clone();
        match shared.delegation.decide(head, &self.domain) {
            Decision::Pass => self.forward_counted(stanza),
            Decision::Delegate(rule) => {
                self.consume_client_stanza();
                if let Some(refusal) = shared.delegation.delegate(&rule, &stanza, head, &jid) {
                    self.inject_to_client(refusal);
                }
            }
            Decision::Probe(rule) => {
                self.probes.remember(&stanza, rule);
                self.forward_counted(stanza);
            }
        }
    }

    /// Client presence: copied to privileged entities; on web-app rosters,
    /// subscriptions are dropped and broadcasts also go to the contacts.
    fn client_presence(&mut self, stanza: Stanza) {
        let (Ok(head), Some(jid)) = (stanza.head(), self.jid.as_deref()) else {
            return self.forward_counted(stanza);
        };
        let web_roster = self.shared.roster.owns(&self.domain);
        if web_roster && crate::roster::is_subscription(head.type_().as_deref()) {
            return self.consume_client_stanza();
        }
        if head.to().is_none() && is_broadcast(head) {
            let available = head.type_().is_none();
            self.shared
                .hub
                .sessions
                .set_presence(jid, available.then(|| stanza.bytes().clone()));
            self.shared.privilege.user_presence(jid, &stanza, head);
            if web_roster {
                let first = !self.presence_sent;
                self.presence_sent = true;
                let task = crate::roster::presence::fan_out(
                    self.shared.roster.clone(),
                    jid.to_owned(),
                    stanza.bytes().clone(),
                    first,
                );
                tokio::spawn(task);
            }
        }
        self.forward_counted(stanza)
    }

    /// Roster IQs for the user's own roster when the web app owns it: answered by
    /// the proxy (checklist 70–71). Returns whether the IQ was taken.
    fn web_roster_iq(&mut self, head: &Head, jid: &str) -> bool {
        let own = head
            .to()
            .is_none_or(|to| to.eq_ignore_ascii_case(jid.split('/').next().unwrap_or(jid)));
        let roster_query = head
            .child()
            .is_some_and(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER));
        if !own || !roster_query || !self.shared.roster.owns(&self.domain) {
            return false;
        }
        let id = head.id().map(|i| i.into_owned());
        self.consume_client_stanza();
        match head.type_().as_deref() {
            Some("get") => {
                let ver = head
                    .child()
                    .and_then(|c| c.attr("ver"))
                    .map(|v| v.into_owned());
                let task = crate::roster::serve_client_get(
                    self.shared.roster.clone(),
                    jid.to_owned(),
                    id.unwrap_or_default(),
                    ver,
                );
                tokio::spawn(task);
            }
            Some("set") => {
                self.inject_to_client(crate::roster::client_set_refusal(jid, id.as_deref()))
            }
            _ => {}
        }
        true
    }

    /// A client stanza (iq/message/presence) goes to the server.
    fn forward_counted(&mut self, stanza: Stanza) {
        if let Some(up) = self.sm.counters.up.as_mut() {
            up.relayed();
        }
        self.burst.up_stanzas += 1;
        self.forward(stanza);
    }

    fn forward(&mut self, stanza: Stanza) {
        let bytes = stanza.into_bytes();
        self.burst.up_bytes += bytes.len() as u64;
        self.upstream.out.push(bytes);
    }

    /// A client stanza the proxy handles itself: it never reaches the server, but the
    /// client counts it as sent, so the server's acknowledgements are raised.
    pub fn consume_client_stanza(&mut self) {
        if let Some(up) = self.sm.counters.up.as_mut() {
            up.consumed();
        }
    }

    /// A server stanza the proxy handles itself: the client never sees it.
    pub fn consume_server_stanza(&mut self) {
        if let Some(down) = self.sm.counters.down.as_mut() {
            down.consumed();
        }
    }

    /// A stanza the proxy made for the client, counted as such for SM.
    pub fn inject_to_client(&mut self, stanza: Bytes) {
        if let Some(down) = self.sm.counters.down.as_mut() {
            down.injected(stanza.clone());
        }
        self.client.out.push(stanza);
    }

    /// A stanza the proxy made for the server on this user's stream.
    pub fn inject_to_server(&mut self, stanza: Bytes) {
        if let Some(up) = self.sm.counters.up.as_mut() {
            up.injected(stanza.clone());
        }
        self.upstream.out.push(stanza);
    }

    fn client_sm(&mut self, stanza: &Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::ClientError("not-well-formed", e.to_string()))?;
        let bytes = stanza.bytes().clone();
        match head.name() {
            "enable" => {
                self.sm.enable_forwarded();
                self.upstream.out.push(bytes);
            }
            "a" => {
                let rewritten = match self.sm.counters.down.as_mut() {
                    Some(down) => rewrite_h(stanza, |h| {
                        down.ack(h).unwrap_or_else(|too_high| {
                            tracing::info!(%too_high, "client acknowledged too many stanzas");
                            too_high.translated
                        })
                    }),
                    None => bytes,
                };
                self.upstream.out.push(rewritten);
            }
            "resume" => {
                let previd = head
                    .attr("previd")
                    .map(|p| p.into_owned())
                    .unwrap_or_default();
                let resume = self.resume.clone();
                let sm = &mut self.sm;
                let rewritten = rewrite_h(stanza, |h| {
                    sm.resume_requested(&resume, &previd, h).unwrap_or(h)
                });
                self.upstream.out.push(rewritten);
            }
            _ => self.upstream.out.push(bytes),
        }
        Ok(())
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

    fn upstream_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        match frame {
            Frame::Whitespace(ws) => self.client.out.push(ws),
            Frame::Header(header) => {
                let prefix = header.stream_prefix.clone();
                self.client.close_tag = Some(match prefix {
                    Some(p) => format!("</{p}:stream>"),
                    None => "</stream>".to_owned(),
                });
                self.client.out.push(header.raw);
            }
            Frame::Stanza(stanza) => self.upstream_stanza(stanza)?,
            Frame::End(end) => {
                self.client.out.push(end);
                return Err(Stop::UpstreamEnded);
            }
        }
        Ok(())
    }

    fn upstream_stanza(&mut self, stanza: Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::UpstreamError("internal-server-error", format!("upstream: {e}")))?;
        let ns = head.ns();
        if is_sm_namespace(ns) {
            return self.upstream_sm(&stanza);
        }
        match (head.name(), ns) {
            ("features", Some(NS_STREAMS)) => {
                let features = self.features(&stanza);
                self.client.out.push(features);
            }
            ("success", Some(NS_SASL)) => {
                self.relay_down(stanza);
                // RFC 6120 §6.4.6: both sides restart; the client's new header may
                // already be buffered, so the client framer keeps its bytes.
                self.client.framer.restart();
                self.upstream.framer.restart();
                self.plaintext_starttls_offer = false;
            }
            ("success", Some(NS_SASL2)) => {
                self.plaintext_starttls_offer = false;
                if let Some(jid) = descendant_text(stanza.bytes(), "authorization-identifier") {
                    if jid.contains('/') {
                        self.bound(jid);
                    }
                }
                if let Some(enabled) = find_child_enabled(stanza.bytes()) {
                    self.sm.enable_forwarded();
                    self.sm.enabled_relayed(enabled.0, enabled.1, enabled.2);
                }
                self.relay_down(stanza);
            }
            ("error", Some(NS_STREAMS)) => {
                let condition = stream_error_condition(stanza.bytes())
                    .unwrap_or_else(|| "undefined-condition".into());
                metrics::stream_error(&condition, "server");
                self.relay_down(stanza);
            }
            ("iq", Some(NS_CLIENT)) if self.server_iq_taken(&stanza, head) => {}
            ("presence", Some(NS_CLIENT))
                if self.acting.swallow_subscribed(head)
                    || (crate::roster::is_subscription(head.type_().as_deref())
                        && self.shared.roster.owns(&self.domain)) =>
            {
                self.consume_server_stanza();
            }
            ("iq" | "message" | "presence", Some(NS_CLIENT)) => {
                self.observe_for_privileges(&stanza, head);
                if head.name() == "iq"
                    && self.bind_id.is_some()
                    && head.id() == self.bind_id.as_deref().map(Into::into)
                {
                    self.bind_id = None;
                    if head.type_().as_deref() == Some("result") {
                        if let Some(jid) = descendant_text(stanza.bytes(), "jid") {
                            self.bound(jid);
                        }
                    }
                }
                if let Some(down) = self.sm.counters.down.as_mut() {
                    down.relayed();
                }
                self.burst.down_stanzas += 1;
                match self.disco_rewrite(&stanza, head) {
                    Some(rewritten) => {
                        self.burst.down_bytes += rewritten.len() as u64;
                        self.client.out.push(rewritten);
                    }
                    None => self.relay_down(stanza),
                }
            }
            _ => self.relay_down(stanza),
        }
        Ok(())
    }

    /// A server IQ answering a probe: `item-not-found` means the legacy server does not
    /// know the node, so the client's query goes to the delegate instead and this
    /// error is consumed (checklist 35–36).
    fn server_iq_taken(&mut self, stanza: &Stanza, head: &Head) -> bool {
        self.acting.server_iq(head);
        if self.acting.take_answer(head, stanza.bytes()) {
            self.consume_server_stanza();
            return true;
        }
        if self.probes.is_empty() {
            return false;
        }
        let Some(id) = head.id() else { return false };
        let Some(probe) = self.probes.answered(&id, head) else {
            return false;
        };
        let unknown_node = head.type_().as_deref() == Some("error")
            && stanza_error_condition(stanza.bytes()).as_deref() == Some("item-not-found");
        let (Some(jid), true) = (self.jid.clone(), unknown_node) else {
            return false;
        };
        self.consume_server_stanza();
        let (original, rule) = probe;
        let Ok(original_head) = original.head() else {
            return true;
        };
        let shared = self.shared.clone();
        if let Some(refusal) = shared
            .delegation
            .delegate(&rule, &original, original_head, &jid)
        {
            self.inject_to_client(refusal);
        }
        true
    }

    /// disco#info of a served domain or account under delegation (checklist 31–34).
    fn disco_rewrite(&self, stanza: &Stanza, head: &Head) -> Option<Bytes> {
        if head.name() != "iq" || head.type_().as_deref() != Some("result") {
            return None;
        }
        let table = self.shared.delegation.table(&self.shared.config.current());
        if table.is_empty() {
            return None;
        }
        rewrite_result(stanza, head, &table, &self.shared.delegation.disco)
    }

    fn relay_down(&mut self, stanza: Stanza) {
        let bytes = stanza.into_bytes();
        self.burst.down_bytes += bytes.len() as u64;
        self.client.out.push(bytes);
    }

    fn upstream_sm(&mut self, stanza: &Stanza) -> Result<(), Stop> {
        let head = stanza
            .head()
            .map_err(|e| Stop::UpstreamError("internal-server-error", format!("upstream: {e}")))?;
        let bytes = stanza.bytes().clone();
        match head.name() {
            "enabled" => {
                let id = head.attr("id").map(|v| v.into_owned());
                let resume = matches!(head.attr("resume").as_deref(), Some("true" | "1"));
                let max = head.attr("max").and_then(|m| m.parse().ok());
                self.sm.enabled_relayed(id, resume, max);
                self.client.out.push(bytes);
            }
            "failed" => {
                self.sm.failed();
                self.client.out.push(bytes);
            }
            "a" => {
                let rewritten = match self.sm.counters.up.as_mut() {
                    Some(up) => rewrite_h(stanza, |h| {
                        up.ack(h).unwrap_or_else(|too_high| {
                            tracing::warn!(%too_high, "server acknowledged too many stanzas");
                            too_high.translated
                        })
                    }),
                    None => bytes,
                };
                self.client.out.push(rewritten);
            }
            "resumed" => {
                let mut outcome = None;
                let sm = &mut self.sm;
                let rewritten = rewrite_h(stanza, |h| match sm.resumed(h) {
                    Some((client_h, resumed)) => {
                        outcome = Some(resumed);
                        client_h
                    }
                    None => h,
                });
                self.client.out.push(rewritten);
                if let Some(resumed) = outcome {
                    self.bound(resumed.jid);
                    for stanza in resumed.to_client {
                        self.inject_to_client(stanza);
                    }
                    for stanza in resumed.to_server {
                        self.inject_to_server(stanza);
                    }
                }
            }
            _ => self.client.out.push(bytes),
        }
        Ok(())
    }

    /// The server's features as this client must see them (see [`rewrite_features`]).
    fn features(&self, stanza: &Stanza) -> Bytes {
        let strip_caps = self
            .shared
            .delegation
            .table(&self.shared.config.current())
            .delegates(&self.domain);
        rewrite_features(stanza, self.plaintext_starttls_offer, strip_caps)
    }

    // ---- other tasks ----------------------------------------------------------

    fn command(&mut self, command: Command) {
        match command {
            Command::ToClient(stanza) => self.inject_to_client(stanza),
            Command::ToServer(stanza) => self.inject_to_server(stanza),
            Command::Request { stanza, id, reply } => {
                self.acting.await_answer(id, reply);
                self.inject_to_server(stanza);
            }
            Command::SendAs { stanza, carbon } => {
                self.inject_to_server(stanza);
                if self.acting.carbons_enabled() {
                    self.inject_to_client(carbon);
                }
            }
            Command::ExpectSubscribed(contact) => self.acting.expect_subscribed(contact),
        }
    }

    /// Server stanzas privileged entities may be entitled to copies of: presences the
    /// user receives and roster pushes (XEP-0356 §4.4, §7).
    fn observe_for_privileges(&self, stanza: &Stanza, head: &Head) {
        let Some(jid) = &self.jid else { return };
        let privilege = &self.shared.privilege;
        match head.name() {
            "presence" if is_broadcast(head) => privilege.contact_presence(jid, stanza, head),
            "iq" if head.type_().as_deref() == Some("set")
                && head
                    .child()
                    .is_some_and(|c| c.name() == "query" && c.ns() == Some(NS_ROSTER)) =>
            {
                privilege.roster_push(jid, stanza, head)
            }
            _ => {}
        }
    }

    fn bound(&mut self, jid: String) {
        tracing::Span::current().record("jid", jid.as_str());
        tracing::debug!("bound");
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.shared
            .hub
            .sessions
            .insert(&jid, SessionHandle::new(self.id, tx));
        self.commands = Some(rx);
        self.jid = Some(jid);
    }

    fn unregister(&mut self) {
        if let Some(jid) = &self.jid {
            if let Removed::Removed { presence } = self.shared.hub.sessions.remove(jid, self.id) {
                self.shared.privilege.session_ended(jid, presence.is_some());
            }
            self.shared.roster.session_ended(jid);
        }
        self.sm.save(&self.resume, self.jid.as_deref());
    }

    fn report_burst(&mut self) {
        let burst = std::mem::take(&mut self.burst);
        if burst.up_stanzas > 0 {
            self.up_counters.stanzas.increment(burst.up_stanzas);
        }
        if burst.up_bytes > 0 {
            self.up_counters.bytes.increment(burst.up_bytes);
        }
        if burst.down_stanzas > 0 {
            self.down_counters.stanzas.increment(burst.down_stanzas);
        }
        if burst.down_bytes > 0 {
            self.down_counters.bytes.increment(burst.down_bytes);
        }
    }

    // ---- ending ----------------------------------------------------------------

    async fn stop(mut self, stop: Stop) -> Ended {
        let upstream_close = Bytes::from_static(b"</stream:stream>");
        match stop {
            Stop::StartTls => {
                self.upstream.out.push(upstream_close);
                let _ = self.flush().await;
                let _ = tokio::time::timeout(CLOSE_GRACE, self.upstream.conn_shutdown()).await;
                self.client.out.push(Bytes::from_static(
                    b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                ));
                return match self.client.out.flush(&mut self.client.conn).await {
                    Ok(()) => Ended::StartTls(Box::new(self.client)),
                    Err(_) => Ended::Closed,
                };
            }
            Stop::ClientEnded => {
                let _ = self.flush().await;
                let _ = tokio::time::timeout(CLOSE_GRACE, self.linger_upstream()).await;
            }
            Stop::UpstreamEnded => {
                let _ = self.flush().await;
                let _ = tokio::time::timeout(CLOSE_GRACE, self.linger_client()).await;
            }
            // No close tag upstream: the client did not send one either, and a clean
            // close would end a session the client may still resume (XEP-0198).
            Stop::ClientGone => {}
            Stop::UpstreamGone => {
                self.client.push_stream_error(
                    Some(&self.domain),
                    "remote-connection-failed",
                    Some("lost the connection to the upstream server"),
                );
            }
            Stop::ClientError(condition, text) => {
                tracing::info!(condition, %text, "closing client stream");
                self.client
                    .push_stream_error(Some(&self.domain), condition, Some(&text));
                self.upstream.out.push(upstream_close);
            }
            Stop::UpstreamError(condition, text) => {
                tracing::warn!(condition, %text, "closing session: upstream misbehaved");
                self.client
                    .push_stream_error(Some(&self.domain), condition, Some(&text));
                self.upstream.out.push(upstream_close);
            }
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, self.close_both()).await;
        Ended::Closed
    }

    /// After the client's `</stream:stream>`: keep relaying the server's last words
    /// until it closes too.
    async fn linger_upstream(&mut self) {
        loop {
            match read_some(&mut self.upstream.conn, &mut self.upstream.framer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            loop {
                match self.upstream.framer.next_frame() {
                    Ok(Some(Frame::End(end))) => {
                        self.client.out.push(end);
                        let _ = self.client.out.flush(&mut self.client.conn).await;
                        return;
                    }
                    Ok(Some(Frame::Stanza(s))) => self.client.out.push(s.into_bytes()),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if self.client.out.flush(&mut self.client.conn).await.is_err() {
                return;
            }
        }
    }

    /// After the server's `</stream:stream>`: wait for the client's, discarding the rest.
    async fn linger_client(&mut self) {
        loop {
            match read_some(&mut self.client.conn, &mut self.client.framer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            loop {
                match self.client.framer.next_frame() {
                    Ok(Some(Frame::End(_))) | Err(_) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
        }
    }

    async fn close_both(&mut self) {
        let _ = self.flush().await;
        let _ = self.upstream.conn_shutdown().await;
        self.client.finish().await;
    }
}

impl UpstreamSide {
    async fn conn_shutdown(&mut self) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::shutdown(&mut self.conn).await
    }
}

async fn recv(commands: &mut Option<mpsc::Receiver<Box<Command>>>) -> Option<Box<Command>> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn client_framing(error: FrameError) -> Stop {
    Stop::ClientError(error.condition(), error.to_string())
}

/// Rewrites the `h` attribute of an SM element through `map`, keeping other bytes.
fn rewrite_h(stanza: &Stanza, map: impl FnOnce(u32) -> u32) -> Bytes {
    let bytes = stanza.bytes();
    let Ok(head) = stanza.head() else {
        return bytes.clone();
    };
    let (Some(range), Some(value)) = (head.attr_range("h"), head.attr("h")) else {
        return bytes.clone();
    };
    let Ok(h) = value.trim().parse::<u32>() else {
        return bytes.clone();
    };
    let mapped = map(h);
    if mapped == h {
        return bytes.clone();
    }
    splice(bytes, range, mapped.to_string().as_bytes())
}

/// `<enabled/>` inside a SASL2 `<success/>` (XEP-0198 inline with Bind2):
/// `(id, resume, max)`.
fn find_child_enabled(xml: &[u8]) -> Option<(Option<String>, bool, Option<u64>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.local_name().as_ref() == b"enabled" =>
            {
                let attr = |name: &[u8]| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                let resume = matches!(attr(b"resume").as_deref(), Some("true" | "1"));
                let max = attr(b"max").and_then(|m| m.parse().ok());
                return Some((attr(b"id"), resume, max));
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}
