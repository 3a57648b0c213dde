//! The resumable tokenizer behind the framer: a byte-level state machine over the
//! buffered bytes of the current frame that finds where the frame ends and enforces
//! well-formedness, RFC 6120 restrictions and limits on the way.
//!
//! All progress lives in [`Scanner`], so bytes are examined once no matter how the
//! input is split across reads: a new read resumes in the middle of a name, an
//! attribute value, a CDATA section or a character reference. Errors and frame ends
//! therefore depend only on the bytes, never on where the reads happened to stop.
//!
//! Submodules: `content` (text, CDATA, references), `markup` (the byte-level tag
//! phases), `fast` (one-pass handling of complete, ordinary tags), `element` (one-pass
//! handling of a complete, ordinary top-level element, tried first at every frame
//! start; the per-tag paths take over whenever it declines), `record` (what is kept of
//! the top element and first child), `suspect` (whether an element needs the
//! namespace check).

mod content;
mod element;
mod fast;
mod markup;
mod record;
mod suspect;

pub(crate) use record::{ChildMeta, Known, TagMeta, TopMeta};

use super::chars::{self, is, WS};
use super::error::Fault;
use super::limits::Limits;
use super::reference::Reference;
use super::runs::{valid_text_in, Run};
use super::span::Span;

/// Where the state machine stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// At the start of a frame, outside any element.
    Top,
    /// Between the XML declaration and the stream open tag.
    HeaderGap,
    /// Character data inside a top-level element.
    Text,
    /// Just after `<`.
    TagOpen,
    /// After `<!`, with this many bytes of `[CDATA[` matched.
    Bang(u8),
    /// Inside CDATA, after this many consecutive `]`.
    Cdata(u8),
    /// After `<?`, with this many bytes of `xml` matched.
    Pi(u8),
    /// Inside the XML declaration; `true` if the previous byte was `?`.
    Decl(bool),
    StartName,
    /// Inside a start tag between attributes; `true` once whitespace was seen (XML
    /// requires it between attributes).
    AttrSpace(bool),
    AttrName,
    AfterAttrName,
    BeforeValue,
    /// Inside an attribute value delimited by this quote byte.
    Value(u8),
    /// After the `/` of `/>`.
    EmptyClose,
    EndNameStart,
    EndName,
    EndSpace,
    /// Inside a reference; returns to `Text` or `Value(quote)` afterwards.
    Ref,
}

/// Positions the framer learns for free while scanning a top-level element, so head
/// parsing never has to rescan the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ElementMeta {
    /// End of the open tag (one past its `>`).
    pub(crate) open_end: u32,
    /// Start of the close tag (equals `open_end` for `<a/>`).
    pub(crate) close_start: u32,
    pub(crate) child_count: u32,
    /// The whole first child element; empty if there is none.
    pub(crate) first_child: Span,
    pub(crate) top: TopMeta,
    pub(crate) child: ChildMeta,
}

impl Default for ElementMeta {
    fn default() -> Self {
        ElementMeta {
            open_end: 0,
            close_start: 0,
            child_count: 0,
            first_child: Span::default(),
            top: TopMeta::EMPTY,
            child: ChildMeta::EMPTY,
        }
    }
}

impl ElementMeta {
    /// A direct child of the top element starts at `tag`.
    #[inline]
    fn child_started(&mut self, tag: usize) {
        self.child_count += 1;
        if self.child_count == 1 {
            self.first_child = Span::new(tag, tag);
        }
    }

    /// A direct child of the top element ends at `end`.
    #[inline]
    fn child_ended(&mut self, end: usize) {
        if self.child_count == 1 && self.first_child.is_empty() {
            self.first_child.end = offset(end);
        }
    }
}

/// A scan result: either more bytes are needed or a frame of `len` bytes is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    NeedMore,
    Whitespace(usize),
    /// See `Scanner::header_open_start` for where the open tag starts.
    Header(usize),
    /// See `Scanner::element_meta` for what was learned.
    Element(usize),
    End(usize),
}

