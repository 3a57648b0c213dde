//! Re-walking the tags of one element the scanner already validated: its start and
//! end tags in document order, character data and CDATA skipped. Used off the hot path
//! (namespace checks of elements with prefixes, scoped extraction); on bytes that were
//! not validated it never panics, it just stops early.

use memchr::{memchr, memmem};

use super::attrs::{tag_name, Attrs, QName};

/// One tag of an element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    Start(StartTag),
    /// An end tag; `end` is one past its `>`.
    End {
        start: usize,
        end: usize,
    },
}

/// A start tag, or an empty-element tag (`<a/>`) when `empty`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartTag {
    /// Offset of the `<`.
    pub(crate) start: usize,
    pub(crate) name: QName,
    /// Offset just past the name, where the attributes begin.
    pub(crate) attrs_start: usize,
    /// One past the `>`.
    pub(crate) end: usize,
    pub(crate) empty: bool,
}

impl StartTag {
    pub(crate) fn attrs<'a>(&self, bytes: &'a [u8]) -> Attrs<'a> {
        Attrs::new(bytes, self.attrs_start)
    }
}

/// The tags of `bytes` from an offset on.
#[derive(Clone, Debug)]
pub(crate) struct Tags<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Tags<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Tags { bytes, pos }
    }

    fn start_tag(&self, start: usize) -> Option<StartTag> {
        let (name, attrs_start) = tag_name(self.bytes, start)?;
        let mut attrs = Attrs::new(self.bytes, attrs_start);
        attrs.by_ref().for_each(drop);
        // Exhausted attributes stop at the `>` or `/>` (after any whitespace).
        let at = attrs.offset();
        let (end, empty) = match self.bytes.get(at)? {
            b'>' => (at + 1, false),
            b'/' if self.bytes.get(at + 1) == Some(&b'>') => (at + 2, true),
            _ => return None,
        };
        Some(StartTag {
            start,
            name,
            attrs_start,
            end,
            empty,
        })
    }
}

impl Iterator for Tags<'_> {
    type Item = Tag;

    fn next(&mut self) -> Option<Tag> {
        loop {
            // Character data holds no `<` (attribute values neither): the next `<`
            // starts a tag or a CDATA section.
            let lt = self.pos + memchr(b'<', self.bytes.get(self.pos..)?)?;
            match *self.bytes.get(lt + 1)? {
                b'/' => {
                    let end = lt + memchr(b'>', self.bytes.get(lt..)?)? + 1;
                    self.pos = end;
                    return Some(Tag::End { start: lt, end });
                }
                // CDATA is the only `<!` construct the scanner lets through.
                b'!' => self.pos = lt + memmem::find(self.bytes.get(lt..)?, b"]]>")? + 3,
                _ => {
                    let tag = self.start_tag(lt)?;
                    self.pos = tag.end;
                    return Some(Tag::Start(tag));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Vec<String> {
        Tags::new(bytes, 0)
            .map(|tag| match tag {
                Tag::Start(t) => format!(
                    "<{} {}..{}{}",
                    String::from_utf8_lossy(t.name.full().of(bytes)),
                    t.start,
                    t.end,
                    if t.empty { "/" } else { "" }
                ),
                Tag::End { start, end } => format!("/ {start}..{end}"),
            })
            .collect()
    }

    #[test]
    fn start_end_and_empty_tags_in_order() {
        let xml = b"<a x='>'><b/>text &amp; <![CDATA[<c>]]]]><p:d y=\"/>\" ></p:d ></a>";
        assert_eq!(
            walk(xml),
            vec![
                "<a 0..9",
                "<b 9..13/",
                "<p:d 41..54",
                "/ 54..61",
                "/ 61..65"
            ]
        );
    }

    #[test]
    fn attributes_of_a_start_tag() {
        let xml = b"<a  b='1'\tc = \"2\" />";
        let Some(Tag::Start(tag)) = Tags::new(xml, 0).next() else {
            panic!("no start tag")
        };
        assert!(tag.empty);
        assert_eq!(tag.end, xml.len());
        let names: Vec<_> = tag.attrs(xml).map(|a| a.name.of(xml).to_vec()).collect();
        assert_eq!(names, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn garbage_stops_early() {
        for bad in [
            &b"<"[..],
            b"<a",
            b"<a b='1'",
            b"<a b='1' x",
            b"<![CDATA[x",
            b"</a",
        ] {
            let tags: Vec<_> = Tags::new(bad, 0).collect();
            assert!(tags.is_empty(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
