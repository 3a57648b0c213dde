//! A roster as the web app defines it: contact JID → name and groups, every contact
//! `subscription='both'`. Parsing of the web app's JSON (tolerant of bad entries),
//! rendering as `jabber:iq:roster`, a content version for XEP-0237, and diffs.

use std::collections::{BTreeMap, BTreeSet};

use sha1::{Digest, Sha1};

use crate::config::Jid;
use crate::xml::ns::NS_ROSTER;
use crate::xml::writer::push_attr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub name: Option<String>,
    pub groups: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub items: BTreeMap<String, Item>,
}

/// What changed between two rosters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// New contacts and contacts whose name or groups changed.
    pub upserted: Vec<(String, Item)>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the web app's answer is not a JSON object of contacts: {0}")]
pub struct JsonError(String);

impl Roster {
    /// Parses `{"jid": {"name": …, "groups": [...] | {"g": true}}, …}`. Invalid JIDs and
    /// values are skipped (and reported), never fatal; the owner is never their own
    /// contact.
    pub fn from_json(body: &[u8], owner: &str) -> Result<(Roster, Vec<String>), JsonError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| JsonError(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(JsonError("top level is not an object".into()));
        };
        let mut roster = Roster::default();
        let mut skipped = Vec::new();
        for (jid, entry) in map {
            match item(&jid, &entry, owner) {
                Ok((jid, item)) => {
                    roster.items.insert(jid, item);
                }
                Err(why) => skipped.push(format!("{jid}: {why}")),
            }
        }
        Ok((roster, skipped))
    }

    /// A short content version (XEP-0237 `ver`): equal rosters, equal versions.
    pub fn version(&self) -> String {
        let mut hasher = Sha1::new();
        for (jid, item) in &self.items {
            hasher.update(jid.as_bytes());
            hasher.update([0]);
            hasher.update(item.name.as_deref().unwrap_or("").as_bytes());
            for group in &item.groups {
                hasher.update([1]);
                hasher.update(group.as_bytes());
            }
            hasher.update([2]);
        }
        hex::encode(&hasher.finalize()[..10])
    }

    /// `<query xmlns='jabber:iq:roster' ver='…'>` with every item.
    pub fn query(&self) -> String {
        let mut out = format!("<query xmlns='{NS_ROSTER}'");
        push_attr(&mut out, "ver", &self.version());
        out.push('>');
        for (jid, item) in &self.items {
            push_item(&mut out, jid, Some(item));
        }
        out.push_str("</query>");
        out
    }

    pub fn diff(&self, new: &Roster) -> Diff {
        let mut diff = Diff::default();
        for (jid, item) in &new.items {
            match self.items.get(jid) {
                None => {
                    diff.added.push(jid.clone());
                    diff.upserted.push((jid.clone(), item.clone()));
                }
                Some(old) if old != item => diff.upserted.push((jid.clone(), item.clone())),
                Some(_) => {}
            }
        }
        diff.removed = self
            .items
            .keys()
            .filter(|jid| !new.items.contains_key(*jid))
            .cloned()
            .collect();
        diff
    }
}

/// One `<item/>`; `None` renders a removal.
pub fn push_item(out: &mut String, jid: &str, item: Option<&Item>) {
    out.push_str("<item");
    push_attr(out, "jid", jid);
    let Some(item) = item else {
        out.push_str(" subscription='remove'/>");
        return;
    };
    if let Some(name) = &item.name {
        push_attr(out, "name", name);
    }
    out.push_str(" subscription='both'");
    if item.groups.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for group in &item.groups {
        out.push_str("<group>");
        out.push_str(&crate::xml::escape_text(group));
        out.push_str("</group>");
    }
    out.push_str("</item>");
}

