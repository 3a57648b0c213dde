//! The Stream Management elements on the wire (`<enable/>`, `<enabled/>`, `<a/>`,
//! `<r/>`, `<resume/>`, `<resumed/>`, `<failed/>`), read and rewritten: each `h`
//! translated through the session's counters, every other byte kept.

use bytes::Bytes;

use super::{ResumeStore, Resumed, Sm, Version};
use crate::xml::ns::{NS_SM2, NS_SM3};
use crate::xml::writer::splice;
use crate::xml::{Head, Stanza};

pub fn is_sm_namespace(ns: Option<&str>) -> bool {
    matches!(ns, Some(NS_SM3) | Some(NS_SM2))
}

/// A client SM element as the server must see it.
pub fn from_client(sm: &mut Sm, store: &ResumeStore, stanza: &Stanza, head: &Head) -> Bytes {
    match head.name() {
        "enable" => {
            sm.enable_forwarded(Version::of(head.ns()));
            stanza.bytes().clone()
        }
        "a" => rewrite_h(stanza, head, |h| sm.client_ack(h)),
        "resume" => {
            let previd = head
                .attr("previd")
                .map(|p| p.into_owned())
                .unwrap_or_default();
            rewrite_h(stanza, head, |h| {
                sm.resume_requested(store, &previd, h, Version::of(head.ns()))
                    .unwrap_or(h)
            })
        }
        _ => stanza.bytes().clone(),
    }
}

/// A server SM element as the client must see it; a `<resumed/>` also says what the
/// proxy must deliver again.
pub fn from_server(sm: &mut Sm, stanza: &Stanza, head: &Head) -> (Bytes, Option<Resumed>) {
    match head.name() {
        "enabled" => {
            let id = head.attr("id").map(|v| v.into_owned());
            let resume = matches!(head.attr("resume").as_deref(), Some("true" | "1"));
            let max = head.attr("max").and_then(|m| m.trim().parse().ok());
            sm.enabled_relayed(id, resume, max);
            (stanza.bytes().clone(), None)
        }
        "failed" => {
            sm.failed();
            (stanza.bytes().clone(), None)
        }
        "a" => (rewrite_h(stanza, head, |h| sm.server_ack(h)), None),
        "resumed" => {
            let mut outcome = None;
            let rewritten = rewrite_h(stanza, head, |h| match sm.resumed(h) {
                Some((client_h, resumed)) => {
                    outcome = Some(resumed);
                    client_h
                }
                None => h,
            });
            (rewritten, outcome)
        }
        _ => (stanza.bytes().clone(), None),
    }
}

/// `<enabled/>` inside a SASL2 `<success/>` (XEP-0198 inline with Bind2):
/// `(id, resume, max)`.
pub fn inline_enabled(xml: &[u8]) -> Option<(Option<String>, bool, Option<u64>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.local_name().as_ref() == b"enabled" =>
            {
                let attr = |name: &[u8]| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                let resume = matches!(attr(b"resume").as_deref(), Some("true" | "1"));
                let max = attr(b"max").and_then(|m| m.trim().parse().ok());
                return Some((attr(b"id"), resume, max));
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// Rewrites the `h` attribute of an SM element through `map`, keeping other bytes.
fn rewrite_h(stanza: &Stanza, head: &Head, map: impl FnOnce(u32) -> u32) -> Bytes {
    let bytes = stanza.bytes();
    let (Some(range), Some(value)) = (head.attr_range("h"), head.attr("h")) else {
        return bytes.clone();
    };
    let Ok(h) = value.trim().parse::<u32>() else {
        return bytes.clone();
    };
    let mapped = map(h);
    if mapped == h {
        return bytes.clone();
    }
    splice(bytes, range, mapped.to_string().as_bytes())
}
