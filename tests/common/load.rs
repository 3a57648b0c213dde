//! Load drivers for the fault tests: a client split into a writer and a reader task
//! that records everything it receives (so a test keeps sending while it awaits
//! answers), and a raw XEP-0114 component that answers delegated IQs until it is told
//! to hang up, plus a component connect that retries while the proxy still holds the
//! name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use stanzagate::net::{next_frame, Conn};
use stanzagate::xml::children::{children, root_attr, stream_error_condition};
use stanzagate::xml::{Frame, Framer, Stanza};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Raw, DOMAIN};

/// What a client received, in order.
#[derive(Clone, Debug)]
pub enum Event {
    Stanza(Stanza),
    /// `<stream:error>`, with its condition.
    StreamError(String),
    /// The stream close tag.
    Closed,
    /// The connection ended (EOF, a read or framing error): always the last event.
    Ended(String),
}

/// Everything one client received so far, shared with any task that awaits it.
#[derive(Clone)]
pub struct Received {
    events: Arc<Mutex<Vec<Event>>>,
    grew: watch::Receiver<usize>,
}

impl Received {
    pub fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// Waits, at most `limit`, until `check` finds what it wants in the events so
    /// far. `None` when the time is up, or the connection ended without it.
    pub async fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut check: impl FnMut(&[Event]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            self.grew.borrow_and_update();
            if let Some(found) = check(&self.lock()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, self.grew.changed()).await {
                Ok(Ok(())) => {}
                // The reader is done: nothing more will come.
                Ok(Err(_)) => return check(&self.lock()),
                Err(_) => return None,
            }
        }
    }

    /// How the stream ended (stream error, close tag, connection end), if it did.
    pub fn end(&self) -> Option<Event> {
        self.lock()
            .iter()
            .find(|e| !matches!(e, Event::Stanza(_)))
            .cloned()
    }
}

/// A logged-in client whose reading runs in its own task.
pub struct Client {
    pub jid: String,
    writer: WriteHalf<Conn>,
    pub received: Received,
    reader: JoinHandle<()>,
}

impl Client {
    pub async fn login(port: u16, user: &str) -> Client {
        Client::from_raw(Raw::login(port, user).await)
    }

    pub fn from_raw(raw: Raw) -> Client {
        let jid = raw.jid.clone().expect("a bound session");
        let (conn, framer) = raw.into_parts();
        let (reader, writer) = tokio::io::split(conn);
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, grew) = watch::channel(0usize);
        let reader = tokio::spawn(read_events(reader, framer, events.clone(), tx));
        Client {
            jid,
            writer,
            received: Received { events, grew },
            reader,
        }
    }

    /// Writes one stanza; fails once the proxy has closed the connection.
    pub async fn send(&mut self, xml: &str) -> std::io::Result<()> {
        self.writer.write_all(xml.as_bytes()).await?;
        self.writer.flush().await
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_events(
    mut reader: ReadHalf<Conn>,
    mut framer: Framer,
    events: Arc<Mutex<Vec<Event>>>,
    grew: watch::Sender<usize>,
) {
    let push = |batch: &mut Vec<Event>| {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(batch);
        grew.send_modify(|total| *total += n);
    };
    let mut batch = Vec::new();
    let end = 'read: loop {
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    // At the top level after login, only a stream error is named so.
                    if stanza.head().is_ok_and(|h| h.name() == "error") {
                        let condition = stream_error_condition(stanza.bytes()).unwrap_or_default();
                        batch.push(Event::StreamError(condition));
                    } else {
                        batch.push(Event::Stanza(stanza));
                    }
                }
                Ok(Some(Frame::End(_))) => batch.push(Event::Closed),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => break 'read format!("framing error: {e}"),
            }
        }
        push(&mut batch);
        let buf = framer.buffer_mut();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 << 10);
        }
        match reader.read_buf(buf).await {
            Ok(0) => break "eof".to_owned(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    batch.push(Event::Ended(end));
    push(&mut batch);
}

/// The IQs among `events`, by id.
pub fn iqs_by_id(events: &[Event]) -> HashMap<String, Vec<Stanza>> {
    let mut by_id: HashMap<String, Vec<Stanza>> = HashMap::new();
    for event in events {
        if let Event::Stanza(stanza) = event {
            let head = stanza.head().expect("head");
            if head.name() == "iq" {
                let id = head.id().unwrap_or_default().into_owned();
                by_id.entry(id).or_default().push(stanza.clone());
            }
        }
    }
    by_id
}

/// How a component ends its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangUp {
    /// close(2): FIN, unread data discarded.
    Close,
    /// SO_LINGER 0 then close(2): RST.
    Reset,
}

/// What a serving component did.
#[derive(Debug, Default, Clone)]
pub struct Served {
    /// Delegated IQs received.
    pub received: usize,
    /// Delegated IQs answered.
    pub answered: usize,
}

/// A raw component answering every delegated IQ (XEP-0355) with a result whose
/// payload is `<handled-by xmlns='NS'>TAG</handled-by>` inside the request's child,
/// and disco#info queries with an empty result. With `hang_up`, it drops its
/// connection the moment the `n`th delegated IQ arrives, leaving that one (and
/// anything still unread) unanswered.
pub struct Delegate {
    pub answered: watch::Receiver<usize>,
    /// What it has received and answered so far.
    pub progress: Arc<Mutex<Served>>,
    pub task: JoinHandle<Served>,
}

