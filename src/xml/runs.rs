//! Word-at-a-time (SWAR) skipping of plain character data and attribute values: eight
//! bytes per step instead of one, which is most of the framer's speed on text-heavy
//! stanzas. Also reports where the skipped bytes hold non-ASCII, so UTF-8 validation
//! covers only those words.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
/// Pads a short tail to a full word; plain in every context and ASCII.
const PAD: u8 = b'a';

/// High bit set in each byte of `w` equal to `b`; exact for the lowest such byte,
/// which is all callers use.
#[inline(always)]
fn eq(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x
}

/// High bit set in each byte of `w` below 0x20 (C0 controls, incl. tab/LF/CR);
/// exact for the lowest such byte.
#[inline(always)]
fn control(w: u64) -> u64 {
    w.wrapping_sub(LO * 0x20) & !w
}

#[inline(always)]
fn load(bytes: &[u8], at: usize) -> u64 {
    if let Some(word) = bytes
        .get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        return u64::from_le_bytes(word);
    }
    let mut word = [PAD; 8];
    for (dst, src) in word.iter_mut().zip(bytes.get(at..).unwrap_or(&[])) {
        *dst = *src;
    }
    u64::from_le_bytes(word)
}

/// A run of plain bytes: its length and where its non-ASCII bytes lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) len: usize,
    /// `high.0..high.1` covers every non-ASCII byte of the run, starting at a
    /// character boundary (everything before it is ASCII); empty if the run is ASCII.
    pub(crate) high: (usize, usize),
}

impl Run {
    pub(crate) fn non_ascii(&self) -> bool {
        self.high.0 < self.high.1
    }
}

/// The leading run of bytes for which `stops` flags nothing. Word granularity for
/// `high` keeps the hot loop branch-light; a multi-byte character never extends past
/// the last word holding high bytes, so validating `high` validates the run.
#[inline(always)]
fn scan(bytes: &[u8], stops: impl Fn(u64) -> u64) -> Run {
    let mut at = 0;
    let mut high = (usize::MAX, 0);
    while at < bytes.len() {
        let word = load(bytes, at);
        let hits = stops(word) & HI;
        let (plain, stop) = match hits {
            0 => (word, None),
            _ => {
                let k = (hits.trailing_zeros() / 8) as usize;
                (word & below(k), Some(at + k))
            }
        };
        if plain & HI != 0 {
            high = (high.0.min(at), at + 8);
        }
        if let Some(end) = stop {
            return finish(end.min(bytes.len()), high);
        }
        at += 8;
    }
    finish(bytes.len(), high)
}

#[inline(always)]
fn finish(len: usize, high: (usize, usize)) -> Run {
    let high = match high.0 {
        usize::MAX => (0, 0),
        start => (start, high.1.min(len)),
    };
    Run { len, high }
}

/// Mask of the lowest `k` bytes (k < 8).
#[inline(always)]
fn below(k: usize) -> u64 {
    (1u64 << (8 * k)).wrapping_sub(1)
}

/// Run of character data up to `<`, `&` or a C0 control (tab, LF and CR included:
/// callers step over those themselves).
#[inline]
pub(crate) fn text_run(bytes: &[u8]) -> Run {
    scan(bytes, |w| eq(w, b'<') | eq(w, b'&') | control(w))
}

/// Run of an attribute value up to its closing `quote`, `<`, `&` or a C0 control.
#[inline]
pub(crate) fn value_run(bytes: &[u8], quote: u8) -> Run {
    scan(bytes, |w| {
        eq(w, quote) | eq(w, b'<') | eq(w, b'&') | control(w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_text(bytes: &[u8]) -> (usize, bool) {
        let n = bytes
            .iter()
            .position(|&b| b == b'<' || b == b'&' || b < 0x20)
            .unwrap_or(bytes.len());
        (n, bytes[..n].iter().any(|&b| b >= 0x80))
    }

    fn text(bytes: &[u8]) -> (usize, bool) {
        let run = text_run(bytes);
        let high = &bytes[run.high.0..run.high.1];
        let outside = bytes[..run.len]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < run.high.0 || *i >= run.high.1);
        assert!(outside.clone().all(|(_, &b)| b < 0x80), "{bytes:?} {run:?}");
        assert_eq!(run.non_ascii(), high.iter().any(|&b| b >= 0x80));
        (run.len, run.non_ascii())
    }

    fn value(bytes: &[u8], quote: u8) -> (usize, bool) {
        let run = value_run(bytes, quote);
        (run.len, run.non_ascii())
    }

    #[test]
    fn matches_bytewise_definition() {
        let samples: &[&[u8]] = &[
            b"",
            b"a",
            b"hello world<",
            b"0123456789abcdef&x",
            "ünïcödé text here < x".as_bytes(),
            b"abc\x01def",
            b"tab\there",
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7<",
            b"1234567<",
            b"12345678<",
            b"123456789",
        ];
        for s in samples {
            assert_eq!(text(s), slow_text(s), "{s:?}");
        }
    }

    #[test]
    fn every_position_and_stop_byte() {
        for len in 0..20 {
            for stop in [b'<', b'&', 0u8, b'\n', 0x1f] {
                for at in 0..len {
                    let mut s = vec![b'x'; len];
                    s[at] = stop;
                    assert_eq!(text(&s), (at, false));
                }
            }
        }
    }

    #[test]
    fn value_stops_only_at_its_quote() {
        assert_eq!(value(b"a\"b'c", b'\''), (3, false));
        assert_eq!(value(b"a\"b'c", b'"'), (1, false));
        assert_eq!(value("é'".as_bytes(), b'\''), (2, true));
        assert_eq!(value(b"a>b&c", b'\''), (3, false));
        assert_eq!(value(b"0123456789<", b'\''), (10, false));
    }

    #[test]
    fn high_bytes_after_the_stop_are_not_reported() {
        assert_eq!(text("ab<é".as_bytes()), (2, false));
        assert_eq!(text("0123456789<é".as_bytes()), (10, false));
        let s = "0123456789abcdefé0123456789abcdef0123<".as_bytes();
        assert_eq!(text_run(s).high, (16, 24));
    }
}
