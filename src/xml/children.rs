//! Walks the direct children of one received element, giving each child's byte range,
//! local name and namespace, and reads simple text content. Used off the hot path
//! (stream features, bind results, SASL outcomes), where a full scan is cheap.

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// One direct child element of a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub range: Range<usize>,
    pub name: String,
    pub ns: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read element: {0}")]
pub struct ChildError(String);

/// The direct children of the element in `xml`. `inherited_ns` is the namespace in
/// scope for the element (the stream's default namespace), used when a child declares
/// none.
pub fn children(xml: &[u8], inherited_ns: Option<&str>) -> Result<Vec<Child>, ChildError> {
    let mut reader = NsReader::from_reader(xml);
    let mut depth = 0usize;
    let mut out = Vec::new();
    let mut open: Option<(usize, String, Option<String>)> = None;
    loop {
        let start = reader.buffer_position() as usize;
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| ChildError(e.to_string()))?;
        let ns = match resolved {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            _ => inherited_ns.map(str::to_owned),
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    open = Some((start, local(e.local_name().as_ref()), ns));
                }
            }
            Event::Empty(e) if depth == 1 => out.push(Child {
                range: start..reader.buffer_position() as usize,
                name: local(e.local_name().as_ref()),
                ns,
            }),
            Event::End(_) => {
                if depth == 2 {
                    if let Some((begin, name, ns)) = open.take() {
                        out.push(Child {
                            range: begin..reader.buffer_position() as usize,
                            name,
                            ns,
                        });
                    }
                }
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(out);
                }
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// Like [`children`], but fails when the element has text other than whitespace
/// between its children (XEP-0297 envelopes: whitespace is fine, anything else is not).
pub fn strict_children(xml: &[u8], inherited_ns: Option<&str>) -> Result<Vec<Child>, ChildError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut depth = 0usize;
    loop {
        match reader.read_event().map_err(|e| ChildError(e.to_string()))? {
            Event::Start(_) => depth += 1,
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            Event::Text(t) if depth == 1 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ChildError("text between child elements".into()))
            }
            Event::CData(_) if depth == 1 => {
                return Err(ChildError("text between child elements".into()))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    children(xml, inherited_ns)
}

/// A presence's `<priority/>` (RFC 6121 §4.7.2.3: 0 when absent or unreadable).
pub fn presence_priority(presence: &[u8]) -> i8 {
    descendant_text(presence, "priority")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

/// Text content of the first descendant named `name` (any namespace), unescaped.
pub fn descendant_text(xml: &[u8], name: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(t) if inside => text.push_str(&t.unescape().ok()?),
            Event::CData(t) if inside => text.push_str(std::str::from_utf8(&t).ok()?),
            Event::End(e) if inside && e.local_name().as_ref() == name.as_bytes() => {
                return Some(text.trim().to_owned())
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The condition element's name in a `<stream:error/>` (the child that is not `<text/>`).
pub fn stream_error_condition(xml: &[u8]) -> Option<String> {
    children(xml, None)
        .ok()?
        .into_iter()
        .map(|child| child.name)
        .find(|name| name != "text")
}

/// An attribute of the outermost element in `xml`, unescaped.
pub fn root_attr(xml: &[u8], name: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                let attr = e.try_get_attribute(name).ok()??;
                return attr.unescape_value().ok().map(|v| v.into_owned());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The condition of a stanza error: the first child of `<error/>` that is not `<text/>`.
pub fn stanza_error_condition(xml: &[u8]) -> Option<String> {
    let error = children(xml, None)
        .ok()?
        .into_iter()
        .find(|child| child.name == "error")?;
    stream_error_condition(&xml[error.range])
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_children_with_ranges_and_namespaces() {
        let xml = b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>\
<ver/></stream:features>";
        let kids = children(xml, Some("jabber:client")).unwrap();
        assert_eq!(kids.len(), 3);
        assert_eq!(kids[0].name, "starttls");
        assert_eq!(
            kids[0].ns.as_deref(),
            Some("urn:ietf:params:xml:ns:xmpp-tls")
        );
        assert_eq!(
            &xml[kids[0].range.clone()],
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
        );
        assert_eq!(kids[1].name, "mechanisms");
        assert_eq!(&xml[kids[2].range.clone()], b"<ver/>");
        assert_eq!(kids[2].ns.as_deref(), Some("jabber:client"));
    }

    #[test]
    fn strict_children_allow_whitespace_only() {
        let ok = b"<a>\n  <b/>\n  <c></c>\n</a>";
        assert_eq!(strict_children(ok, None).unwrap().len(), 2);
        assert!(strict_children(b"<a><b/>junk<c/></a>", None).is_err());
        assert!(strict_children(b"<a><![CDATA[x]]><b/></a>", None).is_err());
        // Text inside a child is the child's business.
        assert_eq!(
            strict_children(b"<a><b>text</b></a>", None).unwrap().len(),
            1
        );
    }

    #[test]
    fn reads_bound_jid() {
        let xml = b"<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
<jid>alice@example.org/ph&amp;one</jid></bind></iq>";
        assert_eq!(
            descendant_text(xml, "jid").as_deref(),
            Some("alice@example.org/ph&one")
        );
        assert_eq!(descendant_text(xml, "nope"), None);
    }
}
