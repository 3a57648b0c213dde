//! The resumable tokenizer behind the framer: a byte-level state machine over the
//! buffered bytes of the current frame that finds where the frame ends and enforces
//! well-formedness, RFC 6120 restrictions and limits on the way.
//!
//! All progress lives in [`Scanner`], so bytes are examined exactly once no matter how
//! the input is split across reads: a new read resumes in the middle of a name, an
//! attribute value, a CDATA section or a character reference. Errors and frame ends
//! therefore depend only on the bytes, never on where the reads happened to stop.

use super::chars::{self, is, CDATA, NAME, NAME_START, TEXT, VALUE, WS};
use super::error::{not_well_formed, policy, restricted, FrameError};
use super::limits::Limits;
use super::reference::Reference;
use super::span::Span;

const CDATA_OPEN: &[u8] = b"[CDATA[";

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ElementMeta {
    /// End of the open tag (one past its `>`).
    pub(crate) open_end: u32,
    /// Start of the close tag (equals `open_end` for `<a/>`).
    pub(crate) close_start: u32,
    pub(crate) child_count: u32,
    /// The whole first child element; empty if there is none.
    pub(crate) first_child: Span,
}

/// A scan result: either more bytes are needed or a frame of `len` bytes is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    NeedMore,
    Whitespace(usize),
    /// `open_start`: where the stream open tag starts (after any XML declaration).
    Header {
        len: usize,
        open_start: usize,
    },
    Element {
        len: usize,
        meta: ElementMeta,
    },
    End(usize),
}

