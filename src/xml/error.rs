//! Error types of the XML layer: stream-fatal framing errors (mapped 1:1 onto RFC 6120
//! stream error conditions) and head-parsing errors.

use thiserror::Error;

/// A stream-fatal framing error. The framer is poisoned after the first one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The bytes are not well-formed XML (or not UTF-8).
    #[error("not-well-formed: {0}")]
    NotWellFormed(String),
    /// XML features RFC 6120 §11 forbids: DTDs, comments, PIs, undeclared entities.
    #[error("restricted-xml: {0}")]
    RestrictedXml(String),
    /// A configured size, depth or attribute limit was exceeded.
    #[error("policy-violation: {0}")]
    PolicyViolation(String),
}

impl FrameError {
    /// The RFC 6120 stream error condition element name to send to the peer.
    pub fn condition(&self) -> &'static str {
        match self {
            FrameError::NotWellFormed(_) => "not-well-formed",
            FrameError::RestrictedXml(_) => "restricted-xml",
            FrameError::PolicyViolation(_) => "policy-violation",
        }
    }
}

pub(crate) fn not_well_formed(msg: &str) -> FrameError {
    FrameError::NotWellFormed(msg.to_owned())
}

pub(crate) fn restricted(msg: &str) -> FrameError {
    FrameError::RestrictedXml(msg.to_owned())
}

pub(crate) fn policy(msg: &str) -> FrameError {
    FrameError::PolicyViolation(msg.to_owned())
}

/// Why a stanza head could not be interpreted. Callers map this to a stream error
/// (`not-well-formed`, or `bad-namespace-prefix` for [`HeadError::UndeclaredPrefix`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadError {
    /// An element name uses a prefix that no enclosing declaration binds.
    #[error("undeclared namespace prefix '{0}'")]
    UndeclaredPrefix(String),
    /// The bytes do not start with a well-formed open tag (only possible for stanzas
    /// not produced by the framer).
    #[error("malformed element head")]
    Malformed,
}
