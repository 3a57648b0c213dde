//! Scanner phases for element content: character data (skipped word-at-a-time),
//! entity and character references, CDATA sections, and the hand-off to markup.

use super::super::chars::{self, is, CDATA, TEXT};
use super::super::error::Fault;
use super::super::limits::Limits;
use super::super::reference::{predefined_len, Reference};
use super::super::runs::text_run_at;
use super::{need_more, Phase, Scanner, Step};

impl Scanner {
    pub(super) fn text(&mut self, data: &[u8], limits: &Limits) -> Step {
        loop {
            // Tags often follow tags directly: no text run to skip.
            if data.get(self.pos) == Some(&b'<') {
                // A run cut by a read boundary may still await validation.
                self.check_utf8(data, self.pos)?;
                match self.tag_in_text(data, limits) {
                    Some(step) => return step,
                    None => continue,
                }
            }
            let rest = self.rest(data);
            let run = text_run_at(data, self.pos);
            let n = run.len;
            self.run_utf8(data, rest, run)?;
            self.pos += n;
            let Some(&b) = rest.get(n) else {
                return need_more();
            };
            match b {
                // Handled at the top of the loop.
                b'<' => {}
                b'&' => match predefined_len(rest.get(n + 1..).unwrap_or(&[])) {
                    Some(len) => self.pos += 1 + len,
                    None => {
                        self.pos += 1;
                        return self.begin_ref(Phase::Text);
                    }
                },
                b'>' if ends_cdata_end(data, self.pos) => return Err(Fault::CdataEndInText),
                _ if is(b, TEXT) => self.pos += 1,
                _ => return Err(Fault::ControlChar),
            }
        }
    }

    /// At a `<` in text; `None` if the tag was ordinary and text continues, so the
    /// loop goes on without a dispatch.
    #[inline]
    fn tag_in_text(&mut self, data: &[u8], limits: &Limits) -> Option<Step> {
        match self.fast_tag(data, limits) {
            Some(Ok(None)) if self.phase == Phase::Text => None,
            Some(step) => Some(step),
            None => Some(self.open_tag_slow()),
        }
    }

    /// At a `<`: the fast path for complete ordinary tags, else the byte-level phases.
    pub(super) fn markup(&mut self, data: &[u8], limits: &Limits) -> Step {
        match self.fast_tag(data, limits) {
            Some(step) => step,
            None => self.open_tag_slow(),
        }
    }

    fn open_tag_slow(&mut self) -> Step {
        self.open_tag();
        Ok(None)
    }

    pub(super) fn open_tag(&mut self) {
        self.tag_start = self.pos;
        self.pos += 1;
        self.phase = Phase::TagOpen;
    }

    /// The `&` was consumed.
    pub(super) fn begin_ref(&mut self, return_to: Phase) -> Step {
        self.value_escaped |= return_to != Phase::Text;
        self.reference = Reference::default();
        self.ref_return = return_to;
        self.phase = Phase::Ref;
        Ok(None)
    }

    pub(super) fn reference(&mut self, data: &[u8]) -> Step {
        while let Some(&b) = data.get(self.pos) {
            self.pos += 1;
            if self.reference.feed(b)? {
                self.phase = self.ref_return;
                return Ok(None);
            }
        }
        need_more()
    }

    pub(super) fn cdata(&mut self, data: &[u8], mut brackets: u8) -> Step {
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
                    self.check_utf8(data, self.pos)?;
                    self.phase = Phase::Text;
                    return Ok(None);
                }
                b'>' => brackets = 0,
                _ => return Err(Fault::ControlChar),
            }
        }
    }
}

/// Whether the `>` at `gt`, in character data, ends a `]]>`. The two bytes before it
/// are then character data too: a tag or CDATA section cannot end in `]]`, since
/// CDATA ends at the first `]]>` and `]` is no name character.
#[inline]
pub(super) fn ends_cdata_end(data: &[u8], gt: usize) -> bool {
    gt.checked_sub(2).and_then(|at| data.get(at..gt)) == Some(b"]]")
}
