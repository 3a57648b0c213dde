//! What the scanner remembers about the open tags of a top-level element and its first
//! child while passing over them anyway: names, the routing attributes and namespace
//! declarations. Head parsing then needs no second pass over the attributes.

use super::super::span::Span;
use super::Scanner;

/// Attributes the router reads on every stanza, as indexes into `TagMeta::attrs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    To = 0,
    From = 1,
    Type = 2,
    Id = 3,
    /// The default namespace declaration, `xmlns`.
    Xmlns = 4,
}

impl Known {
    fn of(name: &[u8]) -> Option<Known> {
        match name {
            b"to" => Some(Known::To),
            b"from" => Some(Known::From),
            b"type" => Some(Known::Type),
            b"id" => Some(Known::Id),
            b"xmlns" => Some(Known::Xmlns),
            _ => None,
        }
    }
}

/// Facts about one open tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TagMeta {
    /// Qualified element name.
    pub(crate) name: Span,
    /// Raw values of the `Known` attributes; `Span::ABSENT` if missing.
    attrs: [Span; 5],
    /// Bit per `Known` attribute whose value holds references (needs unescaping).
    escaped: u8,
    /// Whether the tag declares any prefix (`xmlns:p`), which then needs a lookup.
    pub(crate) prefixed_decls: bool,
}

impl TagMeta {
    pub(crate) const EMPTY: TagMeta = TagMeta {
        name: Span::ABSENT,
        attrs: [Span::ABSENT; 5],
        escaped: 0,
        prefixed_decls: false,
    };

    /// The raw value of `known` and whether it needs unescaping.
    pub(crate) fn get(&self, known: Known) -> Option<(Span, bool)> {
        let span = self.attrs.get(known as usize).copied()?;
        let escaped = self.escaped & (1 << known as u8) != 0;
        (!span.is_absent()).then_some((span, escaped))
    }

    #[inline]
    fn note(&mut self, name: &[u8], value: Span, escaped: bool) {
        match Known::of(name) {
            Some(known) => {
                if let Some(slot) = self.attrs.get_mut(known as usize) {
                    *slot = value;
                }
                if escaped {
                    self.escaped |= 1 << known as u8;
                }
            }
            None => self.prefixed_decls |= name.starts_with(b"xmlns:"),
        }
    }
}

impl Scanner {
    /// The tag being scanned, if it is the top element's or the first child's.
    #[inline]
    fn recorded_tag(&mut self) -> Option<&mut TagMeta> {
        match self.depth {
            0 if !self.expect_header => Some(&mut self.meta.top),
            1 if self.meta.child_count == 0 => Some(&mut self.meta.child),
            _ => None,
        }
    }

    /// An attribute of the current start tag was completely scanned.
    #[inline]
    pub(super) fn note_attr(&mut self, data: &[u8], name: Span, value: Span, escaped: bool) {
        if let Some(tag) = self.recorded_tag() {
            tag.note(name.of(data), value, escaped);
        }
    }

    /// The current start tag is complete; called before depth changes.
    #[inline]
    pub(super) fn note_name(&mut self) {
        let name = self.name;
        if let Some(tag) = self.recorded_tag() {
            tag.name = name;
        }
    }
}
