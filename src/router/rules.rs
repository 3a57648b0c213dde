//! The rules routing reads for one session, taken from the live config once per read
//! burst: a reload applies from the next burst on, and a burst sees one consistent
//! set of rules.

use std::sync::Arc;

use super::delegation::table::Table as Delegations;
use super::privilege::table::Table as Privileges;

#[derive(Clone)]
pub struct Rules {
    pub delegations: Arc<Delegations>,
    pub privileges: Arc<Privileges>,
    /// The session's domain keeps its rosters in the web app (roster admin).
    pub web_roster: bool,
}
