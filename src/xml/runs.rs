//! Block-at-a-time classification for the scanner: sixteen bytes per step (one SSE2
//! compare sequence on x86_64, a portable loop elsewhere) instead of one, for plain
//! character data, attribute values, names, whole `name='value'` attributes and UTF-8
//! checks. Runs also report where their non-ASCII bytes lie, so UTF-8 validation
//! covers only those.
//!
//! Every block function has a portable definition that the SSE2 version is tested
//! against. The SSE2 code is the only `unsafe` here: unaligned 16-byte loads from
//! `&[u8; 16]` and register arithmetic, with SSE2 guaranteed at compile time on
//! x86_64 (no runtime detection needed). Blocks are always read in place, never past
//! the end of a slice: near the end the last full block is read and its masks shifted.

use super::chars;

/// Bytes examined per step.
pub(crate) const WIDTH: usize = 16;
/// Pads a short tail to a full block; plain in every context and ASCII.
const PAD: u8 = b'a';

/// Bit masks over one block: `.0` flags bytes equal to `a`, `b` or `c` or below 0x20
/// (C0 controls, incl. tab/LF/CR), `.1` flags non-ASCII bytes.
#[inline(always)]
fn masks(block: &[u8; WIDTH], a: u8, b: u8, c: u8) -> (u32, u32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::masks(block, a, b, c)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        portable_masks(block, a, b, c)
    }
}

/// The definition of `masks`, and its implementation where SSE2 is unavailable.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn portable_masks(block: &[u8; WIDTH], a: u8, b: u8, c: u8) -> (u32, u32) {
    let (mut stops, mut high) = (0, 0);
    for (i, &x) in block.iter().enumerate() {
        let stop = x == a || x == b || x == c || x < 0x20;
        stops |= u32::from(stop) << i;
        high |= u32::from(x >= 0x80) << i;
    }
    (stops, high)
}

/// Bit masks over one block flagging ASCII name characters (`[A-Za-z0-9_.:-]`) and,
/// among them, colons.
#[inline(always)]
fn name_masks(block: &[u8; WIDTH]) -> (u32, u32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::name_masks(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        (portable_name_mask(block), portable_colon_mask(block))
    }
}

/// The colons of a block, where SSE2 is unavailable.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn portable_colon_mask(block: &[u8; WIDTH]) -> u32 {
    let mut colons = 0;
    for (i, &x) in block.iter().enumerate() {
        colons |= u32::from(x == b':') << i;
    }
    colons
}

/// The definition of `name_mask`, and its implementation where SSE2 is unavailable.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn portable_name_mask(block: &[u8; WIDTH]) -> u32 {
    let mut names = 0;
    for (i, &x) in block.iter().enumerate() {
        names |= u32::from(chars::is(x, chars::NAME_ASCII)) << i;
    }
    names
}

/// Bit masks over one block for UTF-8 checking: non-ASCII bytes, leads of two-byte
/// sequences (0xC2..=0xDF) and continuation bytes (0x80..=0xBF).
#[inline(always)]
fn utf8_masks(block: &[u8; WIDTH]) -> (u32, u32, u32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::utf8_masks(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        portable_utf8_masks(block)
    }
}

/// The definition of `utf8_masks`, and its implementation where SSE2 is unavailable.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn portable_utf8_masks(block: &[u8; WIDTH]) -> (u32, u32, u32) {
    let (mut high, mut lead2, mut cont) = (0, 0, 0);
    for (i, &x) in block.iter().enumerate() {
        high |= u32::from(x >= 0x80) << i;
        lead2 |= u32::from((0xc2..=0xdf).contains(&x)) << i;
        cont |= u32::from((0x80..=0xbf).contains(&x)) << i;
    }
    (high, lead2, cont)
}

/// Masks over one block for reading `name='value'` from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AttrMasks {
    /// ASCII name characters as in `name_mask`, but for the colon: a prefixed name
    /// (rare but for `xml:lang`) stops the run at its colon, so telling prefixed names
    /// apart costs unprefixed ones nothing.
    pub(crate) name: u32,
    pub(crate) eq: u32,
    pub(crate) apos: u32,
    pub(crate) quot: u32,
    /// What ends or interrupts a value besides its quote: `<`, `&`, C0 controls.
    pub(crate) special: u32,
    /// Non-ASCII bytes.
    pub(crate) high: u32,
}

