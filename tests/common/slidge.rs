//! The real slidge gateway (PyPI `slidge`, in its own venv that `tests/run.sh` installs
//! under `target/venv-slidge`), run as a component with the test legacy network in
//! `tests/peers/slidge_legacy/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::python::Running;

/// The slidge release the tests run (and `tests/run.sh` installs).
pub const VERSION: &str = "0.4.2";

/// How long slidge may take to start (it imports a lot and migrates its database).
pub const START: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Slidge {
    python: PathBuf,
}

impl Slidge {
    /// `STANZAGATE_SLIDGE_PYTHON`, else `target/venv-slidge/bin/python`; must import
    /// slidge at [`VERSION`].
    pub fn find() -> Result<Slidge, String> {
        let python = std::env::var_os("STANZAGATE_SLIDGE_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| super::manifest_dir().join("target/venv-slidge/bin/python"));
        let check = format!(
            "import sys; from importlib.metadata import version; sys.exit(version('slidge') != '{VERSION}')"
        );
        let ok = std::process::Command::new(&python)
            .args(["-c", &check])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            Ok(Slidge { python })
        } else {
            Err(format!(
                "a Python with slidge {VERSION} at {} (set STANZAGATE_SLIDGE_PYTHON)",
                python.display()
            ))
        }
    }

    /// Starts slidge as the component `jid` on `port`, keeping its database in `home`
    /// (so a second start finds the users registered by the first) and reading the
    /// legacy network from `network`. Returns once slidge says it has started.
    pub async fn start(
        &self,
        jid: &str,
        secret: &str,
        port: u16,
        home: &Path,
        network: &Path,
    ) -> Running {
        // Never the machine's /etc/slidge/conf.d: an empty one of its own.
        let conf = home.join("conf.d");
        std::fs::create_dir_all(&conf).expect("slidge conf.d");
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "slidge", "--legacy-module", "slidge_legacy"])
            .args(["--jid", jid, "--secret", secret, "--server", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .arg("--home-dir")
            .arg(home)
            .env("PYTHONPATH", super::manifest_dir().join("tests/peers"))
            .env("LEGACY_NETWORK", network)
            .env("SLIDGE_CONF_DIR", &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut running = Running::start(command);
        if running
            .await_line(
                "STDERR INFO:slidge.core.gateway:Slidge has successfully started",
                START,
            )
            .await
            .is_none()
        {
            panic!("slidge did not start:\n{}", running.stop().await);
        }
        running
    }
}
