//! Child processes the harness owns: output captured line by line so tests can await
//! a log line, and stopped by PID (SIGTERM, then SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

pub struct Owned {
    name: String,
    child: Option<Child>,
    output: Arc<Lines>,
}

impl Owned {
    /// Starts `command` with stdout and stderr captured.
    pub fn spawn(name: &str, mut command: Command) -> Owned {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Lines::default());
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, output.clone());
        }
        Owned {
            name: name.to_owned(),
            child: Some(child),
            output,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until an output line contains `needle`, counting only lines after the
    /// first `skip` ones. Returns the index of the matching line.
    pub fn wait_line_after(&self, skip: usize, needle: &str, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().expect("output lock");
        loop {
            if let Some(i) = lines.iter().skip(skip).position(|l| l.contains(needle)) {
                return Some(skip + i);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self
                .output
                .grew
                .wait_timeout(lines, deadline - now)
                .expect("output lock")
                .0;
        }
    }

    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<usize> {
        self.wait_line_after(0, needle, timeout)
    }

    pub fn line_count(&self) -> usize {
        self.output.lines.lock().expect("output lock").len()
    }

    pub fn output(&self) -> String {
        self.output.lines.lock().expect("output lock").join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the PID of a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} (pid {pid}) ignored SIGTERM; killing", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect(stream: impl std::io::Read + Send + 'static, output: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("STANZAGATE_TEST_ECHO").is_some() {
                eprintln!("| {line}");
            }
            output.lines.lock().expect("output lock").push(line);
            output.grew.notify_all();
        }
    });
}