/// `Ok(None)`: keep going in the (possibly changed) phase. Small enough to be
/// returned in registers, which matters: it is returned after every tag.
type Step = Result<Option<Scan>, Fault>;

const _: () = assert!(std::mem::size_of::<Step>() <= 16);

/// Resumable scan state for one stream.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Next byte to examine, relative to the frame start (the buffer start).
    pos: usize,
    phase: Phase,
    depth: usize,
    /// Names of the open elements; reused across frames so it stops allocating.
    stack: Vec<Span>,
    /// Attribute names of the current start tag, for duplicate detection.
    attr_names: Vec<Span>,
    tag_start: usize,
    name_start: usize,
    /// The current element or end-tag name.
    name: Span,
    reference: Reference,
    /// Phase to return to after a reference.
    ref_return: Phase,
    /// Start of the attribute value being scanned by the byte-level phases.
    value_start: usize,
    /// Whether that value holds a reference.
    value_escaped: bool,
    meta: ElementMeta,
    /// Start of a run holding non-ASCII bytes not yet validated as UTF-8
    /// (`usize::MAX`: none). Runs are validated when they end, at an ASCII byte.
    utf8_pending: usize,
    /// Bloom-style filter over the current tag's attribute names: the quadratic
    /// duplicate check only runs when a name hashes onto an occupied bit.
    attr_filter: u64,
    expect_header: bool,
    /// Whether the current element needs the namespace check (see `suspect`).
    ns_suspect: bool,
    /// Qualified name of the stream element, which `End` must match.
    stream_name: Vec<u8>,
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Scanner {
            pos: 0,
            phase: Phase::Top,
            depth: 0,
            stack: Vec::new(),
            attr_names: Vec::new(),
            tag_start: 0,
            name_start: 0,
            name: Span::default(),
            reference: Reference::default(),
            ref_return: Phase::Text,
            value_start: 0,
            value_escaped: false,
            meta: ElementMeta::default(),
            utf8_pending: usize::MAX,
            attr_filter: 0,
            expect_header: true,
            ns_suspect: false,
            stream_name: Vec::new(),
        }
    }

    /// A scanner for bare elements, without a stream header (see `Stanza::parse`).
    pub(crate) fn for_elements() -> Self {
        Scanner {
            expect_header: false,
            ..Scanner::new()
        }
    }

    /// Expect a (new) stream header; forget any partially scanned frame.
    pub(crate) fn restart(&mut self) {
        self.expect_header = true;
        self.depth = 0;
        self.stack.clear();
        self.next_frame();
    }

    /// The previous frame was split off the buffer; the next one starts at offset 0.
    pub(crate) fn next_frame(&mut self) {
        self.pos = 0;
        self.phase = Phase::Top;
        self.clear_attrs();
        self.meta = ElementMeta::default();
        self.utf8_pending = usize::MAX;
        self.attr_filter = 0;
        self.ns_suspect = false;
    }

    /// True until the stream header has been scanned.
    pub(crate) fn expects_header(&self) -> bool {
        self.expect_header
    }

    /// Scans `buf` (the current frame's bytes so far) from where the last call stopped.
    /// Only the first `max_stanza_bytes` are looked at: a frame not complete by then is
    /// a policy violation as soon as more bytes are buffered.
    pub(crate) fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Scan, Fault> {
        let window = buf.len().min(limits.max_stanza_bytes);
        let data = buf.get(..window).unwrap_or(buf);
        match self.run(data, limits)? {
            Scan::NeedMore if buf.len() > window => Err(Fault::TooLarge),
            scan => Ok(scan),
        }
    }

    fn run(&mut self, data: &[u8], limits: &Limits) -> Result<Scan, Fault> {
        loop {
            let step = match self.phase {
                Phase::Text => self.text(data, limits),
                Phase::TagOpen => self.tag_open(data, limits),
                Phase::StartName => self.start_name(data),
                Phase::AttrSpace(ws) => self.attr_space(data, ws, limits),
                Phase::AttrName => self.attr_name(data),
                Phase::AfterAttrName => self.after_attr_name(data),
                Phase::BeforeValue => self.before_value(data),
                Phase::Value(quote) => self.value(data, quote),
                Phase::EmptyClose => self.empty_close(data),
                Phase::EndNameStart => self.end_name_start(data),
                Phase::EndName => self.end_name(data),
                Phase::EndSpace => self.end_space(data),
                Phase::Ref => self.reference(data),
                Phase::Cdata(brackets) => self.cdata(data, brackets),
                Phase::Bang(matched) => self.bang(data, matched),
                Phase::Top => self.top(data, limits),
                Phase::HeaderGap => self.header_gap(data),
                Phase::Pi(matched) => self.pi(data, matched),
                Phase::Decl(question) => self.decl(data, question),
            };
            if let Some(scan) = step? {
                return Ok(scan);
            }
        }
    }

    fn rest<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        data.get(self.pos..).unwrap_or(&[])
    }

    /// Advances over bytes of `class`; returns the first other byte, if buffered.
    fn skip(&mut self, data: &[u8], class: u8) -> Option<u8> {
        let rest = self.rest(data);
        let n = chars::run(rest, class);
        self.pos += n;
        rest.get(n).copied()
    }

    /// A run starting at `pos` holds non-ASCII bytes; validate it when it ends.
    fn note_non_ascii(&mut self, pos: usize) {
        self.utf8_pending = self.utf8_pending.min(pos);
    }

    /// UTF-8 bookkeeping for a text or value run starting at `self.pos` (`rest` is
    /// `data` from there): a run that ends inside `rest` ends at an ASCII byte and is
    /// validated now, together with any pending part from before a read boundary; a
    /// run cut off by the end of the buffered bytes stays pending.
    #[inline]
    fn run_utf8(&mut self, data: &[u8], rest: &[u8], run: Run) -> Result<(), Fault> {
        let ended = run.len < rest.len();
        if run.non_ascii() {
            if ended && self.utf8_pending == usize::MAX {
                let (start, end) = (self.pos + run.high.0, self.pos + run.high.1);
                return match valid_text_in(data, start, end) {
                    true => Ok(()),
                    false => Err(Fault::InvalidText),
                };
            }
            self.note_non_ascii(self.pos + run.high.0);
        }
        match ended {
            true => self.check_utf8(data, self.pos + run.len),
            false => Ok(()),
        }
    }

    /// The pending non-ASCII run ends at `end` (an ASCII byte): validate it now.
    #[inline]
    fn check_utf8(&mut self, data: &[u8], end: usize) -> Result<(), Fault> {
        if self.utf8_pending == usize::MAX {
            return Ok(());
        }
        let start = self.utf8_pending;
        self.utf8_pending = usize::MAX;
        match valid_text_in(data, start, end) {
            true => Ok(()),
            false => Err(Fault::InvalidText),
        }
    }

    /// Records an attribute name of the current tag; `Some(true)` if it duplicates an
    /// earlier one.
    #[inline(always)]
    fn is_duplicate_attr(&mut self, data: &[u8], name: Span) -> bool {
        let bytes = name.of(data);
        let bit = 1u64 << (name_hash(bytes) & 63);
        let maybe = self.attr_filter & bit != 0;
        self.attr_filter |= bit;
        maybe
            && self
                .attr_names
                .iter()
                .any(|seen| same(seen.of(data), bytes))
    }

    /// Forgets the attributes of the tag just finished (or abandoned).
    #[inline]
    fn clear_attrs(&mut self) {
        self.attr_names.clear();
        self.attr_filter = 0;
    }

    fn top(&mut self, data: &[u8], limits: &Limits) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        if is(b, WS) {
            let n = self.pos + chars::run(self.rest(data), WS);
            return Ok(Some(Scan::Whitespace(n)));
        }
        if b != b'<' {
            return Err(Fault::TextOutsideStanza);
        }
        if !self.expect_header {
            if let Some(len) = self.fast_element(data, limits) {
                return Ok(Some(self.element_done_at(len)));
            }
        }
        self.markup(data, limits)
    }

    fn header_gap(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'<') => {
                self.open_tag();
                Ok(None)
            }
            Some(_) => Err(Fault::TextBeforeHeader),
        }
    }

    /// The `>` of a start tag was consumed.
    #[inline(always)]
    fn start_tag_end(&mut self, data: &[u8]) -> Step {
        self.clear_attrs();
        self.note_name();
        if self.expect_header && self.depth == 0 {
            self.stream_name.clear();
            self.stream_name.extend_from_slice(self.name.of(data));
            self.expect_header = false;
            return Ok(Some(Scan::Header(self.pos)));
        }
        self.depth += 1;
        self.stack.push(self.name);
        match self.depth {
            1 => self.meta.open_end = offset(self.pos),
            2 => self.child_started(),
            _ => {}
        }
        self.phase = Phase::Text;
        Ok(None)
    }

    #[inline]
    fn child_started(&mut self) {
        self.meta.child_started(self.tag_start);
    }

    /// The `>` of `/>` was consumed.
    #[inline(always)]
    fn empty_tag_end(&mut self) -> Step {
        self.clear_attrs();
        self.note_name();
        match self.depth {
            0 if self.expect_header => Err(Fault::SelfClosingHeader),
            0 => {
                self.meta.open_end = offset(self.pos);
                self.meta.close_start = offset(self.pos);
                Ok(Some(self.element_done()))
            }
            depth => {
                if depth == 1 {
                    self.child_started();
                    self.child_ended();
                }
                self.phase = Phase::Text;
                Ok(None)
            }
        }
    }

    #[inline]
    fn child_ended(&mut self) {
        self.meta.child_ended(self.pos);
    }

    /// The `>` of an end tag was consumed.
    #[inline(always)]
    fn end_tag_end(&mut self, data: &[u8]) -> Step {
        let name = self.name.of(data);
        if self.depth == 0 {
            return match !self.expect_header && same(name, &self.stream_name) {
                true => Ok(Some(Scan::End(self.pos))),
                false => Err(Fault::StrayEndTag),
            };
        }
        let open = self.stack.last().copied().unwrap_or_default();
        if !same(open.of(data), name) {
            return Err(Fault::MismatchedEndTag);
        }
        Ok(self.element_closed())
    }

    /// The end tag of the innermost open element was consumed (its name matched).
    #[inline(always)]
    fn element_closed(&mut self) -> Option<Scan> {
        self.stack.pop();
        self.depth = self.depth.saturating_sub(1);
        self.phase = Phase::Text;
        match self.depth {
            0 => {
                self.meta.close_start = offset(self.tag_start);
                Some(self.element_done())
            }
            1 => {
                self.child_ended();
                None
            }
            _ => None,
        }
    }

    #[inline]
    fn element_done_at(&self, len: usize) -> Scan {
        debug_assert_eq!(self.pos, len);
        self.element_done()
    }

    #[inline]
    fn element_done(&self) -> Scan {
        debug_assert_eq!(
            self.utf8_pending,
            usize::MAX,
            "unvalidated run at frame end"
        );
        Scan::Element(self.pos)
    }

    /// What was learned about the element just completed (valid until `next_frame`);
    /// kept out of `Scan` so the hot loop moves small values.
    pub(crate) fn element_meta(&self) -> &ElementMeta {
        &self.meta
    }

    /// Where the stream open tag of the header just completed starts (after any XML
    /// declaration).
    pub(crate) fn header_open_start(&self) -> usize {
        self.tag_start
    }
}

/// Spreads typical attribute names (`to`, `from`, `type`, `id`, `xmlns`, `xml:lang`)
/// over distinct filter bits.
#[inline]
fn name_hash(name: &[u8]) -> u32 {
    let first = name.first().copied().unwrap_or(0) as u32;
    let last = name.last().copied().unwrap_or(0) as u32;
    (name.len() as u32).wrapping_mul(13) ^ first.wrapping_mul(5) ^ last
}

/// Byte-slice equality without a `memcmp` call: names are a few bytes long.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn offset(pos: usize) -> u32 {
    u32::try_from(pos).unwrap_or(u32::MAX)
}

fn need_more() -> Step {
    Ok(Some(Scan::NeedMore))
}
