//! The operator's web app for roster-admin tests: `tests/peers/webapp.py`, serving each
//! user's roster from a JSON file in a temporary folder, with test-only endpoints to
//! switch its behaviour (`/_mode`: down, slow, flaky, hanging) and count requests.

use std::time::Duration;

use super::python::Running;
use super::Peers;

pub struct WebApp {
    pub dir: tempfile::TempDir,
    pub port: u16,
    _process: Running,
}

/// A username as it appears in the web app's URLs and files (percent-encoded).
fn encoded(user: &str) -> String {
    user.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl WebApp {
    pub async fn start(peers: &Peers) -> WebApp {
        let dir = tempfile::Builder::new()
            .prefix("sg-webapp-")
            .tempdir()
            .expect("temporary folder");
        let mut process = peers.python.spawn(
            "webapp.py",
            &["--data".into(), dir.path().display().to_string()],
        );
        let line = process
            .await_line("LISTENING", Duration::from_secs(30))
            .await
            .expect("web app started");
        let port = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("the web app prints its port");
        WebApp {
            dir,
            port,
            _process: process,
        }
    }

    /// Sets `user`'s roster (the web app serves it from now on).
    pub fn set(&self, user: &str, json: &str) {
        let path = self.dir.path().join(format!("{}.json", encoded(user)));
        std::fs::write(path, json).expect("write the roster");
    }

    /// Switches the web app's behaviour (`ok`, `down500`, `slow:SECS`, `flaky:N`, `hang`).
    pub async fn mode(&self, mode: &str) {
        let (status, _) = super::http::request(self.port, "POST", "/_mode", &[], mode).await;
        assert_eq!(status, 200, "web app mode {mode}");
    }

    /// How many roster requests the web app got for `user`.
    pub async fn count(&self, user: &str) -> u32 {
        let path = format!("/_count/{}", encoded(user));
        super::http::request(self.port, "GET", &path, &[], "")
            .await
            .1
            .parse()
            .expect("a count")
    }

    /// The `roster_admin` section for `localhost` pointing at this web app.
    pub fn toml(&self, token: &str, timeout_ms: u64) -> String {
        format!(
            "[hosts.\"localhost\".roster_admin]\nurl = \"http://127.0.0.1:{}/contacts/%s\"\n\
refresh_token = \"{token}\"\ntimeout_ms = {timeout_ms}\ncache_ttl_s = 3600\n",
            self.port
        )
    }
}
