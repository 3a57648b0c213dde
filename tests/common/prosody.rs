//! A throw-away Prosody (Debian package) as the legacy upstream: generated config,
//! accounts and rosters written straight into its data directory, loopback ports only,
//! no TLS (the proxy terminates it), Stream Management on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::Owned;
use super::{free_port, DOMAIN, PASSWORD};

pub fn installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v prosody"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What the upstream should contain.
#[derive(Clone)]
pub struct ProsodySpec {
    pub users: Vec<String>,
    /// (user, contact bare JID): mutual subscription written to both rosters' owners
    /// that are local users.
    pub subscriptions: Vec<(String, String)>,
    /// (component name, secret)
    pub components: Vec<(String, String)>,
    /// (certificate, key) PEM paths: Prosody offers STARTTLS and direct TLS with them.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The reference: Prosody's own mod_delegation (prosody-modules) with these
    /// (namespace, component) delegations, for side-by-side comparisons.
    pub reference_delegations: Vec<(String, String)>,
    /// Prosody's minimum log level (`debug` for tests; benches use `warn`, as debug
    /// logging slows Prosody down a lot).
    pub log_level: String,
}

impl Default for ProsodySpec {
    fn default() -> Self {
        ProsodySpec {
            users: vec!["alice".into(), "bob".into()],
            subscriptions: vec![],
            components: vec![],
            tls: None,
            reference_delegations: vec![],
            log_level: "debug".into(),
        }
    }
}

/// Whether Debian's prosody-modules (mod_delegation, mod_privilege) is installed.
pub fn reference_modules_installed() -> bool {
    Path::new("/usr/lib/prosody/modules/mod_delegation/mod_delegation.lua").exists()
}

impl ProsodySpec {
    pub fn with_users(mut self, users: impl IntoIterator<Item = String>) -> Self {
        self.users.extend(users);
        self
    }

    pub fn with_subscription(mut self, a: &str, b: &str) -> Self {
        self.subscriptions.push((a.into(), b.into()));
        self
    }

    pub fn with_reference_delegation(mut self, ns: &str, component: &str) -> Self {
        self.reference_delegations
            .push((ns.into(), component.into()));
        self
    }

    pub fn with_log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    pub fn with_tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    pub fn with_component(mut self, name: &str, secret: &str) -> Self {
        self.components.push((name.into(), secret.into()));
        self
    }
}

pub struct Prosody {
    pub dir: tempfile::TempDir,
    pub c2s: u16,
    /// Direct-TLS client port (only listening when the spec has TLS).
    pub c2s_direct: u16,
    pub component: u16,
    /// Prosody only opens its component port when a Component is configured.
    has_components: bool,
    process: Option<Owned>,
}

impl Prosody {
    pub fn start(spec: &ProsodySpec) -> Prosody {
        let dir = tempfile::Builder::new()
            .prefix("sg-prosody-")
            .tempdir()
            .expect("temp dir");
        let mut prosody = Prosody {
            c2s: free_port(),
            c2s_direct: free_port(),
            component: free_port(),
            dir,
            has_components: false,
            process: None,
        };
        prosody.write_config(spec);
        prosody.write_data(spec);
        prosody.has_components = !spec.components.is_empty();
        prosody.launch();
        prosody
    }

    pub fn c2s_addr(&self) -> String {
        format!("127.0.0.1:{}", self.c2s)
    }

