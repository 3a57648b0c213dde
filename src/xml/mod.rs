//! XML layer of the proxy: the incremental, zero-copy framer that cuts an XMPP byte
//! stream into stream headers, top-level elements, whitespace keepalives and the stream
//! end, plus lazily parsed element heads for routing and escaping helpers.
//!
//! The framer owns a [`bytes::BytesMut`] read buffer; every frame it yields is a
//! [`bytes::Bytes`] slice of exactly the bytes received, split off that buffer without
//! copying. It enforces the RFC 6120 §11 restrictions (no DTDs, comments, processing
//! instructions or undeclared entities), namespace well-formedness of every element it
//! yields, and the proxy's size, depth and attribute limits. [`scope`] turns an element
//! of a stanza into bytes that keep their meaning outside it.

mod attrs;
mod bindings;
mod chars;
pub mod children;
mod error;
pub mod escape;
mod frame;
mod framer;
mod head;
mod limits;
mod namespaces;
pub mod ns;
mod ns_check;
mod readdress;
mod reference;
mod resolve;
mod runs;
mod scanner;
pub mod scope;
mod span;
mod stanza;
mod stream_header;
mod tags;
pub mod writer;

pub use error::{FrameError, HeadError};
pub use escape::{escape_attr, escape_text, unescape, EscapeError};
pub use frame::Frame;
pub use framer::Framer;
pub use head::{ChildHead, Head};
pub use limits::Limits;
pub use namespaces::Namespaces;
pub use ns_check::NsError;
pub use readdress::{addressed, readdress, ReaddressError};
pub use scope::{
    extract_children, extract_element, extract_stanza, extract_stanza_for_stream, ScopeError,
};
pub use stanza::Stanza;
pub use stream_header::StreamHeader;
