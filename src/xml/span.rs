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
        if ascii_span(bytes, self.start as usize, raw.len()) {
            // SAFETY: `ascii_span` checked that every byte of `raw`, which is
            // `bytes[start..start + raw.len()]`, is ASCII, and ASCII is valid UTF-8.
            return unsafe { std::str::from_utf8_unchecked(raw) };
        }
        std::str::from_utf8(raw).unwrap_or("")
    }
}

/// Whether the `len` bytes of `bytes` at `start` are all ASCII (false if out of range).
/// Names and routing attributes nearly always are: checking that a few overlapping
/// words at a time, branching only on the length class, costs a fraction of UTF-8
/// validation, which would dominate reading a short attribute otherwise.
#[inline]
fn ascii_span(bytes: &[u8], start: usize, len: usize) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    let word = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    let end = start + len;
    let high = match len {
        0 => Some(0),
        // The word may run past the span (not past `bytes`): mask what follows.
        1..=7 => word(start).map(|w| w & (u64::MAX >> (64 - 8 * len))),
        8..=16 => word(start).zip(word(end - 8)).map(|(a, b)| a | b),
        17..=32 => word(start)
            .zip(word(start + 8))
            .zip(word(end - 16).zip(word(end - 8)))
            .map(|((a, b), (c, d))| a | b | c | d),
        _ => None,
    };
    match high {
        Some(high) => high & HI == 0,
        None => bytes.get(start..end).is_some_and(<[u8]>::is_ascii),
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_spans_of_every_length_and_position() {
        for len in 0..48 {
            for pad in [0, 3, 9] {
                let mut bytes = vec![b'x'; pad + len + pad];
                assert!(ascii_span(&bytes, pad, len), "{len} {pad}");
                for at in 0..len {
                    bytes[pad + at] = 0xc3;
                    assert!(!ascii_span(&bytes, pad, len), "{len} {pad} {at}");
                    bytes[pad + at] = b'x';
                }
                // Non-ASCII just outside the span does not count.
                if pad > 0 {
                    bytes[pad - 1] = 0xff;
                    bytes[pad + len] = 0xff;
                    assert!(ascii_span(&bytes, pad, len), "{len} {pad}");
                }
            }
        }
        assert!(!ascii_span(b"abc", 2, 5));
    }

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
