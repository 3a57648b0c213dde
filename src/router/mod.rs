//! Routing decisions beyond plain relaying, as values ([`verdict`]): each client
//! stanza is passed to the legacy server or taken over by the proxy ([`client`]); each
//! server stanza is relayed, rewritten or consumed, with copies to privileged entities
//! on the side ([`server`]). Verdicts are pure functions of the stanza, the session's
//! routing state ([`session`]) and the rules ([`rules`]); the session applies them.
//!
//! Features, each a hook the verdict functions consult:
//! - [`delegation`]: XEP-0355 Namespace Delegation (admin mode).
//! - [`privilege`]: XEP-0356 Privileged Entity.
//! - [`roster_admin`]: rosters owned by the operator's web app.

pub mod client;
pub mod component;
pub mod delegation;
pub mod privilege;
pub mod roster_admin;
pub mod rules;
pub mod server;
pub mod session;
pub mod verdict;

#[cfg(test)]
mod tests;
