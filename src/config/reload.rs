//! Hot reload: `ConfigHandle` publishes the current configuration (lock-free reads,
//! change notifications) and `spawn_reloader` re-reads the file when it changes on
//! disk or on SIGHUP.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::diff::{keep_restart_settings, ConfigDiff};
use super::issue::ConfigErrors;
use super::schema::{Config, TlsConfig};

/// Editors and config-management tools write in several steps; wait for quiet.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A file that keeps changing is still reloaded this long after its first change:
/// the debounce must not starve reloads (or SIGHUP) forever.
const MAX_SETTLE: Duration = Duration::from_secs(1);

/// The live configuration shared by every part of the proxy.
pub struct ConfigHandle {
    current: ArcSwap<Config>,
    updates: watch::Sender<Arc<Config>>,
    /// Serialises reloads (file watcher, SIGHUP, admin endpoint) and remembers the
    /// certificate contents seen by the last one.
    tls_fingerprint: Mutex<Option<u64>>,
    generation: AtomicU64,
}

impl ConfigHandle {
    pub fn new(cfg: Config) -> Arc<ConfigHandle> {
        let fingerprint = tls_fingerprint(&cfg.tls);
        let cfg = Arc::new(cfg);
        let (updates, _) = watch::channel(Arc::clone(&cfg));
        Arc::new(ConfigHandle {
            current: ArcSwap::new(cfg),
            updates,
            tls_fingerprint: Mutex::new(fingerprint),
            generation: AtomicU64::new(0),
        })
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Notified after each successful reload that changed something.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.updates.subscribe()
    }

    /// How many times a new configuration has been published since start.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-reads the configuration file. On success the new configuration (with
    /// listener and upstream endpoint settings kept at their running values) is
    /// published, unless nothing changed; on failure the old one stays. Logs and
    /// counts the attempt. Blocking: call it from `spawn_blocking` in async code.
    pub fn reload(&self) -> Result<ConfigDiff, ConfigErrors> {
        let outcome = self.try_reload();
        record(&outcome);
        outcome
    }

    fn try_reload(&self) -> Result<ConfigDiff, ConfigErrors> {
        let mut last_fingerprint = self
            .tls_fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.current();
        let new = Config::load(&old.source)?;
        let mut diff = ConfigDiff::between(&old, &new);
        let new = keep_restart_settings(&old, new);
        let fingerprint = tls_fingerprint(&new.tls);
        let same_files = old.tls.cert == new.tls.cert && old.tls.key == new.tls.key;
        if fingerprint != *last_fingerprint && same_files {
            diff.changes
                .push("tls certificate files changed".to_owned());
        }
        *last_fingerprint = fingerprint;
        if !diff.changes.is_empty() {
            self.publish(new);
        }
        Ok(diff)
    }

    fn publish(&self, cfg: Config) {
        let cfg = Arc::new(cfg);
        self.current.store(Arc::clone(&cfg));
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.updates.send_replace(cfg);
    }
}

