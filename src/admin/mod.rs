//! The admin HTTP listener (`listen.http`): Prometheus metrics, liveness and readiness.
//! The web app's roster refresh endpoints are mounted here too.

mod roster_admin;
mod server;

pub use server::{serve, AdminState};
