//! The privileges in force, indexed by served domain and entity; rebuilt per config.

use std::collections::{BTreeMap, HashMap};

use crate::config::{Config, Privileges};

#[derive(Debug, Default)]
pub struct Table {
    by_domain: HashMap<String, HashMap<String, Privileges>>,
    /// Every entity on any domain: asked for each client stanza (is its sender one?),
    /// so one lookup, built with the table.
    entities: std::collections::HashSet<String>,
}

impl Table {
    pub fn from_config(cfg: &Config) -> Table {
        let by_domain = cfg
            .hosts
            .iter()
            .map(|(domain, host)| {
                let entities = host
                    .privileged_entities
                    .iter()
                    // Names are prepared by the config, as wire JIDs are by `crate::jid`.
                    .map(|(entity, privileges)| (entity.clone(), privileges.clone()))
                    .collect();
                (domain.clone(), entities)
            })
            .collect::<HashMap<String, HashMap<String, Privileges>>>();
        let entities = by_domain
            .values()
            .flat_map(|entities| entities.keys().cloned())
            .collect();
        Table {
            by_domain,
            entities,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.values().all(HashMap::is_empty)
    }

    /// The user accounts (bare JIDs) among the entities.
    pub fn user_entities(&self) -> std::collections::BTreeSet<&str> {
        self.entities
            .iter()
            .filter(|entity| entity.contains('@'))
            .map(String::as_str)
            .collect()
    }

    /// Whether `entity` (a component or a user account's bare JID) holds privileges
    /// on some served domain.
    pub fn is_entity(&self, entity: &str) -> bool {
        self.entities.contains(entity)
    }

    /// What `entity` may do on `domain` (`None`: nothing, as if unprivileged).
    pub fn get(&self, domain: &str, entity: &str) -> Option<&Privileges> {
        self.by_domain.get(domain)?.get(entity)
    }

    /// Whether any entity privileged on the domain of `jid` (a prepared JID, such as
    /// a session's bound JID) has a grant matching `grant`, so the per-stanza work for
    /// a copy is skipped when nobody wants it. One lookup, no scan.
    pub fn wants(&self, jid: &str, grant: impl Fn(&Privileges) -> bool) -> bool {
        let bare = crate::hub::bare(jid);
        let domain = bare.rsplit_once('@').map_or(bare, |(_, domain)| domain);
        self.by_domain
            .get(domain)
            .is_some_and(|entities| entities.values().any(&grant))
    }

    /// The entities privileged on `domain`.
    pub fn holders(&self, domain: &str) -> impl Iterator<Item = (&String, &Privileges)> {
        self.by_domain
            .get(domain)
            .into_iter()
            .flat_map(|e| e.iter())
    }

    /// Every domain on which `entity` holds privileges, in a stable order.
    pub fn for_entity(&self, entity: &str) -> BTreeMap<String, Privileges> {
        self.by_domain
            .iter()
            .filter_map(|(domain, entities)| Some((domain.clone(), entities.get(entity)?.clone())))
            .collect()
    }
}
