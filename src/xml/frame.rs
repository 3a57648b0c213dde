//! The unit the framer yields: a stream header, a top-level element, a whitespace run
//! between elements, or the stream end; each carrying exactly the bytes received.

use bytes::Bytes;

use super::stanza::Stanza;
use super::stream_header::StreamHeader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The stream open tag; any XML declaration before it is included in `raw`. Boxed:
    /// headers are rare, and every frame is as large as its largest variant.
    Header(Box<StreamHeader>),
    /// One complete top-level element.
    Stanza(Stanza),
    /// Whitespace between top-level elements (keepalives), to pass through as-is.
    Whitespace(Bytes),
    /// The stream close tag, e.g. `</stream:stream>`.
    End(Bytes),
}

impl Frame {
    /// The exact bytes of this frame.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Header(header) => &header.raw,
            Frame::Stanza(stanza) => stanza.bytes(),
            Frame::Whitespace(bytes) | Frame::End(bytes) => bytes,
        }
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            Frame::Header(header) => header.raw,
            Frame::Stanza(stanza) => stanza.into_bytes(),
            Frame::Whitespace(bytes) | Frame::End(bytes) => bytes,
        }
    }
}
