//! Acting as a user through a client stream: the legacy server knows nothing of
//! privileges, so the proxy sends the operation on one of the user's live upstream
//! streams with a proxy-unique id and takes the server's answer before the client
//! could see it. The server therefore sees the user's session as the sender.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::hub::{ActingError, Command, Hub, SendError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("{0} has no session through this proxy to act on")]
    NoSession(String),
    #[error("the user's session ended before the server answered")]
    SessionGone,
    #[error("the user's session is too busy to act on now")]
    Busy,
    #[error("the server's answer could not be re-parsed")]
    Unreadable,
    #[error("the server did not answer in time")]
    Timeout,
}

impl InjectError {
    /// The stanza error an entity gets for it: `(type, condition)`.
    pub fn condition(&self) -> (&'static str, &'static str) {
        match self {
            InjectError::Timeout => ("wait", "remote-server-timeout"),
            InjectError::Busy => ("wait", "resource-constraint"),
            InjectError::Unreadable => ("cancel", "internal-server-error"),
            InjectError::NoSession(_) | InjectError::SessionGone => {
                ("wait", "recipient-unavailable")
            }
        }
    }

    /// As a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            InjectError::NoSession(_) => "no_session",
            InjectError::SessionGone => "session_gone",
            InjectError::Busy => "busy",
            InjectError::Unreadable => "unreadable",
            InjectError::Timeout => "timeout",
        }
    }
}

/// Sends the IQ built by `build(id)` as the user `bare` and returns the server's
/// answer (a result or error IQ) and the full JID it was sent from.
pub async fn request(
    hub: &Hub,
    bare: &str,
    build: impl FnOnce(&str) -> Bytes,
    timeout: Duration,
) -> Result<(String, Bytes), InjectError> {
    let (full, session) = hub
        .sessions
        .any_for_bare(bare)
        .ok_or_else(|| InjectError::NoSession(bare.to_owned()))?;
    let id = format!("sg-{}", crate::util::random_id());
    let (reply, answer) = oneshot::channel();
    let command = Command::Request {
        stanza: build(&id),
        id,
        reply,
    };
    session.send(command).map_err(|e| match e {
        SendError::Full => InjectError::Busy,
        SendError::Closed => InjectError::SessionGone,
    })?;
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(Ok(answer))) => Ok((full, answer)),
        Ok(Ok(Err(ActingError::Busy))) => Err(InjectError::Busy),
        Ok(Ok(Err(ActingError::Unreadable))) => Err(InjectError::Unreadable),
        Ok(Ok(Err(ActingError::SessionGone))) | Ok(Err(_)) => Err(InjectError::SessionGone),
        Err(_) => Err(InjectError::Timeout),
    }
}
