//! stanzagate: an XMPP stanza-routing proxy that sits in front of a legacy server and
//! retrofits XEP-0355 Namespace Delegation, XEP-0356 Privileged Entity and an
//! HTTP-managed roster onto it.
//!
//! Module map (one concern per folder, see DESIGN.md):
//! - [`xml`]: incremental framer, stanza heads, writer helpers.
//! - [`config`]: `proxy.toml` schema, validation and hot reload.

pub mod config;
