//! Byte transport shared by every stream the proxy handles: a socket that may be plain
//! or TLS in either role, or a client's WebSocket, reading into a framer, and the
//! batched writer that flushes once per read burst.

mod admission;
mod conn;
mod outbox;
pub mod proxy_protocol;
mod read;
pub mod websocket;

pub use admission::{Admission, Admitted};
pub use conn::Conn;
pub use outbox::Outbox;
pub use read::{next_frame, read_some, until_end, ReadFrameError};

/// After one side closed its stream, how long the other gets to close its own; also
/// the bound on any closing handshake (flush, TLS close_notify, shutdown).
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// `future` bounded by `timeout`, where the timer (which costs more than a write) is
/// only armed if the future does not complete on its first poll: flushing a burst
/// nearly always does.
pub async fn within<F: std::future::Future>(
    timeout: std::time::Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    use std::task::Poll;
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(timeout, future).await,
    }
}
