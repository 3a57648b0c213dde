//! Routing decisions beyond plain relaying. Each client stanza is either passed to the
//! legacy server or taken over by the proxy; each server or component stanza may be
//! consumed (an answer to something the proxy asked) or rewritten.
//!
//! - [`delegation`]: XEP-0355 Namespace Delegation (admin mode).
//! - [`privilege`]: XEP-0356 Privileged Entity.

pub mod delegation;
pub mod privilege;
