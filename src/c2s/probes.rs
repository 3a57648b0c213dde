//! Disco queries on a node of a bare JID that the legacy server answers first: if it
//! does not know the node, the query is delegated (XEP-0355 §7.2.4–5). Kept per
//! session and bounded, since each holds the original stanza.

use std::collections::HashMap;
use std::sync::Arc;

use crate::router::delegation::table::Rule;
use crate::xml::{Head, Stanza};

/// More outstanding probes than this and one is forgotten (its answer is relayed
/// normally); a client with that many unanswered disco queries is misbehaving.
const MAX_PROBES: usize = 64;

#[derive(Default)]
pub struct Probes {
    by_id: HashMap<String, (Stanza, Arc<Rule>)>,
}

impl Probes {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn remember(&mut self, stanza: &Stanza, rule: Arc<Rule>) {
        let Some(id) = stanza
            .head()
            .ok()
            .and_then(|h| h.id())
            .map(|id| id.into_owned())
        else {
            return;
        };
        if self.by_id.len() >= MAX_PROBES {
            if let Some(any) = self.by_id.keys().next().cloned() {
                self.by_id.remove(&any);
            }
        }
        self.by_id.insert(id, (stanza.clone(), rule));
    }

    /// The probe a server IQ answers (same id, from the JID it was sent to).
    pub fn answered(&mut self, id: &str, head: &Head) -> Option<(Stanza, Arc<Rule>)> {
        let (stanza, _) = self.by_id.get(id)?;
        let asked = stanza
            .head()
            .ok()
            .and_then(|h| h.to())
            .map(|t| t.into_owned());
        let from = head.from().map(|f| f.into_owned());
        if asked.is_some() && asked != from {
            return None;
        }
        self.by_id.remove(id)
    }
}
