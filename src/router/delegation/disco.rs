//! Service discovery under delegation (checklist 31–34, 37): the proxy asks each
//! delegate what it supports for its namespaces (XEP-0355 §7.2 "nesting"), caches the
//! answers, and rewrites the legacy server's disco#info results for served domains and
//! their accounts: the server's own features for a delegated namespace removed, the
//! delegate's added, `urn:xmpp:delegation:2` announced.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;

use super::pending::Waiting;
use super::table::{is_pseudo, Rule, Table};
use crate::jid::Jid;
use crate::xml::children::{children, root_attr};
use crate::xml::ns::{NS_DELEGATION_2, NS_DISCO_INFO};
use crate::xml::writer::push_attr;
use crate::xml::{extract_element, Head, Stanza};

/// Whose disco#info a nesting answer augments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// The served domain (`…::NS` nodes).
    Server,
    /// Accounts' bare JIDs (`…:bare:NS` nodes).
    Bare,
}

impl Level {
    fn node(self, version_ns: &str, ns: &str) -> String {
        match self {
            Level::Server => format!("{version_ns}::{ns}"),
            Level::Bare => format!("{version_ns}:bare:{ns}"),
        }
    }
}

/// Cached nesting answers: (domain, namespace, level) → the delegate's identity,
/// feature and form elements, as received.
#[derive(Default)]
pub struct DiscoCache {
    entries: DashMap<(String, String, Level), (String, Vec<Bytes>)>,
}

impl DiscoCache {
    pub fn store(
        &self,
        component: &str,
        domain: &str,
        ns: &str,
        level: Level,
        stanza: &Stanza,
        head: &Head,
    ) {
        let key = (domain.to_owned(), ns.to_owned(), level);
        if head.type_().as_deref() != Some("result") {
            // No nesting for this namespace (checklist 32: errors are ignored).
            self.entries.remove(&key);
            return;
        }
        let Some(query) = head.child().filter(|c| c.name() == "query") else {
            self.entries.remove(&key);
            return;
        };
        let range = query.range();
        let bytes = stanza.bytes();
        // Each with the declarations it relies on from the answer and the component's
        // stream: they are inserted into the server's disco#info on a client stream.
        let elements = children(&bytes[range.clone()], Some(NS_DISCO_INFO))
            .map(|kids| {
                kids.into_iter()
                    .filter(|k| matches!(k.name.as_str(), "identity" | "feature" | "x"))
                    .filter_map(|k| {
                        let at = range.start + k.range.start..range.start + k.range.end;
                        extract_element(stanza, at).ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.entries.insert(key, (component.to_owned(), elements));
    }

    pub fn forget_component(&self, component: &str) {
        self.entries.retain(|_, (owner, _)| owner != component);
    }

    fn get(&self, domain: &str, ns: &str, level: Level) -> Option<Vec<Bytes>> {
        self.entries
            .get(&(domain.to_owned(), ns.to_owned(), level))
            .map(|e| e.1.clone())
    }
}

/// The disco#info queries to send a component whose delegations just became active
/// (checklist 32); `register` records each as pending under its id.
pub fn nesting_queries(
    component: &str,
    rules: &[Arc<Rule>],
    mut register: impl FnMut(String, Waiting),
) -> Vec<Bytes> {
    let mut out = Vec::new();
    for rule in rules.iter().filter(|r| !is_pseudo(&r.ns)) {
        for level in [Level::Server, Level::Bare] {
            let id = crate::util::random_id();
            let mut iq = String::from("<iq type='get'");
            push_attr(&mut iq, "from", &rule.domain);
            push_attr(&mut iq, "to", component);
            push_attr(&mut iq, "id", &id);
            iq.push_str("><query xmlns='");
            iq.push_str(NS_DISCO_INFO);
            iq.push('\'');
            push_attr(&mut iq, "node", &level.node(rule.wrapper_ns(), &rule.ns));
            iq.push_str("/></iq>");
            let waiting = Waiting::Nesting {
                domain: rule.domain.clone(),
                ns: rule.ns.clone(),
                level,
            };
            register(id, waiting);
            out.push(Bytes::from(iq));
        }
    }
    out
}

/// The legacy server's disco#info result as the client must see it, or `None` when
/// it needs no change (not a disco#info result of a served domain or account).
pub fn rewrite_result(
    stanza: &Stanza,
    head: &Head,
    table: &Table,
    cache: &DiscoCache,
) -> Option<Bytes> {
    if head.name() != "iq" || head.type_().as_deref() != Some("result") {
        return None;
    }
    let query = head.child()?;
    if query.name() != "query" || query.ns() != Some(NS_DISCO_INFO) || query.attr("node").is_some()
    {
        return None;
    }
    let Ok(Jid::Bare(from)) = Jid::parse(&head.from()?) else {
        return None;
    };
    let level = match from.is_domain() {
        true => Level::Server,
        false => Level::Bare,
    };
    let domain = from.domain().as_str().to_owned();
    if !table.delegates(&domain) {
        return None;
    }
    let rules: Vec<&Arc<Rule>> = table
        .rules_on(&domain)
        .filter(|r| !is_pseudo(&r.ns))
        .collect();
    let bytes = stanza.bytes();
    let range = query.range();
    let kids = children(&bytes[range.clone()], Some(NS_DISCO_INFO)).ok()?;
    let mut content = BytesMut::new();
    let mut features: HashSet<String> = HashSet::new();
    for kid in &kids {
        let element = &bytes[range.start + kid.range.start..range.start + kid.range.end];
        if kid.name == "feature" {
            let var = root_attr(element, "var").unwrap_or_default();
            if rules.iter().any(|r| hidden_by(&var, &r.ns)) || !features.insert(var) {
                continue;
            }
        }
        content.extend_from_slice(element);
    }
    if level == Level::Server && features.insert(NS_DELEGATION_2.to_owned()) {
        content.extend_from_slice(format!("<feature var='{NS_DELEGATION_2}'/>").as_bytes());
    }
    for rule in &rules {
        for element in cache.get(&domain, &rule.ns, level).unwrap_or_default() {
            if element.starts_with(b"<feature") {
                let var = root_attr(&element, "var").unwrap_or_default();
                if !features.insert(var) {
                    continue;
                }
            }
            content.extend_from_slice(&element);
        }
    }
    let mut out = BytesMut::with_capacity(bytes.len() + content.len() + 64);
    out.extend_from_slice(&bytes[..range.start]);
    out.extend_from_slice(format!("<query xmlns='{NS_DISCO_INFO}'>").as_bytes());
    out.extend_from_slice(&content);
    out.extend_from_slice(b"</query>");
    out.extend_from_slice(&bytes[range.end..]);
    Some(out.freeze())
}

/// The server's own feature `var` is one of the delegated namespace's (the namespace
/// itself or a `NS#sub` feature) and must make way for the delegate's.
fn hidden_by(var: &str, ns: &str) -> bool {
    var == ns
        || var
            .strip_prefix(ns)
            .is_some_and(|rest| rest.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_namespace_and_sub_features_only() {
        assert!(hidden_by("urn:xmpp:mam:2", "urn:xmpp:mam:2"));
        assert!(hidden_by("urn:xmpp:mam:2#extended", "urn:xmpp:mam:2"));
        assert!(!hidden_by("urn:xmpp:mam:20", "urn:xmpp:mam:2"));
        assert!(hidden_by(
            "http://jabber.org/protocol/pubsub#publish",
            "http://jabber.org/protocol/pubsub"
        ));
        assert!(!hidden_by(
            "http://jabber.org/protocol/pubsub-other",
            "http://jabber.org/protocol/pubsub"
        ));
    }
}
