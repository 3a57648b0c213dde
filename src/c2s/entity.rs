//! A user account that is a privileged entity (`privileged_entities."romeo@example.org"`,
//! as in the reference modules' own example) or a delegate (a delegation `jid`): each
//! of its sessions gets the privilege and delegation advertisements at login, as a
//! component does at its handshake. Its requests and answers are taken by the client
//! verdict (`ClientVerdict::Privileged`, `ClientVerdict::DelegationReply`).

use std::collections::BTreeMap;

use super::relay::{Session, Stop};
use crate::config::PrivilegeNs;
use crate::router::delegation::advertise::advertisements as delegation_ads;
use crate::router::privilege::advertise::advertisements;
use crate::xml::ns::NS_DELEGATION_2;

impl Session {
    /// The login is complete (bind result, `<resumed/>`, or SASL2 with Bind2): what
    /// was queued goes first, then what the account is told as an entity or delegate.
    pub(super) fn logged_in(&mut self) -> Result<(), Stop> {
        self.apply_queued()?;
        self.advertise_privileges()
    }

    fn advertise_privileges(&mut self) -> Result<(), Stop> {
        let Some(full) = self.stage.bound().map(|b| b.jid.clone()) else {
            return Ok(());
        };
        let bare = crate::hub::bare(&full);
        let table = self.shared.privilege.current();
        if table.is_entity(bare) {
            let grants = table.for_entity(bare);
            for advertisement in advertisements(&BTreeMap::new(), &grants, &full, PrivilegeNs::V2) {
                self.inject_down(advertisement)?;
            }
        }
        // Delegations configured to the account or to this very resource.
        let rules = self.shared.delegation.current().for_session(&full);
        for advertisement in delegation_ads(&BTreeMap::new(), &rules, &full, NS_DELEGATION_2) {
            self.inject_down(advertisement)?;
        }
        Ok(())
    }
}
