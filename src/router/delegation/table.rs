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
}
