//! XEP-0114 components: the accept listener with its handshake checks, the link the
//! proxy opens to the legacy server under the same component name, and the relay
//! between the two.

mod advertise;
mod handshake;
mod link;
mod listener;
mod relay;

pub use handshake::handshake_digest;
pub use listener::serve;