    pub fn component_addr(&self) -> String {
        format!("127.0.0.1:{}", self.component)
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Owned::pid)
    }

    /// Stops the server (SIGTERM: it sends `<system-shutdown/>` to its streams).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    fn launch(&mut self) {
        let mut command = Command::new("prosody");
        command.args(["-F", "--config"]).arg(self.config_path());
        let process = Owned::spawn("prosody", command);
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(accepts(self.c2s) && (!self.has_components || accepts(self.component))) {
            let running = self.process.as_mut().is_some_and(Owned::is_running);
            if !running || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("prosody.log"))
                    .unwrap_or_default();
                panic!("prosody did not start (running={running}); log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn write_config(&self, spec: &ProsodySpec) {
        let dir = self.dir.path();
        let run_as_root = unsafe { libc::geteuid() } == 0;
        let mut cfg = format!(
            r#"-- generated by stanzagate's test harness
run_as_root = {run_as_root}
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
log = {{ {{ levels = {{ min = "{log_level}" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
component_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
component_ports = {{ {component} }}
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ {direct} }}
s2s_ports = {{ }}
legacy_ssl_ports = {{ }}
modules_enabled = {{
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; "pep"; "private";
    "blocklist"; "version"; "time"; "uptime"; "smacks"; "vcard_legacy";
}}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "dialback"; {tls_module} "http"; "bosh"; "websocket" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
smacks_hibernation_time = 60

VirtualHost "{DOMAIN}"
"#,
            dir = dir.display(),
            log_level = spec.log_level,
            c2s = self.c2s,
            component = self.component,
            direct = if spec.tls.is_some() {
                self.c2s_direct.to_string()
            } else {
                String::new()
            },
            tls_module = if spec.tls.is_some() { "" } else { "\"tls\";" },
        );

        // cfg ends inside the VirtualHost section: host options go here.
        if !spec.reference_delegations.is_empty() {
            cfg.push_str("    modules_enabled = { \"delegation\" }\n    delegations = {\n");
            for (ns, component) in &spec.reference_delegations {
                let _ = writeln!(cfg, "        [\"{ns}\"] = {{ jid = \"{component}\" }};");
            }
            cfg.push_str("    }\n");
        }
        for (name, secret) in &spec.components {
            let _ = write!(
                cfg,
                "\nComponent \"{name}\"\n    component_secret = \"{secret}\"\n"
            );
            if !spec.reference_delegations.is_empty() {
                cfg.push_str("    modules_enabled = { \"delegation\" }\n");
            }
        }
        std::fs::create_dir_all(dir.join("certs")).expect("certs dir");
        if let Some((cert, key)) = &spec.tls {
            // Prosody 0.12 finds certificates by host name in its certificates dir.
            std::fs::copy(cert, dir.join("certs").join(format!("{DOMAIN}.crt")))
                .expect("copy cert");
            std::fs::copy(key, dir.join("certs").join(format!("{DOMAIN}.key"))).expect("copy key");
        }
        std::fs::write(self.config_path(), cfg).expect("write prosody config");
    }

    fn write_data(&self, spec: &ProsodySpec) {
        let host = self.dir.path().join("data").join(encode(DOMAIN));
        let accounts = host.join("accounts");
        let rosters = host.join("roster");
        std::fs::create_dir_all(&accounts).expect("accounts dir");
        std::fs::create_dir_all(&rosters).expect("roster dir");
        for user in &spec.users {
            let account = format!("return {{\n\t[\"password\"] = \"{PASSWORD}\";\n}};\n");
            std::fs::write(accounts.join(format!("{}.dat", encode(user))), account)
                .expect("write account");
        }
        let mut roster_items: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (a, b) in &spec.subscriptions {
            roster_items
                .entry(a)
                .or_default()
                .push(format!("{b}@{DOMAIN}"));
            roster_items
                .entry(b)
                .or_default()
                .push(format!("{a}@{DOMAIN}"));
        }
        for (user, contacts) in roster_items {
            write_roster(&rosters, user, &contacts);
        }
    }
}

fn write_roster(dir: &Path, user: &str, contacts: &[String]) {
    let mut roster = String::from("return {\n\t[false] = { [\"version\"] = 1; };\n");
    for contact in contacts {
        let _ = writeln!(
            roster,
            "\t[\"{contact}\"] = {{ [\"subscription\"] = \"both\"; [\"groups\"] = {{}}; }};"
        );
    }
    roster.push_str("};\n");
    std::fs::write(dir.join(format!("{}.dat", encode(user))), roster).expect("write roster");
}

/// Prosody's file-store name encoding (util.datamanager): anything but [a-zA-Z0-9] as %xx.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- prosody log (last 80 lines)");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.stop();
    }
}
