//! A throw-away ejabberd (Debian package) behind the proxy, for what Prosody cannot
//! show: its c2s listener takes PROXY protocol headers (`use_proxy_protocol`), and its
//! `mod_fail2ban` bans client addresses after failed logins. Two c2s listeners on
//! loopback: `proxied` reads a PROXY header first, `plain` does not. Erlang
//! distribution on a fixed loopback port (no epmd); stopped by `ejabberdctl stop`, then
//! by the PID ejabberd wrote.
//!
//! Debian's `ejabberdctl` re-runs itself as the `ejabberd` user when started by root,
//! so the working directory is handed to that user.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{free_port, missing_peer, DOMAIN, PASSWORD};

pub fn installed() -> bool {
    Path::new("/usr/sbin/ejabberdctl").exists()
}

/// `Some(())` when ejabberd is installed; otherwise fails the test (peers required)
/// or skips it loudly.
pub fn available() -> Option<()> {
    if installed() {
        return Some(());
    }
    missing_peer("Debian package 'ejabberd' (apt-get install ejabberd)".to_owned());
    None
}

pub struct Ejabberd {
    dir: tempfile::TempDir,
    /// c2s with `use_proxy_protocol: true`.
    pub proxied: u16,
    /// c2s without it.
    pub plain: u16,
}

/// Starting and stopping take a few seconds each; a wedged VM must not hang a test.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

impl Ejabberd {
    /// Starts with `users` registered (password [`PASSWORD`]) and `mod_fail2ban`
    /// banning an address after `max_auth_failures` failed logins.
    pub fn start(users: &[&str], max_auth_failures: u32) -> Ejabberd {
        let dir = tempfile::Builder::new()
            .prefix("sg-ejabberd-")
            .tempdir()
            .expect("temp dir");
        let ejabberd = Ejabberd {
            dir,
            proxied: free_port(),
            plain: free_port(),
        };
        ejabberd.write_config(max_auth_failures, free_port());
        let ctl = ejabberd.ctl(&["start"]);
        assert!(ctl.status.success(), "ejabberdctl start: {}", text(&ctl));
        let started = ejabberd.ctl(&["started"]);
        assert!(
            started.status.success(),
            "ejabberd did not start: {}\n{}",
            text(&started),
            ejabberd.log_tail()
        );
        for user in users {
            let out = ejabberd.ctl(&["register", user, DOMAIN, PASSWORD]);
            assert!(out.status.success(), "register {user}: {}", text(&out));
        }
        for port in [ejabberd.proxied, ejabberd.plain] {
            ejabberd.await_listening(port);
        }
        ejabberd
    }

    pub fn proxied_addr(&self) -> String {
        format!("127.0.0.1:{}", self.proxied)
    }

    pub fn plain_addr(&self) -> String {
        format!("127.0.0.1:{}", self.plain)
    }

    /// `ejabberdctl user_sessions_info USER`: one line per session, tab-separated,
    /// the client's IP address third.
    pub fn sessions_of(&self, user: &str) -> String {
        let out = self.ctl(&["user_sessions_info", user, DOMAIN]);
        assert!(out.status.success(), "user_sessions_info: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let dir = self.dir.path();
        let mut command = Command::new("/usr/sbin/ejabberdctl");
        command
            .arg("--config-dir")
            .arg(dir)
            .arg("--spool")
            .arg(dir.join("db"))
            .arg("--logs")
            .arg(dir.join("logs"))
            .args(args);
        run_bounded(command, CTL_TIMEOUT)
    }

    fn write_config(&self, max_auth_failures: u32, dist_port: u16) {
        let dir = self.dir.path();
        let (proxied, plain) = (self.proxied, self.plain);
        let yml = format!(
            r#"hosts:
  - "{DOMAIN}"
loglevel: info
certfiles: []
listen:
  -
    port: {proxied}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    use_proxy_protocol: true
  -
    port: {plain}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
auth_method: [internal]
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_admin_extra: {{}}
  mod_fail2ban:
    c2s_max_auth_failures: {max_auth_failures}
"#
        );
        let cfg = format!(
            "ERLANG_NODE=sg{dist_port}@localhost\nINET_DIST_INTERFACE=127.0.0.1\n\
ERL_DIST_PORT={dist_port}\nERL_EPMD_ADDRESS=127.0.0.1\nEJABBERD_PID_PATH={}\n\
ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\n",
            dir.join("ejabberd.pid").display()
        );
        let inetrc = "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n";
        std::fs::create_dir_all(dir.join("db")).expect("db dir");
        std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
        std::fs::write(dir.join("ejabberd.yml"), yml).expect("ejabberd.yml");
        std::fs::write(dir.join("ejabberdctl.cfg"), cfg).expect("ejabberdctl.cfg");
        std::fs::write(dir.join("inetrc"), inetrc).expect("inetrc");
        // SAFETY: getuid(2) has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            let out = Command::new("chown")
                .arg("-R")
                .arg("ejabberd:ejabberd")
                .arg(dir)
                .output()
                .expect("chown");
            assert!(out.status.success(), "chown: {}", text(&out));
        }
    }

    fn await_listening(&self, port: u16) {
        let deadline = Instant::now() + CTL_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ejabberd is not listening on {port}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = self.dir.path().join("logs").join("ejabberd.log");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn pid(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(self.dir.path().join("ejabberd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        let pid = self.pid();
        let _ = self.ctl(&["stop"]);
        let Some(pid) = pid else { return };
        // The VM may still be exiting after `stop` returns; then it gets SIGKILL, but
        // only if the PID is still this instance (its command line names our dir).
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = |pid: libc::pid_t| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmd| {
                    let dir = self.dir.path().to_string_lossy().into_owned();
                    String::from_utf8_lossy(&cmd).contains(&dir)
                })
                .unwrap_or(false)
        };
        while ours(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if ours(pid) {
            eprintln!("ejabberd (pid {pid}) still running after stop; killing");
            // SAFETY: kill(2) on a PID checked above to be this instance's VM.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Runs `command` to completion, killing it (by PID) after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Output {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("run ejabberdctl");
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("ejabberdctl output"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                panic!("ejabberdctl did not finish within {timeout:?}");
            }
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
