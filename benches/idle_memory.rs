//! Memory per idle proxied session: stanzagate with TLS (direct-TLS listener, a
//! self-signed certificate made with rcgen), N clients that log in through to resource
//! binding and then sit idle; the proxy's RSS growth divided by N. Run for 1000 and 5000
//! sessions (linearity), plus 5000 plaintext sessions to separate the TLS share. Then
//! every session sends one message and waits for its echo (a woken idle session must
//! still relay), and RSS is read again once they are idle anew.
//!
//! Run with `cargo bench --bench idle_memory`. Under `cargo test` (no `--bench` argument)
//! it exits at once. Knobs: `IDLE_SESSIONS` (`1000,5000`), `IDLE_PLAIN` (`5000`; `0`
//! skips the plaintext row), `STANZAGATE_BIN`.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use support::process::{self, ProxySetup};

/// Sessions opened (and kept) before the baseline reading, so one-time allocations
/// (TLS code paths, runtime internals, registries) are not charged to the sessions.
const WARM_SESSIONS: usize = 16;
/// Handshakes and logins in flight at once.
const CONCURRENCY: usize = 64;

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    process::watchdog(Duration::from_secs(300));
    let counts: Vec<usize> = support::stats::env_counts("IDLE_SESSIONS", &[1000, 5000]);
    let plain = support::stats::env_num("IDLE_PLAIN", 5000) as usize;
    let nofile = process::raise_nofile();
    let largest = counts.iter().copied().chain([plain]).max().unwrap_or(0);
    let needed = 2 * (largest + WARM_SESSIONS) + 64;
    assert!(
        nofile as usize >= needed,
        "RLIMIT_NOFILE is {nofile}, the bench needs {needed}"
    );
    println!("idle memory bench: {}", process::machine());

    let dir = tempfile::tempdir().expect("temp dir");
    let certified = rcgen::generate_simple_self_signed(vec![support::DOMAIN.to_owned()])
        .expect("self-signed certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert.pem");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key.pem");
    let connector = tls_connector(certified.cert.der().clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let echo = runtime.block_on(support::echo::spawn());

    let mut rows = Vec::new();
    for &n in &counts {
        let proxy = process::start_stanzagate(
            dir.path(),
            &ProxySetup {
                bin: process::stanzagate_bin(),
                upstream: echo,
                tls: Some((&cert_path, &key_path)),
                direct_tls: true,
            },
        );
        let addr = proxy.direct_tls.expect("direct TLS listener");
        let connector = connector.clone();
        let row = runtime.block_on(measure("direct TLS", n, proxy, move |user| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(support::DOMAIN).expect("server name");
                let mut tls = connector.connect(name, tcp).await?;
                support::client::login(&mut tls, user).await?;
                Ok(tls)
            }
        }));
        rows.push(row);
    }
    if plain > 0 {
        let proxy = process::start_stanzagate(
            dir.path(),
            &ProxySetup {
                bin: process::stanzagate_bin(),
                upstream: echo,
                tls: None,
                direct_tls: false,
            },
        );
        let addr = proxy.c2s;
        let row = runtime.block_on(measure("plaintext", plain, proxy, move |user| async move {
            let mut tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            support::client::login(&mut tcp, user).await?;
            Ok(tcp)
        }));
        rows.push(row);
    }

    println!();
    println!(
        "| client side | sessions | RSS before KiB | RSS idle KiB | KiB per idle session | \
         KiB per session after 1 message each | RSS after close KiB |"
    );
    println!(
        "|-------------|---------:|---------------:|-------------:|---------------------:|\
         -------------------------------------:|--------------------:|"
    );
    for row in rows {
        let per_session = |rss: u64| (rss as f64 - row.before as f64) / row.sessions as f64;
        println!(
            "| {:<11} | {:>8} | {:>14} | {:>12} | {:>20.1} | {:>37.1} | {:>19} |",
            row.kind,
            row.sessions,
            row.before,
            row.idle,
            per_session(row.idle),
            per_session(row.after_message),
            row.closed
        );
    }
}

struct Row {
    kind: &'static str,
    sessions: usize,
    before: u64,
    idle: u64,
    after_message: u64,
    closed: u64,
}

fn tls_connector(cert: rustls::pki_types::CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the bench certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// Opens `count` sessions with `open`, `CONCURRENCY` at a time; all must succeed.
async fn open_all<S, F, Fut>(first_user: u64, count: usize, open: &F) -> Vec<S>
where
    S: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for user in first_user..first_user + count as u64 {
        let gate = gate.clone();
        let session = open(user);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open gate");
            tokio::time::timeout(Duration::from_secs(60), session)
                .await
                .map_err(|_| std::io::Error::other("login timed out"))?
        });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let session = joined
            .expect("session task")
            .unwrap_or_else(|e| panic!("session {} failed: {e}", sessions.len()));
        sessions.push(session);
    }
    sessions
}

/// RSS once it stops moving: readings 500 ms apart within 0.5 % (at most ~10 s).
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = process::rss_kib(pid);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = process::rss_kib(pid);
        if now.abs_diff(last) * 200 <= last {
            return now;
        }
        last = now;
    }
    last
}

/// One message round trip on every session (`CONCURRENCY` at a time); all must echo.
async fn message_each<S>(sessions: Vec<S>, first_user: u64) -> Vec<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (i, mut session) in sessions.into_iter().enumerate() {
        let gate = gate.clone();
        let message = support::client::message(first_user + i as u64);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("message gate");
            let mut echo = vec![0u8; message.len()];
            tokio::time::timeout(
                Duration::from_secs(30),
                support::client::round_trip(&mut session, &message, &mut echo),
            )
            .await
            .map_err(|_| std::io::Error::other("round trip timed out"))??;
            Ok::<_, std::io::Error>(session)
        });
    }
    let mut back = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        back.push(
            joined
                .expect("message task")
                .unwrap_or_else(|e| panic!("round trip on an idle session failed: {e}")),
        );
    }
    back
}

async fn measure<S, F, Fut>(
    kind: &'static str,
    sessions: usize,
    mut proxy: process::Proxy,
    open: F,
) -> Row
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
{
    let pid = proxy.process.pid();
    let warm = open_all(0, WARM_SESSIONS, &open).await;
    let before = settled_rss(pid).await;
    let opened = open_all(WARM_SESSIONS as u64, sessions, &open).await;
    let idle = settled_rss(pid).await;
    proxy.process.assert_running();
    eprintln!(
        "{kind}: {} sessions idle, proxy RSS {before} KiB -> {idle} KiB, {} open fds",
        opened.len(),
        process::fd_count(pid)
    );
    let opened = message_each(opened, WARM_SESSIONS as u64).await;
    let after_message = settled_rss(pid).await;
    eprintln!("{kind}: after one message on each session, proxy RSS {after_message} KiB");
    drop(opened);
    drop(warm);
    let closed = settled_rss(pid).await;
    eprintln!(
        "{kind}: all closed, proxy RSS {closed} KiB, {} open fds",
        process::fd_count(pid)
    );
    drop(proxy);
    Row {
        kind,
        sessions,
        before,
        idle,
        after_message,
        closed,
    }
}
