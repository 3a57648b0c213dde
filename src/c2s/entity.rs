//! A user account that is a privileged entity (`privileged_entities."romeo@example.org"`,
//! as in the reference modules' own example): each of its sessions gets the privilege
//! advertisement at login, as a component does at its handshake. Its requests are
//! taken by the client verdict (`ClientVerdict::Privileged`).

use std::collections::BTreeMap;

use super::relay::{Session, Stop};
use crate::config::PrivilegeNs;
use crate::router::privilege::advertise::advertisements;

impl Session {
    pub(super) fn advertise_privileges(&mut self) -> Result<(), Stop> {
        let Some(full) = self.stage.bound().map(|b| b.jid.clone()) else {
            return Ok(());
        };
        let bare = crate::hub::bare(&full);
        let table = self.shared.privilege.current();
        if !table.is_entity(bare) {
            return Ok(());
        }
        let grants = table.for_entity(bare);
        for advertisement in advertisements(&BTreeMap::new(), &grants, &full, PrivilegeNs::V2) {
            self.inject_down(advertisement)?;
        }
        Ok(())
    }
}
