//! The registries every feature may use to reach a live peer: client sessions by bound
//! JID and connected components by name, plus the commands a session accepts. A leaf
//! module: it knows nothing of routing, so features depend on it and never on each
//! other or on the connection handlers.

mod command;
mod components;
mod inbox;
mod sessions;
mod subscriptions;

pub use command::{ActingError, Command, Reply};
pub use components::{ComponentHandle, ComponentQueue, ComponentRegistry, QueueError};
pub use inbox::{inbox, Inbox, Outlet, SendError};
pub use sessions::{bare, Removed, SessionHandle, SessionRegistry};
pub use subscriptions::{Expected, Subscriptions};

/// Everything a feature needs to reach live peers.
#[derive(Default)]
pub struct Hub {
    pub sessions: SessionRegistry,
    pub components: ComponentRegistry,
    /// Subscription presence expected on components' upstream links.
    pub subscriptions: Subscriptions,
}
