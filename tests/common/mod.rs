//! The end-to-end harness: a real Prosody (Debian package) as the legacy upstream, the
//! stanzagate binary in front of it, test certificates, slixmpp peers (Python venv) and
//! a raw byte-level client for malformed input. Everything binds 127.0.0.1 on free
//! ports and is stopped by PID when dropped.
//!
//! Peers missing: with `STANZAGATE_REQUIRE_PEERS=1` (set by `tests/run.sh`) the test
//! fails with a message saying what to install; otherwise it is skipped loudly.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod ejabberd;
pub mod http;
pub mod libervia;
pub mod load;
pub mod node;
pub mod process;
pub mod prosody;
pub mod proxy;
pub mod python;
pub mod raw;
pub mod slidge;
pub mod webapp;
pub mod ws;
pub mod xmlcheck;

use std::path::PathBuf;

pub use certs::Certs;
pub use prosody::{Prosody, ProsodySpec};
pub use proxy::{Proxy, ProxySpec, TlsMode};
pub use python::Python;
pub use raw::Raw;
pub use webapp::WebApp;

pub const DOMAIN: &str = "localhost";
pub const PASSWORD: &str = "password";

/// What the end-to-end tests need from the machine.
pub struct Peers {
    pub python: Python,
}

/// Returns the peers, or `None` (test skipped) when they are missing and not required.
pub fn peers() -> Option<Peers> {
    let mut missing = Vec::new();
    if !prosody::installed() {
        missing.push("Debian package 'prosody' (apt-get install prosody)".to_owned());
    }
    let python = Python::find();
    if let Err(why) = &python {
        missing.push(why.clone());
    }
    if missing.is_empty() {
        return python.ok().map(|python| Peers { python });
    }
    missing_peer(missing.join("; "));
    None
}

/// A peer the test needs is missing: fails the test when peers are required
/// (`STANZAGATE_REQUIRE_PEERS=1`, as `tests/run.sh` sets), else says it is skipped.
pub fn missing_peer(what: String) {
    let message =
        format!("end-to-end peers missing: {what}. Run tests/run.sh, which installs them.");
    if std::env::var("STANZAGATE_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
}

/// A port that was free a moment ago on 127.0.0.1. Ports come from a per-process
/// counter below the kernel's ephemeral range, so parallel tests never pick the same
/// port and no outgoing connection can be holding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
