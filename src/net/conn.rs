//! One socket, plain or TLS, as the proxy sees it, or a client's WebSocket carrying
//! XMPP (RFC 7395). STARTTLS needs to take the plain TCP stream out and put a TLS one
//! back, so this is an enum rather than a trait object.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Conn {
    Plain(TcpStream),
    /// We are the TLS server (client-facing listener).
    Accepted(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// We are the TLS client (toward the legacy server).
    Connected(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A client's WebSocket (over plain TCP or TLS), bridged to an XMPP byte stream.
    WebSocket(Box<super::websocket::WsBridge>),
}

impl Conn {
    /// Whether the stream counts as encrypted for the XMPP layer. A WebSocket always
    /// does: on `listen.websocket_tls` it is TLS, and `listen.websocket` is meant to sit
    /// behind a reverse proxy that terminates TLS (Prosody's
    /// `consider_websocket_secure`), so SASL is offered and STARTTLS never is.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Conn::Plain(_))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Accepted(tls) => tls.get_ref().0,
            Conn::Connected(tls) => tls.get_ref().0,
            Conn::WebSocket(ws) => ws.conn().tcp(),
        }
    }

    /// True if a read can make progress without new bytes on the socket: TLS has
    /// decrypted plaintext (or a close_notify) waiting. rustls stops wanting socket
    /// data exactly then, and tokio-rustls decrypts every complete record it reads.
    pub fn has_buffered_input(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Accepted(tls) => !tls.get_ref().1.wants_read(),
            Conn::Connected(tls) => !tls.get_ref().1.wants_read(),
            Conn::WebSocket(ws) => ws.has_buffered_input(),
        }
    }

    /// Readiness for reading: the socket's (see `TcpStream::poll_read_ready`), or for
    /// a WebSocket, the next message having arrived (a socket can be readable with no
    /// complete message yet, or quiet with one already buffered).
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Conn::WebSocket(ws) => ws.poll_input(cx),
            other => other.tcp().poll_read_ready(cx),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Accepted(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Connected(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::WebSocket(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Accepted(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Connected(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::WebSocket(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Accepted(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Conn::Connected(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Conn::WebSocket(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Accepted(s) => s.is_write_vectored(),
            Conn::Connected(s) => s.is_write_vectored(),
            Conn::WebSocket(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Accepted(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Connected(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::WebSocket(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Accepted(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Connected(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::WebSocket(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