/// `AttrMasks` of one block: everything an attribute of up to a block needs, from a
/// single load, so the steps of reading it do not wait on each other.
#[inline(always)]
pub(crate) fn attr_masks(block: &[u8; WIDTH]) -> AttrMasks {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        sse2::attr_masks(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        portable_attr_masks(block)
    }
}

/// The definition of `attr_masks`, and its implementation where SSE2 is unavailable.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn portable_attr_masks(block: &[u8; WIDTH]) -> AttrMasks {
    let (stops, high) = portable_masks(block, b'<', b'&', b'<');
    let bits = |byte: u8| {
        block
            .iter()
            .enumerate()
            .fold(0, |m, (i, &x)| m | u32::from(x == byte) << i)
    };
    AttrMasks {
        name: portable_name_mask(block) & !bits(b':'),
        eq: bits(b'='),
        apos: bits(b'\''),
        quot: bits(b'"'),
        special: stops,
        high,
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_sub_epi8,
    };

    use super::{AttrMasks, WIDTH};

    /// `name_mask` of a loaded block; without the colon unless `COLON`.
    #[inline(always)]
    fn names<const COLON: bool>(x: __m128i) -> __m128i {
        // SAFETY: SSE2 arithmetic on registers (statically enabled, see `masks`).
        unsafe {
            let set = |byte: u8| _mm_set1_epi8(byte as i8);
            // `v < n` (unsigned) exactly when min(v, n - 1) == v.
            let below = |v: __m128i, n: u8| _mm_cmpeq_epi8(_mm_min_epu8(v, set(n - 1)), v);
            // Setting bit 5 folds A-Z onto a-z and maps no other byte into a-z.
            let letter = below(_mm_sub_epi8(_mm_or_si128(x, set(0x20)), set(b'a')), 26);
            let digit = below(_mm_sub_epi8(x, set(b'0')), 10);
            let eq = |byte: u8| _mm_cmpeq_epi8(x, set(byte));
            let dot = match COLON {
                true => _mm_or_si128(eq(b'.'), eq(b':')),
                false => eq(b'.'),
            };
            let punct = _mm_or_si128(_mm_or_si128(eq(b'_'), eq(b'-')), dot);
            _mm_or_si128(_mm_or_si128(letter, digit), punct)
        }
    }

    #[inline(always)]
    pub(super) fn attr_masks(block: &[u8; WIDTH]) -> AttrMasks {
        // SAFETY: as in `masks`: SSE2 is statically enabled and the load reads exactly
        // the 16 bytes `block` borrows.
        unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let eq = |byte: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8));
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
            let special = _mm_or_si128(_mm_or_si128(eq(b'<'), eq(b'&')), control);
            let mask = |v: __m128i| _mm_movemask_epi8(v) as u32;
            AttrMasks {
                name: mask(names::<false>(x)),
                eq: mask(eq(b'=')),
                apos: mask(eq(b'\'')),
                quot: mask(eq(b'"')),
                special: mask(special),
                high: mask(x),
            }
        }
    }

    #[inline(always)]
    pub(super) fn utf8_masks(block: &[u8; WIDTH]) -> (u32, u32, u32) {
        // SAFETY: as in `masks`: SSE2 is statically enabled and the load reads exactly
        // the 16 bytes `block` borrows.
        unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            // Signed compares: 0x80..=0xBF are -128..=-65, 0xC2..=0xDF are -62..=-33.
            let cont = _mm_cmplt_epi8(x, _mm_set1_epi8(-64));
            let lead2 = _mm_and_si128(
                _mm_cmpgt_epi8(x, _mm_set1_epi8(-63)),
                _mm_cmplt_epi8(x, _mm_set1_epi8(-32)),
            );
            (
                _mm_movemask_epi8(x) as u32,
                _mm_movemask_epi8(lead2) as u32,
                _mm_movemask_epi8(cont) as u32,
            )
        }
    }

    #[inline(always)]
    pub(super) fn name_masks(block: &[u8; WIDTH]) -> (u32, u32) {
        // SAFETY: as in `masks`: SSE2 is statically enabled and the load reads exactly
        // the 16 bytes `block` borrows.
        unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let colons = _mm_cmpeq_epi8(x, _mm_set1_epi8(b':' as i8));
            (
                _mm_movemask_epi8(names::<true>(x)) as u32,
                _mm_movemask_epi8(colons) as u32,
            )
        }
    }

    #[inline(always)]
    pub(super) fn masks(block: &[u8; WIDTH], a: u8, b: u8, c: u8) -> (u32, u32) {
        // SAFETY: SSE2 is part of every x86_64 target (checked at compile time by the
        // `cfg` above), and the unaligned load reads exactly the 16 bytes `block`
        // borrows. Everything else is plain arithmetic on registers.
        unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let eq = |byte: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8));
            // x < 0x20 (unsigned) exactly when min(x, 0x1f) == x.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
            // Character data stops at `<` and `>` (0x3C, 0x3E): the only bytes that
            // equal `>` with bit 1 set, so one compare finds both. Text is most of a
            // stanza's bytes, and a third compare there costs the framer 2%.
            let pair = match (a, c) {
                (b'<', b'>') => {
                    _mm_cmpeq_epi8(_mm_or_si128(x, _mm_set1_epi8(0x02)), _mm_set1_epi8(0x3e))
                }
                _ => _mm_or_si128(eq(a), eq(c)),
            };
            let stops = _mm_or_si128(_mm_or_si128(pair, eq(b)), control);
            (_mm_movemask_epi8(stops) as u32, _mm_movemask_epi8(x) as u32)
        }
    }
}

