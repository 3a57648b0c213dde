//! Reading from a socket into a framer: buffer growth policy and "the next frame".

use std::future::poll_fn;
use std::io;
use std::task::Poll;

use tokio::io::AsyncReadExt;

use super::Conn;
use crate::xml::{Frame, FrameError, Framer};

/// Reads what is available into the framer's buffer (which the framer grows).
///
/// Idle streams hold no read buffer: when the framer holds no partial frame and the
/// socket has nothing to read yet, the buffer's memory is released before waiting
/// (idle sessions dominate a proxy's memory) and allocated again once the socket is
/// readable. Cancel-safe like `read_buf`: dropped while waiting, it consumed nothing.
pub async fn read_some(conn: &mut Conn, framer: &mut Framer) -> io::Result<usize> {
    if !framer.has_partial() && !conn.has_buffered_input() {
        let ready = poll_fn(|cx| Poll::Ready(conn.poll_read_ready(cx))).await;
        if ready.is_pending() {
            framer.release_buffer();
            poll_fn(|cx| conn.poll_read_ready(cx)).await?;
        }
    }
    conn.read_buf(framer.buffer_mut()).await
}

#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("connection closed")]
    Closed,
    #[error(transparent)]
    Framing(#[from] FrameError),
}

/// The next complete frame, reading as needed. Callers bound it with a timeout.
pub async fn next_frame(conn: &mut Conn, framer: &mut Framer) -> Result<Frame, ReadFrameError> {
    loop {
        if let Some(frame) = framer.next_frame()? {
            return Ok(frame);
        }
        if read_some(conn, framer).await? == 0 {
            return Err(ReadFrameError::Closed);
        }
    }
}

/// Reads and discards until the peer's stream end (its close tag), the connection's
/// end or a read or framing error: a peer's last words when nothing more is relayed.
/// Callers bound it with a timeout.
pub async fn until_end(conn: &mut Conn, framer: &mut Framer) {
    loop {
        match read_some(conn, framer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::End(_))) | Err(_) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
    }
}
