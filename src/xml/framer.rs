//! The framer: owns the read buffer of one XMPP stream and cuts it into frames,
//! zero-copy, resuming the scan where the previous read stopped.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::error::FrameError;
use super::frame::Frame;
use super::limits::Limits;
use super::namespaces::{Namespaces, NsHandle};
use super::ns_check;
use super::scanner::{Scan, Scanner};
use super::stanza::Stanza;
use super::stream_header::StreamHeader;

/// Spare capacity `buffer_mut` guarantees, so socket reads are never tiny.
const READ_RESERVE: usize = 8 * 1024;

#[derive(Debug)]
enum State {
    Open,
    /// The stream end was yielded; later bytes are ignored.
    Ended,
    /// Poisoned by the first error, which every later call repeats.
    Failed(FrameError),
}

/// Incremental framer for one direction of one XMPP stream.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    limits: Limits,
    scanner: Scanner,
    /// Declarations of the current stream header.
    namespaces: Arc<Namespaces>,
    /// The same, as handed to every stanza.
    ns_handle: NsHandle,
    state: State,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(Limits::default())
    }
}

impl Framer {
    pub fn new(limits: Limits) -> Self {
        Framer {
            buf: BytesMut::with_capacity(READ_RESERVE),
            limits: limits.clamped(),
            scanner: Scanner::new(),
            namespaces: Arc::default(),
            ns_handle: NsHandle::default(),
            state: State::Open,
        }
    }

    /// Takes effect from the next `next_frame` call, also for a partially read frame.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits.clamped();
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The buffer to read socket data into (`read_buf(framer.buffer_mut())`); it always
    /// has some spare capacity. Its length is bounded because `next_frame` fails with
    /// policy-violation as soon as a partial frame exceeds `max_stanza_bytes`.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 2 {
            // Growing by at least the buffered length keeps a large partial frame from
            // being copied once per read when earlier frames still share the buffer.
            self.buf.reserve(READ_RESERVE.max(self.buf.len()));
        }
        &mut self.buf
    }

    /// Next complete frame, `Ok(None)` if more bytes are needed. After an error the
    /// framer is poisoned and keeps returning it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if !matches!(self.state, State::Open) {
            return self.closed();
        }
        // Stanzas, by far the most frequent frames, are built right in the return
        // value: a frame is large enough for extra moves to show.
        match self.scanner.scan(&self.buf, &self.limits) {
            Ok(Scan::Element(len)) if !self.scanner.ns_suspect() => {
                Ok(Some(Frame::Stanza(self.stanza(len))))
            }
            Ok(Scan::NeedMore) => Ok(None),
            Ok(scan) => self.other_frame(scan),
            Err(fault) => Err(self.fail(fault.into())),
        }
    }

    #[cold]
    fn closed(&mut self) -> Result<Option<Frame>, FrameError> {
        self.buf.clear();
        match &self.state {
            State::Failed(error) => Err(error.clone()),
            _ => Ok(None),
        }
    }

    /// Poisons the framer with its first error.
    #[cold]
    fn fail(&mut self, error: FrameError) -> FrameError {
        self.state = State::Failed(error.clone());
        self.buf.clear();
        error
    }

    /// Every frame but a stanza that needs no namespace check.
    #[inline(never)]
    fn other_frame(&mut self, scan: Scan) -> Result<Option<Frame>, FrameError> {
        Ok(Some(match scan {
            Scan::NeedMore => return Ok(None),
            // An element whose names could break namespace well-formedness: only the
            // whole element decides, so the outcome does not depend on read boundaries.
            Scan::Element(len) => {
                let bytes = self.buf.get(..len).unwrap_or_default();
                if let Err(error) = ns_check::check(bytes, &self.namespaces) {
                    return Err(self.fail(error.into()));
                }
                Frame::Stanza(self.stanza(len))
            }
            Scan::Whitespace(len) => Frame::Whitespace(self.take(len)),
            Scan::Header(len) => match self.header(len) {
                Ok(header) => header,
                Err(error) => return Err(self.fail(error)),
            },
            Scan::End(len) => {
                self.state = State::Ended;
                Frame::End(self.take(len))
            }
        }))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Bytes {
        self.scanner.next_frame();
        self.buf.split_to(len.min(self.buf.len())).freeze()
    }

    fn header(&mut self, len: usize) -> Result<Frame, FrameError> {
        let open_start = self.scanner.header_open_start();
        let raw = self.take(len);
        let header = StreamHeader::parse(raw, open_start)?;
        self.namespaces = header.namespaces.clone();
        self.ns_handle = NsHandle::new(header.namespaces.clone());
        Ok(Frame::Header(Box::new(header)))
    }

    #[inline(always)]
    fn stanza(&mut self, len: usize) -> Stanza {
        // UTF-8 was validated run by run while scanning. Split before copying what
        // the scanner recorded: the split's atomic reference count update waits for
        // the scanner's last stores anyway, after which the copy reads them from the
        // cache instead of stalling on store forwarding.
        let bytes = self.buf.split_to(len.min(self.buf.len())).freeze();
        let meta = *self.scanner.element_meta();
        self.scanner.next_frame();
        Stanza::new(bytes, self.ns_handle.clone(), meta)
    }

    /// Stream restart (after SASL success): expect a new stream header, keeping buffered
    /// bytes since clients may pipeline it.
    pub fn restart(&mut self) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.state = State::Open;
        self.scanner.restart();
    }

    /// Restart for STARTTLS: also drop buffered bytes, which arrived before the TLS
    /// handshake and must not be trusted.
    pub fn restart_discarding(&mut self) {
        self.buf.clear();
        self.restart();
    }

    /// Frees the read buffer's memory when it holds no bytes, for a stream about to sit
    /// idle; the next `buffer_mut` allocates again.
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// True if bytes of an incomplete frame are buffered.
    pub fn has_partial(&self) -> bool {
        matches!(self.state, State::Open) && !self.buf.is_empty()
    }

    /// True until the (re)started stream's header has been framed.
    pub fn expects_header(&self) -> bool {
        self.scanner.expects_header()
    }

    /// True once `</stream:stream>` was framed.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Namespace declarations of the current stream header.
    pub fn namespaces(&self) -> &Arc<Namespaces> {
        &self.namespaces
    }
}
