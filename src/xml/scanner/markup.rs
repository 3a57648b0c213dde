//! Byte-level scanner phases for markup: start and end tags, attributes, the XML
//! declaration, and `<!`/`<?` constructs (CDATA is the only one allowed). These are
//! the authoritative rules; the fast path only ever accepts a subset of them.

use memchr::memchr;

use super::super::chars::{is, valid_name, NAME, NAME_START, TEXT, WS};
use super::super::error::Fault;
use super::super::limits::Limits;
use super::super::runs::value_run_at;
use super::super::span::Span;
use super::{need_more, Phase, Scanner, Step};

const CDATA_OPEN: &[u8] = b"[CDATA[";

impl Scanner {
    pub(super) fn tag_open(&mut self, data: &[u8], limits: &Limits) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        self.pos += 1;
        match b {
            b'/' => self.phase = Phase::EndNameStart,
            b'!' => self.phase = Phase::Bang(0),
            b'?' => return self.begin_pi(),
            _ if is(b, NAME_START) => return self.begin_start_tag(limits),
            _ => return Err(Fault::BadCharAfterLt),
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

    pub(super) fn pi(&mut self, data: &[u8], matched: u8) -> Step {
        let Some(&b) = data.get(self.pos) else {
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

    pub(super) fn decl(&mut self, data: &[u8], mut question: bool) -> Step {
        while let Some(&b) = data.get(self.pos) {
            self.pos += 1;
            if question && b == b'>' {
                self.phase = Phase::HeaderGap;
                return Ok(None);
            }
            if !is(b, TEXT) {
                return Err(Fault::BadDeclChar);
            }
            question = b == b'?';
        }
        self.phase = Phase::Decl(question);
        need_more()
    }

    pub(super) fn bang(&mut self, data: &[u8], mut matched: u8) -> Step {
        while let Some(&b) = data.get(self.pos) {
            if CDATA_OPEN.get(usize::from(matched)) != Some(&b) {
                return Err(Fault::Declaration);
            }
            self.pos += 1;
            matched += 1;
            if usize::from(matched) == CDATA_OPEN.len() {
                if self.depth == 0 {
                    return Err(Fault::CdataOutsideStanza);
                }
                // CDATA is skipped bytewise: validate all of it when it ends.
                self.note_non_ascii(self.pos);
                self.phase = Phase::Cdata(0);
                return Ok(None);
            }
        }
        self.phase = Phase::Bang(matched);
        need_more()
    }

    fn begin_start_tag(&mut self, limits: &Limits) -> Step {
        let is_header = self.expect_header && self.depth == 0;
        if !is_header && self.depth >= limits.max_depth {
            return Err(Fault::TooDeep);
        }
        self.name_start = self.pos - 1;
        self.phase = Phase::StartName;
        Ok(None)
    }

    /// Ends a name begun at `name_start`, validating it if it is not ASCII (the byte
    /// classes decide ASCII names exactly).
    fn finish_name(&mut self, data: &[u8]) -> Result<Span, Fault> {
        let name = Span::new(self.name_start, self.pos);
        let bytes = name.of(data);
        if !bytes.is_ascii() {
            check_name(bytes)?;
        }
        Ok(name)
    }

    pub(super) fn start_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        self.name = self.finish_name(data)?;
        self.note_element_name(memchr(b':', self.name.of(data)).is_some());
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
            _ => Err(Fault::BadElementName),
        }
    }

    pub(super) fn attr_space(&mut self, data: &[u8], ws: bool, limits: &Limits) -> Step {
        let skipped = super::chars::run(self.rest(data), WS);
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
            _ if is(b, NAME_START) => Err(Fault::AttrsNeedSpace),
            _ => Err(Fault::BadStartTagChar),
        }
    }

    fn begin_attr(&mut self, limits: &Limits) -> Step {
        if self.attr_names.len() >= limits.max_attributes {
            return Err(Fault::TooManyAttributes);
        }
        self.name_start = self.pos - 1;
        self.phase = Phase::AttrName;
        Ok(None)
    }

