//! Command line and wiring: parse arguments, load the config, bind listeners, start the
//! reloader, run until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use stanzagate::admin::{self, AdminState};
use stanzagate::c2s::{self, ListenerKind};
use stanzagate::config::{spawn_reloader, Config, ConfigHandle};
use stanzagate::shared::Shared;

#[derive(Parser)]
#[command(name = "stanzagate", version, about = "XMPP stanza-routing proxy")]
struct Cli {
    /// Path of the configuration file.
    #[arg(long, global = true, default_value = "proxy.toml")]
    config: PathBuf,
    /// Log output format (filter with RUST_LOG, default "info").
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration file and exit (0 = valid, 1 = errors, each printed).
    CheckConfig,
    /// Print the proxy.toml sections equivalent to a Prosody configuration's
    /// delegations, privileged_entities, http_roster_url and Components (exit 0; 2 when
    /// something could not be translated, listed on stderr with its line; 1 when the
    /// file cannot be read or parsed).
    ImportProsody {
        /// The Prosody configuration, e.g. /etc/prosody/prosody.cfg.lua.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig) => check_config(&cli.config),
        Some(Command::ImportProsody { file }) => import_prosody(&file),
        None => {
            init_logging(cli.log_format);
            match run(cli.config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("stanzagate: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn import_prosody(path: &std::path::Path) -> ExitCode {
    let lua = match std::fs::read_to_string(path) {
        Ok(lua) => lua,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match stanzagate::config::import_prosody(&lua) {
        Ok(imported) => {
            print!("{}", imported.toml);
            for item in &imported.untranslated {
                match item.line {
                    0 => eprintln!("{}: not translated: {}", path.display(), item.what),
                    line => eprintln!("{}:{line}: not translated: {}", path.display(), item.what),
                }
            }
            match imported.untranslated.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(2),
            }
        }
        Err(error) => {
            eprintln!("{}:{error}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(config_path: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config_path))
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let metrics = stanzagate::metrics::install().context("cannot install the metrics recorder")?;
    // Opened before anything listens: a proxy that cannot keep its promises to offline
    // users must not start (one process per file; redb refuses a second opener).
    let store = stanzagate::store::Embedded::open(&config.store.path)
        .context("cannot open the durable store (store.path)")?;
    let handle = ConfigHandle::new(config);
    let shared =
        Shared::new(handle.clone(), Arc::new(store)).context("cannot load TLS material")?;
    let cfg = handle.current();

    // One store for every client listener: a stream may resume on any of them.
    let resume = Arc::new(c2s::ResumeStore::default());
    let c2s_listener = bind(cfg.listen.c2s, "listen.c2s").await?;
    tokio::spawn(c2s::serve(
        c2s_listener,
        ListenerKind::StartTls,
        shared.clone(),
        resume.clone(),
    ));
    let optional = [
        (
            cfg.listen.c2s_direct_tls,
            "listen.c2s_direct_tls",
            ListenerKind::DirectTls,
        ),
        (
            cfg.listen.websocket,
            "listen.websocket",
            ListenerKind::WebSocket,
        ),
        (
            cfg.listen.websocket_tls,
            "listen.websocket_tls",
            ListenerKind::WebSocketTls,
        ),
    ];
    for (addr, key, kind) in optional {
        if let Some(addr) = addr {
            let listener = bind(addr, key).await?;
            tokio::spawn(c2s::serve(listener, kind, shared.clone(), resume.clone()));
        }
    }
    if let Some(addr) = cfg.listen.component {
        let listener = bind(addr, "listen.component").await?;
        tokio::spawn(stanzagate::component::serve(listener, shared.clone()));
    }
    if let Some(addr) = cfg.listen.http {
        let listener = bind(addr, "listen.http").await?;
        let state = Arc::new(AdminState {
            metrics: Some(metrics),
            shared: shared.clone(),
        });
        tokio::spawn(admin::serve(listener, state));
    }
    spawn_reloader(handle.clone());
    tokio::spawn(expire_queued(shared.clone()));
    tokio::spawn(apply_reloads(shared.clone()));
    tracing::info!(
        config = %cfg.source.display(),
        c2s = %cfg.listen.c2s,
        upstream = %cfg.upstream.c2s,
        "ready"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({key})"))
}

/// After each successful config swap: new TLS material for new connections.
async fn apply_reloads(shared: Arc<Shared>) {
    let mut changes = shared.config.subscribe();
    let mut grants = shared.privilege.current();
    let mut delegations = shared.delegation.current();
    while changes.changed().await.is_ok() {
        // Components follow reloads on their own link; user accounts are told here.
        let now = shared.privilege.current();
        shared.privilege.readvertise_users(&grants, &now);
        grants = now;
        let now = shared.delegation.current();
        shared.delegation.readvertise_users(&delegations, &now);
        delegations = now;
        match shared.reload_tls() {
            Ok(()) => tracing::info!("TLS material reloaded"),
            Err(error) => {
                tracing::error!(%error, "TLS reload failed; keeping the previous certificate")
            }
        }
    }
}

/// Operations for users who never log in again would wait forever: the queue is swept
/// for those older than `store.max_queue_age_s` every ten minutes.
async fn expire_queued(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        let (store, max_age) = (
            shared.store.clone(),
            shared.config.current().store.max_queue_age,
        );
        let swept = tokio::task::spawn_blocking(move || {
            store.expire(std::time::SystemTime::now(), max_age)
        })
        .await;
        match swept {
            Ok(Ok(kinds)) => {
                for kind in kinds {
                    stanzagate::store::count(kind, "expired", 1);
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot sweep expired operations"),
            Err(error) => tracing::warn!(%error, "the sweep of expired operations failed"),
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
