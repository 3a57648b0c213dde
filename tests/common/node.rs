//! The web clients in `tests/node/` (installed there by `tests/run.sh` with npm):
//! `@xmpp/client` under Node, and Converse.js in Debian's headless Chromium driven by
//! puppeteer-core. Their output lines are read like the Python peers'.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::missing_peer;
use super::python::Running;

pub struct Node {
    dir: PathBuf,
}

pub const CHROMIUM: &str = "/usr/bin/chromium";

impl Node {
    /// `node` with `tests/node/node_modules` installed, and Chromium when `browser`;
    /// otherwise fails the test (peers required) or skips it loudly.
    pub fn find(browser: bool) -> Option<Node> {
        let dir = super::manifest_dir().join("tests/node");
        let node = std::process::Command::new("node")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        let mut missing = Vec::new();
        if !node {
            missing.push("node (apt-get install nodejs npm)");
        }
        if !dir.join("node_modules/@xmpp/client").exists() {
            missing.push("tests/node/node_modules (npm install in tests/node)");
        }
        if browser && !Path::new(CHROMIUM).exists() {
            missing.push("Debian package 'chromium'");
        }
        if missing.is_empty() {
            return Some(Node { dir });
        }
        missing_peer(missing.join("; "));
        None
    }

    /// Starts `tests/node/SCRIPT` with `args`; `node_flags` go before the script.
    pub fn spawn(&self, node_flags: &[&str], script: &str, args: &[String]) -> Running {
        let mut command = Command::new("node");
        command
            .args(node_flags)
            .arg(self.dir.join(script))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Running::start(command)
    }
}
