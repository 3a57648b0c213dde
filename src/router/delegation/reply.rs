//! Checking a component's answer to a delegated IQ and turning it into the IQ the
//! client gets (checklist 9, 10, 25–30). The addresses and id the client sees are set
//! by the proxy from what it remembers, never copied from the component.

use bytes::{Bytes, BytesMut};

use crate::xml::children::{strict_children, Child};
use crate::xml::escape::escape_attr;
use crate::xml::ns::{NS_CLIENT, NS_COMPONENT, NS_DELAY, NS_FORWARD};
use crate::xml::writer::close_element;
use crate::xml::{extract_children, extract_element, Stanza};

/// What the proxy remembers of a delegated client IQ.
#[derive(Debug, Clone)]
pub struct Original {
    /// The client's authenticated full JID.
    pub sender: String,
    pub id: String,
    /// `to` as the client wrote it (absent: its own account).
    pub to: Option<String>,
}

impl Original {
    fn sender_bare(&self) -> &str {
        self.sender.split('/').next().unwrap_or(&self.sender)
    }
}

/// Why a reply cannot be relayed; each ends in `service-unavailable` for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the component answered with an error")]
    ComponentError,
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
}

/// Validates an outer `type='result'` reply and builds the client's IQ.
pub fn unwrap_result(
    stanza: &Stanza,
    delegation_ns: &str,
    original: &Original,
) -> Result<Bytes, Rejected> {
    let reply = stanza.bytes();
    let delegation = only_child(reply, "delegation", delegation_ns, "no <delegation/>")?;
    let delegation_bytes = &reply[delegation.range.clone()];
    let forwarded = only_child(delegation_bytes, "forwarded", NS_FORWARD, "no <forwarded/>")?;
    let base = delegation.range.start + forwarded.range.start;
    let forwarded_bytes = &reply[base..base + forwarded.range.len()];
    let kids = strict_children(forwarded_bytes, None)
        .map_err(|_| Rejected::Malformed("text inside <forwarded/>"))?;
    let inner = match kids.as_slice() {
        [iq] => iq,
        [delay, iq] if delay.name == "delay" && delay.ns.as_deref() == Some(NS_DELAY) => iq,
        _ => return Err(Rejected::Malformed("<forwarded/> must hold one stanza")),
    };
    let in_client_ns = matches!(inner.ns.as_deref(), Some(NS_CLIENT) | Some(NS_COMPONENT));
    if inner.name != "iq" || !in_client_ns {
        return Err(Rejected::Malformed(
            "the forwarded stanza is not a jabber:client <iq/>",
        ));
    }
    let start = base + inner.range.start;
    // With the declarations it relies on from the envelope and the component's stream.
    let inner_bytes = extract_element(stanza, start..start + inner.range.len())
        .map_err(|_| Rejected::Malformed("the forwarded IQ is not namespace-well-formed"))?;
    client_iq(inner_bytes, original)
}

fn only_child(xml: &[u8], name: &str, ns: &str, why: &'static str) -> Result<Child, Rejected> {
    let kids = strict_children(xml, None).map_err(|_| Rejected::Malformed(why))?;
    match <[Child; 1]>::try_from(kids) {
        Ok([child]) if child.name == name && child.ns.as_deref() == Some(ns) => Ok(child),
        _ => Err(Rejected::Malformed(why)),
    }
}

