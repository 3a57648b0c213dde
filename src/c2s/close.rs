//! Ending a relayed session: what each peer is told, the other side's last words
//! (still translated: the server's final `<a/>` is counted as everything else), and
//! every closing step bounded by [`CLOSE_GRACE`].

use bytes::Bytes;

use super::relay::{Ended, Session, Stop};
use super::upstream::UpstreamSide;
use crate::net::{read_some, until_end, CLOSE_GRACE};
use crate::xml::ns::NS_TLS;

impl Session {
    pub(super) async fn stop(mut self, stop: Stop) -> Ended {
        let upstream_close = Bytes::from_static(b"</stream:stream>");
        match stop {
            Stop::StartTls => {
                self.upstream.out.push(upstream_close);
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    let _ = self.upstream.out.flush(&mut self.upstream.conn).await;
                    let _ = self.upstream.shutdown().await;
                })
                .await;
                self.client
                    .out
                    .push(Bytes::from(format!("<proceed xmlns='{NS_TLS}'/>")));
                let flushed =
                    tokio::time::timeout(CLOSE_GRACE, self.client.out.flush(&mut self.client.conn))
                        .await;
                return match flushed {
                    Ok(Ok(())) => Ended::StartTls(Box::new(self.client)),
                    _ => Ended::Closed,
                };
            }
            Stop::ClientEnded => {
                let _ = tokio::time::timeout(CLOSE_GRACE, self.linger_upstream()).await;
            }
            Stop::UpstreamEnded => {
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

    /// After the client's `</stream:stream>`: the server's last words go through the
    /// same translation as everything it sent before, until it closes too.
    async fn linger_upstream(&mut self) {
        loop {
            if self.client.out.flush(&mut self.client.conn).await.is_err()
                || self
                    .upstream
                    .out
                    .flush(&mut self.upstream.conn)
                    .await
                    .is_err()
            {
                return;
            }
            match read_some(&mut self.upstream.conn, &mut self.upstream.framer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            loop {
                match self.upstream.framer.next_frame() {
                    Ok(Some(frame)) => {
                        if self.upstream_frame(frame).is_err() {
                            // The close tag (or a fault): nothing more to relay.
                            let _ = self.client.out.flush(&mut self.client.conn).await;
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }

    /// After the server's `</stream:stream>`: wait for the client's, discarding the rest.
    async fn linger_client(&mut self) {
        let _ = self.client.out.flush(&mut self.client.conn).await;
        until_end(&mut self.client.conn, &mut self.client.framer).await;
    }

    async fn close_both(&mut self) {
        let _ = self.upstream.out.flush(&mut self.upstream.conn).await;
        let _ = self.client.out.flush(&mut self.client.conn).await;
        let _ = self.upstream.shutdown().await;
        self.client.finish().await;
    }
}

impl UpstreamSide {
    async fn shutdown(&mut self) -> std::io::Result<()> {
        tokio::io::AsyncWriteExt::shutdown(&mut self.conn).await
    }
}
