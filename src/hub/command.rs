//! What other tasks may ask a client session to do. Sessions carry these out in their
//! own task, so a session's streams and Stream Management counters have one owner.

use bytes::Bytes;
use tokio::sync::oneshot;

/// Something another task asks a client session to do.
#[derive(Debug)]
pub enum Command {
    /// Deliver a stanza the proxy made to the client (counted as injected for SM).
    ToClient(Bytes),
    /// Send a stanza the proxy made to the server on the user's stream.
    ToServer(Bytes),
    /// Send an IQ on the user's stream as the user; the server's answer (the IQ with
    /// `id`) is consumed, never shown to the client, and handed to `reply`.
    Request {
        stanza: Bytes,
        id: String,
        reply: oneshot::Sender<Reply>,
    },
    /// Send a message on the user's stream as the user (a XEP-0356 privileged
    /// message); the client gets `carbon` if it enabled carbons, since the server
    /// copies a sent message to the user's other resources only.
    SendAs { stanza: Bytes, carbon: Bytes },
    /// A `subscribe` the proxy sent for the user: the contact's `subscribed` answer is
    /// consumed instead of shown to the user's clients.
    ExpectSubscribed(String),
    /// The contact's `subscribe` is approved for the user (the proxy answers
    /// `subscribed`) instead of shown to the user's clients.
    ExpectSubscribe(String),
}

/// What a session hands back for a [`Command::Request`]: the server's answer.
pub type Reply = Result<Bytes, ActingError>;

/// Why a session could not carry out a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActingError {
    #[error("the user's session has too many operations in progress")]
    Busy,
    #[error("the user's session ended before the server answered")]
    SessionGone,
    #[error("the server's answer could not be re-parsed on its own")]
    Unreadable,
}