/// Checks the inner IQ against the original (checklist 27–28) and builds the reply.
fn client_iq(inner: Bytes, original: &Original) -> Result<Bytes, Rejected> {
    let stanza = Stanza::standalone(inner)
        .map_err(|_| Rejected::Malformed("the forwarded IQ is not well-formed"))?;
    let head = stanza
        .head()
        .map_err(|_| Rejected::Malformed("the forwarded IQ is not readable"))?;
    let kind = head.type_();
    let kind = match kind.as_deref() {
        Some("result") => "result",
        Some("error") => "error",
        _ => return Err(Rejected::Malformed("inner type must be result or error")),
    };
    if head.id().as_deref() != Some(original.id.as_str()) {
        return Err(Rejected::Malformed("inner id differs from the request's"));
    }
    if head.to().as_deref() != Some(original.sender.as_str()) {
        return Err(Rejected::Malformed("inner 'to' is not the requester"));
    }
    let from_ok = match (head.from().as_deref(), original.to.as_deref()) {
        (None, _) => true,
        (Some(from), Some(to)) => from == to,
        (Some(from), None) => from == original.sender_bare(),
    };
    if !from_ok {
        return Err(Rejected::Malformed(
            "inner 'from' is not what the client addressed",
        ));
    }
    let payload_ok = match kind {
        "result" => head.child_count() <= 1,
        _ => {
            let kids = strict_children(stanza.bytes(), None)
                .map_err(|_| Rejected::Malformed("text in the error IQ"))?;
            let errors = kids.iter().filter(|c| c.name == "error").count();
            errors == 1 && kids.len() <= 2
        }
    };
    if !payload_ok {
        return Err(Rejected::Malformed("too many payload elements"));
    }
    // Each child on its own, so what the client gets is namespace-well-formed in its
    // stream whatever the component declared where.
    let children = extract_children(&stanza)
        .map_err(|_| Rejected::Malformed("the forwarded IQ is not namespace-well-formed"))?;
    Ok(client_stanza(kind, original, &children.concat()))
}

/// `<iq type=… id=ORIGINAL to=REQUESTER [from=ADDRESSED]>content</iq>`.
fn client_stanza(kind: &str, original: &Original, content: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(content.len() + 160);
    out.extend_from_slice(b"<iq type='");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"' id='");
    out.extend_from_slice(escape_attr(&original.id).as_bytes());
    out.extend_from_slice(b"' to='");
    out.extend_from_slice(escape_attr(&original.sender).as_bytes());
    out.extend_from_slice(b"'");
    if let Some(to) = &original.to {
        out.extend_from_slice(b" from='");
        out.extend_from_slice(escape_attr(to).as_bytes());
        out.extend_from_slice(b"'");
    }
    close_element(&mut out, "iq", content);
    out.freeze()
}

/// `cancel/service-unavailable` for the client, with its own id (checklist 22, 24, 26,
/// 29): never silence.
pub fn service_unavailable(original: &Original, text: Option<&str>) -> Bytes {
    error(original, "cancel", "service-unavailable", text)
}

/// `wait/resource-constraint`: the client (or everyone together) has too many
/// delegated IQs waiting; it may retry later.
pub fn resource_constraint(original: &Original, text: &str) -> Bytes {
    error(original, "wait", "resource-constraint", Some(text))
}