/// Masks (as in `masks`) of the block of `bytes` at `at`, padded with plain ASCII if
/// fewer than `WIDTH` bytes remain.
#[inline(always)]
pub(crate) fn block_masks(bytes: &[u8], at: usize, a: u8, b: u8, c: u8) -> (u32, u32) {
    if let Some(block) = bytes
        .get(at..at + WIDTH)
        .and_then(|w| <&[u8; WIDTH]>::try_from(w).ok())
    {
        return masks(block, a, b, c);
    }
    match last_block(bytes, at) {
        // The bits past the end of `bytes` shift out as zeros: no stops, ASCII.
        Some((block, shift)) => {
            let (stops, high) = masks(block, a, b, c);
            (stops >> shift, high >> shift)
        }
        None => masks(&padded(bytes, at, PAD), a, b, c),
    }
}

/// For `at` within the last `WIDTH` bytes of `bytes`: the last block of `bytes` and
/// how far `at` is into it, so a block's masks shifted right by that many bits are
/// the masks of the bytes from `at` (with zeros past the end). Reading the bytes in
/// place beats copying them into a padded block.
#[inline(always)]
fn last_block(bytes: &[u8], at: usize) -> Option<(&[u8; WIDTH], usize)> {
    let base = bytes.len().checked_sub(WIDTH)?;
    let block = <&[u8; WIDTH]>::try_from(bytes.get(base..)?).ok()?;
    let shift = at.checked_sub(base)?;
    (shift < WIDTH).then_some((block, shift))
}

/// The fewer than `WIDTH` bytes of `bytes` from `at`, padded with `pad`: kept out of
/// line so the hot loops do not compute tail lengths they rarely need.
#[cold]
#[inline(never)]
fn padded(bytes: &[u8], at: usize, pad: u8) -> [u8; WIDTH] {
    let mut block = [pad; WIDTH];
    for (dst, src) in block.iter_mut().zip(bytes.get(at..).unwrap_or(&[])) {
        *dst = *src;
    }
    block
}

/// Length of the leading run of ASCII name characters (`[A-Za-z0-9_.:-]`); equal to
/// `bytes.len()` if the run reaches the end of `bytes`.
#[cfg(test)]
pub(crate) fn name_len(bytes: &[u8]) -> usize {
    name_len_at(bytes, 0)
}

