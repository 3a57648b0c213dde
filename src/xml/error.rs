//! Error types of the XML layer: stream-fatal framing errors (mapped 1:1 onto RFC 6120
//! stream error conditions) and head-parsing errors.

use thiserror::Error;

use super::ns_check::NsError;

/// A stream-fatal framing error. The framer is poisoned after the first one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The bytes are not well-formed XML (or not UTF-8), or not namespace-well-formed.
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

/// RFC 6120 §4.9.3.13 defines `not-well-formed` as violating [XML] or [XML-NAMES], so
/// namespace errors are reported as such (`bad-namespace-prefix` is about namespace
/// prefixes the protocol does not support, not about unbound ones).
impl From<NsError> for FrameError {
    fn from(error: NsError) -> FrameError {
        FrameError::NotWellFormed(format!("namespace: {error}"))
    }
}

pub(crate) fn not_well_formed(msg: &str) -> FrameError {
    FrameError::NotWellFormed(msg.to_owned())
}

/// Which RFC 6120 condition a fault maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    NotWellFormed,
    Restricted,
    Policy,
}

/// A scanner error: a one-byte value so the scanner's hot return type stays small
/// enough for registers; turned into a [`FrameError`] at the framer boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    BadAmpersand,
    UndeclaredEntity,
    UnterminatedReference,
    BadCharRef,
    ControlChar,
    TooLarge,
    TextOutsideStanza,
    TextBeforeHeader,
    SelfClosingHeader,
    StrayEndTag,
    MismatchedEndTag,
    BadCharAfterLt,
    BadDeclChar,
    Declaration,
    CdataOutsideStanza,
    TooDeep,
    BadElementName,
    AttrsNeedSpace,
    BadStartTagChar,
    TooManyAttributes,
    BadAttrName,
    DuplicateAttr,
    ExpectedEq,
    UnquotedValue,
    LtInValue,
    ExpectedGt,
    BadEndTagName,
    BadEndTagChar,
    ProcessingInstruction,
    /// Invalid UTF-8, or U+FFFE / U+FFFF, which UTF-8 encodes but XML's `Char`
    /// production excludes.
    InvalidText,
    /// A non-ASCII name character outside XML's `NameStartChar` / `NameChar`.
    BadNameChar,
    /// `]]>` in character data, which XML forbids outside CDATA sections.
    CdataEndInText,
}

impl Fault {
    fn parts(self) -> (Condition, &'static str) {
        match self {
            Fault::BadAmpersand => (Condition::NotWellFormed, "'&' does not start a reference"),
            Fault::UndeclaredEntity => (
                Condition::Restricted,
                "entity references other than the predefined ones",
            ),
            Fault::UnterminatedReference => {
                (Condition::NotWellFormed, "unterminated entity reference")
            }
            Fault::BadCharRef => (Condition::NotWellFormed, "invalid character reference"),
            Fault::ControlChar => (Condition::NotWellFormed, "forbidden control character"),
            Fault::TooLarge => (Condition::Policy, "element exceeds the maximum stanza size"),
            Fault::TextOutsideStanza => (Condition::NotWellFormed, "text outside of a stanza"),
            Fault::TextBeforeHeader => (Condition::NotWellFormed, "text before the stream header"),
            Fault::SelfClosingHeader => (Condition::NotWellFormed, "self-closing stream header"),
            Fault::StrayEndTag => (
                Condition::NotWellFormed,
                "unexpected end tag outside of a stanza",
            ),
            Fault::MismatchedEndTag => {
                (Condition::NotWellFormed, "end tag does not match start tag")
            }
            Fault::BadCharAfterLt => (Condition::NotWellFormed, "invalid character after '<'"),
            Fault::BadDeclChar => (
                Condition::NotWellFormed,
                "invalid character in the XML declaration",
            ),
            Fault::Declaration => (
                Condition::Restricted,
                "comments, DTDs and declarations are not allowed",
            ),
            Fault::CdataOutsideStanza => (Condition::NotWellFormed, "CDATA outside of a stanza"),
            Fault::TooDeep => (Condition::Policy, "elements are nested too deeply"),
            Fault::BadElementName => (
                Condition::NotWellFormed,
                "invalid character in element name",
            ),
            Fault::AttrsNeedSpace => (
                Condition::NotWellFormed,
                "attributes need whitespace between them",
            ),
            Fault::BadStartTagChar => (Condition::NotWellFormed, "invalid character in start tag"),
            Fault::TooManyAttributes => (Condition::Policy, "too many attributes"),
            // Characters outside XML's Char production make a document not well-formed
            // (XML 1.0 §2.2), hence not-well-formed rather than invalid-xml, which
            // RFC 6120 §4.9.3.12 reserves for validation against a schema.
            Fault::InvalidText => (
                Condition::NotWellFormed,
                "invalid UTF-8 or a noncharacter (U+FFFE, U+FFFF)",
            ),
            Fault::BadNameChar => (Condition::NotWellFormed, "invalid character in a name"),
            Fault::CdataEndInText => (Condition::NotWellFormed, "']]>' in character data"),
            Fault::BadAttrName => (
                Condition::NotWellFormed,
                "invalid character in attribute name",
            ),
            Fault::DuplicateAttr => (Condition::NotWellFormed, "duplicate attribute"),
            Fault::ExpectedEq => (
                Condition::NotWellFormed,
                "expected '=' after attribute name",
            ),
            Fault::UnquotedValue => (Condition::NotWellFormed, "attribute value must be quoted"),
            Fault::LtInValue => (Condition::NotWellFormed, "'<' in attribute value"),
            Fault::ExpectedGt => (Condition::NotWellFormed, "expected '>' after '/'"),
            Fault::BadEndTagName => (Condition::NotWellFormed, "invalid end tag name"),
            Fault::BadEndTagChar => (Condition::NotWellFormed, "invalid character in end tag"),
            Fault::ProcessingInstruction => (
                Condition::Restricted,
                "processing instructions are not allowed",
            ),
        }
    }
}

impl From<Fault> for FrameError {
    fn from(fault: Fault) -> FrameError {
        let (condition, message) = fault.parts();
        let message = message.to_owned();
        match condition {
            Condition::NotWellFormed => FrameError::NotWellFormed(message),
            Condition::Restricted => FrameError::RestrictedXml(message),
            Condition::Policy => FrameError::PolicyViolation(message),
        }
    }
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
