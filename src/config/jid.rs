//! The JID type of `proxy.toml` is the wire's: hosts, components, delegation
//! targets and privileged entities are prepared exactly like a `to` or `from`
//! attribute (nodeprep, nameprep, resourceprep; see [`crate::jid`]), so a
//! configured name and an address on the wire are equal exactly when the
//! server behind the proxy treats them as one.

pub use crate::jid::{Domain, Jid, JidError, JidPart};
