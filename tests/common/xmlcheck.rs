//! A strict, namespace-aware reading of what the proxy emitted (XML 1.0 + Namespaces in
//! XML 1.0), independent of the proxy's own framer: every element and attribute prefix
//! bound, no prefix undeclared (`xmlns:p=''`), no two attributes with the same expanded
//! name, only XML characters, names made of name characters, matching end tags. A peer
//! with a conforming parser (Prosody, slixmpp) would refuse what this refuses.

use std::collections::HashSet;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";

/// The expanded names `(namespace, local name)` of every element of `stanza`, a
/// top-level element of a stream whose header declared `default_ns` (and the `stream`
/// prefix), in document order; or what makes it not namespace-well-formed.
pub fn elements(stanza: &[u8], default_ns: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(stanza).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(format!("U+{:04X} is not an XML character", c as u32));
    }
    let doc = format!("<w xmlns='{default_ns}' xmlns:stream='{NS_STREAM}'>{text}</w>");
    let mut reader = NsReader::from_str(&doc);
    reader.config_mut().check_end_names = true;
    let mut names = Vec::new();
    let mut depth = 0usize;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("not well-formed: {e}"))?;
        let ns = resolved(ns)?;
        let (opens, e) = match event {
            Event::Start(e) => (true, e),
            Event::Empty(e) => (false, e),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::Text(t) => {
                t.unescape().map_err(|e| format!("bad text: {e}"))?;
                continue;
            }
            Event::CData(_) => continue,
            Event::Eof => break,
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err("restricted XML (comment, PI, DOCTYPE or declaration)".into())
            }
        };
        let qname = std::str::from_utf8(e.name().as_ref())
            .map_err(|_| "element name not UTF-8".to_owned())?
            .to_owned();
        check_name(&qname)?;
        let local = std::str::from_utf8(e.local_name().as_ref())
            .unwrap_or_default()
            .to_owned();
        let mut seen = HashSet::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
            let key = std::str::from_utf8(attr.key.as_ref())
                .map_err(|_| "attribute name not UTF-8".to_owned())?;
            check_name(key)?;
            let value = attr
                .unescape_value()
                .map_err(|e| format!("bad attribute value of {key}: {e}"))?;
            if key == "xmlns" {
                continue;
            }
            if let Some(prefix) = key.strip_prefix("xmlns:") {
                if value.is_empty() {
                    return Err(format!("prefix {prefix} undeclared (xmlns:{prefix}='')"));
                }
                continue;
            }
            let (attr_ns, attr_local) = reader.resolve_attribute(attr.key);
            let attr_ns = match attr_ns {
                ResolveResult::Unknown(p) if p == b"xml" => NS_XML.to_owned(),
                other => resolved(other)?,
            };
            let expanded = (
                attr_ns,
                String::from_utf8_lossy(attr_local.as_ref()).into_owned(),
            );
            if !seen.insert(expanded.clone()) {
                return Err(format!(
                    "attribute {{{}}}{} twice on <{qname}>",
                    expanded.0, expanded.1
                ));
            }
        }
        // The wrapper (depth 0) is not part of the stanza.
        if depth > 0 {
            names.push((ns, local));
        }
        if opens {
            depth += 1;
        }
    }
    Ok(names)
}

/// Panics with the stanza and the reason unless it is namespace-well-formed; returns
/// its elements' expanded names.
pub fn assert_ns_well_formed(stanza: &[u8], default_ns: &str, what: &str) -> Vec<(String, String)> {
    elements(stanza, default_ns).unwrap_or_else(|why| {
        panic!(
            "{what} is not namespace-well-formed ({why}): {}",
            String::from_utf8_lossy(stanza)
        )
    })
}

/// Whether `names` has an element `{ns}local`.
pub fn has_element(names: &[(String, String)], ns: &str, local: &str) -> bool {
    names.iter().any(|(n, l)| n == ns && l == local)
}

fn resolved(ns: ResolveResult<'_>) -> Result<String, String> {
    match ns {
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unknown(prefix) => Err(format!(
            "prefix {} is not declared",
            String::from_utf8_lossy(&prefix)
        )),
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn is_name_start(c: char) -> bool {
    matches!(c as u32,
        0x3A | 0x41..=0x5A | 0x5F | 0x61..=0x7A | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF
        | 0x370..=0x37D | 0x37F..=0x1FFF | 0x200C..=0x200D | 0x2070..=0x218F
        | 0x2C00..=0x2FEF | 0x3001..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD
        | 0x10000..=0xEFFFF)
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c as u32, 0x2D | 0x2E | 0x30..=0x39 | 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
}

/// An XML Name with at most one colon, neither first nor last (a QName).
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| is_name_start(c) && c != ':')
        && name.chars().all(is_name_char)
        && name.matches(':').count() <= 1
        && !name.ends_with(':');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid qualified name"))
    }
}
