//! Shared pieces of the benches: the fast echo upstream (`load`, `idle_memory`,
//! `capacity`), the SM-aware upstream with a component port and the delegate component
//! (`soak`), the logging-in clients (byte-level and framed), TLS helpers, latency
//! statistics, and the child processes (stanzagate, the plain relay) with their
//! configs, lifetimes and RSS readings.
#![allow(dead_code)]

pub mod client;
pub mod component;
pub mod echo;
pub mod process;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod xmpp;

/// The domain every bench stream asks for.
pub const DOMAIN: &str = "bench.local";

/// True when the binary was started by `cargo bench` (which passes `--bench`); `cargo
/// test --all-targets` runs harness-less bench binaries without it, and then they must
/// exit at once.
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}