    pub(super) fn attr_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        let name = self.finish_name(data)?;
        self.record_attr(data, name)?;
        self.pos += 1;
        match b {
            b'=' => self.phase = Phase::BeforeValue,
            _ if is(b, WS) => self.phase = Phase::AfterAttrName,
            _ => return Err(Fault::BadAttrName),
        }
        Ok(None)
    }

    fn record_attr(&mut self, data: &[u8], name: Span) -> Result<(), Fault> {
        if self.is_duplicate_attr(data, name) {
            return Err(Fault::DuplicateAttr);
        }
        self.attr_names.push(name);
        Ok(())
    }

    pub(super) fn after_attr_name(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'=') => {
                self.pos += 1;
                self.phase = Phase::BeforeValue;
                Ok(None)
            }
            Some(_) => Err(Fault::ExpectedEq),
        }
    }

    pub(super) fn before_value(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(quote @ (b'\'' | b'"')) => {
                self.pos += 1;
                self.value_start = self.pos;
                self.value_escaped = false;
                self.phase = Phase::Value(quote);
                Ok(None)
            }
            Some(_) => Err(Fault::UnquotedValue),
        }
    }

    pub(super) fn value(&mut self, data: &[u8], quote: u8) -> Step {
        loop {
            let rest = self.rest(data);
            let run = value_run_at(data, self.pos, quote);
            let n = run.len;
            self.run_utf8(data, rest, run)?;
            self.pos += n;
            let Some(&b) = rest.get(n) else {
                return need_more();
            };
            self.pos += 1;
            match b {
                _ if b == quote => {
                    self.value_done(data);
                    return Ok(None);
                }
                b'&' => return self.begin_ref(Phase::Value(quote)),
                b'<' => return Err(Fault::LtInValue),
                _ if is(b, TEXT) => {}
                _ => return Err(Fault::ControlChar),
            }
        }
    }

    fn value_done(&mut self, data: &[u8]) {
        let name = self.attr_names.last().copied().unwrap_or_default();
        let value = Span::new(self.value_start, self.pos - 1);
        self.note_attr(data, name, value, self.value_escaped);
        let name = name.of(data);
        let colon = memchr(b':', name).is_some();
        self.note_attr_name(name, colon, value.range().len(), self.value_escaped);
        self.phase = Phase::AttrSpace(false);
    }

    pub(super) fn empty_close(&mut self, data: &[u8]) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        self.pos += 1;
        if b != b'>' {
            return Err(Fault::ExpectedGt);
        }
        self.empty_tag_end()
    }

    pub(super) fn end_name_start(&mut self, data: &[u8]) -> Step {
        let Some(&b) = data.get(self.pos) else {
            return need_more();
        };
        if !is(b, NAME_START) {
            return Err(Fault::BadEndTagName);
        }
        self.name_start = self.pos;
        self.pos += 1;
        self.phase = Phase::EndName;
        Ok(None)
    }

    pub(super) fn end_name(&mut self, data: &[u8]) -> Step {
        let Some(b) = self.skip(data, NAME) else {
            return need_more();
        };
        self.name = self.finish_name(data)?;
        self.pos += 1;
        match b {
            b'>' => self.end_tag_end(data),
            _ if is(b, WS) => {
                self.phase = Phase::EndSpace;
                Ok(None)
            }
            _ => Err(Fault::BadEndTagChar),
        }
    }

    pub(super) fn end_space(&mut self, data: &[u8]) -> Step {
        match self.skip(data, WS) {
            None => need_more(),
            Some(b'>') => {
                self.pos += 1;
                self.end_tag_end(data)
            }
            Some(_) => Err(Fault::BadEndTagChar),
        }
    }
}

/// A complete name with non-ASCII bytes: UTF-8 holding only XML name characters.
#[cold]
fn check_name(name: &[u8]) -> Result<(), Fault> {
    let text = std::str::from_utf8(name).map_err(|_| Fault::InvalidText)?;
    match valid_name(text) {
        true => Ok(()),
        false => Err(Fault::BadNameChar),
    }
}

fn processing_instruction() -> Fault {
    Fault::ProcessingInstruction
}
