//! Word-at-a-time (SWAR) skipping of plain character data and attribute values: eight
//! bytes per step instead of one, which is most of the framer's speed on text-heavy
//! stanzas. Also reports whether the skipped bytes contained non-ASCII, so UTF-8
//! validation can be limited to frames (and offsets) that need it.

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

/// Length of the leading run of bytes for which `stops` flags nothing, and whether
/// that run contains a non-ASCII byte.
#[inline(always)]
fn scan(bytes: &[u8], stops: impl Fn(u64) -> u64) -> (usize, bool) {
    let mut at = 0;
    let mut high = 0;
    while at < bytes.len() {
        let word = load(bytes, at);
        let hits = stops(word) & HI;
        if hits != 0 {
            let k = (hits.trailing_zeros() / 8) as usize;
            high |= word & below(k);
            return ((at + k).min(bytes.len()), high & HI != 0);
        }
        high |= word;
        at += 8;
    }
    (bytes.len(), high & HI != 0)
}

/// Mask of the lowest `k` bytes (k < 8).
#[inline(always)]
fn below(k: usize) -> u64 {
    (1u64 << (8 * k)).wrapping_sub(1)
}

/// Run of character data up to `<`, `&` or a C0 control (tab, LF and CR included:
/// callers step over those themselves).
#[inline]
pub(crate) fn text_run(bytes: &[u8]) -> (usize, bool) {
    scan(bytes, |w| eq(w, b'<') | eq(w, b'&') | control(w))
}

/// Run of an attribute value up to its closing `quote`, `<`, `&` or a C0 control.
#[inline]
pub(crate) fn value_run(bytes: &[u8], quote: u8) -> (usize, bool) {
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
            assert_eq!(text_run(s), slow_text(s), "{s:?}");
        }
    }

    #[test]
    fn every_position_and_stop_byte() {
        for len in 0..20 {
            for stop in [b'<', b'&', 0u8, b'\n', 0x1f] {
                for at in 0..len {
                    let mut s = vec![b'x'; len];
                    s[at] = stop;
                    assert_eq!(text_run(&s), (at, false));
                }
            }
        }
    }

    #[test]
    fn value_stops_only_at_its_quote() {
        assert_eq!(value_run(b"a\"b'c", b'\''), (3, false));
        assert_eq!(value_run(b"a\"b'c", b'"'), (1, false));
        assert_eq!(value_run("é'".as_bytes(), b'\''), (2, true));
        assert_eq!(value_run(b"a>b&c", b'\''), (3, false));
        assert_eq!(value_run(b"0123456789<", b'\''), (10, false));
    }

    #[test]
    fn high_bytes_after_the_stop_are_not_reported() {
        assert_eq!(text_run("ab<é".as_bytes()), (2, false));
        assert_eq!(text_run("0123456789<é".as_bytes()), (10, false));
    }
}
