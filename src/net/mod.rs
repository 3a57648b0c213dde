//! Byte transport shared by every stream the proxy handles: a socket that may be plain
//! or TLS in either role, reading into a framer, and the batched writer that flushes
//! once per read burst.

mod conn;
mod outbox;
mod read;

pub use conn::Conn;
pub use outbox::Outbox;
pub use read::{next_frame, read_some, ReadFrameError};

/// After one side closed its stream, how long the other gets to close its own; also
/// the bound on any closing handshake (flush, TLS close_notify, shutdown).
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
