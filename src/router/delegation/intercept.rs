//! Which client IQs are delegated (checklist 16–19, 35–36): the decision only, from the
//! stanza head and the rules; nothing is sent here.

use std::sync::Arc;

use super::table::{Rule, Table};
use crate::jid::Jid;
use crate::xml::ns::{BARE_DISCO_INFO_ANY, BARE_DISCO_ITEMS_ANY, NS_DISCO_INFO, NS_DISCO_ITEMS};
use crate::xml::Head;

/// What to do with one client stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not delegated: the legacy server handles it.
    Pass,
    /// Wrap it and hand it to the rule's component.
    Delegate(Arc<Rule>),
    /// A disco query on a node of a bare JID: the legacy server answers first; if it
    /// does not know the node (`item-not-found`), the query is delegated (XEP-0355
    /// §7.2.4–5, the `:*` pseudo-namespaces).
    Probe(Arc<Rule>),
}

/// Whom an IQ is addressed to, as far as delegation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Addressee {
    /// No `to`: the sender's own account.
    OwnAccount,
    /// The served domain itself (prepared, as the server would see it).
    Server(String),
    /// A bare JID `node@domain`, by its prepared domain.
    Account(String),
}

pub fn decide(head: &Head, session_domain: &str, table: &Table) -> Decision {
    if head.name() != "iq" || head.child_count() != 1 {
        return Decision::Pass;
    }
    if !matches!(head.type_().as_deref(), Some("get" | "set")) {
        return Decision::Pass;
    }
    let (Some(child), to) = (head.child(), head.to()) else {
        return Decision::Pass;
    };
    let Some(ns) = child.ns() else {
        return Decision::Pass;
    };
    let addressee = match to.as_deref() {
        None => Addressee::OwnAccount,
        Some(to) => match classify(to) {
            Some(addressee) => addressee,
            None => return Decision::Pass,
        },
    };
    let domain = match &addressee {
        Addressee::OwnAccount => session_domain.to_owned(),
        Addressee::Server(d) | Addressee::Account(d) => d.clone(),
    };
    if let Some(rule) = table.rule(&domain, ns) {
        let filtered_in = rule.filtering.iter().all(|a| child.attr(a).is_some());
        return if filtered_in {
            Decision::Delegate(rule.clone())
        } else {
            Decision::Pass
        };
    }
    if matches!(addressee, Addressee::Server(_)) {
        return Decision::Pass;
    }
    let has_node = child.attr("node").is_some();
    match (ns, has_node) {
        (NS_DISCO_ITEMS, false) => table
            .rule(&domain, BARE_DISCO_ITEMS_ANY)
            .map_or(Decision::Pass, |r| Decision::Delegate(r.clone())),
        (NS_DISCO_ITEMS, true) => table
            .rule(&domain, BARE_DISCO_ITEMS_ANY)
            .map_or(Decision::Pass, |r| Decision::Probe(r.clone())),
        (NS_DISCO_INFO, true) => table
            .rule(&domain, BARE_DISCO_INFO_ANY)
            .map_or(Decision::Pass, |r| Decision::Probe(r.clone())),
        _ => Decision::Pass,
    }
}

/// `None` for a full JID (never delegated) or an address the server would refuse;
/// otherwise server or bare account, prepared so every spelling the server folds
/// (case, width, compatibility characters) is the same address here.
fn classify(to: &str) -> Option<Addressee> {
    match Jid::parse(to).ok()? {
        Jid::Full(_) => None,
        Jid::Bare(bare) => {
            let domain = bare.domain().as_str().to_owned();
            Some(match bare.is_domain() {
                true => Addressee::Server(domain),
                false => Addressee::Account(domain),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Frame, Framer, Limits, Stanza};

    fn table() -> Table {
        let cfg = crate::config::for_tests(
            r#"
[hosts."example.org".delegations."urn:example:a"]
jid = "c.example.org"
[hosts."example.org".delegations."urn:xmpp:mam:2"]
jid = "c.example.org"
filtering = ["node"]
[hosts."example.org".delegations."urn:xmpp:delegation:2:bare:disco#items:*"]
jid = "c.example.org"
[hosts."other.org"]
[components."c.example.org"]
secret = "s"
"#,
        );
        Table::from_config(&cfg)
    }

    fn stanza(xml: &str) -> Stanza {
        let mut framer = Framer::new(Limits::default());
        framer.buffer_mut().extend_from_slice(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>",
        );
        framer.buffer_mut().extend_from_slice(xml.as_bytes());
        let mut out = None;
        while let Ok(Some(frame)) = framer.next_frame() {
            if let Frame::Stanza(s) = frame {
                out = Some(s);
            }
        }
        out.expect("a stanza")
    }

    fn decision(xml: &str) -> Decision {
        let s = stanza(xml);
        decide(s.head().unwrap(), "example.org", &table())
    }

    fn delegated(xml: &str) -> bool {
        matches!(decision(xml), Decision::Delegate(_))
    }

    #[test]
    fn addressing_checklist_17() {
        assert!(delegated(
            "<iq type='get' id='1'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(delegated(
            "<iq type='get' id='1' to='example.org'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(delegated(
            "<iq type='set' id='1' to='EXAMPLE.org'><q xmlns='urn:example:a'/></iq>"
        ));
        // Spellings the server folds (nameprep: width, case) are the same domain.
        assert!(delegated(
            "<iq type='set' id='1' to='\u{ff45}xample.org'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(delegated(
            "<iq type='get' id='1' to='Bob@EXAMPLE.ORG.'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(delegated(
            "<iq type='get' id='1' to='bob@example.org'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='get' id='1' to='bob@example.org/r'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='get' id='1' to='c.example.org'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='get' id='1' to='bob@other.org'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='get' id='1' to='elsewhere.net'><q xmlns='urn:example:a'/></iq>"
        ));
    }

    #[test]
    fn candidates_checklist_16() {
        assert!(!delegated(
            "<iq type='result' id='1'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='error' id='1'><q xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated("<message><q xmlns='urn:example:a'/></message>"));
        assert!(!delegated(
            "<iq type='get' id='1'><q xmlns='urn:example:a'/><x xmlns='urn:example:a'/></iq>"
        ));
        assert!(!delegated(
            "<iq type='get' id='1'><q xmlns='urn:example:other'/></iq>"
        ));
        assert!(delegated(
            "<iq type='get' id='1'>\n  <q xmlns='urn:example:a'/>\n</iq>"
        ));
    }

    #[test]
    fn filtering_checklist_18() {
        assert!(!delegated(
            "<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2'/></iq>"
        ));
        assert!(delegated(
            "<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2' node='x'/></iq>"
        ));
        assert!(delegated(
            "<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2' node=''/></iq>"
        ));
    }

    #[test]
    fn pseudo_namespaces_checklist_35_36() {
        let items = "http://jabber.org/protocol/disco#items";
        assert!(delegated(&format!(
            "<iq type='get' id='1' to='bob@example.org'><query xmlns='{items}'/></iq>"
        )));
        assert!(matches!(
            decision(&format!(
                "<iq type='get' id='1' to='bob@example.org'><query xmlns='{items}' node='n'/></iq>"
            )),
            Decision::Probe(_)
        ));
        // Not for the server itself, and disco#info is not configured here.
        assert_eq!(
            decision(&format!(
                "<iq type='get' id='1' to='example.org'><query xmlns='{items}'/></iq>"
            )),
            Decision::Pass
        );
        assert_eq!(
            decision("<iq type='get' id='1' to='bob@example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='n'/></iq>"),
            Decision::Pass
        );
    }
}
