//! The admin HTTP listener (`listen.http`): Prometheus metrics, liveness and readiness.
//! Later issues mount the roster-admin refresh endpoint here too.

pub mod metrics;
mod server;

pub use server::{serve, AdminState};
