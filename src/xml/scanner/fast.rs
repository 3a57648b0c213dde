//! One-pass handling of a complete, ordinary tag: ASCII names, `name='value'`
//! attributes (predefined entities allowed), no whitespace around `=`, within all
//! limits. This is what nearly every real stanza consists of, and handling it without
//! the per-phase dispatch roughly doubles throughput. Names and values are read 16
//! bytes at a time (see `runs`); an attribute that fits a block is read from one set
//! of masks.
//!
//! The fast path never decides anything on its own: when a tag is incomplete or
//! unusual in any way (including every error) it changes nothing and the byte-level
//! phases take over from the `<`, so split invariance and error reporting rest on those
//! phases alone.

use super::super::attrs::Attrs;
use super::super::chars::{self, is, NAME_START_ASCII, WS};
use super::super::limits::Limits;
use super::super::reference::predefined_len;
use super::super::runs::{attr_masks, block_masks, name_at, name_len_at, valid_text_in, WIDTH};
use super::super::span::Span;
use super::record::word_of;
use super::suspect::{attr_may_be_suspect, is_xml_lang, maybe_default_decl};
use super::{name_hash, same, Scanner, Step};

/// Which recorded tag (see `record`) the start tag being scanned is, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    No,
    Top,
    Child,
}

impl Scanner {
    /// Consumes the complete tag whose `<` is at `self.pos`, or returns `None` having
    /// changed nothing.
    #[inline]
    pub(super) fn fast_tag(&mut self, data: &[u8], limits: &Limits) -> Option<Step> {
        if self.expect_header {
            return None;
        }
        let start = self.pos;
        match *data.get(start + 1)? {
            b'/' => self.fast_end_tag(data, start),
            b if is(b, NAME_START_ASCII) => self.fast_start_tag(data, start, limits),
            _ => None,
        }
    }

    #[inline]
    fn fast_end_tag(&mut self, data: &[u8], start: usize) -> Option<Step> {
        let name_start = start + 2;
        // Usually the end tag repeats the open element's name, which was validated
        // when it was opened: compare instead of scanning.
        if let Some(&open) = self.stack.last() {
            let name_end = name_start + open.end.saturating_sub(open.start) as usize;
            if repeats(data, open, name_start) && data.get(name_end) == Some(&b'>') {
                self.tag_start = start;
                self.pos = name_end + 1;
                return Some(Ok(self.element_closed()));
            }
        }
        if !is(*data.get(name_start)?, NAME_START_ASCII) {
            return None;
        }
        let name_end = name_start + ascii_name(data, name_start)?;
        if *data.get(name_end)? != b'>' {
            return None;
        }
        // A mismatched or stray end tag fails in `end_tag_end` exactly as it would in
        // the byte-level phases.
        self.tag_start = start;
        self.name = Span::new(name_start, name_end);
        self.pos = name_end + 1;
        Some(self.end_tag_end(data))
    }

    #[inline]
    fn fast_start_tag(&mut self, data: &[u8], start: usize, limits: &Limits) -> Option<Step> {
        if self.depth >= limits.max_depth {
            return None;
        }
        // The first name byte was checked by the caller.
        let (name_len, prefixed) = ascii_qname(data, start + 1)?;
        let name_end = start + 1 + name_len;
        let recorded = match self.depth {
            0 => Recorded::Top,
            1 if self.meta.child_count == 0 => Recorded::Child,
            _ => Recorded::No,
        };
        let (end, empty, suspect) = self.fast_attrs(data, name_end, recorded, limits)?;
        self.note_suspect(prefixed | suspect);
        self.tag_start = start;
        self.name = span(start + 1, name_end);
        self.pos = end;
        Some(match empty {
            false => self.start_tag_end(data),
            true => self.empty_tag_end(),
        })
    }

    /// The rest of a start tag from just past its name: `name='value'` attributes
    /// (recorded if the tag is), then `>` or `/>`. Returns the offset past the tag,
    /// whether it was `/>` and whether an attribute may need the namespace check (see
    /// `suspect`; left to the caller, which may gather it over several tags in a
    /// register); `None` for anything unusual.
    #[inline(always)]
    pub(super) fn fast_attrs(
        &mut self,
        data: &[u8],
        mut pos: usize,
        recorded: Recorded,
        limits: &Limits,
    ) -> Option<(usize, bool, bool)> {
        let mut seen = Seen::new(limits, pos);
        // Accumulated in a register: per attribute, even a rarely taken call or a
        // store costs this loop several percent.
        let mut suspect = false;
        let mut b = *data.get(pos)?;
        while is(b, WS) {
            pos += 1;
            b = *data.get(pos)?;
            // Usually a single space separates attributes.
            if is(b, WS) {
                pos += chars::run(data.get(pos..)?, WS);
                b = *data.get(pos)?;
            }
            if !is(b, NAME_START_ASCII) {
                break;
            }
            let (attr_end, value_end, escaped) = fast_attr(data, pos, &mut suspect)?;
            let name = data.get(pos..attr_end)?;
            seen.insert(data, name, pos)?;
            // Idempotent: should the tag bail later, the byte-level phases note it again.
            let value = span(attr_end + 2, value_end);
            if recorded != Recorded::No {
                let word = name_word(data, pos, name);
                match recorded {
                    Recorded::Top => self.meta.top.note(name, word, value, escaped),
                    _ => self.meta.child.note(name, word, value, escaped),
                }
            }
            pos = value_end + 1;
            b = *data.get(pos)?;
        }
        match b {
            b'>' => Some((pos + 1, false, suspect)),
            b'/' if *data.get(pos + 1)? == b'>' => Some((pos + 2, true, suspect)),
            _ => None,
        }
    }
}

