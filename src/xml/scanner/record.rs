//! What the scanner remembers about the open tags of a top-level element and its first
//! child while passing over them anyway: names, the routing attributes and namespace
//! declarations. Head parsing then needs no second pass over the attributes.

use super::super::span::Span;
use super::Scanner;

/// Attributes the router reads on every stanza, as indexes into `TagMeta::attrs`.
/// `Xmlns` comes first: the first child records only that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// The default namespace declaration, `xmlns`.
    Xmlns = 0,
    To = 1,
    From = 2,
    Type = 3,
    Id = 4,
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

/// Facts about one open tag, recording the first `N` `Known` attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TagMeta<const N: usize> {
    /// Qualified element name.
    pub(crate) name: Span,
    /// Raw values of the `Known` attributes; `Span::ABSENT` if missing.
    attrs: [Span; N],
    /// Bit per `Known` attribute whose value holds references (needs unescaping).
    escaped: u8,
    /// Whether the tag declares any prefix (`xmlns:p`), which then needs a lookup.
    pub(crate) prefixed_decls: bool,
}

/// The top element's tag: every `Known` attribute.
pub(crate) type TopMeta = TagMeta<5>;
/// The first child's tag: only `xmlns`, which namespace resolution needs.
pub(crate) type ChildMeta = TagMeta<1>;

impl<const N: usize> TagMeta<N> {
    pub(crate) const EMPTY: Self = TagMeta {
        name: Span::ABSENT,
        attrs: [Span::ABSENT; N],
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
    pub(super) fn note(&mut self, name: &[u8], value: Span, escaped: bool) {
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
    /// An attribute of the current start tag was completely scanned.
    #[inline]
    pub(super) fn note_attr(&mut self, data: &[u8], name: Span, value: Span, escaped: bool) {
        match self.depth {
            0 if !self.expect_header => self.meta.top.note(name.of(data), value, escaped),
            1 if self.meta.child_count == 0 => self.meta.child.note(name.of(data), value, escaped),
            _ => {}
        }
    }

    /// The current start tag is complete; called before depth changes.
    #[inline]
    pub(super) fn note_name(&mut self) {
        match self.depth {
            0 if !self.expect_header => self.meta.top.name = self.name,
            1 if self.meta.child_count == 0 => self.meta.child.name = self.name,
            _ => {}
        }
    }
}
