//! The stanzagate binary under test, with a generated `proxy.toml` pointing at the
//! harness's Prosody, its log captured so tests can await what it reports.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::certs::{Certs, Leaf};
use super::process::Owned;
use super::prosody::Prosody;
use super::{free_port, DOMAIN};

/// How clients reach the proxy.
pub enum TlsMode {
    /// `tls.required = false`, no certificate: plaintext loopback.
    Plaintext,
    /// STARTTLS required, plus a direct-TLS listener, with this certificate.
    Tls(Leaf),
}

pub struct ProxySpec {
    pub tls: TlsMode,
    /// (name, secret) configured under `[components]`.
    pub components: Vec<(String, String)>,
    /// `upstream.tls` and any further `[upstream]` lines.
    pub upstream_tls: String,
    /// Appended verbatim (e.g. `[limits]`).
    pub extra: String,
    /// Further `[listen]` lines.
    pub listen: String,
}

impl ProxySpec {
    pub fn plaintext() -> Self {
        ProxySpec {
            tls: TlsMode::Plaintext,
            components: vec![],
            upstream_tls: "tls = \"none\"\n".to_owned(),
            extra: String::new(),
            listen: String::new(),
        }
    }

    pub fn tls(leaf: Leaf) -> Self {
        ProxySpec {
            tls: TlsMode::Tls(leaf),
            components: vec![],
            upstream_tls: "tls = \"none\"\n".to_owned(),
            extra: String::new(),
            listen: String::new(),
        }
    }

    pub fn with_component(mut self, name: &str, secret: &str) -> Self {
        self.components.push((name.into(), secret.into()));
        self
    }

    /// `upstream.tls = MODE`, verified against `ca_file`.
    pub fn with_upstream_tls(mut self, mode: &str, ca_file: &std::path::Path) -> Self {
        self.upstream_tls = format!("tls = \"{mode}\"\nca_file = \"{}\"\n", ca_file.display());
        self
    }

    /// Adds keys to the `[upstream]` section.
    pub fn with_upstream(mut self, toml: &str) -> Self {
        self.upstream_tls.push_str(toml);
        self
    }

    /// Adds keys to the `[listen]` section.
    pub fn with_listen(mut self, toml: &str) -> Self {
        self.listen.push_str(toml);
        self
    }

    pub fn with_extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self
    }
}

/// Where the proxy listens and what it relays to.
#[derive(Clone)]
pub struct Ports {
    pub c2s: u16,
    pub c2s_direct: u16,
    pub component: u16,
    pub http: u16,
    /// XMPP over WebSocket, plaintext (always listening).
    pub websocket: u16,
    /// XMPP over WebSocket on TLS (only listening in TLS mode).
    pub websocket_tls: u16,
    pub upstream_c2s: String,
    pub upstream_component: String,
}

pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    process: Owned,
}

impl Proxy {
    pub fn start(spec: &ProxySpec, prosody: &Prosody) -> Proxy {
        Self::start_with_upstream(spec, &prosody.c2s_addr(), &prosody.component_addr())
    }