/// Duplicate detection for the attributes of the tag on the fast path: a Bloom-style
/// filter over their names (see `name_hash`), held in a register. Only a name that
/// hashes onto an occupied bit is compared, by re-reading the names before it.
struct Seen {
    filter: u64,
    count: usize,
    max: usize,
    /// Where the tag's attributes start.
    attrs: usize,
}

impl Seen {
    #[inline(always)]
    fn new(limits: &Limits, attrs: usize) -> Self {
        Seen {
            filter: 0,
            count: 0,
            max: limits.max_attributes,
            attrs,
        }
    }

    /// Records the attribute `name` starting at `at`; `None` (bail out) if it is a
    /// duplicate or one too many.
    #[inline(always)]
    fn insert(&mut self, data: &[u8], name: &[u8], at: usize) -> Option<()> {
        if self.count >= self.max {
            return None;
        }
        let bit = 1u64 << (name_hash(name) & 63);
        if self.filter & bit != 0 && self.seen_before(data, name, at) {
            return None;
        }
        self.filter |= bit;
        self.count += 1;
        Some(())
    }

    /// Whether an attribute before offset `at` is called `name`.
    #[cold]
    #[inline(never)]
    fn seen_before(&self, data: &[u8], name: &[u8], at: usize) -> bool {
        Attrs::new(data, self.attrs)
            .take_while(|attr| (attr.name.start as usize) < at)
            .any(|attr| same(attr.name.of(data), name))
    }
}

/// A span of the frame being scanned: frames are cut at `Limits::max_stanza_bytes`,
/// which is clamped to `u32`, so offsets always fit.
#[inline(always)]
pub(super) fn span(start: usize, end: usize) -> Span {
    debug_assert!(end <= u32::MAX as usize && start <= end);
    Span {
        start: start as u32,
        end: end as u32,
    }
}

/// `word_of(name)` for the name at `pos`, read as one word when the buffer allows
/// (there is always more after an attribute name).
#[inline(always)]
fn name_word(data: &[u8], pos: usize, name: &[u8]) -> u64 {
    match data
        .get(pos..pos + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        Some(word) if name.len() < 8 => u64::from_le_bytes(word) & ((1u64 << (8 * name.len())) - 1),
        _ => word_of(name),
    }
}

/// Whether the name `open` (of an element being closed) is repeated at `at`.
#[inline(always)]
pub(super) fn repeats(data: &[u8], open: Span, at: usize) -> bool {
    let len = open.end.saturating_sub(open.start) as usize;
    let word = |from: usize| {
        data.get(from..from + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_le_bytes)
    };
    match (len, word(open.start as usize), word(at)) {
        // Short names (nearly all): one masked word comparison.
        (1..=8, Some(a), Some(b)) => (a ^ b) & (u64::MAX >> (64 - 8 * len)) == 0,
        _ => data
            .get(at..at + len)
            .is_some_and(|name| same(open.of(data), name)),
    }
}