/// `name_len(&bytes[start..])`; reading `bytes` as a whole lets the last block be read
/// in place.
#[inline]
pub(crate) fn name_len_at(bytes: &[u8], start: usize) -> usize {
    name_at(bytes, start).0
}

/// `name_len_at`, and whether those name characters include a colon (a prefix).
#[inline]
pub(crate) fn name_at(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut at = start;
    let mut colon = false;
    while at < bytes.len() {
        let (names, colons) = match bytes
            .get(at..at + WIDTH)
            .and_then(|w| <&[u8; WIDTH]>::try_from(w).ok())
        {
            Some(block) => name_masks(block),
            // Padding with a non-name byte ends the run at the end of `bytes`.
            None => match last_block(bytes, at) {
                // Zeros shifted in past the end count as non-name bytes.
                Some((block, shift)) => {
                    let (names, colons) = name_masks(block);
                    (names >> shift, colons >> shift)
                }
                None => name_masks(&padded(bytes, at, b' ')),
            },
        };
        let others = !names & 0xffff;
        if others != 0 {
            let k = others.trailing_zeros();
            colon |= colons & ((1 << k) - 1) != 0;
            return ((at + k as usize).min(bytes.len()) - start, colon);
        }
        colon |= colons != 0;
        at += WIDTH;
    }
    (bytes.len().saturating_sub(start), colon)
}

/// Whether `bytes` is valid UTF-8 without U+FFFE and U+FFFF (which XML's `Char`
/// production excludes; UTF-8 itself allows them). Text in stanzas is mostly ASCII
/// with some two-byte characters (Latin, Greek, Cyrillic, ...): those are checked a
/// block at a time without branching per byte; anything else (three- and four-byte
/// sequences, errors) is left to the standard validator, and only then, since both
/// noncharacters are three bytes long, are they looked for.
#[cfg(test)]
pub(crate) fn valid_text(bytes: &[u8]) -> bool {
    valid_text_in(bytes, 0, bytes.len())
}

/// `valid_text(&bytes[start..end])` (false if out of range), reading the blocks in
/// place: bytes past `end` are masked off rather than copied out.
#[inline]
pub(crate) fn valid_text_in(bytes: &[u8], start: usize, end: usize) -> bool {
    let Some(range) = bytes.get(start..end) else {
        return false;
    };
    // 1 if the previous block ended with the lead of a two-byte sequence.
    let mut carry = 0;
    let mut at = start;
    while at < end {
        let (high, lead2, cont) = match bytes
            .get(at..at + WIDTH)
            .and_then(|w| <&[u8; WIDTH]>::try_from(w).ok())
        {
            Some(block) => utf8_masks(block),
            None => match last_block(bytes, at) {
                Some((block, shift)) => {
                    let (high, lead2, cont) = utf8_masks(block);
                    (high >> shift, lead2 >> shift, cont >> shift)
                }
                None => utf8_masks(&padded(bytes, at, PAD)),
            },
        };
        // Bytes from `end` on do not belong to the range: count them as ASCII.
        let inside = match end - at {
            n if n < WIDTH => (1u32 << n) - 1,
            _ => 0xffff,
        };
        let (high, lead2, cont) = (high & inside, lead2 & inside, cont & inside);
        if high | carry != 0 {
            // Every non-ASCII byte is a two-byte lead or the continuation right after one.
            if high & !(lead2 | cont) != 0 || cont != ((lead2 << 1) | carry) & 0xffff {
                return valid_text_slowly(range);
            }
            carry = lead2 >> (WIDTH - 1);
        }
        at += WIDTH;
    }
    carry == 0
}

/// `valid_text` for what the block loop leaves to the standard validator; out of line
/// so the loop stays small where it is inlined.
#[cold]
#[inline(never)]
fn valid_text_slowly(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok() && !has_noncharacter(bytes)
}

/// Whether UTF-8 `bytes` hold U+FFFE or U+FFFF (`EF BF BE`, `EF BF BF`).
fn has_noncharacter(bytes: &[u8]) -> bool {
    memchr::memchr_iter(0xef, bytes)
        .any(|i| matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])))
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

