//! The stream features a client sees: the legacy server's, minus what the proxy
//! cannot honour or has made stale, plus the proxy's own STARTTLS offer.

use bytes::Bytes;

use crate::xml::children::children;

use crate::xml::ns::{NS_CAPS, NS_CLIENT, NS_TLS};
use crate::xml::Stanza;

/// Stream features as the client must see them: the server's `<starttls/>` removed
/// (the client's TLS ends at the proxy), the proxy's own offered when the client is
/// still in plaintext and a certificate is configured, and the entity capabilities
/// `<c/>` removed where delegation changes disco (checklist 37). The SASL mechanism
/// list is never touched (XEP-0474 downgrade detection).
pub fn rewrite_features(stanza: &Stanza, offer_starttls: bool, strip_caps: bool) -> Bytes {
    let bytes = stanza.bytes();
    let (Ok(head), Ok(kids)) = (stanza.head(), children(bytes, Some(NS_CLIENT))) else {
        return bytes.clone();
    };
    let dropped = |c: &crate::xml::children::Child| {
        let ns = c.ns.as_deref();
        (c.name == "starttls" && ns == Some(NS_TLS))
            || (strip_caps && c.name == "c" && ns == Some(NS_CAPS))
    };
    if !offer_starttls && !kids.iter().any(dropped) {
        return bytes.clone();
    }
    let open = head.open_tag_range();
    let mut out = bytes::BytesMut::with_capacity(bytes.len() + 64);
    if head.is_empty_element() {
        // `<stream:features/>`: reopen it to add the offer.
        out.extend_from_slice(&bytes[..open.end - 2]);
        out.extend_from_slice(b">");
    } else {
        out.extend_from_slice(&bytes[..open.end]);
    }
    if offer_starttls {
        out.extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    }
    for kid in kids.iter().filter(|c| !dropped(c)) {
        out.extend_from_slice(&bytes[kid.range.clone()]);
    }
    if head.is_empty_element() {
        let name = match head.prefix() {
            Some(prefix) => format!("</{prefix}:{}>", head.name()),
            None => format!("</{}>", head.name()),
        };
        out.extend_from_slice(name.as_bytes());
    } else {
        out.extend_from_slice(&bytes[head.content_range().end..]);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Frame, Framer, Limits};

    fn features(xml: &str) -> Stanza {
        let mut framer = Framer::new(Limits::default());
        framer.buffer_mut().extend_from_slice(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        );
        framer.buffer_mut().extend_from_slice(xml.as_bytes());
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Stanza(s))) => return s,
                Ok(Some(_)) => {}
                other => panic!("no stanza: {other:?}"),
            }
        }
    }

    const MECHS: &str = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>PLAIN</mechanism></mechanisms>";

    #[test]
    fn server_starttls_removed_mechanisms_untouched() {
        let s = features(&format!(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>{MECHS}</stream:features>"
        ));
        let out = rewrite_features(&s, false, false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!("<stream:features>{MECHS}</stream:features>")
        );
    }

    #[test]
    fn caps_stripped_only_under_delegation_checklist_37() {
        let caps = "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>";
        let s = features(&format!("<stream:features>{MECHS}{caps}</stream:features>"));
        assert_eq!(rewrite_features(&s, false, false), s.bytes().clone());
        let out = rewrite_features(&s, false, true);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            format!("<stream:features>{MECHS}</stream:features>")
        );
    }

    #[test]
    fn starttls_offer_added_even_to_empty_features() {
        let s = features("<stream:features/>");
        let out = rewrite_features(&s, true, false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        );
    }
}
