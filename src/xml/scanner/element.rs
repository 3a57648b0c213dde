//! One-pass scanning of a whole top-level element that is completely buffered and
//! uses only what nearly every real stanza consists of: the tags the fast path
//! accepts (see `fast`), character data with predefined entities, at most
//! `FAST_DEPTH` levels. All progress lives in locals, so there is no per-tag dispatch
//! and no scanner state to update until the element is known to be complete.
//!
//! Like the per-tag fast path it never decides anything on its own: for an incomplete
//! or unusual element, including every error, it changes nothing (the element
//! metadata is reset) and the byte-level phases scan the element from its start.

use super::super::chars::{is, NAME_START_ASCII};
use super::super::limits::Limits;
use super::super::reference::predefined_len;
use super::super::runs::{text_run_at, valid_text_in};
use super::super::span::Span;
use super::content::ends_cdata_end;
use super::fast::{ascii_qname, repeats, span, Recorded};
use super::{ElementMeta, Phase, Scanner};

/// Deepest nesting the one-pass scan keeps track of; deeper elements take the
/// per-tag path.
const FAST_DEPTH: usize = 16;

impl Scanner {
    /// At the `<` of a top-level element at `self.pos`: scans the element through its
    /// end tag and returns its length, or returns `None` having changed nothing.
    #[inline]
    pub(super) fn fast_element(&mut self, data: &[u8], limits: &Limits) -> Option<usize> {
        debug_assert!(self.depth == 0 && !self.expect_header);
        let end = self.element_pass(data, limits);
        if end.is_none() {
            self.meta = ElementMeta::default();
        }
        end
    }

    fn element_pass(&mut self, data: &[u8], limits: &Limits) -> Option<usize> {
        // Names of the open elements.
        let mut stack = [Span::default(); FAST_DEPTH];
        let mut depth: usize = 0;
        let max_depth = limits.max_depth.min(FAST_DEPTH);
        let mut pos = self.pos;
        // Whether the element needs the namespace check, gathered in a register and
        // noted once the element is complete.
        let mut suspect = false;
        loop {
            // At a `<`.
            let tag = pos;
            let b = *data.get(tag + 1)?;
            if b == b'/' {
                let open = *stack.get(depth.checked_sub(1)?)?;
                let name_end = tag + 2 + open.end.saturating_sub(open.start) as usize;
                if !repeats(data, open, tag + 2) || data.get(name_end) != Some(&b'>') {
                    return None;
                }
                pos = name_end + 1;
                depth -= 1;
                match depth {
                    0 => {
                        self.meta.close_start = span(tag, tag).start;
                        self.note_suspect(suspect);
                        return Some(self.element_found(tag, pos));
                    }
                    1 => self.meta.child_ended(pos),
                    _ => {}
                }
            } else if is(b, NAME_START_ASCII) {
                if depth >= max_depth {
                    return None;
                }
                let (name_len, prefixed) = ascii_qname(data, tag + 1)?;
                let name_end = tag + 1 + name_len;
                let recorded = match depth {
                    0 => Recorded::Top,
                    1 if self.meta.child_count == 0 => Recorded::Child,
                    _ => Recorded::No,
                };
                let (end, empty, attrs_suspect) =
                    self.fast_attrs(data, name_end, recorded, limits)?;
                suspect |= prefixed | attrs_suspect;
                let name = span(tag + 1, name_end);
                match recorded {
                    Recorded::Top => {
                        self.meta.top.name = name;
                        self.meta.top.unprefixed = !prefixed;
                    }
                    Recorded::Child => {
                        self.meta.child.name = name;
                        self.meta.child.unprefixed = !prefixed;
                    }
                    Recorded::No => {}
                }
                pos = end;
                match (empty, depth) {
                    (true, 0) => {
                        self.meta.open_end = span(end, end).start;
                        self.meta.close_start = span(end, end).start;
                        self.note_suspect(suspect);
                        return Some(self.element_found(tag, end));
                    }
                    (true, 1) => {
                        self.meta.child_started(tag);
                        self.meta.child_ended(end);
                    }
                    (true, _) => {}
                    (false, _) => {
                        *stack.get_mut(depth)? = name;
                        depth += 1;
                        match depth {
                            1 => self.meta.open_end = span(end, end).start,
                            2 => self.meta.child_started(tag),
                            _ => {}
                        }
                    }
                }
            } else {
                return None;
            }
            pos = text_to_tag(data, pos)?;
        }
    }

    /// The element's end tag (starting at `tag`) ends at `end`: leave the scanner as
    /// the byte-level phases would.
    #[inline]
    fn element_found(&mut self, tag: usize, end: usize) -> usize {
        self.tag_start = tag;
        self.pos = end;
        self.phase = Phase::Text;
        end
    }
}

/// Skips character data from `pos` to the next `<`; `None` if it is not buffered or
/// the text holds anything but plain characters, predefined entities and `>` (outside
/// a `]]>`).
#[inline(always)]
fn text_to_tag(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        // Tags often follow tags directly.
        if data.get(pos) == Some(&b'<') {
            return Some(pos);
        }
        let run = text_run_at(data, pos);
        if run.non_ascii() {
            valid_text_in(data, pos + run.high.0, pos + run.high.1).then_some(())?;
        }
        pos += run.len;
        match *data.get(pos)? {
            b'<' => return Some(pos),
            b'&' => pos += 1 + predefined_len(data.get(pos + 1..)?)?,
            b'\t' | b'\n' | b'\r' => pos += 1,
            b'>' if !ends_cdata_end(data, pos) => pos += 1,
            _ => return None,
        }
    }
}
