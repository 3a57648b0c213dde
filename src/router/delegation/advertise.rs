//! What a component is told about its delegations (checklist 12–13, 15): one
//! `<message from=DOMAIN to=COMPONENT>` per served domain listing every namespace and
//! filtering attribute, in the namespace version the component speaks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::table::{is_pseudo, Rule};
use crate::xml::ns::NS_DELEGATION_2;
use crate::xml::writer::push_attr;

/// The advertisement messages for one component after a change from `before` to
/// `now`: one per domain that has delegations, and an empty one for each domain whose
/// delegations were all removed (so the component stops expecting them). Initially
/// (`before` empty) nothing is sent when nothing is delegated.
pub fn advertisements(
    before: &BTreeMap<String, Vec<Arc<Rule>>>,
    now: &BTreeMap<String, Vec<Arc<Rule>>>,
    component: &str,
    version: &str,
) -> Vec<Bytes> {
    let current = now
        .iter()
        .filter(|(_, rules)| !rules.is_empty())
        .map(|(domain, rules)| message(domain, component, rules, version));
    let withdrawn = before
        .keys()
        .filter(|domain| now.get(*domain).is_none_or(Vec::is_empty))
        .map(|domain| message(domain, component, &[], version));
    current.chain(withdrawn).collect()
}

fn message(domain: &str, component: &str, rules: &[Arc<Rule>], ns: &str) -> Bytes {
    let mut out = String::from("<message");
    push_attr(&mut out, "from", domain);
    push_attr(&mut out, "to", component);
    out.push_str("><delegation");
    push_attr(&mut out, "xmlns", ns);
    out.push('>');
    for rule in rules {
        // The :1 protocol has no pseudo-namespaces (checklist 15).
        if is_pseudo(&rule.ns) && ns != NS_DELEGATION_2 {
            continue;
        }
        out.push_str("<delegated");
        push_attr(&mut out, "namespace", &rule.ns);
        if rule.filtering.is_empty() {
            out.push_str("/>");
            continue;
        }
        out.push('>');
        for attribute in &rule.filtering {
            out.push_str("<attribute");
            push_attr(&mut out, "name", attribute);
            out.push_str("/>");
        }
        out.push_str("</delegated>");
    }
    out.push_str("</delegation></message>");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DelegationNs;

    fn rule(domain: &str, ns: &str, filtering: &[&str], version: DelegationNs) -> Arc<Rule> {
        Arc::new(Rule {
            domain: domain.into(),
            ns: ns.into(),
            component: "c.example.org".into(),
            filtering: filtering.iter().map(|s| s.to_string()).collect(),
            version,
        })
    }

    #[test]
    fn one_message_per_domain_with_attributes() {
        // checklist 12
        let mut rules = BTreeMap::new();
        rules.insert(
            "example.org".to_owned(),
            vec![
                rule(
                    "example.org",
                    "http://jabber.org/protocol/pubsub",
                    &[],
                    DelegationNs::V2,
                ),
                rule("example.org", "urn:xmpp:mam:2", &["node"], DelegationNs::V2),
            ],
        );
        rules.insert(
            "other.org".to_owned(),
            vec![rule("other.org", "urn:x", &[], DelegationNs::V2)],
        );
        let ads = advertisements(
            &BTreeMap::new(),
            &rules,
            "c.example.org",
            "urn:xmpp:delegation:2",
        );
        assert_eq!(ads.len(), 2);
        assert_eq!(
            std::str::from_utf8(&ads[0]).unwrap(),
            "<message from='example.org' to='c.example.org'><delegation xmlns='urn:xmpp:delegation:2'>\
<delegated namespace='http://jabber.org/protocol/pubsub'/><delegated namespace='urn:xmpp:mam:2'>\
<attribute name='node'/></delegated></delegation></message>"
        );
        let none = BTreeMap::new();
        assert!(advertisements(&none, &none, "c.example.org", "urn:xmpp:delegation:2").is_empty());
        // All delegations of a domain removed: an empty advertisement withdraws them.
        let withdrawn = advertisements(&rules, &none, "c.example.org", "urn:xmpp:delegation:2");
        assert_eq!(withdrawn.len(), 2);
        assert_eq!(
            std::str::from_utf8(&withdrawn[0]).unwrap(),
            "<message from='example.org' to='c.example.org'><delegation xmlns='urn:xmpp:delegation:2'></delegation></message>"
        );
    }

    #[test]
    fn version_one_uses_the_old_namespace_and_no_pseudo_namespaces() {
        // checklist 15
        let mut rules = BTreeMap::new();
        rules.insert(
            "example.org".to_owned(),
            vec![
                rule("example.org", "urn:x", &[], DelegationNs::V1),
                rule(
                    "example.org",
                    "urn:xmpp:delegation:2:bare:disco#items:*",
                    &[],
                    DelegationNs::V1,
                ),
            ],
        );
        let ad = advertisements(
            &BTreeMap::new(),
            &rules,
            "c.example.org",
            "urn:xmpp:delegation:1",
        )
        .remove(0);
        let text = std::str::from_utf8(&ad).unwrap();
        assert!(
            text.contains("<delegation xmlns='urn:xmpp:delegation:1'>"),
            "{text}"
        );
        assert!(!text.contains("disco#items"), "{text}");
    }
}
