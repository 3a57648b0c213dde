//! libervia-pubsub (Debian's package: an external PEP and pubsub service, XEP-0355
//! and XEP-0356 client), run as a component with a PostgreSQL cluster of its own in a
//! temporary directory, on loopback, stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::Owned;

/// Where Debian installs it (`PYTHONPATH` for twistd's plugin).
const HOME: &str = "/usr/share/libervia";
const SCHEMA: &str = "/usr/share/libervia/sat_pubsub/db/pubsub.sql";

/// Why libervia-pubsub cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new(SCHEMA).exists() || twistd().is_none() {
        return Some("Debian package 'libervia-pubsub' (apt-get install libervia-pubsub)".into());
    }
    if postgres_bin().is_none() || which("psql").is_none() {
        return Some("Debian package 'postgresql' (apt-get install postgresql)".into());
    }
    None
}

/// Debian's Python 3 Twisted names it `twistd3`.
fn twistd() -> Option<PathBuf> {
    which("twistd3").or_else(|| which("twistd"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

/// The newest installed PostgreSQL's `bin` directory.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// PostgreSQL refuses to run as root: as root, its commands run as the `postgres`
/// account (setpriv execs, so the PID is the server's own).
fn as_db_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
    command
}

/// A PostgreSQL server with the `pubsub` database initialised from the package's
/// schema.
pub struct Postgres {
    _dir: tempfile::TempDir,
    pub port: u16,
    _server: Owned,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = postgres_bin().expect("postgresql");
        let dir = tempfile::Builder::new()
            .prefix("sg-postgres-")
            .tempdir()
            .expect("tempdir");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let init = as_db_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "pubsub", "-E", "UTF8", "--no-sync"])
            .current_dir("/")
            .output()
            .expect("initdb");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = super::free_port();
        let mut server = as_db_user(&bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .current_dir("/");
        let server = Owned::spawn("postgres", server);
        assert!(
            server
                .wait_line(
                    "database system is ready to accept connections",
                    Duration::from_secs(30)
                )
                .is_some(),
            "postgres did not start:\n{}",
            server.output()
        );
        let postgres = Postgres {
            _dir: dir,
            port,
            _server: server,
        };
        postgres.psql("postgres", &["-c", "CREATE DATABASE pubsub"]);
        postgres.psql("pubsub", &["-f", SCHEMA]);
        postgres
    }

    fn psql(&self, db: &str, args: &[&str]) {
        let out = Command::new("psql")
            .args([
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "pubsub",
            ])
            .args(["-p", &self.port.to_string(), "-d", db])
            .args(args)
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// libervia-pubsub connected as the component `jid` on `port`, with its database.
pub struct Libervia {
    pub process: Owned,
    _dir: tempfile::TempDir,
    _db: Postgres,
}

impl Libervia {
    pub fn start(jid: &str, secret: &str, port: u16) -> Libervia {
        let db = Postgres::start();
        // Its working directory is where it looks for `libervia.conf`: an empty one.
        let dir = tempfile::Builder::new()
            .prefix("sg-libervia-")
            .tempdir()
            .expect("tempdir");
        let mut command = Command::new(twistd().expect("twistd"));
        command
            .args([
                "--nodaemon",
                "--pidfile=",
                "--logfile=-",
                "libervia-pubsub",
                "--verbose",
            ])
            .current_dir(dir.path())
            .env("PYTHONPATH", HOME)
            .env("HOME", dir.path())
            .env("LIBERVIA_PUBSUB_JID", jid)
            .env("LIBERVIA_PUBSUB_XMPP_PWD", secret)
            .env("LIBERVIA_PUBSUB_RHOST", "127.0.0.1")
            .env("LIBERVIA_PUBSUB_RPORT", port.to_string())
            .env("LIBERVIA_PUBSUB_DB_USER", "pubsub")
            .env("LIBERVIA_PUBSUB_DB_NAME", "pubsub")
            .env("LIBERVIA_PUBSUB_DB_HOST", "127.0.0.1")
            .env("LIBERVIA_PUBSUB_DB_PORT", db.port.to_string());
        let process = Owned::spawn("libervia-pubsub", command);
        Libervia {
            process,
            _dir: dir,
            _db: db,
        }
    }

    /// Waits until it has taken the proxy's delegation advertisement.
    pub fn ready(&self) {
        let ready = self
            .process
            .wait_line("delegations updated", Duration::from_secs(60));
        assert!(
            ready.is_some(),
            "libervia-pubsub did not start:\n{}",
            self.process.output()
        );
    }
}
