//! The Python venv with slixmpp that `tests/run.sh` installs under `target/venv`, and
//! running the peer scripts in `tests/peers/` with a bounded time.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone)]
pub struct Python {
    pub exe: PathBuf,
}

/// What a finished peer script printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn has_line(&self, prefix: &str) -> bool {
        self.stdout.lines().any(|l| l.starts_with(prefix))
    }

    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success={}\n--- stdout\n{}\n--- stderr\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

impl Python {
    /// `STANZAGATE_PYTHON`, else `target/venv/bin/python`; must import slixmpp.
    pub fn find() -> Result<Python, String> {
        let exe = std::env::var_os("STANZAGATE_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| super::manifest_dir().join("target/venv/bin/python"));
        let ok = std::process::Command::new(&exe)
            .args(["-c", "import slixmpp"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            Ok(Python { exe })
        } else {
            Err(format!(
                "a Python with slixmpp at {} (set STANZAGATE_PYTHON)",
                exe.display()
            ))
        }
    }

    fn command(&self, script: &str, args: &[String]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg(super::manifest_dir().join("tests/peers").join(script))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs a script to completion (killed after `limit`).
    pub async fn run(&self, script: &str, args: &[String], limit: Duration) -> Run {
        let child = self.command(script, args).spawn().expect("start python");
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(Ok(output)) => Run {
                success: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            },
            Ok(Err(e)) => panic!("{script}: {e}"),
            Err(_) => panic!("{script} did not finish within {limit:?}"),
        }
    }

    /// Starts a long-running script; lines are read with [`Running::await_line`].
    /// Its output is drained continuously so a chatty peer never blocks on a full pipe.
    pub fn spawn(&self, script: &str, args: &[String]) -> Running {
        Running::start(self.command(script, args))
    }
}

impl Running {
    /// Starts `command` (stdout and stderr piped, killed on drop) and collects its
    /// output lines.
    pub fn start(mut command: Command) -> Running {
        let mut child = command.spawn().expect("start peer");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tx_err = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // stderr too (tracebacks), marked, so neither pipe can fill up.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx_err.send(format!("STDERR {line}")).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
            taken: Vec::new(),
        }
    }
}

/// A peer script still running.
pub struct Running {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
    /// Indexes of `seen` lines already returned by [`Running::take_line`].
    taken: Vec<usize>,
}

impl Running {
    /// Reads output until a line starting with `prefix` (bounded).
    pub async fn await_line(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let read = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.starts_with(prefix) {
                    return Some(line);
                }
            }
            None
        };
        tokio::time::timeout(limit, read).await.ok().flatten()
    }

    /// The first line starting with `prefix` not returned before, whether it was
    /// already read (by another wait) or is still to come (bounded).
    pub async fn take_line(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let unread = |seen: &[String], taken: &[usize]| {
            seen.iter()
                .enumerate()
                .find(|(i, line)| line.starts_with(prefix) && !taken.contains(i))
                .map(|(i, _)| i)
        };
        if let Some(i) = unread(&self.seen, &self.taken) {
            self.taken.push(i);
            return Some(self.seen[i].clone());
        }
        let found = self.await_line(prefix, limit).await;
        if found.is_some() {
            self.taken.push(self.seen.len() - 1);
        }
        found
    }

    /// SIGTERM and wait for the exit (bounded), returning everything it printed.
    pub async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(1), self.lines.recv()).await
        {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Python {
    /// Starts a component peer script and waits until it is connected.
    pub async fn component(
        &self,
        script: &str,
        name: &str,
        secret: &str,
        port: u16,
        args: &[&str],
    ) -> Running {
        let mut list: Vec<String> = [
            "--jid",
            name,
            "--secret",
            secret,
            "--port",
            &port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        list.extend(args.iter().map(|s| s.to_string()));
        let mut running = self.spawn(script, &list);
        if running
            .await_line("CONNECTED", Duration::from_secs(60))
            .await
            .is_none()
        {
            panic!("{script} did not connect:\n{}", running.seen.join("\n"));
        }
        running
    }
}
