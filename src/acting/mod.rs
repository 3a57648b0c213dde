//! The routes by which the proxy acts for a user as the server would (DESIGN,
//! "Acting for users: routes"), below the verdicts that choose them:
//! - [`local`]: delivering a notification to the recipients' sessions through the
//!   proxy, from the bare JID the entity gave;
//! - [`subscription`]: completing a subscription the entity set, on the user's stream
//!   and, for a contact on a component connected through the proxy, on its link;
//! - [`mirror`]: the roster mirror that answers roster reads for offline users.
//!
//! The user's stream and the durable queue are carried out by the c2s session
//! (`c2s::queued`) with the operations the privilege service builds.

pub mod local;
pub mod mirror;
pub mod subscription;