fn item(jid: &str, entry: &serde_json::Value, owner: &str) -> Result<(String, Item), &'static str> {
    let parsed = Jid::parse(jid).map_err(|_| "not a valid JID")?;
    if parsed.resource().is_some() {
        return Err("roster contacts are bare JIDs");
    }
    let bare = parsed.to_string();
    if Jid::parse(owner).is_ok_and(|owner| owner == parsed) {
        return Err("a user cannot be their own contact");
    }
    let serde_json::Value::Object(fields) = entry else {
        return Err("the value is not an object");
    };
    let name = match fields.get("name") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) if !name.is_empty() => Some(name.clone()),
        Some(serde_json::Value::String(_)) => None,
        Some(_) => return Err("name is not a string"),
    };
    let groups = match fields.get("groups") {
        None | Some(serde_json::Value::Null) => BTreeSet::new(),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|g| g.as_str().filter(|g| !g.is_empty()).map(str::to_owned))
            .collect(),
        // Prosody's module reads groups as an object whose keys are the names.
        Some(serde_json::Value::Object(map)) => {
            map.keys().filter(|g| !g.is_empty()).cloned().collect()
        }
        Some(_) => return Err("groups is neither a list nor an object"),
    };
    Ok((bare, Item { name, groups }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_group_shapes_and_skips_bad_entries_checklist_70() {
        let body = br#"{
            "marie@example.com": {"name": "Marie"},
            "michael@example.com": {"name": "Michael", "groups": ["Work", "Friends"]},
            "prosody@example.com": {"groups": {"Old": true}},
            "nulls@example.com": {"name": null, "groups": null},
            "not a jid@@": {"name": "x"},
            "full@example.com/res": {},
            "alice@example.com": {"name": "me"},
            "weird@example.com": 5,
            "badname@example.com": {"name": 7}
        }"#;
        let (roster, skipped) = Roster::from_json(body, "alice@example.com").unwrap();
        assert_eq!(roster.items.len(), 4);
        assert_eq!(
            roster.items["marie@example.com"].name.as_deref(),
            Some("Marie")
        );
        assert_eq!(roster.items["michael@example.com"].groups.len(), 2);
        assert!(roster.items["prosody@example.com"].groups.contains("Old"));
        assert_eq!(roster.items["nulls@example.com"], Item::default());
        assert_eq!(skipped.len(), 5, "{skipped:?}");
        assert!(Roster::from_json(b"[1,2]", "a@b").is_err());
        assert!(Roster::from_json(b"not json", "a@b").is_err());
    }

    #[test]
    fn query_renders_items_and_version() {
        let (roster, _) = Roster::from_json(
            br#"{"b@x": {"name": "B & co", "groups": ["G"]}, "c@x": {}}"#,
            "a@x",
        )
        .unwrap();
        let query = roster.query();
        assert!(query.starts_with("<query xmlns='jabber:iq:roster' ver='"));
        assert!(query.contains(
            "<item jid='b@x' name='B &amp; co' subscription='both'><group>G</group></item>"
        ));
        assert!(query.contains("<item jid='c@x' subscription='both'/>"));
        let (same, _) = Roster::from_json(
            br#"{"c@x": {}, "b@x": {"groups": ["G"], "name": "B & co"}}"#,
            "a@x",
        )
        .unwrap();
        assert_eq!(roster.version(), same.version());
        assert_ne!(roster.version(), Roster::default().version());
    }

    #[test]
    fn diff_sees_adds_removes_renames_and_regroups() {
        let (old, _) = Roster::from_json(
            br#"{"a@x": {"name": "A"}, "b@x": {"groups": ["G"]}, "c@x": {}}"#,
            "me@x",
        )
        .unwrap();
        let (new, _) = Roster::from_json(
            br#"{"a@x": {"name": "A2"}, "b@x": {"groups": ["H"]}, "d@x": {}}"#,
            "me@x",
        )
        .unwrap();
        let diff = old.diff(&new);
        assert_eq!(diff.added, vec!["d@x"]);
        assert_eq!(diff.removed, vec!["c@x"]);
        let changed: Vec<&str> = diff.upserted.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(changed, vec!["a@x", "b@x", "d@x"]);
        assert!(old.diff(&old).is_empty());
    }
}