/// One `name='value'` attribute at `pos` (its first byte checked by the caller):
/// returns where the name ends, the offset of the closing quote and whether the value
/// holds entities, and sets `suspect` if the attribute may make its element need the
/// namespace check (see `suspect`); `None` for anything unusual.
#[inline(always)]
fn fast_attr(data: &[u8], pos: usize, suspect: &mut bool) -> Option<(usize, usize, bool)> {
    let Some(block) = data
        .get(pos..pos + WIDTH)
        .and_then(|w| <&[u8; WIDTH]>::try_from(w).ok())
    else {
        return attr_by_steps(data, pos, suspect);
    };
    // Usually name, `='`, and often the whole value are in this one block: read them
    // all from the same masks.
    let m = attr_masks(block);
    let mut name_len = (!m.name).trailing_zeros() as usize;
    if (m.eq >> name_len) & 1 == 0 {
        // Not `=` after the name mask's run: a prefixed name, whose colon stopped it,
        // a name too long for the block, or something unusual. Only here is it worth
        // looking, so unprefixed names pay nothing for prefixes.
        if block.get(name_len) != Some(&b':') {
            return match name_len + 1 >= WIDTH {
                true => attr_by_steps(data, pos, suspect),
                false => None,
            };
        }
        // The local part after the colon; a second colon stops it again.
        name_len += 1 + (!(m.name >> (name_len + 1))).trailing_zeros() as usize;
        *suspect |= !is_xml_lang(data, pos, name_len);
        if name_len + 1 < WIDTH && (m.eq >> name_len) & 1 == 0 {
            return None;
        }
    }
    let open = name_len + 1;
    if open >= WIDTH {
        return attr_by_steps(data, pos, suspect);
    }
    let (quote, quotes) = match ((m.apos >> open) & 1, (m.quot >> open) & 1) {
        (1, _) => (b'\'', m.apos),
        (_, 1) => (b'"', m.quot),
        _ => return None,
    };
    let value_start = pos + open + 1;
    // Bits of the block after the opening quote.
    let after = (u32::MAX << (open + 1)) & 0xffff;
    let stops = (quotes | m.special) & after;
    // Only values that end past this block or hold references can name a reserved
    // namespace (both are longer than a block), so only they are looked at for it.
    let mut long = |(end, escaped): (usize, bool)| {
        if name_len == b"xmlns".len() {
            *suspect |= maybe_default_decl(name_len, end - value_start, escaped);
        }
        (end, escaped)
    };
    let (value_end, escaped) = match stops {
        // The value goes on past this block.
        0 => long(fast_value(
            data,
            value_start,
            pos + WIDTH,
            quote,
            m.high & after,
        )?),
        _ => {
            let k = stops.trailing_zeros() as usize;
            let high = m.high & after & ((1 << k) - 1);
            match (quotes >> k) & 1 {
                1 => {
                    if high != 0 {
                        valid_text_in(data, value_start, pos + k).then_some(())?;
                    }
                    (pos + k, false)
                }
                // An entity (or something unusual): the value loop takes it from there.
                _ => long(fast_value(data, value_start, pos + k, quote, high)?),
            }
        }
    };
    Some((pos + name_len, value_end, escaped))
}

/// `fast_attr` near the end of the buffered bytes, or for long names.
#[cold]
#[inline(never)]
fn attr_by_steps(data: &[u8], pos: usize, suspect: &mut bool) -> Option<(usize, usize, bool)> {
    let (name_len, colon) = ascii_qname(data, pos)?;
    let name_end = pos + name_len;
    let quote = *data.get(name_end + 1)?;
    if *data.get(name_end)? != b'=' || (quote != b'\'' && quote != b'"') {
        return None;
    }
    let value_start = name_end + 2;
    let (value_end, escaped) = fast_value(data, value_start, value_start, quote, 0)?;
    let value_len = value_end - value_start;
    *suspect |= attr_may_be_suspect(data, pos, name_len, colon, value_len, escaped);
    Some((name_end, value_end, escaped))
}

/// Scans the value starting at `start` from `from` (everything before it is plain
/// and its non-ASCII bytes are flagged in `high`) up to its closing quote, stepping
/// over predefined entities; returns the quote's offset and whether entities were
/// seen. `None` for anything unusual.
#[inline(always)]
fn fast_value(
    data: &[u8],
    start: usize,
    from: usize,
    quote: u8,
    mut high: u32,
) -> Option<(usize, bool)> {
    let mut pos = from;
    let mut escaped = false;
    loop {
        let (stops, highs) = block_masks(data, pos, quote, b'<', b'&');
        if stops == 0 {
            // The value goes on past this block (padding holds no stops).
            high |= highs;
            pos += WIDTH;
            if pos >= data.len() {
                return None;
            }
            continue;
        }
        let k = stops.trailing_zeros();
        high |= highs & ((1 << k) - 1);
        pos += k as usize;
        match *data.get(pos)? {
            b if b == quote => break,
            b'&' => {
                pos += 1 + predefined_len(data.get(pos + 1..)?)?;
                escaped = true;
            }
            _ => return None,
        }
    }
    // Non-ASCII values are rare: validate the whole value then.
    if high != 0 {
        valid_text_in(data, start, pos).then_some(())?;
    }
    Some((pos, escaped))
}

/// Length of the ASCII name characters at `pos`, if the name's end is buffered.
#[inline(always)]
pub(super) fn ascii_name(data: &[u8], pos: usize) -> Option<usize> {
    let len = name_len_at(data, pos);
    (pos + len < data.len()).then_some(len)
}

/// `ascii_name`, and whether the name has a prefix.
#[inline(always)]
pub(super) fn ascii_qname(data: &[u8], pos: usize) -> Option<(usize, bool)> {
    let (len, colon) = name_at(data, pos);
    (pos + len < data.len()).then_some((len, colon))
}
