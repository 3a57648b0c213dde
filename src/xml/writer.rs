//! Small XML the proxy writes itself: stream headers, stream errors, stanza errors,
//! and byte-level splicing of received stanzas (attribute replacement, child removal)
//! that keeps every other byte as received.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::escape::{escape_attr, escape_text};
use super::ns::{NS_STANZAS, NS_STREAMS, NS_STREAM_ERRORS};

/// A stream header the proxy originates (`<?xml?><stream:stream …>`).
pub struct HeaderSpec<'a> {
    pub default_ns: &'a str,
    pub id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub version: bool,
}

pub fn stream_header(spec: &HeaderSpec<'_>) -> Bytes {
    let mut out = String::with_capacity(200);
    out.push_str("<?xml version='1.0'?><stream:stream xmlns='");
    out.push_str(&escape_attr(spec.default_ns));
    out.push_str("' xmlns:stream='");
    out.push_str(NS_STREAMS);
    out.push('\'');
    for (name, value) in [("id", spec.id), ("from", spec.from), ("to", spec.to)] {
        if let Some(value) = value {
            push_attr(&mut out, name, value);
        }
    }
    if spec.version {
        out.push_str(" version='1.0'");
    }
    out.push_str(" xml:lang='en'>");
    Bytes::from(out)
}

/// `<stream:error>` plus the closing tag. The error element declares the stream
/// namespace itself so it is valid whatever prefix the header used; `close_tag` is the
/// closing tag matching the header actually sent (`</stream:stream>` normally).
pub fn stream_error(condition: &str, text: Option<&str>, close_tag: &str) -> Bytes {
    let mut out = String::with_capacity(256);
    out.push_str("<stream:error xmlns:stream='");
    out.push_str(NS_STREAMS);
    out.push_str("'><");
    out.push_str(condition);
    out.push_str(" xmlns='");
    out.push_str(NS_STREAM_ERRORS);
    out.push_str("'/>");
    if let Some(text) = text {
        out.push_str("<text xmlns='");
        out.push_str(NS_STREAM_ERRORS);
        out.push_str("' xml:lang='en'>");
        out.push_str(&escape_text(text));
        out.push_str("</text>");
    }
    out.push_str("</stream:error>");
    out.push_str(close_tag);
    Bytes::from(out)
}

/// A stanza error reply: `<NAME type='error' id=… from=… to=…><error type=…>…</error></NAME>`.
pub struct StanzaError<'a> {
    pub name: &'a str,
    pub id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub error_type: &'a str,
    pub condition: &'a str,
    pub text: Option<&'a str>,
    /// Explicit `xmlns` on the stanza element (needed inside `<forwarded/>`).
    pub xmlns: Option<&'a str>,
}

pub fn stanza_error(spec: &StanzaError<'_>) -> Bytes {
    let mut out = String::with_capacity(256);
    out.push('<');
    out.push_str(spec.name);
    if let Some(ns) = spec.xmlns {
        push_attr(&mut out, "xmlns", ns);
    }
    out.push_str(" type='error'");
    for (name, value) in [("id", spec.id), ("from", spec.from), ("to", spec.to)] {
        if let Some(value) = value {
            push_attr(&mut out, name, value);
        }
    }
    out.push_str("><error type='");
    out.push_str(spec.error_type);
    out.push_str("'><");
    out.push_str(spec.condition);
    out.push_str(" xmlns='");
    out.push_str(NS_STANZAS);
    out.push_str("'/>");
    if let Some(text) = spec.text {
        out.push_str("<text xmlns='");
        out.push_str(NS_STANZAS);
        out.push_str("' xml:lang='en'>");
        out.push_str(&escape_text(text));
        out.push_str("</text>");
    }
    out.push_str("</error></");
    out.push_str(spec.name);
    out.push('>');
    Bytes::from(out)
}

pub fn push_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    out.push_str(&escape_attr(value));
    out.push('\'');
}

