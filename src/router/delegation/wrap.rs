//! The XEP-0355 envelope toward the component (checklist 8, 20, 21), built from slices
//! of the client's bytes: the client's payload is never re-serialised.

use bytes::{Bytes, BytesMut};

use crate::xml::escape::escape_attr;
use crate::xml::ns::{NS_CLIENT, NS_FORWARD};
use crate::xml::writer::attr_span;
use crate::xml::{Head, Stanza};

/// `<iq type='set' from=DOMAIN to=COMPONENT id=ID><delegation xmlns=NS><forwarded>`
/// + the client's IQ with `xmlns='jabber:client'`, the stream's prefixes, and `from`
///   stamped with the authenticated full JID + closing tags.
pub fn wrapper(
    stanza: &Stanza,
    head: &Head,
    domain: &str,
    component: &str,
    wrapper_id: &str,
    delegation_ns: &str,
    sender: &str,
) -> Bytes {
    let bytes = stanza.bytes();
    let mut out = BytesMut::with_capacity(bytes.len() + 256);
    push_str(&mut out, "<iq type='set' from='");
    push_str(&mut out, &escape_attr(domain));
    push_str(&mut out, "' to='");
    push_str(&mut out, &escape_attr(component));
    push_str(&mut out, "' id='");
    push_str(&mut out, wrapper_id);
    push_str(&mut out, "'><delegation xmlns='");
    push_str(&mut out, delegation_ns);
    push_str(&mut out, "'><forwarded xmlns='");
    push_str(&mut out, NS_FORWARD);
    push_str(&mut out, "'>");
    inner(&mut out, stanza, head, sender);
    push_str(&mut out, "</forwarded></delegation></iq>");
    out.freeze()
}

/// The client's stanza as it goes inside `<forwarded/>`.
fn inner(out: &mut BytesMut, stanza: &Stanza, head: &Head, sender: &str) {
    let bytes = stanza.bytes();
    let open = head.open_tag_range();
    let name_end = open.start + 1 + qualified_name_len(&bytes[open.clone()]);
    out.extend_from_slice(&bytes[open.start..name_end]);
    if !head.own_ns_declared() {
        push_str(out, " xmlns='");
        push_str(out, NS_CLIENT);
        push_str(out, "'");
    }
    // Prefixes the stanza could use because the stream header declared them.
    for (prefix, uri) in stanza.namespaces().iter() {
        let Some(prefix) = prefix else { continue };
        let declared_here = head
            .attrs()
            .any(|(name, _)| name.strip_prefix("xmlns:") == Some(prefix));
        if !declared_here {
            push_str(out, " xmlns:");
            push_str(out, prefix);
            push_str(out, "='");
            push_str(out, &escape_attr(uri));
            push_str(out, "'");
        }
    }
    push_str(out, " from='");
    push_str(out, &escape_attr(sender));
    push_str(out, "'");
    let from_span = head
        .attr_range("from")
        .and_then(|value| attr_span(bytes, value, "from"));
    match from_span {
        Some(span) => {
            out.extend_from_slice(&bytes[name_end..span.start]);
            out.extend_from_slice(&bytes[span.end..]);
        }
        None => out.extend_from_slice(&bytes[name_end..]),
    }
}

/// Length of the element name at the start of an open tag (`<iq …` → 2).
fn qualified_name_len(open_tag: &[u8]) -> usize {
    open_tag[1..]
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/'))
        .unwrap_or(open_tag.len().saturating_sub(1))
}

fn push_str(out: &mut BytesMut, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Frame, Framer, Limits};

    fn stanza(header: &str, xml: &str) -> Stanza {
        let mut framer = Framer::new(Limits::default());
        framer.buffer_mut().extend_from_slice(header.as_bytes());
        framer.buffer_mut().extend_from_slice(xml.as_bytes());
        let mut out = None;
        while let Ok(Some(frame)) = framer.next_frame() {
            if let Frame::Stanza(s) = frame {
                out = Some(s);
            }
        }
        out.expect("a stanza")
    }

    const HEADER: &str = "<stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:example:x' to='example.org' version='1.0'>";

    #[test]
    fn wrapper_stamps_from_and_keeps_payload_bytes() {
        // checklist 20, 21: a client-supplied from is replaced, payload untouched
        let s = stanza(
            HEADER,
            "<iq type='get' from='mallory@evil.example/x' id='q1' to='example.org' xml:lang='en'><q xmlns='urn:example:a'><x:thing a=\"1\">t&amp;t</x:thing></q></iq>",
        );
        let head = s.head().unwrap();
        let out = wrapper(
            &s,
            head,
            "example.org",
            "c.example.org",
            "W1",
            "urn:xmpp:delegation:2",
            "alice@example.org/r",
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "<iq type='set' from='example.org' to='c.example.org' id='W1'><delegation xmlns='urn:xmpp:delegation:2'>\
<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
xmlns:x='urn:example:x' from='alice@example.org/r' type='get' id='q1' to='example.org' xml:lang='en'>\
<q xmlns='urn:example:a'><x:thing a=\"1\">t&amp;t</x:thing></q></iq></forwarded></delegation></iq>"
        );
        assert!(!text.contains("mallory"));
        // The result is one well-formed element.
        let ns = std::sync::Arc::new(crate::xml::Namespaces::new());
        assert!(Stanza::parse(out.clone(), ns, &Limits::default()).is_ok());
    }

    #[test]
    fn explicit_client_namespace_is_not_duplicated() {
        let s = stanza(
            HEADER,
            "<iq xmlns='jabber:client' type='get' id='q2'><q xmlns='urn:example:a'/></iq>",
        );
        let out = wrapper(
            &s,
            s.head().unwrap(),
            "example.org",
            "c",
            "W",
            "urn:xmpp:delegation:1",
            "a@example.org/r",
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches("xmlns='jabber:client'").count(), 1, "{text}");
        assert!(text.contains("<delegation xmlns='urn:xmpp:delegation:1'>"));
    }
}
