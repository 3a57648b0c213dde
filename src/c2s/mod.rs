//! Client streams: the STARTTLS and direct-TLS listeners, negotiation up to the point
//! where the legacy server takes over (SASL and bind are relayed), the relay loop, and
//! the Stream Management accounting that keeps both peers' counters consistent.

mod acting;
mod client;
mod features;
mod listener;
mod probes;
mod session;
pub mod sm;
pub mod stream_mgmt;
mod upstream;

pub use listener::{serve, ListenerKind};
pub use stream_mgmt::ResumeStore;

use crate::config::Config;

/// Framer limits from the config, for streams in either direction.
pub fn framer_limits(cfg: &Config) -> crate::xml::Limits {
    crate::xml::Limits {
        max_stanza_bytes: cfg.limits.max_stanza_bytes,
        max_depth: cfg.limits.max_depth,
        max_attributes: cfg.limits.max_attributes,
    }
}
