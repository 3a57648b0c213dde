//! Reading from a socket into a framer: buffer growth policy and "the next frame".

use std::io;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use super::Conn;
use crate::xml::{Frame, FrameError, Framer};

/// Reads smaller than this leave room for at most a few stanzas; grow first.
const MIN_READ_ROOM: usize = 1024;
const READ_CHUNK: usize = 4096;

/// Reads what is available into `buf`, growing it only when nearly full.
pub async fn read_some(conn: &mut Conn, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_CHUNK);
    }
    conn.read_buf(buf).await
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
        if read_some(conn, framer.buffer_mut()).await? == 0 {
            return Err(ReadFrameError::Closed);
        }
    }
}
