//! One-pass handling of a complete, ordinary tag: ASCII names, `name='value'`
//! attributes (predefined entities allowed), no whitespace around `=`, within all
//! limits. This is
//! what nearly every real stanza consists of, and handling it without the per-phase
//! dispatch roughly doubles throughput.
//!
//! The fast path never decides anything on its own: when a tag is incomplete or
//! unusual in any way (including every error) it changes nothing and the byte-level
//! phases take over from the `<`, so split invariance and error reporting rest on those
//! phases alone.

use super::super::chars::{self, is, NAME_ASCII, NAME_START_ASCII, WS};
use super::super::limits::Limits;
use super::super::reference::predefined_len;
use super::super::runs::value_run;
use super::super::span::Span;
use super::{Scanner, Step};

impl Scanner {
    /// Consumes the complete tag whose `<` is at `self.pos`, or returns `None` having
    /// changed nothing.
    pub(super) fn fast_tag(&mut self, data: &[u8], limits: &Limits) -> Option<Step> {
        if self.expect_header {
            return None;
        }
        let start = self.pos;
        let step = match *data.get(start + 1)? {
            b'/' => self.fast_end_tag(data, start),
            b if is(b, NAME_START_ASCII) => self.fast_start_tag(data, start, limits),
            _ => None,
        };
        if step.is_none() {
            self.clear_attrs();
        }
        step
    }

    fn fast_end_tag(&mut self, data: &[u8], start: usize) -> Option<Step> {
        let name_start = start + 2;
        if !is(*data.get(name_start)?, NAME_START_ASCII) {
            return None;
        }
        let name_end = name_start + ascii_name(data, name_start + 1)? + 1;
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

    fn fast_start_tag(&mut self, data: &[u8], start: usize, limits: &Limits) -> Option<Step> {
        if self.depth >= limits.max_depth {
            return None;
        }
        let name_end = start + 2 + ascii_name(data, start + 2)?;
        let mut pos = name_end;
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
            pos = self.fast_attr(data, pos, limits)?;
            b = *data.get(pos)?;
        }
        let end = match b {
            b'>' => pos + 1,
            b'/' if *data.get(pos + 1)? == b'>' => pos + 2,
            _ => return None,
        };
        self.tag_start = start;
        self.name = Span::new(start + 1, name_end);
        self.pos = end;
        Some(match b {
            b'>' => self.start_tag_end(data),
            _ => self.empty_tag_end(),
        })
    }

    /// One `name='value'` attribute at `pos`; returns the offset past its closing quote.
    fn fast_attr(&mut self, data: &[u8], pos: usize, limits: &Limits) -> Option<usize> {
        let name_end = pos + 1 + ascii_name(data, pos + 1)?;
        if *data.get(name_end)? != b'=' {
            return None;
        }
        let quote = *data.get(name_end + 1)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value_start = name_end + 2;
        let (value_end, escaped) = fast_value(data, value_start, quote)?;
        let name = Span::new(pos, name_end);
        if self.attr_names.len() >= limits.max_attributes || self.is_duplicate_attr(data, name) {
            return None;
        }
        self.attr_names.push(name);
        let value = Span::new(value_start, value_end);
        // Idempotent: should the tag bail later, the byte-level phases note it again.
        self.note_attr(data, name, value, escaped);
        Some(value_end + 1)
    }
}

/// Scans a value up to its closing quote, stepping over predefined entities; returns
/// the quote's offset and whether entities were seen. `None` for anything unusual.
#[inline]
fn fast_value(data: &[u8], start: usize, quote: u8) -> Option<(usize, bool)> {
    let mut pos = start;
    let mut escaped = false;
    loop {
        let run = value_run(data.get(pos..)?, quote);
        let high = data.get(pos + run.high.0..pos + run.high.1)?;
        if run.non_ascii() && std::str::from_utf8(high).is_err() {
            return None;
        }
        pos += run.len;
        match *data.get(pos)? {
            b if b == quote => return Some((pos, escaped)),
            b'&' => {
                pos += 1 + predefined_len(data.get(pos + 1..)?)?;
                escaped = true;
            }
            _ => return None,
        }
    }
}

/// Length of the ASCII name characters at `pos`, if the name's end is buffered.
#[inline]
fn ascii_name(data: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos;
    while is(*data.get(end)?, NAME_ASCII) {
        end += 1;
    }
    Some(end - pos)
}