    pub fn start_with_upstream(spec: &ProxySpec, c2s: &str, component: &str) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("sg-proxy-")
            .tempdir()
            .expect("temp dir");
        let ports = Ports {
            c2s: free_port(),
            c2s_direct: free_port(),
            component: free_port(),
            http: free_port(),
            websocket: free_port(),
            websocket_tls: free_port(),
            upstream_c2s: c2s.to_owned(),
            upstream_component: component.to_owned(),
        };
        let config_path = dir.path().join("proxy.toml");
        std::fs::write(&config_path, ports.render(spec)).expect("write proxy.toml");
        let process = launch(&config_path);
        Proxy {
            dir,
            ports,
            process,
        }
    }

    /// Stops the proxy (SIGTERM) and starts it again on the same config, ports and
    /// store.
    pub fn restart(&mut self) {
        self.process.stop();
        self.process = launch(&self.config_path());
    }

    pub fn c2s(&self) -> u16 {
        self.ports.c2s
    }

    /// The config this proxy would have for another spec (for reload tests).
    pub fn render(&self, spec: &ProxySpec) -> String {
        self.ports.render(spec)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("proxy.toml")
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

impl Ports {
    /// The `proxy.toml` for `spec` with these ports.
    pub fn render(&self, spec: &ProxySpec) -> String {
        let mut toml = format!("[listen]\nc2s = \"127.0.0.1:{}\"\n", self.c2s);
        if matches!(spec.tls, TlsMode::Tls(_)) {
            toml.push_str(&format!(
                "c2s_direct_tls = \"127.0.0.1:{}\"\nwebsocket_tls = \"127.0.0.1:{}\"\n",
                self.c2s_direct, self.websocket_tls
            ));
        }
        toml.push_str(&format!("websocket = \"127.0.0.1:{}\"\n", self.websocket));
        toml.push_str(&format!(
            "component = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n{}\n",
            self.component, self.http, spec.listen
        ));
        match &spec.tls {
            TlsMode::Plaintext => toml.push_str("[tls]\nrequired = false\n\n"),
            TlsMode::Tls(leaf) => toml.push_str(&format!(
                "[tls]\nrequired = true\ncert = \"{}\"\nkey = \"{}\"\n\n",
                leaf.cert.display(),
                leaf.key.display()
            )),
        }
        toml.push_str(&format!(
            "[upstream]\nc2s = \"{}\"\ncomponent = \"{}\"\n{}\n[hosts.\"{DOMAIN}\"]\n\n",
            self.upstream_c2s, self.upstream_component, spec.upstream_tls
        ));
        for (name, secret) in &spec.components {
            toml.push_str(&format!(
                "[components.\"{name}\"]\nsecret = \"{secret}\"\n\n"
            ));
        }
        toml.push_str(&spec.extra);
        toml
    }
}

impl Proxy {
    /// Replaces the config file (atomically, by rename, as editors do).
    pub fn write_config(&self, text: &str) {
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(&tmp, text).expect("write new config");
        std::fs::rename(&tmp, self.config_path()).expect("replace config");
    }

    pub fn log_len(&self) -> usize {
        self.process.line_count()
    }

    /// Waits for a log line containing `needle` after the first `skip` lines.
    pub fn await_log(&self, skip: usize, needle: &str) -> bool {
        self.process
            .wait_line_after(skip, needle, Duration::from_secs(20))
            .is_some()
    }

    /// Whether a line after the first `skip` contains `needle` (no waiting).
    pub fn logged_since(&self, skip: usize, needle: &str) -> bool {
        self.process
            .wait_line_after(skip, needle, Duration::ZERO)
            .is_some()
    }

    pub fn log(&self) -> String {
        self.process.output()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- stanzagate log\n{}", self.process.output());
        }
    }
}

/// Convenience: a per-test temp dir with a CA and one leaf.
pub fn test_certs() -> (tempfile::TempDir, Certs) {
    let dir = tempfile::Builder::new()
        .prefix("sg-certs-")
        .tempdir()
        .expect("temp dir");
    let certs = Certs::new(dir.path());
    (dir, certs)
}

/// Starts the binary on `config_path` and waits until it is ready.
fn launch(config_path: &std::path::Path) -> Owned {
    // STANZAGATE_BIN runs the same tests against another build (e.g. to show that
    // a test fails on an older commit); by default, the one Cargo built.
    let binary = std::env::var("STANZAGATE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_stanzagate").to_owned());
    let mut command = Command::new(binary);
    command.arg("--config").arg(config_path).env(
        "RUST_LOG",
        std::env::var("STANZAGATE_TEST_LOG").unwrap_or_else(|_| "stanzagate=debug,info".into()),
    );
    let process = Owned::spawn("stanzagate", command);
    if process
        .wait_line("ready", Duration::from_secs(20))
        .is_none()
    {
        panic!("stanzagate did not get ready:\n{}", process.output());
    }
    process
}
