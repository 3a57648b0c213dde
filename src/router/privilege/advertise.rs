//! The `<privilege/>` advertisement (checklist 38–40): one message per served domain,
//! `from` exactly the bare domain (slixmpp keys permissions by it), with only the
//! granted permissions, each `<namespace/>` with its type. In `urn:xmpp:privilege:1`
//! for old components, which know neither the `iq` permission nor `push`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::config::{IqPerm, MessagePerm, PresencePerm, PrivilegeNs, Privileges, RosterPerm};
use crate::xml::writer::push_attr;

/// Advertisements after a change from `before` to `now` (initially `before` is empty).
/// A domain that lost every privilege gets an empty `<privilege/>`, so the entity
/// stops relying on it (enforcement equals advertisement, checklist 42).
pub fn advertisements(
    before: &BTreeMap<String, Privileges>,
    now: &BTreeMap<String, Privileges>,
    entity: &str,
    ns: PrivilegeNs,
) -> Vec<Bytes> {
    let current = now
        .iter()
        .filter(|(_, p)| grants_anything(p))
        .map(|(domain, p)| message(domain, entity, Some(p), ns));
    let withdrawn = before
        .iter()
        .filter(|(domain, p)| grants_anything(p) && !now.get(*domain).is_some_and(grants_anything))
        .map(|(domain, _)| message(domain, entity, None, ns));
    current.chain(withdrawn).collect()
}

pub fn grants_anything(p: &Privileges) -> bool {
    p.roster != RosterPerm::None
        || p.message != MessagePerm::None
        || p.presence != PresencePerm::None
        || p.iq.values().any(|perm| *perm != IqPerm::None)
}

fn message(domain: &str, entity: &str, privileges: Option<&Privileges>, ns: PrivilegeNs) -> Bytes {
    let mut out = String::from("<message");
    push_attr(&mut out, "from", domain);
    push_attr(&mut out, "to", entity);
    out.push_str("><privilege xmlns='");
    out.push_str(ns.as_str());
    out.push_str("'>");
    if let Some(p) = privileges {
        perms(&mut out, p, ns);
    }
    out.push_str("</privilege></message>");
    Bytes::from(out)
}

fn perms(out: &mut String, p: &Privileges, ns: PrivilegeNs) {
    let v2 = ns == PrivilegeNs::V2;
    if p.roster != RosterPerm::None {
        out.push_str("<perm access='roster'");
        push_attr(out, "type", p.roster.as_str());
        if v2 && !p.roster_push && p.roster.allows_get() {
            out.push_str(" push='false'");
        }
        out.push_str("/>");
    }
    if p.message != MessagePerm::None {
        out.push_str("<perm access='message'");
        push_attr(out, "type", p.message.as_str());
        out.push_str("/>");
    }
    if p.presence != PresencePerm::None {
        out.push_str("<perm access='presence'");
        push_attr(out, "type", p.presence.as_str());
        out.push_str("/>");
    }
    let granted: Vec<(&String, &IqPerm)> =
        p.iq.iter()
            .filter(|(_, perm)| **perm != IqPerm::None)
            .collect();
    // check-config refuses iq grants for `:1` components; never advertise them there.
    if v2 && !granted.is_empty() {
        out.push_str("<perm access='iq'>");
        for (ns, perm) in granted {
            out.push_str("<namespace");
            push_attr(out, "ns", ns);
            push_attr(out, "type", perm.as_str());
            out.push_str("/>");
        }
        out.push_str("</perm>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privileges() -> Privileges {
        let mut iq = BTreeMap::new();
        iq.insert("http://jabber.org/protocol/pubsub".to_owned(), IqPerm::Both);
        iq.insert(
            "http://jabber.org/protocol/pubsub#owner".to_owned(),
            IqPerm::Set,
        );
        iq.insert("urn:example:nothing".to_owned(), IqPerm::None);
        Privileges {
            roster: RosterPerm::Both,
            roster_push: false,
            message: MessagePerm::Outgoing,
            presence: PresencePerm::Roster,
            iq,
        }
    }

    #[test]
    fn advertisement_lists_granted_perms_with_types_checklist_38_39_40() {
        let mut now = BTreeMap::new();
        now.insert("example.org".to_owned(), privileges());
        let ads = advertisements(&BTreeMap::new(), &now, "gw.example.org", PrivilegeNs::V2);
        assert_eq!(ads.len(), 1);
        assert_eq!(
            std::str::from_utf8(&ads[0]).unwrap(),
            "<message from='example.org' to='gw.example.org'><privilege xmlns='urn:xmpp:privilege:2'>\
<perm access='roster' type='both' push='false'/><perm access='message' type='outgoing'/>\
<perm access='presence' type='roster'/><perm access='iq'>\
<namespace ns='http://jabber.org/protocol/pubsub' type='both'/>\
<namespace ns='http://jabber.org/protocol/pubsub#owner' type='set'/></perm></privilege></message>"
        );
    }

    #[test]
    fn nothing_granted_nothing_sent_and_withdrawal_is_explicit() {
        let mut none = BTreeMap::new();
        none.insert("example.org".to_owned(), Privileges::default());
        assert!(advertisements(&BTreeMap::new(), &none, "gw", PrivilegeNs::V2).is_empty());
        let mut before = BTreeMap::new();
        before.insert("example.org".to_owned(), privileges());
        let ads = advertisements(&before, &none, "gw", PrivilegeNs::V2);
        assert_eq!(
            std::str::from_utf8(&ads[0]).unwrap(),
            "<message from='example.org' to='gw'><privilege xmlns='urn:xmpp:privilege:2'></privilege></message>"
        );
    }

    /// Old components get `urn:xmpp:privilege:1`, without what it does not know (the
    /// `iq` permission, `push`).
    #[test]
    fn version_1_advertisement_for_old_components() {
        let mut now = BTreeMap::new();
        now.insert("example.org".to_owned(), privileges());
        let ads = advertisements(&BTreeMap::new(), &now, "gw", PrivilegeNs::V1);
        assert_eq!(
            std::str::from_utf8(&ads[0]).unwrap(),
            "<message from='example.org' to='gw'><privilege xmlns='urn:xmpp:privilege:1'>\
<perm access='roster' type='both'/><perm access='message' type='outgoing'/>\
<perm access='presence' type='roster'/></privilege></message>"
        );
    }
}
