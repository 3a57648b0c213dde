//! What a component has been told about its grants: delegations (checklist 12–13,
//! re-advertised when a reload changes them, with nesting queries for newly active
//! namespaces, checklist 32) and privileges (checklist 38–40).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Privileges;
use crate::router::delegation::advertise::advertisements;
use crate::router::delegation::table::Rule;
use crate::router::privilege::advertise::advertisements as privilege_advertisements;
use crate::shared::Shared;
use crate::xml::ns::NS_DELEGATION_2;

/// The grants last advertised to one component.
#[derive(Default)]
pub struct Advertised {
    /// Delegations, by domain.
    delegations: BTreeMap<String, Vec<Arc<Rule>>>,
    /// Privileges, by domain.
    privileges: BTreeMap<String, Privileges>,
}

impl Advertised {
    /// The messages (and nesting queries) that bring the component up to date with
    /// the live config; empty when nothing changed.
    pub fn update(&mut self, shared: &Shared, name: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        let cfg = shared.config.current();
        let grants = shared.privilege.table(&cfg).for_entity(name);
        if grants != self.privileges {
            let ns = cfg
                .component(name)
                .map(|c| c.privilege_namespace)
                .unwrap_or_default();
            out.extend(privilege_advertisements(
                &self.privileges,
                &grants,
                name,
                ns,
            ));
            self.privileges = grants;
        }
        let rules = shared.delegation.table(&cfg).for_component(name);
        if rules == self.delegations {
            return out;
        }
        let version = cfg
            .component(name)
            .map_or(NS_DELEGATION_2, |c| c.delegation_namespace.as_str());
        out.extend(advertisements(&self.delegations, &rules, name, version));
        let fresh: Vec<Arc<Rule>> = rules
            .values()
            .flatten()
            .filter(|r| !self.delegations.values().flatten().any(|old| old == *r))
            .cloned()
            .collect();
        out.extend(shared.delegation.nesting_queries(name, &fresh));
        self.delegations = rules;
        out
    }
}
