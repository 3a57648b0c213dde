//! Stanzas waiting to be written to one peer. Everything produced while handling one
//! read burst is written with as few syscalls as the transport allows, never one flush
//! per stanza; the stanzas themselves are the received `Bytes`, not copies.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// At most this many buffers go into one vectored write (Linux IOV_MAX is 1024).
const MAX_IOV: usize = 64;

#[derive(Default)]
pub struct Outbox {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Outbox {
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    pub fn push_static(&mut self, bytes: &'static [u8]) {
        self.push(Bytes::from_static(bytes));
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes everything queued. Several chunks go out in one vectored write where the
    /// transport supports it; otherwise (TLS) they are coalesced so one TLS record
    /// carries many stanzas. A single chunk is a plain write (cheaper than `writev`).
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        if self.chunks.len() > 1 && writer.is_write_vectored() {
            self.write_vectored(writer).await?;
        } else {
            self.write_coalesced(writer).await?;
        }
        writer.flush().await
    }

    async fn write_vectored<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        while !self.chunks.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .chunks
                .iter()
                .take(MAX_IOV)
                .map(|c| IoSlice::new(c))
                .collect();
            let written = writer.write_vectored(&slices).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        Ok(())
    }

    /// Joins the queued chunks into one (so TLS sends one record for many stanzas) and
    /// writes it. Cancel-safe like the vectored path: what is not written yet stays
    /// queued, so a flush interrupted (a session ending) can be resumed or followed by
    /// a stream error without ever cutting a stanza in two.
    async fn write_coalesced<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.chunks.len() > 1 {
            let mut joined = BytesMut::with_capacity(self.len);
            for chunk in self.chunks.drain(..) {
                joined.extend_from_slice(&chunk);
            }
            self.chunks.push_back(joined.freeze());
        }
        while let Some(front) = self.chunks.front() {
            let written = writer.write(front).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        Ok(())
    }

    fn advance(&mut self, mut written: usize) {
        self.len -= written;
        while written > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if written >= front.len() {
                written -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_everything_in_order() {
        let mut outbox = Outbox::default();
        for i in 0..200 {
            outbox.push(Bytes::from(format!("<m id='{i}'/>")));
        }
        let mut sink: Vec<u8> = Vec::new();
        outbox.flush(&mut sink).await.unwrap();
        let expected: String = (0..200).map(|i| format!("<m id='{i}'/>")).collect();
        assert_eq!(String::from_utf8(sink).unwrap(), expected);
        assert!(outbox.is_empty());
        assert_eq!(outbox.len(), 0);
    }

    #[tokio::test]
    async fn an_interrupted_flush_keeps_what_was_not_written() {
        let (mut a, mut b) = tokio::io::duplex(5);
        let mut outbox = Outbox::default();
        outbox.push_static(b"<a/>");
        outbox.push_static(b"<bb/>");
        // The pipe takes 5 bytes, then the flush waits and is dropped.
        let interrupted =
            tokio::time::timeout(std::time::Duration::from_millis(50), outbox.flush(&mut a)).await;
        assert!(interrupted.is_err());
        assert_eq!(
            outbox.len(),
            4,
            "the rest of the second stanza is still queued"
        );
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        outbox.flush(&mut a).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), b"<a/><bb/>");
    }

    #[tokio::test]
    async fn partial_vectored_writes_resume_mid_chunk() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let mut outbox = Outbox::default();
        outbox.push_static(b"hello ");
        outbox.push_static(b"world, ");
        outbox.push_static(b"this is long");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        outbox.flush(&mut a).await.unwrap();
        drop(a);
        assert_eq!(reader.await.unwrap(), b"hello world, this is long");
    }
}
