//! Re-addressing a stanza the proxy passes on to someone else (presence copies, stored
//! presence shown to contacts): `to` and, when asked, `from` replaced, every other byte
//! kept.

use bytes::{Bytes, BytesMut};

use super::error::{FrameError, HeadError};
use super::escape::escape_attr;
use super::writer::attr_span;
use super::{Head, Stanza};

/// The presence addressed to `entity` (and `from` set when given), other bytes kept.
pub fn addressed(stanza: &Stanza, head: &Head, from: Option<&str>, entity: &str) -> Bytes {
    let mut bytes = stanza.bytes().to_vec();
    let mut spans = Vec::new();
    for name in ["to", "from"] {
        if name == "from" && from.is_none() {
            continue;
        }
        if let Some(span) = head
            .attr_range(name)
            .and_then(|r| attr_span(stanza.bytes(), r, name))
        {
            spans.push(span);
        }
    }
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for span in spans {
        bytes.drain(span);
    }
    insert_addresses(&bytes, from, entity)
}

/// Re-addresses a stored stanza (which may carry `to`) to `entity`, with `from` set
/// when given. A stored stanza that does not parse on its own is never re-emitted as
/// it was (it would carry its original addresses): the caller drops it.
pub fn readdress(
    stored: &Bytes,
    from: Option<&str>,
    entity: &str,
) -> Result<Bytes, ReaddressError> {
    let stanza = Stanza::standalone(stored.clone())?;
    let head = stanza.head()?;
    Ok(addressed(&stanza, head, from, entity))
}

/// A stored stanza that cannot be re-addressed (and so must not be passed on).
#[derive(Debug, thiserror::Error)]
pub enum ReaddressError {
    #[error("stored stanza does not parse on its own: {0}")]
    Frame(#[from] FrameError),
    #[error("stored stanza has an unreadable head: {0}")]
    Head(#[from] HeadError),
    #[error("stanza cannot be re-declared on its own: {0}")]
    Scope(#[from] super::scope::ScopeError),
}

fn insert_addresses(bytes: &[u8], from: Option<&str>, entity: &str) -> Bytes {
    let name_end = bytes
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
        .unwrap_or(bytes.len());
    let mut out = BytesMut::with_capacity(bytes.len() + 96);
    out.extend_from_slice(&bytes[..name_end]);
    if let Some(from) = from {
        out.extend_from_slice(b" from='");
        out.extend_from_slice(escape_attr(from).as_bytes());
        out.extend_from_slice(b"'");
    }
    out.extend_from_slice(b" to='");
    out.extend_from_slice(escape_attr(entity).as_bytes());
    out.extend_from_slice(b"'");
    out.extend_from_slice(&bytes[name_end..]);
    out.freeze()
}
