//! stanzagate: an XMPP stanza-routing proxy that sits in front of a legacy server and
//! retrofits XEP-0355 Namespace Delegation, XEP-0356 Privileged Entity and an
//! HTTP-managed roster onto it.
//!
//! Module map (one concern per folder, see DESIGN.md):
//! - [`xml`]: incremental framer, stanza heads, writer helpers, namespace constants.
//! - [`jid`]: the one normalised JID type every route and permission check uses.
//! - [`hub`]: registries of live sessions and components (a leaf every feature uses).
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`config`]: `proxy.toml` schema, validation and hot reload.
//! - [`net`]: sockets (plain or TLS) and batched writing.
//! - [`tls`]: certificates toward clients and verification toward the server.
//! - [`c2s`]: client listeners, negotiation, relay loop, Stream Management.
//! - [`component`]: XEP-0114 listener and the upstream component link.
//! - [`router`]: delegation (XEP-0355) and the other routing decisions.
//! - [`roster`]: rosters owned by the operator's web app (HTTP roster admin).
//! - [`admin`]: admin HTTP listener and metrics.
//! - [`store`]: the durable store of work done on users' behalf (queues for offline
//!   users), surviving restarts.

pub mod acting;
pub mod admin;
pub mod c2s;
pub mod component;
pub mod config;
pub mod hub;
pub mod jid;
pub mod metrics;
pub mod net;
pub mod roster;
pub mod router;
pub mod shared;
pub mod store;
pub mod tls;
pub mod util;
pub mod xml;