/// The leading run of bytes that are neither `a`, `b`, `c` nor C0 controls. `high`
/// starts at the first non-ASCII byte and ends with the block of the last one (or the
/// run); a multi-byte character never extends past that, so validating `high`
/// validates the run.
#[inline(always)]
fn scan(bytes: &[u8], start: usize, a: u8, b: u8, c: u8) -> Run {
    let mut at = start;
    let mut high = (usize::MAX, 0);
    while at < bytes.len() {
        let (stops, mut highs) = block_masks(bytes, at, a, b, c);
        let rel = at - start;
        if stops != 0 {
            let k = stops.trailing_zeros() as usize;
            highs &= (1u32 << k).wrapping_sub(1);
            if highs != 0 {
                high = (
                    high.0.min(rel + highs.trailing_zeros() as usize),
                    rel + WIDTH,
                );
            }
            return finish((at + k).min(bytes.len()) - start, high);
        }
        if highs != 0 {
            high = (
                high.0.min(rel + highs.trailing_zeros() as usize),
                rel + WIDTH,
            );
        }
        at += WIDTH;
    }
    finish(bytes.len().saturating_sub(start), high)
}

#[inline(always)]
fn finish(len: usize, high: (usize, usize)) -> Run {
    let high = match high.0 {
        usize::MAX => (0, 0),
        start => (start, high.1.min(len)),
    };
    Run { len, high }
}

/// Run of character data up to `<`, `&`, `>` or a C0 control (tab, LF and CR
/// included: callers step over those themselves). `>` stops a run because `]]>` must
/// not occur in character data; it is rare in text, so callers check for it there.
#[cfg(test)]
pub(crate) fn text_run(bytes: &[u8]) -> Run {
    text_run_at(bytes, 0)
}

/// `text_run(&bytes[start..])`, reading `bytes` as a whole.
#[inline]
pub(crate) fn text_run_at(bytes: &[u8], start: usize) -> Run {
    scan(bytes, start, b'<', b'&', b'>')
}

/// Run of an attribute value up to its closing `quote`, `<`, `&` or a C0 control.
#[cfg(test)]
pub(crate) fn value_run(bytes: &[u8], quote: u8) -> Run {
    value_run_at(bytes, 0, quote)
}

