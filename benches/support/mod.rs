//! Shared pieces of the `load` and `idle_memory` benches: the fast echo upstream, the
//! logging-in client, and the child processes (stanzagate, the plain relay) with their
//! configs, lifetimes and RSS readings.
#![allow(dead_code)]

pub mod client;
pub mod echo;
pub mod process;

/// The domain every bench stream asks for.
pub const DOMAIN: &str = "bench.local";

/// True when the binary was started by `cargo bench` (which passes `--bench`); `cargo
/// test --all-targets` runs harness-less bench binaries without it, and then they must
/// exit at once.
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}
