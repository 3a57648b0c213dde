//! A complete top-level element as received: its exact bytes, the namespaces of its
//! stream, and a head parsed on first use.

use std::sync::Arc;

use bytes::Bytes;

use super::error::{not_well_formed, Fault, FrameError, HeadError};
use super::head::Head;
use super::limits::Limits;
use super::namespaces::{Namespaces, NsHandle};
use super::ns_check;
use super::scanner::{ElementMeta, Scan, Scanner};

/// One top-level element of a stream (a stanza, or `<stream:features/>`, `<r/>`, ...).
/// `Send` but not `Sync`: the head cache is a `OnceCell`.
#[derive(Clone, Debug)]
pub struct Stanza {
    /// Holds the bytes, the stream's namespaces and the head cache.
    head: Head,
}

impl Stanza {
    pub(crate) fn new(bytes: Bytes, namespaces: NsHandle, meta: ElementMeta) -> Self {
        Stanza {
            head: Head::new(bytes, namespaces, meta),
        }
    }

    /// [`Stanza::parse`] for an element that declares its own namespace (an element
    /// taken out of `<forwarded/>`, or one the proxy built), with default limits.
    pub fn standalone(bytes: Bytes) -> Result<Stanza, FrameError> {
        Stanza::parse(bytes, Arc::new(Namespaces::new()), &Limits::default())
    }

    /// Validates `bytes` as exactly one element under the framer's rules (namespace
    /// well-formedness in the context of `namespaces` included), e.g. for stanzas the
    /// proxy builds itself or receives out of band.
    pub fn parse(
        bytes: Bytes,
        namespaces: Arc<Namespaces>,
        limits: &Limits,
    ) -> Result<Stanza, FrameError> {
        let mut scanner = Scanner::for_elements();
        match scanner.scan(&bytes, &limits.clamped())? {
            Scan::Element(len) if len == bytes.len() => {
                std::str::from_utf8(&bytes).map_err(|_| invalid_text())?;
                if scanner.ns_suspect() {
                    ns_check::check(&bytes, &namespaces)?;
                }
                let meta = *scanner.element_meta();
                Ok(Stanza::new(bytes, NsHandle::new(namespaces), meta))
            }
            _ => Err(not_well_formed("expected exactly one complete element")),
        }
    }

    /// The exact bytes received.
    pub fn bytes(&self) -> &Bytes {
        self.head.bytes()
    }

    pub fn into_bytes(self) -> Bytes {
        self.head.into_bytes()
    }

    /// The head, checked on the first call (errors are cached); namespaces are
    /// resolved lazily.
    pub fn head(&self) -> Result<&Head, HeadError> {
        self.head.ensure_parsed()?;
        Ok(&self.head)
    }

    /// The namespace declarations of the stream this stanza arrived on.
    pub fn namespaces(&self) -> &Namespaces {
        self.head.namespaces()
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Always false: an element has at least `<a/>`.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

impl PartialEq for Stanza {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Stanza {}

pub(crate) fn invalid_text() -> FrameError {
    FrameError::from(Fault::InvalidText)
}