/// Detects certificate renewals that keep the same paths; `None` when there is
/// nothing to read.
fn tls_fingerprint(tls: &TlsConfig) -> Option<u64> {
    let files = [tls.cert.as_ref(), tls.key.as_ref()];
    if files.iter().all(Option::is_none) {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    for path in files.into_iter().flatten() {
        std::fs::read(path).ok().hash(&mut hasher);
    }
    Some(hasher.finish())
}

fn record(outcome: &Result<ConfigDiff, ConfigErrors>) {
    match outcome {
        Ok(diff) if diff.is_empty() => {
            tracing::debug!("configuration file unchanged; nothing reloaded");
        }
        Ok(diff) => {
            if !diff.changes.is_empty() {
                tracing::info!(changes = diff.changes.len(), "configuration reloaded");
            }
            for change in &diff.changes {
                tracing::info!("config change: {change}");
            }
            for change in &diff.needs_restart {
                tracing::warn!("{change}");
            }
        }
        Err(errors) => {
            tracing::error!("configuration reload failed; keeping the previous configuration");
            for issue in errors.issues() {
                tracing::error!(key = %issue.key, line = ?issue.line, "{}", issue.message);
            }
        }
    }
    let result = if outcome.is_ok() { "ok" } else { "error" };
    metrics::counter!(crate::metrics::CONFIG_RELOADS_TOTAL, "result" => result).increment(1);
}

/// Starts reloading `handle` on file changes and SIGHUP. The file watch is in
/// place when this returns, so a write right after it is not missed. Must be
/// called inside a Tokio runtime; abort the returned task to stop.
pub fn spawn_reloader(handle: Arc<ConfigHandle>) -> JoinHandle<()> {
    let source = handle.current().source.clone();
    let (tx, events) = mpsc::unbounded_channel();
    let watcher = watch_config_file(&source, tx);
    let hangup = signal(SignalKind::hangup())
        .map_err(|e| tracing::error!("cannot listen for SIGHUP: {e}"))
        .ok();
    tokio::spawn(async move {
        // Dropping the watcher would stop the events, so the task owns it.
        let _watcher = watcher;
        reload_loop(handle, events, hangup).await;
    })
}

async fn reload_loop(
    handle: Arc<ConfigHandle>,
    mut events: mpsc::UnboundedReceiver<()>,
    mut hangup: Option<Signal>,
) {
    loop {
        tokio::select! {
            () = next_event(&mut events) => settle(&mut events, &mut hangup).await,
            () = next_hangup(&mut hangup) => tracing::info!("SIGHUP: reloading configuration"),
        }
        let handle = Arc::clone(&handle);
        if let Err(e) = tokio::task::spawn_blocking(move || handle.reload()).await {
            tracing::error!("configuration reload task failed: {e}");
        }
    }
}

/// Waits for a file event; never returns once the watcher is gone, so the loop
/// then only serves SIGHUP.
async fn next_event(events: &mut mpsc::UnboundedReceiver<()>) {
    if events.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
}

async fn next_hangup(hangup: &mut Option<Signal>) {
    let received = match hangup {
        Some(signal) => signal.recv().await,
        None => None,
    };
    if received.is_none() {
        std::future::pending::<()>().await;
    }
}

/// Returns once no event has arrived for [`DEBOUNCE`], at the latest [`MAX_SETTLE`]
/// after the first, or at once on SIGHUP.
async fn settle(events: &mut mpsc::UnboundedReceiver<()>, hangup: &mut Option<Signal>) {
    let deadline = tokio::time::Instant::now() + MAX_SETTLE;
    loop {
        let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(deadline);
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            () = tokio::time::sleep_until(quiet) => return,
            () = next_hangup(hangup) => {
                tracing::info!("SIGHUP: reloading configuration");
                return;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

/// Watches the file's directory rather than the file: editors replace the file
/// by renaming over it and Kubernetes swaps a symlink next to it, both of which
/// would silently end a watch on the file itself.
fn watch_config_file(source: &Path, tx: mpsc::UnboundedSender<()>) -> Option<RecommendedWatcher> {
    let dir = source.parent()?.to_owned();
    let Some(name) = source.file_name().map(OsString::from) else {
        tracing::error!("cannot watch {}: not a file path", source.display());
        return None;
    };
    let path = source.to_owned();
    let on_event = move |event: notify::Result<Event>| match event {
        Ok(event) if concerns_config(&event, &path, &name) => {
            // The reloader may have stopped; there is nobody left to tell.
            let _ = tx.send(());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("configuration file watch error: {e}"),
    };
    let watcher = notify::recommended_watcher(on_event).and_then(|mut watcher| {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    watcher
        .map_err(|e| tracing::error!("cannot watch {}: {e}; only SIGHUP reloads", dir.display()))
        .ok()
}

fn concerns_config(event: &Event, path: &Path, name: &OsString) -> bool {
    let changes_content = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    // Through a symlink, the change happens to entries with other names.
    let via_symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let names_file = event
        .paths
        .iter()
        .any(|p| p.file_name() == Some(name.as_os_str()));
    changes_content && (via_symlink || names_file)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use tempfile::TempDir;
    use tokio::time::timeout;

    use super::*;

    /// Generous: only reached when a reload is missed.
    const SAFETY_NET: Duration = Duration::from_secs(5);

    /// The file-watching tests share SIGHUP and must not see each other's reloads.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn text(c2s: &str, ns: &str) -> String {
        format!(
            r#"[listen]
c2s = "{c2s}"
[upstream]
c2s = "127.0.0.1:15222"
[tls]
required = false
[hosts."a".delegations."{ns}"]
jid = "u@a"
"#
        )
    }

    fn setup(content: &str) -> (TempDir, PathBuf, Arc<ConfigHandle>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, content).unwrap();
        let handle = ConfigHandle::new(Config::load(&path).unwrap());
        (dir, path, handle)
    }

    fn delegated(cfg: &Config) -> Vec<String> {
        cfg.hosts["a"].delegations.keys().cloned().collect()
    }

    /// Writes through a temporary file and a rename, as editors do.
    fn replace_by_rename(path: &Path, content: &str) {
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    async fn next_update(rx: &mut watch::Receiver<Arc<Config>>) -> Arc<Config> {
        timeout(SAFETY_NET, rx.changed())
            .await
            .expect("no reload within the safety net")
            .unwrap();
        rx.borrow_and_update().clone()
    }

    #[test]
    fn reload_applies_a_delegation_change() {
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        let rx = handle.subscribe();
        std::fs::write(&path, text("0.0.0.0:5222", "urn:xmpp:x")).unwrap();
        let diff = handle.reload().unwrap();
        assert_eq!(
            diff.changes,
            [
                r#"hosts."a".delegations."urn:xmpp:mam:2" removed"#,
                r#"hosts."a".delegations."urn:xmpp:x" added"#,
            ]
        );
        assert_eq!(delegated(&handle.current()), ["urn:xmpp:x"]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(handle.generation(), 1);
    }

    #[test]
    fn invalid_edit_keeps_the_old_config() {
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        let before = handle.current();
        let rx = handle.subscribe();
        std::fs::write(&path, text("0.0.0.0:5222", "urn:xmpp:delegation:2")).unwrap();
        let errors = handle.reload().unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].line, Some(7));
        assert_eq!(handle.current(), before);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(handle.generation(), 0);
    }

    #[test]
    fn listen_change_needs_restart_and_keeps_the_running_value() {
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        std::fs::write(&path, text("0.0.0.0:6222", "urn:xmpp:x")).unwrap();
        let diff = handle.reload().unwrap();
        assert_eq!(diff.needs_restart.len(), 1, "{diff:?}");
        assert!(
            diff.needs_restart[0].starts_with("listen.c2s changed (0.0.0.0:5222 -> 0.0.0.0:6222)")
        );
        let current = handle.current();
        assert_eq!(current.listen.c2s, "0.0.0.0:5222".parse().unwrap());
        assert_eq!(delegated(&current), ["urn:xmpp:x"]);
    }

    #[test]
    fn restart_only_change_publishes_nothing() {
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        std::fs::write(&path, text("0.0.0.0:6222", "urn:xmpp:mam:2")).unwrap();
        let diff = handle.reload().unwrap();
        assert!(diff.changes.is_empty());
        assert_eq!(diff.needs_restart.len(), 1);
        assert_eq!(handle.generation(), 0);
    }

    #[test]
    fn unchanged_file_is_skipped() {
        let (_dir, _path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        let rx = handle.subscribe();
        assert!(handle.reload().unwrap().is_empty());
        assert!(!rx.has_changed().unwrap());
        assert_eq!(handle.generation(), 0);
    }

    #[test]
    fn renewed_certificate_counts_as_a_change() {
        let content = text("0.0.0.0:5222", "ns")
            .replace("required = false", "cert = \"c.pem\"\nkey = \"k.pem\"");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "cert 1").unwrap();
        std::fs::write(dir.path().join("k.pem"), "key 1").unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, content).unwrap();
        let handle = ConfigHandle::new(Config::load(&path).unwrap());
        std::fs::write(dir.path().join("c.pem"), "cert 2").unwrap();
        let diff = handle.reload().unwrap();
        assert_eq!(diff.changes, ["tls certificate files changed"]);
        assert_eq!(handle.generation(), 1);
        assert!(handle.reload().unwrap().is_empty());
    }

    #[tokio::test]
    async fn reloader_follows_writes_and_renames() {
        let _serial = SERIAL.lock().await;
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        let mut rx = handle.subscribe();
        let task = spawn_reloader(Arc::clone(&handle));

        std::fs::write(&path, text("0.0.0.0:5222", "urn:xmpp:written")).unwrap();
        assert_eq!(
            delegated(&*next_update(&mut rx).await),
            ["urn:xmpp:written"]
        );

        replace_by_rename(&path, &text("0.0.0.0:5222", "urn:xmpp:renamed"));
        assert_eq!(
            delegated(&*next_update(&mut rx).await),
            ["urn:xmpp:renamed"]
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_burst_of_writes_is_one_reload() {
        let _serial = SERIAL.lock().await;
        let (_dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        let mut rx = handle.subscribe();
        let task = spawn_reloader(Arc::clone(&handle));

        for i in 0..5 {
            std::fs::write(&path, text("0.0.0.0:5222", &format!("urn:xmpp:burst:{i}"))).unwrap();
        }
        assert_eq!(
            delegated(&*next_update(&mut rx).await),
            ["urn:xmpp:burst:4"]
        );
        // A later, distinct write shows whether the burst had published more.
        std::fs::write(&path, text("0.0.0.0:5222", "urn:xmpp:after")).unwrap();
        assert_eq!(delegated(&*next_update(&mut rx).await), ["urn:xmpp:after"]);
        assert_eq!(handle.generation(), 2);
        task.abort();
    }

    #[tokio::test]
    async fn reloader_follows_a_kubernetes_style_symlink_swap() {
        let _serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let version = |name: &str, ns: &str| {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            let content = text("0.0.0.0:5222", ns);
            std::fs::write(dir.path().join(name).join("proxy.toml"), content).unwrap();
        };
        version("..v1", "urn:xmpp:v1");
        std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
        let path = dir.path().join("proxy.toml");
        std::os::unix::fs::symlink("..data/proxy.toml", &path).unwrap();
        let handle = ConfigHandle::new(Config::load(&path).unwrap());
        let mut rx = handle.subscribe();
        let task = spawn_reloader(Arc::clone(&handle));

        version("..v2", "urn:xmpp:v2");
        std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_eq!(delegated(&*next_update(&mut rx).await), ["urn:xmpp:v2"]);
        assert_eq!(handle.current().source, path);
        task.abort();
    }

    #[tokio::test]
    async fn reloader_reloads_on_sighup() {
        let _serial = SERIAL.lock().await;
        let (dir, path, handle) = setup(&text("0.0.0.0:5222", "urn:xmpp:mam:2"));
        // Written before the watch starts, so only the signal can pick it up.
        std::fs::write(&path, text("0.0.0.0:5222", "urn:xmpp:hup")).unwrap();
        let mut rx = handle.subscribe();
        let task = spawn_reloader(Arc::clone(&handle));
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(delegated(&*next_update(&mut rx).await), ["urn:xmpp:hup"]);
        task.abort();
        drop(dir);
    }
}