/// `Ok(None)`: keep going in the (possibly changed) phase.
type Step = Result<Option<Scan>, FrameError>;

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
    meta: ElementMeta,
    expect_header: bool,
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
            meta: ElementMeta::default(),
            expect_header: true,
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
        self.attr_names.clear();
        self.meta = ElementMeta::default();
    }

    /// True until the stream header has been scanned.
    pub(crate) fn expects_header(&self) -> bool {
        self.expect_header
    }

    /// Scans `buf` (the current frame's bytes so far) from where the last call stopped.
    pub(crate) fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Scan, FrameError> {
        let window = buf.len().min(limits.max_stanza_bytes);
        let data = buf.get(..window).unwrap_or(buf);
        match self.run(data, limits)? {
            Scan::NeedMore if buf.len() > window => {
                Err(policy("element exceeds the maximum stanza size"))
            }
            scan => Ok(scan),
        }
    }

    fn run(&mut self, data: &[u8], limits: &Limits) -> Result<Scan, FrameError> {
        loop {
            let step = match self.phase {
                Phase::Text => self.text(data),
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
                Phase::Top => self.top(data),
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

    fn top(&mut self, data: &[u8]) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        if is(b, WS) {
            let n = self.pos + chars::run(self.rest(data), WS);
            return Ok(Some(Scan::Whitespace(n)));
        }
        if b != b'<' {
            return Err(not_well_formed("text outside of a stanza"));
        }
        self.open_tag();
        Ok(None)
    }

    fn open_tag(&mut self) {
        self.tag_start = self.pos;
        self.pos += 1;
        self.phase = Phase::TagOpen;
    }

    fn header_gap(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'<') => {
                self.open_tag();
                Ok(None)
            }
            Some(_) => Err(not_well_formed("text before the stream header")),
        }
    }

    fn text(&mut self, data: &[u8]) -> Step {
        match self.skip(data, TEXT) {
            None => need_more(),
            Some(b'<') => {
                self.open_tag();
                Ok(None)
            }
            Some(b'&') => {
                self.pos += 1;
                self.begin_ref(Phase::Text)
            }
            Some(_) => Err(control_char()),
        }
    }

    /// The `&` was consumed.
    fn begin_ref(&mut self, return_to: Phase) -> Step {
        self.reference = Reference::default();
        self.ref_return = return_to;
        self.phase = Phase::Ref;
        Ok(None)
    }

    fn reference(&mut self, data: &[u8]) -> Step {
        while let Some(&b) = data.get(self.pos) {
            self.pos += 1;
            if self.reference.feed(b)? {
                self.phase = self.ref_return;
                return Ok(None);
            }
        }
        need_more()
    }

    fn tag_open(&mut self, data: &[u8], limits: &Limits) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        self.pos += 1;
        match b {
            b'/' => self.phase = Phase::EndNameStart,
            b'!' => self.phase = Phase::Bang(0),
            b'?' => return self.begin_pi(),
            _ if is(b, NAME_START) => return self.begin_start_tag(limits),
            _ => return Err(not_well_formed("invalid character after '<'")),
        }
        Ok(None)
    }

    fn begin_pi(&mut self) -> Step {
        // Only an XML declaration opening the header frame is tolerated.
        if !(self.expect_header && self.tag_start == 0) {
            return Err(processing_instruction());
        }
        self.phase = Phase::Pi(0);
        Ok(None)
    }

    fn pi(&mut self, data: &[u8], matched: u8) -> Step {
        let Some(&b) = data.get(self.pos) else {
            self.phase = Phase::Pi(matched);
            return need_more();
        };
        self.pos += 1;
        match b"xml".get(usize::from(matched)) {
            Some(&want) if want == b => self.phase = Phase::Pi(matched + 1),
            Some(_) => return Err(processing_instruction()),
            None if b == b'?' => self.phase = Phase::Decl(true),
            None if is(b, WS) => self.phase = Phase::Decl(false),
            None => return Err(processing_instruction()),
        }
        Ok(None)
    }

    fn decl(&mut self, data: &[u8], mut question: bool) -> Step {
        while let Some(&b) = data.get(self.pos) {
            self.pos += 1;
            if question && b == b'>' {
                self.phase = Phase::HeaderGap;
                return Ok(None);
            }
            if !is(b, TEXT) {
                return Err(not_well_formed("invalid character in the XML declaration"));
            }
            question = b == b'?';
        }
        self.phase = Phase::Decl(question);
        need_more()
    }

    fn bang(&mut self, data: &[u8], mut matched: u8) -> Step {
        while let Some(&b) = data.get(self.pos) {
            if CDATA_OPEN.get(usize::from(matched)) != Some(&b) {
                return Err(restricted(
                    "comments, DTDs and declarations are not allowed",
                ));
            }
            self.pos += 1;
            matched += 1;
            if usize::from(matched) == CDATA_OPEN.len() {
                if self.depth == 0 {
                    return Err(not_well_formed("CDATA outside of a stanza"));
                }
                self.phase = Phase::Cdata(0);
                return Ok(None);
            }
        }
        self.phase = Phase::Bang(matched);
        need_more()
    }

    fn cdata(&mut self, data: &[u8], mut brackets: u8) -> Step {
        loop {
            let plain = chars::run(self.rest(data), CDATA);
            if plain > 0 {
                self.pos += plain;
                brackets = 0;
            }
            let Some(&b) = data.get(self.pos) else {
                self.phase = Phase::Cdata(brackets);
                return need_more();
            };
            self.pos += 1;
            match b {
                b']' => brackets = (brackets + 1).min(2),
                b'>' if brackets == 2 => {
                    self.phase = Phase::Text;
                    return Ok(None);
                }
                b'>' => brackets = 0,
                _ => return Err(control_char()),
            }
        }
    }

    fn begin_start_tag(&mut self, limits: &Limits) -> Step {
        let is_header = self.expect_header && self.depth == 0;
        if !is_header && self.depth >= limits.max_depth {
            return Err(policy("elements are nested too deeply"));
        }
        self.name_start = self.pos - 1;
        self.phase = Phase::StartName;
        Ok(None)
    }

    fn start_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        self.name = Span::new(self.name_start, self.pos);
        self.pos += 1;
        match b {
            b'>' => self.start_tag_end(data),
            b'/' => {
                self.phase = Phase::EmptyClose;
                Ok(None)
            }
            _ if is(b, WS) => {
                self.phase = Phase::AttrSpace(true);
                Ok(None)
            }
            _ => Err(not_well_formed("invalid character in element name")),
        }
    }

    fn attr_space(&mut self, data: &[u8], ws: bool, limits: &Limits) -> Step {
        let skipped = chars::run(self.rest(data), WS);
        self.pos += skipped;
        let ws = ws || skipped > 0;
        let Some(&b) = data.get(self.pos) else {
            self.phase = Phase::AttrSpace(ws);
            return need_more();
        };
        self.pos += 1;
        match b {
            b'>' => self.start_tag_end(data),
            b'/' => {
                self.phase = Phase::EmptyClose;
                Ok(None)
            }
            _ if is(b, NAME_START) && ws => self.begin_attr(limits),
            _ if is(b, NAME_START) => {
                Err(not_well_formed("attributes need whitespace between them"))
            }
            _ => Err(not_well_formed("invalid character in start tag")),
        }
    }

    fn begin_attr(&mut self, limits: &Limits) -> Step {
        if self.attr_names.len() >= limits.max_attributes {
            return Err(policy("too many attributes"));
        }
        self.name_start = self.pos - 1;
        self.phase = Phase::AttrName;
        Ok(None)
    }

    fn attr_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        self.record_attr(data)?;
        self.pos += 1;
        match b {
            b'=' => self.phase = Phase::BeforeValue,
            _ if is(b, WS) => self.phase = Phase::AfterAttrName,
            _ => return Err(not_well_formed("invalid character in attribute name")),
        }
        Ok(None)
    }

    fn record_attr(&mut self, data: &[u8]) -> Result<(), FrameError> {
        let name = Span::new(self.name_start, self.pos);
        let bytes = name.of(data);
        if self.attr_names.iter().any(|seen| seen.of(data) == bytes) {
            return Err(not_well_formed("duplicate attribute"));
        }
        self.attr_names.push(name);
        Ok(())
    }

    fn after_attr_name(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'=') => {
                self.pos += 1;
                self.phase = Phase::BeforeValue;
                Ok(None)
            }
            Some(_) => Err(not_well_formed("expected '=' after attribute name")),
        }
    }

    fn before_value(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(quote @ (b'\'' | b'"')) => {
                self.pos += 1;
                self.phase = Phase::Value(quote);
                Ok(None)
            }
            Some(_) => Err(not_well_formed("attribute value must be quoted")),
        }
    }

    fn value(&mut self, data: &[u8], quote: u8) -> Step {
        loop {
            let Some(b) = self.skip(data, VALUE) else {
                return need_more();
            };
            self.pos += 1;
            match b {
                _ if b == quote => {
                    self.phase = Phase::AttrSpace(false);
                    return Ok(None);
                }
                b'\'' | b'"' => {}
                b'&' => return self.begin_ref(Phase::Value(quote)),
                b'<' => return Err(not_well_formed("'<' in attribute value")),
                _ => return Err(control_char()),
            }
        }
    }

    fn empty_close(&mut self, data: &[u8]) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        self.pos += 1;
        if b != b'>' {
            return Err(not_well_formed("expected '>' after '/'"));
        }
        self.empty_tag_end()
    }

    fn end_name_start(&mut self, data: &[u8]) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        if !is(b, NAME_START) {
            return Err(not_well_formed("invalid end tag name"));
        }
        self.name_start = self.pos;
        self.pos += 1;
        self.phase = Phase::EndName;
        Ok(None)
    }

    fn end_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        self.name = Span::new(self.name_start, self.pos);
        self.pos += 1;
        match b {
            b'>' => self.end_tag_end(data),
            _ if is(b, WS) => {
                self.phase = Phase::EndSpace;
                Ok(None)
            }
            _ => Err(not_well_formed("invalid character in end tag")),
        }
    }

    fn end_space(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'>') => {
                self.pos += 1;
                self.end_tag_end(data)
            }
            Some(_) => Err(not_well_formed("invalid character in end tag")),
        }
    }

    /// The `>` of a start tag was consumed.
    fn start_tag_end(&mut self, data: &[u8]) -> Step {
        self.attr_names.clear();
        if self.expect_header && self.depth == 0 {
            self.stream_name.clear();
            self.stream_name.extend_from_slice(self.name.of(data));
            self.expect_header = false;
            return Ok(Some(Scan::Header {
                len: self.pos,
                open_start: self.tag_start,
            }));
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

    fn child_started(&mut self) {
        self.meta.child_count += 1;
        if self.meta.child_count == 1 {
            self.meta.first_child = Span::new(self.tag_start, self.tag_start);
        }
    }

    /// The `>` of `/>` was consumed.
    fn empty_tag_end(&mut self) -> Step {
        self.attr_names.clear();
        match self.depth {
            0 if self.expect_header => Err(not_well_formed("self-closing stream header")),
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

    fn child_ended(&mut self) {
        let child = &mut self.meta.first_child;
        if self.meta.child_count == 1 && child.is_empty() {
            child.end = offset(self.pos);
        }
    }

    /// The `>` of an end tag was consumed.
    fn end_tag_end(&mut self, data: &[u8]) -> Step {
        let name = self.name.of(data);
        if self.depth == 0 {
            return match !self.expect_header && name == self.stream_name.as_slice() {
                true => Ok(Some(Scan::End(self.pos))),
                false => Err(not_well_formed("unexpected end tag outside of a stanza")),
            };
        }
        let open = self.stack.pop().unwrap_or_default();
        if open.of(data) != name {
            return Err(not_well_formed("end tag does not match start tag"));
        }
        self.depth -= 1;
        match self.depth {
            0 => {
                self.meta.close_start = offset(self.tag_start);
                Ok(Some(self.element_done()))
            }
            1 => {
                self.child_ended();
                self.phase = Phase::Text;
                Ok(None)
            }
            _ => {
                self.phase = Phase::Text;
                Ok(None)
            }
        }
    }

    fn element_done(&self) -> Scan {
        Scan::Element {
            len: self.pos,
            meta: self.meta,
        }
    }
}

fn offset(pos: usize) -> u32 {
    u32::try_from(pos).unwrap_or(u32::MAX)
}

fn need_more() -> Step {
    Ok(Some(Scan::NeedMore))
}

fn control_char() -> FrameError {
    not_well_formed("forbidden control character")
}

fn processing_instruction() -> FrameError {
    restricted("processing instructions are not allowed")
}
