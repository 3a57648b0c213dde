//! Resource limits the framer enforces on untrusted peers (policy-violation on breach).

/// Per-stream limits. Exceeding any of them is a `policy-violation` stream error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest top-level element (also stream header incl. XML declaration), in bytes.
    /// Values above `u32::MAX` are clamped.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting; a top-level element is depth 1.
    pub max_depth: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 64,
            max_attributes: 64,
        }
    }
}

impl Limits {
    /// The limits with `max_stanza_bytes` clamped so frame offsets fit `u32`.
    pub(crate) fn clamped(self) -> Self {
        Limits {
            max_stanza_bytes: self.max_stanza_bytes.min(u32::MAX as usize),
            ..self
        }
    }
}