fn error(original: &Original, kind: &str, condition: &str, text: Option<&str>) -> Bytes {
    crate::xml::writer::stanza_error(&crate::xml::writer::StanzaError {
        name: "iq",
        id: Some(&original.id),
        from: original.to.as_deref(),
        to: Some(&original.sender),
        error_type: kind,
        condition,
        text,
        xmlns: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply as the component's stream yields it.
    fn unwrap_result(reply: &Bytes, ns: &str, original: &Original) -> Result<Bytes, Rejected> {
        let stanza =
            Stanza::standalone(reply.clone()).map_err(|_| Rejected::Malformed("not an element"))?;
        super::unwrap_result(&stanza, ns, original)
    }

    const NS: &str = "urn:xmpp:delegation:2";

    fn original(to: Option<&str>) -> Original {
        Original {
            sender: "alice@example.org/r".into(),
            id: "q1".into(),
            to: to.map(str::to_owned),
        }
    }

    fn reply(inner: &str) -> Bytes {
        Bytes::from(format!(
            "<iq type='result' from='c.example.org' to='example.org' id='W1'><delegation xmlns='{NS}'>\
<forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></delegation></iq>"
        ))
    }

    fn ok(inner: &str, to: Option<&str>) -> String {
        let out = unwrap_result(&reply(inner), NS, &original(to)).expect("accepted");
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn rejected(bytes: &Bytes, to: Option<&str>) -> Rejected {
        unwrap_result(bytes, NS, &original(to)).expect_err("rejected")
    }

    #[test]
    fn valid_result_is_readdressed_by_the_proxy() {
        // checklist 28
        let out = ok(
            "<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r' from='example.org'><q xmlns='urn:example:a'><x/></q></iq>",
            Some("example.org"),
        );
        assert_eq!(out, "<iq type='result' id='q1' to='alice@example.org/r' from='example.org'><q xmlns='urn:example:a'><x/></q></iq>");
        let empty = ok(
            "<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/>",
            None,
        );
        assert_eq!(
            empty,
            "<iq type='result' id='q1' to='alice@example.org/r'/>"
        );
    }

    #[test]
    fn whitespace_and_delay_are_tolerated() {
        // checklist 9
        let out = ok(
            "\n  <delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>\n  <iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/>\n",
            None,
        );
        assert!(out.starts_with("<iq type='result' id='q1'"));
        let pretty = Bytes::from(format!(
            "<iq type='result' from='c' to='example.org' id='W'>\n <delegation xmlns='{NS}'>\n  <forwarded xmlns='urn:xmpp:forward:0'>\n   <iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/>\n  </forwarded>\n </delegation>\n</iq>"
        ));
        assert!(unwrap_result(&pretty, NS, &original(None)).is_ok());
    }

    #[test]
    fn component_namespace_inner_is_normalised() {
        // checklist 10
        let out = ok("<iq xmlns='jabber:component:accept' type='error' id='q1' to='alice@example.org/r'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", None);
        assert!(
            out.starts_with(
                "<iq type='error' id='q1' to='alice@example.org/r'><error type='auth'>"
            ),
            "{out}"
        );
        assert!(!out.contains("component:accept"));
    }

    #[test]
    fn malformed_shapes_are_rejected() {
        // checklist 26
        let cases = [
            "<iq type='result' from='c' to='d' id='W'/>".to_owned(),
            "<iq type='result' id='W'><delegation xmlns='urn:xmpp:delegation:1'><forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/></forwarded></delegation></iq>".to_owned(),
            format!("<iq type='result' id='W'><delegation xmlns='{NS}'>text<forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/></forwarded></delegation></iq>"),
            format!("<iq type='result' id='W'><delegation xmlns='{NS}'><forwarded xmlns='urn:xmpp:forward:0'><iq type='result' id='q1' to='alice@example.org/r'/></forwarded></delegation></iq>"),
            format!("<iq type='result' id='W'><delegation xmlns='{NS}'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></delegation></iq>"),
            format!("<iq type='result' id='W'><delegation xmlns='{NS}'><forwarded xmlns='urn:xmpp:forward:0'><iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/><iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'/></forwarded></delegation></iq>"),
            format!("<iq type='result' id='W'><delegation xmlns='{NS}'/><x/></iq>"),
        ];
        for case in cases {
            assert!(
                matches!(
                    rejected(&Bytes::from(case.clone()), None),
                    Rejected::Malformed(_)
                ),
                "{case}"
            );
        }
    }

    #[test]
    fn inner_addressing_is_checked() {
        // checklist 27
        for inner in [
            "<iq xmlns='jabber:client' type='result' id='other' to='alice@example.org/r'/>",
            "<iq xmlns='jabber:client' type='result' id='q1' to='bob@example.org/r'/>",
            "<iq xmlns='jabber:client' type='result' id='q1'/>",
            "<iq xmlns='jabber:client' type='get' id='q1' to='alice@example.org/r'/>",
            "<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r' from='evil.example'/>",
        ] {
            assert!(matches!(rejected(&reply(inner), Some("example.org")), Rejected::Malformed(_)), "{inner}");
        }
        // Original without 'to': only the sender's bare JID may appear as 'from'.
        assert!(unwrap_result(&reply("<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r' from='alice@example.org'/>"), NS, &original(None)).is_ok());
        assert!(unwrap_result(&reply("<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r' from='example.org'/>"), NS, &original(None)).is_err());
    }

    #[test]
    fn payload_counts_checklist_28() {
        assert!(unwrap_result(&reply("<iq xmlns='jabber:client' type='result' id='q1' to='alice@example.org/r'><a/><b/></iq>"), NS, &original(None)).is_err());
        assert!(unwrap_result(
            &reply(
                "<iq xmlns='jabber:client' type='error' id='q1' to='alice@example.org/r'><q/></iq>"
            ),
            NS,
            &original(None)
        )
        .is_err());
        assert!(unwrap_result(&reply("<iq xmlns='jabber:client' type='error' id='q1' to='alice@example.org/r'><q/><error type='cancel'/><r/></iq>"), NS, &original(None)).is_err());
        assert!(unwrap_result(&reply("<iq xmlns='jabber:client' type='error' id='q1' to='alice@example.org/r'><q/><error type='cancel'/></iq>"), NS, &original(None)).is_ok());
    }
}