/// Ends an element whose open tag (without its `>`) is in `out`: `/>` when there
/// is no content, otherwise `>content</name>`.
pub fn close_element(out: &mut BytesMut, name: &str, content: &[u8]) {
    if content.is_empty() {
        out.extend_from_slice(b"/>");
    } else {
        out.reserve(content.len() + name.len() + 4);
        out.extend_from_slice(b">");
        out.extend_from_slice(content);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b">");
    }
}

/// An element from its open tag (without `>`) and content.
pub fn element_with(open: &str, name: &str, content: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(open.len() + content.len() + name.len() + 4);
    out.extend_from_slice(open.as_bytes());
    close_element(&mut out, name, content);
    out.freeze()
}

/// Replaces the bytes in `range` (e.g. an attribute value's range) with `value`,
/// keeping everything else as received.
pub fn splice(original: &Bytes, range: Range<usize>, value: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(original.len() + value.len());
    out.extend_from_slice(&original[..range.start]);
    out.extend_from_slice(value);
    out.extend_from_slice(&original[range.end..]);
    out.freeze()
}

/// The whole `name='value'` span of an attribute, with the whitespace before it, given
/// the range of its value (as [`crate::xml::Head::attr_range`] returns it). Removing
/// this span leaves a well-formed open tag.
pub fn attr_span(bytes: &[u8], value: Range<usize>, name: &str) -> Option<Range<usize>> {
    // value.start - 1 is the opening quote; walk back over `=` and blanks to the name.
    let mut at = value.start.checked_sub(1)?;
    while at > 0 && matches!(bytes[at - 1], b' ' | b'\t' | b'\r' | b'\n' | b'=') {
        at -= 1;
    }
    let start = at.checked_sub(name.len())?;
    if &bytes[start..at] != name.as_bytes() {
        return None;
    }
    let mut lead = start;
    while lead > 0 && matches!(bytes[lead - 1], b' ' | b'\t' | b'\r' | b'\n') {
        lead -= 1;
    }
    Some(lead..value.end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_declares_its_prefix() {
        let err = stream_error("host-unknown", Some("no <such> host"), "</stream:stream>");
        assert_eq!(
            &err[..],
            b"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><host-unknown \
xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' \
xml:lang='en'>no &lt;such&gt; host</text></stream:error></stream:stream>"
        );
    }

    #[test]
    fn stanza_error_escapes_addresses() {
        let err = stanza_error(&StanzaError {
            name: "iq",
            id: Some("a'1"),
            from: Some("example.org"),
            to: None,
            error_type: "cancel",
            condition: "service-unavailable",
            text: None,
            xmlns: None,
        });
        assert_eq!(
            &err[..],
            b"<iq type='error' id='a&apos;1' from='example.org'><error type='cancel'>\
<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
    }

    #[test]
    fn attr_span_covers_name_quotes_and_leading_blank() {
        let tag = b"<iq id='1'  from = \"x@y/z\" type='get'>";
        let value = 20..25;
        assert_eq!(&tag[value.clone()], b"x@y/z");
        let span = attr_span(tag, value, "from").unwrap();
        let mut out = tag.to_vec();
        out.drain(span);
        assert_eq!(&out[..], b"<iq id='1' type='get'>");
    }

    #[test]
    fn close_element_self_closes_when_empty() {
        assert_eq!(&element_with("<iq id='1'", "iq", b"")[..], b"<iq id='1'/>");
        assert_eq!(&element_with("<iq", "iq", b"<q/>")[..], b"<iq><q/></iq>");
    }

    #[test]
    fn splice_replaces_only_the_range() {
        let original = Bytes::from_static(b"<a xmlns='urn:xmpp:sm:3' h='12'/>");
        let out = splice(&original, 28..30, b"7");
        assert_eq!(&out[..], b"<a xmlns='urn:xmpp:sm:3' h='7'/>");
    }
}
