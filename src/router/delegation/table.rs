//! The delegation rules in force, indexed for the per-IQ lookup: served domain →
//! namespace → managing component. Rebuilt from each new config; swapped atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Config, DelegationNs};
use crate::xml::ns::{BARE_DISCO_INFO_ANY, BARE_DISCO_ITEMS_ANY};

pub fn is_pseudo(ns: &str) -> bool {
    ns == BARE_DISCO_INFO_ANY || ns == BARE_DISCO_ITEMS_ANY
}

/// One delegated namespace on one served domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub domain: String,
    pub ns: String,
    /// The managing entity (a component name).
    pub component: String,
    /// Attributes that must all be present on the IQ's child.
    pub filtering: Vec<String>,
    /// The XEP-0355 namespace the component speaks.
    pub version: DelegationNs,
}

impl Rule {
    pub fn wrapper_ns(&self) -> &'static str {
        self.version.as_str()
    }
}

#[derive(Debug, Default)]
pub struct Table {
    by_domain: HashMap<String, HashMap<String, Arc<Rule>>>,
}

impl Table {
    pub fn from_config(cfg: &Config) -> Table {
        let mut by_domain: HashMap<String, HashMap<String, Arc<Rule>>> = HashMap::new();
        for (domain, host) in &cfg.hosts {
            for (ns, delegation) in &host.delegations {
                // Prepared by the config already.
                let component = delegation.jid.clone();
                let version = cfg
                    .component(&component)
                    .map(|c| c.delegation_namespace)
                    .unwrap_or(DelegationNs::V2);
                let rule = Rule {
                    domain: domain.clone(),
                    ns: ns.clone(),
                    component,
                    filtering: delegation.filtering.clone(),
                    version,
                };
                by_domain
                    .entry(domain.clone())
                    .or_default()
                    .insert(ns.clone(), Arc::new(rule));
            }
        }
        Table { by_domain }
    }

    pub fn rule(&self, domain: &str, ns: &str) -> Option<&Arc<Rule>> {
        self.by_domain.get(domain)?.get(ns)
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.values().all(HashMap::is_empty)
    }

    /// Whether any namespace is delegated on `domain`.
    pub fn delegates(&self, domain: &str) -> bool {
        self.by_domain
            .get(domain)
            .is_some_and(|rules| !rules.is_empty())
    }

    pub fn rules_on(&self, domain: &str) -> impl Iterator<Item = &Arc<Rule>> {
        self.by_domain
            .get(domain)
            .into_iter()
            .flat_map(|rules| rules.values())
    }

    /// Every rule managed by `component`, by domain, in a stable order.
    pub fn for_component(&self, component: &str) -> BTreeMap<String, Vec<Arc<Rule>>> {
        let mut out: BTreeMap<String, Vec<Arc<Rule>>> = BTreeMap::new();
        for (domain, rules) in &self.by_domain {
            for rule in rules.values().filter(|r| r.component == component) {
                out.entry(domain.clone()).or_default().push(rule.clone());
            }
        }
        for rules in out.values_mut() {
            rules.sort_by(|a, b| a.ns.cmp(&b.ns));
        }
        out
    }

    /// What the session `full` of a user account manages, per domain: the rules
    /// delegated to the account and those delegated to that very resource, in one
    /// list (one advertisement per domain, as a component gets).
    pub fn for_session(&self, full: &str) -> BTreeMap<String, Vec<Arc<Rule>>> {
        let mut out = self.for_component(crate::hub::bare(full));
        for (domain, mut more) in self.for_component(full) {
            let rules = out.entry(domain).or_default();
            rules.append(&mut more);
            rules.sort_by(|a, b| a.ns.cmp(&b.ns));
        }
        out
    }

    /// The user accounts (bare JIDs) that manage some namespace, themselves or
    /// through one of their resources.
    pub fn user_delegates(&self) -> std::collections::BTreeSet<String> {
        self.by_domain
            .values()
            .flat_map(|rules| rules.values())
            .filter(|rule| rule.component.contains('@'))
            .map(|rule| crate::hub::bare(&rule.component).to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    /// A user account's session manages what is delegated to the account and to
    /// that resource, in one list per domain; other resources only the account's.
    #[test]
    fn a_session_of_a_user_delegate_gets_the_account_s_and_its_own_rules() {
        let cfg = crate::config::for_tests(
            r#"
[hosts."example.org".delegations."urn:example:b"]
jid = "romeo@example.org"
[hosts."example.org".delegations."urn:example:a"]
jid = "romeo@example.org/desk"
[hosts."example.org".delegations."urn:example:c"]
jid = "c.example.org"
[components."c.example.org"]
secret = "s"
"#,
        );
        let table = Table::from_config(&cfg);
        let names = |full: &str| -> Vec<String> {
            table.for_session(full)["example.org"]
                .iter()
                .map(|r| r.ns.clone())
                .collect()
        };
        assert_eq!(
            names("romeo@example.org/desk"),
            ["urn:example:a", "urn:example:b"]
        );
        assert_eq!(names("romeo@example.org/phone"), ["urn:example:b"]);
        assert_eq!(
            table.user_delegates().into_iter().collect::<Vec<_>>(),
            ["romeo@example.org"]
        );
    }
}
