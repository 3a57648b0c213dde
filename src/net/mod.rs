//! Byte transport shared by every stream the proxy handles: a socket that may be plain
//! or TLS in either role, reading into a framer, and the batched writer that flushes
//! once per read burst.

mod conn;
mod outbox;
mod read;

pub use conn::Conn;
pub use outbox::Outbox;
pub use read::{next_frame, read_some, ReadFrameError};