/// `value_run(&bytes[start..], quote)`, reading `bytes` as a whole.
#[inline]
pub(crate) fn value_run_at(bytes: &[u8], start: usize, quote: u8) -> Run {
    scan(bytes, start, quote, b'<', b'&')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_text(bytes: &[u8]) -> (usize, bool) {
        let n = bytes
            .iter()
            .position(|&b| b == b'<' || b == b'&' || b == b'>' || b < 0x20)
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
            for stop in [b'<', b'&', b'>', 0u8, b'\n', 0x1f] {
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
    fn block_masks_match_their_definition() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let specials = [
            b'<', b'&', b'\'', b'"', 0, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'a',
        ];
        for _ in 0..20_000 {
            let mut block = [0u8; WIDTH];
            for byte in block.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *byte = match rng % 3 {
                    0 => specials[(rng >> 8) as usize % specials.len()],
                    _ => (rng >> 16) as u8,
                };
            }
            for (a, b, c) in [(b'<', b'&', b'>'), (b'\'', b'<', b'&'), (b'"', b'<', b'&')] {
                assert_eq!(masks(&block, a, b, c), portable_masks(&block, a, b, c));
            }
        }
    }

    #[test]
    fn text_check_agrees_with_std() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let pieces: &[&[u8]] = &[
            "\u{fffe}".as_bytes(),
            "\u{ffff}".as_bytes(),
            "\u{fffd}".as_bytes(),
            b"\xef\xbf",
            b"a",
            b"plain ascii ",
            "\u{e9}".as_bytes(),
            "\u{fc}ber ".as_bytes(),
            "\u{20ac}".as_bytes(),
            "\u{1f600}".as_bytes(),
            b"\xc3",
            b"\xa9",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xff",
            b"\xdf",
            b"\xc2\x80",
        ];
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut r = rng;
            for _ in 0..(r % 24) {
                r = r.rotate_left(5) ^ 0x9e37_79b9;
                bytes.extend_from_slice(pieces[(r % pieces.len() as u64) as usize]);
            }
            let want = std::str::from_utf8(&bytes)
                .is_ok_and(|text| !text.contains(['\u{fffe}', '\u{ffff}']));
            assert_eq!(valid_text(&bytes), want, "{bytes:?}");
        }
        for first in (0..256).step_by(WIDTH) {
            let block: [u8; WIDTH] = std::array::from_fn(|i| (first + i) as u8);
            assert_eq!(utf8_masks(&block), portable_utf8_masks(&block), "{first}");
        }
        // Ranges inside a larger buffer agree with their slices.
        let text = "ab\u{e9}cd\u{fc}\u{20ac}e\u{e9}\u{e9}xxxxxxxxxxxxxxxxx\u{e9}".as_bytes();
        for start in 0..=text.len() {
            for end in start..=text.len() {
                let want = std::str::from_utf8(&text[start..end]).is_ok();
                assert_eq!(valid_text_in(text, start, end), want, "{start}..{end}");
            }
        }
        assert!(!valid_text_in(text, 3, 2) && !valid_text_in(text, 0, 99));
        // A lead as the very last byte of a full block, with nothing after it.
        let mut bytes = vec![b'a'; 15];
        bytes.push(0xc3);
        assert!(!valid_text(&bytes));
        bytes.push(0xa9);
        assert!(valid_text(&bytes));
    }

    #[test]
    fn runs_from_an_offset_match_runs_of_the_rest() {
        let s =
            "<a b='v\u{e9}' c=\"x&amp;y\">text caf\u{e9} &lt; more</a>\tname.x:y-z_1 ".as_bytes();
        for start in 0..=s.len() {
            let rest = &s[start..];
            assert_eq!(text_run_at(s, start), text_run(rest), "{start}");
            assert_eq!(
                value_run_at(s, start, b'\''),
                value_run(rest, b'\''),
                "{start}"
            );
            assert_eq!(name_len_at(s, start), name_len(rest), "{start}");
        }
    }

    #[test]
    fn attr_masks_match_their_definition() {
        for first in (0..256).step_by(WIDTH) {
            let block: [u8; WIDTH] = std::array::from_fn(|i| (first + i) as u8);
            assert_eq!(attr_masks(&block), portable_attr_masks(&block), "{first}");
        }
        let block = *b"to='a\"b&<\x01\xc3x=abc";
        let m = attr_masks(&block);
        assert_eq!(m, portable_attr_masks(&block));
        assert_eq!(m.name & 0b111, 0b011);
        assert_eq!((m.eq, m.apos, m.quot), (1 << 2 | 1 << 12, 1 << 3, 1 << 5));
        assert_eq!(m.special, 1 << 7 | 1 << 8 | 1 << 9);
        assert_eq!(m.high, 1 << 10);
    }

    #[test]
    fn name_masks_match_their_definition() {
        for first in (0..256).step_by(WIDTH) {
            let block: [u8; WIDTH] = std::array::from_fn(|i| (first + i) as u8);
            let want = (portable_name_mask(&block), portable_colon_mask(&block));
            assert_eq!(name_masks(&block), want, "{first}");
        }
        for (name, len) in [
            ("", 0),
            ("to", 2),
            ("to='x'", 2),
            ("xml:lang ", 8),
            ("a-b_c.d:E9Z/>", 11),
            ("0123456789abcdefghij>", 20),
            ("0123456789abcdef", 16),
            ("0123456789abcdef:gh>", 19),
            ("caf\u{e9}", 3),
        ] {
            assert_eq!(name_len(name.as_bytes()), len, "{name}");
            let colon = name.as_bytes()[..len].contains(&b':');
            assert_eq!(name_at(name.as_bytes(), 0), (len, colon), "{name}");
        }
    }

    #[test]
    fn high_bytes_after_the_stop_are_not_reported() {
        assert_eq!(text("ab<é".as_bytes()), (2, false));
        assert_eq!(text("0123456789<é".as_bytes()), (10, false));
        let s = "0123456789abcdefé0123456789abcdef0123<".as_bytes();
        assert_eq!(text_run(s).high, (16, 32));
    }
}
