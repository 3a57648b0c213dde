//! A complete top-level element as received: its exact bytes, the namespaces of its
//! stream, and a head parsed on first use.

use std::cell::OnceCell;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{not_well_formed, FrameError, HeadError};
use super::head::Head;
use super::limits::Limits;
use super::namespaces::Namespaces;
use super::scanner::{ElementMeta, Scan, Scanner};

/// One top-level element of a stream (a stanza, or `<stream:features/>`, `<r/>`, ...).
/// `Send` but not `Sync`: the head cache is a `OnceCell`.
#[derive(Clone, Debug)]
pub struct Stanza {
    bytes: Bytes,
    namespaces: Arc<Namespaces>,
    meta: ElementMeta,
    head: OnceCell<Result<Head, HeadError>>,
}

impl Stanza {
    pub(crate) fn new(bytes: Bytes, namespaces: Arc<Namespaces>, meta: ElementMeta) -> Self {
        Stanza {
            bytes,
            namespaces,
            meta,
            head: OnceCell::new(),
        }
    }

    /// Validates `bytes` as exactly one element under the framer's rules, e.g. for
    /// stanzas the proxy builds itself or receives out of band.
    pub fn parse(
        bytes: Bytes,
        namespaces: Arc<Namespaces>,
        limits: &Limits,
    ) -> Result<Stanza, FrameError> {
        let mut scanner = Scanner::for_elements();
        match scanner.scan(&bytes, &limits.clamped())? {
            Scan::Element { len, meta } if len == bytes.len() => {
                std::str::from_utf8(&bytes).map_err(|_| invalid_utf8())?;
                Ok(Stanza::new(bytes, namespaces, meta))
            }
            _ => Err(not_well_formed("expected exactly one complete element")),
        }
    }

    /// The exact bytes received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The head, parsed on the first call and cached.
    pub fn head(&self) -> Result<&Head, HeadError> {
        self.head
            .get_or_init(|| Head::parse(&self.bytes, &self.namespaces, &self.meta))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The namespace declarations of the stream this stanza arrived on.
    pub fn namespaces(&self) -> &Arc<Namespaces> {
        &self.namespaces
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: an element has at least `<a/>`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl PartialEq for Stanza {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Stanza {}

pub(crate) fn invalid_utf8() -> FrameError {
    not_well_formed("invalid UTF-8")
}
