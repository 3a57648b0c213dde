//! Client streams: the STARTTLS and direct-TLS listeners ([`listener`]), negotiation up
//! to the point where the legacy server takes over ([`client`], [`upstream`]), the
//! negotiation stage of a relayed stream ([`stage`]), the relay loop ([`relay`]), the
//! one step that applies routing verdicts ([`apply`]), closing ([`close`]), and the
//! Stream Management accounting that keeps both peers' counters consistent ([`sm`]).

mod apply;
mod client;
mod close;
mod entity;
mod features;
mod listener;
mod queued;
mod relay;
pub mod sm;
mod stage;
mod upstream;

pub use listener::{serve, ListenerKind};
pub use sm::ResumeStore;