impl Delegate {
    pub fn serve(raw: Raw, name: &str, tag: &str, hang_up: Option<(usize, HangUp)>) -> Delegate {
        let (tx, answered) = watch::channel(0usize);
        let progress = Arc::new(Mutex::new(Served::default()));
        let task = tokio::spawn(serve(
            raw,
            name.to_owned(),
            tag.to_owned(),
            hang_up,
            tx,
            progress.clone(),
        ));
        Delegate {
            answered,
            progress,
            task,
        }
    }

    /// Waits (bounded) until it has answered at least `n`.
    pub async fn answered_at_least(&mut self, n: usize, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.answered.wait_for(|a| *a >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

async fn serve(
    raw: Raw,
    name: String,
    tag: String,
    hang_up: Option<(usize, HangUp)>,
    progress: watch::Sender<usize>,
    shared: Arc<Mutex<Served>>,
) -> Served {
    let (mut conn, mut framer) = raw.into_parts();
    let mut served = Served::default();
    loop {
        let stanza = match next_frame(&mut conn, &mut framer).await {
            Ok(Frame::Stanza(stanza)) => stanza,
            Ok(Frame::Whitespace(_)) | Ok(Frame::Header(_)) => continue,
            Ok(Frame::End(_)) | Err(_) => return served,
        };
        let head = stanza.head().expect("head");
        if head.name() != "iq" || !matches!(head.type_().as_deref(), Some("get" | "set")) {
            continue;
        }
        let id = head.id().unwrap_or_default().into_owned();
        let text = String::from_utf8_lossy(stanza.bytes()).into_owned();
        let reply = if text.contains("<delegation") && text.contains("<forwarded") {
            served.received += 1;
            *shared.lock().unwrap_or_else(PoisonError::into_inner) = served.clone();
            if let Some((n, how)) = hang_up {
                if served.received == n {
                    if how == HangUp::Reset {
                        reset_on_close(&conn);
                    }
                    drop(conn);
                    return served;
                }
            }
            delegated_reply(&text, &id, &name, &tag)
        } else if text.contains(DISCO_INFO) {
            let node = children(stanza.bytes(), None)
                .ok()
                .and_then(|c| c.into_iter().next())
                .and_then(|q| root_attr(&stanza.bytes()[q.range], "node"))
                .map(|n| format!(" node='{n}'"))
                .unwrap_or_default();
            let from = head.from().unwrap_or_default();
            format!(
                "<iq type='result' id='{id}' from='{name}' to='{from}'><query xmlns='{DISCO_INFO}'{node}/></iq>"
            )
        } else {
            continue;
        };
        if conn.write_all(reply.as_bytes()).await.is_err() || conn.flush().await.is_err() {
            return served;
        }
        if text.contains("<delegation") {
            served.answered += 1;
            *shared.lock().unwrap_or_else(PoisonError::into_inner) = served.clone();
            progress.send_replace(served.answered);
        }
    }
}

/// The component's answer to one delegation wrapper: the inner result to the
/// requester, with the request's id and child.
fn delegated_reply(wrapper: &str, wrapper_id: &str, name: &str, tag: &str) -> String {
    let start = wrapper
        .find("<iq xmlns='jabber:client'")
        .expect("the forwarded IQ");
    let inner = &wrapper.as_bytes()[start..];
    let id = root_attr(inner, "id").expect("inner id");
    let requester = root_attr(inner, "from").expect("inner from");
    let child = children(inner, Some("jabber:client"))
        .expect("inner children")
        .into_iter()
        .next()
        .expect("inner payload");
    let ns = child.ns.unwrap_or_default();
    format!(
        "<iq type='result' id='{wrapper_id}' from='{name}' to='{DOMAIN}'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='{id}' to='{requester}'>\
<{el} xmlns='{ns}'><handled-by>{tag}</handled-by></{el}></iq></forwarded></delegation></iq>",
        el = child.name
    )
}

fn reset_on_close(conn: &Conn) {
    use std::os::fd::AsRawFd;
    let Conn::Plain(tcp) = conn else { return };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) on a socket we own, with a correctly sized option value.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Connects a component under `name`, connecting again whenever the proxy refuses
/// with one of the `retry_on` conditions (`conflict`: it still holds the name of a
/// connection it has not yet seen end). Other refusals are returned. Every refusal is
/// appended to `refusals`.
pub async fn component_when_free(
    port: u16,
    name: &str,
    secret: &str,
    retry_on: &[&str],
    refusals: &mut Vec<String>,
    limit: Duration,
) -> Result<Raw, String> {
    let deadline = Instant::now() + limit;
    loop {
        let attempt = tokio::time::timeout_at(deadline, Raw::try_component(port, name, secret))
            .await
            .map_err(|_| format!("no component session within {limit:?}: {refusals:?}"))?;
        match attempt {
            Ok(raw) => return Ok(raw),
            Err(condition) => {
                refusals.push(condition.clone());
                if !retry_on.contains(&condition.as_str()) {
                    return Err(condition);
                }
            }
        }
    }
}
