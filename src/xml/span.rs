//! Compact byte ranges into a frame's bytes; `u32` halves the size of the cached heads
//! (frames are bounded by `Limits::max_stanza_bytes`, which the framer clamps to `u32`).

use std::ops::Range;

/// A half-open byte range `start..end` inside one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    /// Marks a missing value where `Option<Span>` would cost 50% more space.
    pub(crate) const ABSENT: Span = Span {
        start: u32::MAX,
        end: 0,
    };

    pub(crate) fn is_absent(self) -> bool {
        self.start == u32::MAX
    }

    /// Builds a span from `usize` offsets; frames never exceed `u32::MAX` bytes.
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span {
            start: clamp(start),
            end: clamp(end),
        }
    }

    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    pub(crate) fn is_empty(self) -> bool {
        self.start >= self.end
    }

    /// The spanned bytes, or an empty slice if the span does not fit `bytes`.
    pub(crate) fn of(self, bytes: &[u8]) -> &[u8] {
        bytes.get(self.range()).unwrap_or(&[])
    }

    /// The spanned text; empty if out of range or not UTF-8 (never the case for
    /// frames, which are validated before heads are parsed).
    #[inline]
    pub(crate) fn str_of(self, bytes: &[u8]) -> &str {
        let raw = self.of(bytes);
        ascii_str(raw)
            .or_else(|| std::str::from_utf8(raw).ok())
            .unwrap_or("")
    }
}

/// `raw` as text if it is all ASCII. Names and routing attributes nearly always are,
/// and checking that word at a time costs a fraction of full UTF-8 validation, which
/// dominates reading a short attribute otherwise.
#[inline]
fn ascii_str(raw: &[u8]) -> Option<&str> {
    if !raw.is_ascii() {
        return None;
    }
    // SAFETY: every byte of `raw` was just checked to be ASCII, and a sequence of
    // ASCII bytes is valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(raw) })
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_spans() {
        let bytes = "to='juliet@example.com' n='caf\u{e9}' bad='\u{ff}'".as_bytes();
        assert_eq!(Span::new(4, 22).str_of(bytes), "juliet@example.com");
        assert_eq!(Span::new(27, 32).str_of(bytes), "caf\u{e9}");
        // Half a character, or out of range: empty, never a panic.
        assert_eq!(Span::new(27, 31).str_of(bytes), "");
        assert_eq!(Span::new(40, 99).str_of(bytes), "");
        assert_eq!(Span::ABSENT.str_of(bytes), "");
    }
}
