//! Capacity bench: thousands of concurrent TLS sessions held through stanzagate while a
//! hundred of them run message round trips.
//!
//! stanzagate (direct-TLS listener, a self-signed certificate) sits in front of the fast
//! echo upstream. First only the 100 active sessions log in and run closed-loop
//! 250-byte message round trips (the baseline); then the other sessions log in (full
//! TLS handshake and XMPP login each, a bounded number in flight) up to `CAP_SESSIONS`
//! and sit idle while the same 100 run the same load again; then the idle sessions
//! each prove they still relay (one round trip each) and close, and the baseline is
//! measured again. That cycle repeats `CAP_ROUNDS` times, so every loaded measurement
//! has a baseline just before and just after it, in the same run.
//!
//! Reported: logins/s (and the proxy's CPU per login), the proxy's RSS (`VmRSS`)
//! fresh, with the 100 active sessions, and with all sessions, the memory per session,
//! and for every phase round trips/s, p50/p99/mean latency and the proxy's CPU per
//! round trip; then latency(all sessions) ÷ latency(100 sessions).
//!
//! Run with `cargo bench --bench capacity`. Under `cargo test` (no `--bench` argument)
//! it exits at once. Knobs: `CAP_SESSIONS` (9000, all sessions including the active
//! ones), `CAP_ACTIVE` (100), `CAP_LOGIN_CONCURRENCY` (64), `CAP_WARMUP_SECS` (2),
//! `CAP_MEASURE_SECS` (10), `CAP_ROUNDS` (3), `STANZAGATE_BIN`.
//!
//! Descriptors: this process holds every client socket and the echo upstream's side of
//! every proxied stream (2 per session), the proxy as many; the soft `RLIMIT_NOFILE` is
//! raised to the hard limit before the proxy starts (it inherits it) and the bench
//! refuses to start if the hard limit is too low.

mod support;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use support::process::{self, ProxySetup};
use support::stats::{env_num, micros, summary_us};

type Session = TlsStream<TcpStream>;

/// Clients wait.
const IDLE: u8 = 0;
/// Clients run, nothing is recorded.
const WARM: u8 = 1;
/// Clients run and record.
const MEASURE: u8 = 2;
/// Clients return.
const STOP: u8 = 3;
/// A login (TCP connect to bound resource) slower than this fails the bench.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// A round trip slower than this fails the bench.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the wait for clients to park after a phase.
const PARK_TIMEOUT: Duration = Duration::from_secs(15);
/// Descriptors beyond 2 per session: listeners, runtime, logs, the active fleet.
const SPARE_FDS: u64 = 256;

/// What the active clients share with the controller.
struct Control {
    phase: AtomicU8,
    /// Clients not parked.
    running: AtomicUsize,
    wake: Notify,
    /// Latencies (ns) handed in by each client as it parks.
    samples: Mutex<Vec<u64>>,
}

impl Control {
    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    async fn park(&self) {
        self.set(IDLE);
        let deadline = Instant::now() + PARK_TIMEOUT;
        while self.running.load(Ordering::SeqCst) != 0 {
            assert!(
                Instant::now() < deadline,
                "active clients did not finish their round trips within {PARK_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// One measured phase of the active clients.
struct Phase {
    label: String,
    /// Sessions connected through the proxy during the phase.
    connected: usize,
    latencies: Vec<u64>,
    elapsed: Duration,
    proxy_cpu: Duration,
    bench_cpu: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn cpu_per_rt(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.latencies.len().max(1) as f64
    }
}

/// One batch of logins.
struct Logins {
    round: usize,
    count: usize,
    elapsed: Duration,
    /// Per login, TCP connect to bound resource, ns.
    latencies: Vec<u64>,
    proxy_cpu: Duration,
}

/// Memory readings of one round.
struct Memory {
    round: usize,
    /// With only the active sessions.
    active: u64,
    /// With every session logged in and idle.
    full: u64,
    /// Proxy descriptors with every session.
    fds: usize,
    /// After the idle sessions closed.
    closed: u64,
}

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    let sessions = env_num("CAP_SESSIONS", 9000) as usize;
    let active = env_num("CAP_ACTIVE", 100) as usize;
    let concurrency = env_num("CAP_LOGIN_CONCURRENCY", 64).max(1) as usize;
    let warmup = Duration::from_secs(env_num("CAP_WARMUP_SECS", 2));
    let measure = Duration::from_secs(env_num("CAP_MEASURE_SECS", 10).max(1));
    let rounds = env_num("CAP_ROUNDS", 3).max(1) as usize;
    assert!(
        active >= 1 && sessions > active,
        "CAP_SESSIONS ({sessions}) must exceed CAP_ACTIVE ({active})"
    );
    // Logins are budgeted at ≥ 20/s, far below what the slowest run here did.
    let per_round = (warmup + measure) * 2 + Duration::from_secs(60 + sessions as u64 / 20);
    process::watchdog(per_round * rounds as u32 + Duration::from_secs(120));

    let needed = 2 * sessions as u64 + SPARE_FDS;
    let (soft, hard) = process::nofile_limits();
    assert!(
        hard >= needed,
        "RLIMIT_NOFILE hard limit is {hard} (soft {soft}); {sessions} sessions need {needed} \
         descriptors in this process (a client socket and the echo upstream's socket per \
         session) and as many in the proxy. Raise the hard limit (as root: `prlimit --pid $$ \
         --nofile={needed}:{needed}` in the shell that runs cargo, or LimitNOFILE= in a \
         systemd unit) or lower CAP_SESSIONS."
    );
    let nofile = process::raise_nofile();
    assert!(
        nofile >= needed,
        "could not raise the soft RLIMIT_NOFILE to {needed} (got {nofile}, hard {hard})"
    );

    println!("capacity bench: {}", process::machine());
    println!(
        "{sessions} TLS sessions ({active} active), login concurrency {concurrency}, \
         {rounds} round(s); per phase {}s warm-up + {}s measured; RLIMIT_NOFILE {nofile}",
        warmup.as_secs(),
        measure.as_secs()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let cert = support::tls::self_signed(dir.path());
    let connector = support::tls::connector(cert.der.clone(), false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let echo = runtime.block_on(support::echo::spawn());
    let mut proxy = process::start_stanzagate(
        dir.path(),
        &ProxySetup {
            bin: process::stanzagate_bin(),
            upstream: echo,
            tls: Some((&cert.cert, &cert.key)),
            direct_tls: true,
        },
    );
    let pid = proxy.process.pid();
    let addr = proxy.direct_tls.expect("direct TLS listener");
    let child_nofile = process::nofile_of(pid).unwrap_or(0);
    assert!(
        child_nofile >= needed,
        "stanzagate (pid {pid}) runs with RLIMIT_NOFILE {child_nofile}, it needs {needed}"
    );
    eprintln!(
        "stanzagate {} pid {pid} (RLIMIT_NOFILE {child_nofile}), direct TLS on {addr}",
        process::stanzagate_bin().display()
    );

    let mut phases: Vec<Phase> = Vec::new();
    let mut logins: Vec<Logins> = Vec::new();
    let mut memory: Vec<Memory> = Vec::new();
    let fresh = runtime.block_on(async {
        let fresh = settled_rss(pid).await;
        let (streams, batch) = open_sessions(&connector, addr, 0, active, concurrency, pid).await;
        eprintln!(
            "{active} active sessions logged in ({:.0}/s); proxy RSS fresh {fresh} KiB",
            batch.count as f64 / batch.elapsed.as_secs_f64()
        );
        let control = Arc::new(Control {
            phase: AtomicU8::new(IDLE),
            running: AtomicUsize::new(0),
            wake: Notify::new(),
            samples: Mutex::new(Vec::new()),
        });
        let mut fleet = JoinSet::new();
        for (user, stream) in streams.into_iter().enumerate() {
            fleet.spawn(client_loop(stream, user as u64, control.clone()));
        }

        phases.push(run_phase(&control, pid, "baseline".into(), active, warmup, measure).await);
        for round in 1..=rounds {
            let active_rss = settled_rss(pid).await;
            let (idle, batch) = open_sessions(
                &connector,
                addr,
                active as u64,
                sessions - active,
                concurrency,
                pid,
            )
            .await;
            eprintln!(
                "round {round}: {} more sessions logged in, {:.0} logins/s",
                batch.count,
                batch.count as f64 / batch.elapsed.as_secs_f64()
            );
            logins.push(Logins { round, ..batch });
            let full = settled_rss(pid).await;
            let fds = process::fd_count(pid);
            proxy.process.assert_running();
            eprintln!(
                "round {round}: proxy RSS {active_rss} KiB -> {full} KiB with {sessions} \
                 sessions, {fds} open fds"
            );
            phases.push(
                run_phase(
                    &control,
                    pid,
                    format!("{sessions} sessions, round {round}"),
                    sessions,
                    warmup,
                    measure,
                )
                .await,
            );
            let idle = message_each(idle, active as u64, concurrency).await;
            eprintln!("round {round}: every idle session relayed one message");
            drop(idle);
            wait_fds_below(pid, 2 * active + SPARE_FDS as usize).await;
            let closed = settled_rss(pid).await;
            memory.push(Memory {
                round,
                active: active_rss,
                full,
                fds,
                closed,
            });
            phases.push(
                run_phase(
                    &control,
                    pid,
                    format!("baseline after round {round}"),
                    active,
                    warmup,
                    measure,
                )
                .await,
            );
        }
        control.set(STOP);
        while let Some(joined) = fleet.join_next().await {
            joined
                .expect("active client task")
                .unwrap_or_else(|e| panic!("an active client failed: {e}"));
        }
        fresh
    });
    proxy.process.assert_running();
    drop(proxy);
    report(sessions, active, concurrency, fresh, phases, logins, memory);
}

fn report(
    sessions: usize,
    active: usize,
    concurrency: usize,
    fresh: u64,
    mut phases: Vec<Phase>,
    mut logins: Vec<Logins>,
    memory: Vec<Memory>,
) {
    println!();
    println!("Logins (full TLS handshake + SASL PLAIN + bind, {concurrency} in flight):");
    println!();
    println!(
        "| round | sessions logged in | logins/s | login p50 ms | login p99 ms | \
         proxy CPU µs/login |"
    );
    println!("|------:|-------------------:|---------:|-------------:|-------------:|-------------------:|");
    for batch in &mut logins {
        let (p50, p99, _) = summary_us(&mut batch.latencies);
        println!(
            "| {:>5} | {:>18} | {:>8.0} | {:>12.1} | {:>12.1} | {:>18.0} |",
            batch.round,
            batch.count,
            batch.count as f64 / batch.elapsed.as_secs_f64().max(1e-9),
            p50 / 1000.0,
            p99 / 1000.0,
            batch.proxy_cpu.as_secs_f64() * 1e6 / batch.count.max(1) as f64,
        );
    }
    println!();
    println!("Proxy memory (VmRSS, KiB; fresh proxy before any session: {fresh}):");
    println!();
    println!(
        "| round | RSS, {active} sessions | RSS, {sessions} sessions | KiB per added session | \
         KiB per session from fresh | proxy fds | RSS after idle ones closed |"
    );
    println!("|------:|------:|------:|------:|------:|------:|------:|");
    for m in &memory {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} |",
            m.round,
            m.active,
            m.full,
            (m.full as f64 - m.active as f64) / (sessions - active) as f64,
            (m.full as f64 - fresh as f64) / sessions as f64,
            m.fds,
            m.closed
        );
    }
    println!();
    println!("{active} active clients, closed-loop 250-byte message round trips:");
    println!();
    println!(
        "| phase | sessions connected | round trips | rt/s | p50 µs | p99 µs | mean µs | \
         proxy CPU µs/rt | bench CPU µs/rt |"
    );
    println!("|-------|------:|------:|------:|------:|------:|------:|------:|------:|");
    let mut rows = Vec::new();
    for phase in &mut phases {
        let (p50, p99, mean) = summary_us(&mut phase.latencies);
        rows.push((
            p50,
            p99,
            mean,
            phase.rate(),
            phase.cpu_per_rt(phase.proxy_cpu),
        ));
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {:.1} | {:.1} |",
            phase.label,
            phase.connected,
            phase.latencies.len(),
            phase.rate(),
            micros(p50),
            micros(p99),
            micros(mean),
            phase.cpu_per_rt(phase.proxy_cpu),
            phase.cpu_per_rt(phase.bench_cpu),
        );
    }
    // Phases alternate: baseline, loaded, baseline, loaded, …, baseline.
    let pooled = |parity: usize| -> (Vec<u64>, f64, f64) {
        let mut ns = Vec::new();
        let mut secs = 0.0;
        let mut cpu = Duration::ZERO;
        for phase in phases.iter().skip(parity).step_by(2) {
            ns.extend_from_slice(&phase.latencies);
            secs += phase.elapsed.as_secs_f64();
            cpu += phase.proxy_cpu;
        }
        let rate = ns.len() as f64 / secs.max(1e-9);
        let cpu_per_rt = cpu.as_secs_f64() * 1e6 / ns.len().max(1) as f64;
        (ns, rate, cpu_per_rt)
    };
    let (mut base, base_rate, base_cpu) = pooled(0);
    let (mut loaded, loaded_rate, loaded_cpu) = pooled(1);
    let (b50, b99, bmean) = summary_us(&mut base);
    let (l50, l99, lmean) = summary_us(&mut loaded);
    println!();
    println!(
        "{sessions} sessions ÷ {active} sessions, all phases pooled: latency p50 {:.2}, p99 \
         {:.2}, mean {:.2}; throughput {:.2}; proxy CPU per round trip {:.2}",
        l50 / b50,
        l99 / b99,
        lmean / bmean,
        loaded_rate / base_rate,
        loaded_cpu / base_cpu,
    );
    println!("per round, ÷ the mean of the baselines just before and just after it:");
    for (k, loaded) in rows.iter().enumerate().skip(1).step_by(2) {
        let (before, after) = (rows[k - 1], rows.get(k + 1).copied().unwrap_or(rows[k - 1]));
        let mean = |f: fn(&(f64, f64, f64, f64, f64)) -> f64| (f(&before) + f(&after)) / 2.0;
        println!(
            "  round {}: latency p50 {:.2}, p99 {:.2}, mean {:.2}; throughput {:.2}; proxy CPU \
             per round trip {:.2}",
            k / 2 + 1,
            loaded.0 / mean(|r| r.0),
            loaded.1 / mean(|r| r.1),
            loaded.2 / mean(|r| r.2),
            loaded.3 / mean(|r| r.3),
            loaded.4 / mean(|r| r.4),
        );
    }
}

/// Warm-up, then one measured window of the active clients.
async fn run_phase(
    control: &Control,
    pid: u32,
    label: String,
    connected: usize,
    warmup: Duration,
    measure: Duration,
) -> Phase {
    let cpu = |pid: u32| {
        let (user, sys) = process::cpu_time(pid);
        user + sys
    };
    control.set(WARM);
    tokio::time::sleep(warmup).await;
    let (proxy_before, bench_before) = (cpu(pid), cpu(std::process::id()));
    let began = Instant::now();
    control.set(MEASURE);
    tokio::time::sleep(measure).await;
    control.set(WARM);
    let elapsed = began.elapsed();
    let (proxy_after, bench_after) = (cpu(pid), cpu(std::process::id()));
    control.park().await;
    let latencies = std::mem::take(&mut *control.samples.lock().expect("samples lock"));
    let phase = Phase {
        label,
        connected,
        latencies,
        elapsed,
        proxy_cpu: proxy_after.saturating_sub(proxy_before),
        bench_cpu: bench_after.saturating_sub(bench_before),
    };
    eprintln!(
        "{}: {:.0} rt/s over {:.1}s",
        phase.label,
        phase.rate(),
        elapsed.as_secs_f64()
    );
    phase
}

/// One active client: closed-loop round trips while the phase runs; latencies of round
/// trips that started and ended while measuring are handed in when it parks.
async fn client_loop(mut stream: Session, user: u64, control: Arc<Control>) -> std::io::Result<()> {
    let message = support::client::message(user);
    let mut echo = vec![0u8; message.len()];
    let mut latencies = Vec::new();
    control.running.fetch_add(1, Ordering::SeqCst);
    loop {
        let phase = control.phase.load(Ordering::SeqCst);
        if phase == STOP {
            control.running.fetch_sub(1, Ordering::SeqCst);
            return Ok(());
        }
        if phase == IDLE {
            control
                .samples
                .lock()
                .expect("samples lock")
                .append(&mut latencies);
            let woken = control.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            control.running.fetch_sub(1, Ordering::SeqCst);
            if control.phase.load(Ordering::SeqCst) == IDLE {
                woken.await;
            }
            control.running.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let start = Instant::now();
        tokio::time::timeout(
            ROUND_TRIP_TIMEOUT,
            support::client::round_trip(&mut stream, &message, &mut echo),
        )
        .await
        .map_err(|_| std::io::Error::other(format!("user{user}: round trip timed out")))??;
        let took = start.elapsed().as_nanos() as u64;
        if phase == MEASURE && control.phase.load(Ordering::SeqCst) == MEASURE {
            latencies.push(took);
        }
    }
}

/// Logs in `count` sessions (`user{first}`…) over direct TLS, `concurrency` at a time;
/// all must succeed.
async fn open_sessions(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    first: u64,
    count: usize,
    concurrency: usize,
    pid: u32,
) -> (Vec<Session>, Logins) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let cpu_before = process::cpu_time(pid);
    let began = Instant::now();
    for user in first..first + count as u64 {
        let gate = gate.clone();
        let connector = connector.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("login gate");
            let start = Instant::now();
            let login = async {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let mut tls = connector.connect(support::tls::server_name(), tcp).await?;
                support::client::login(&mut tls, user).await?;
                Ok::<_, std::io::Error>(tls)
            };
            let tls = tokio::time::timeout(LOGIN_TIMEOUT, login)
                .await
                .map_err(|_| std::io::Error::other("login timed out"))
                .and_then(|r| r)
                .map_err(|e| (user, e))?;
            Ok::<_, (u64, std::io::Error)>((tls, start.elapsed().as_nanos() as u64))
        });
    }
    let mut sessions = Vec::with_capacity(count);
    let mut latencies = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("login task") {
            Ok((tls, took)) => {
                sessions.push(tls);
                latencies.push(took);
            }
            Err((user, e)) => panic!(
                "login of user{user} failed after {} successful logins: {e}",
                sessions.len()
            ),
        }
    }
    let elapsed = began.elapsed();
    let cpu_after = process::cpu_time(pid);
    let proxy_cpu = (cpu_after.0 + cpu_after.1).saturating_sub(cpu_before.0 + cpu_before.1);
    (
        sessions,
        Logins {
            round: 0,
            count,
            elapsed,
            latencies,
            proxy_cpu,
        },
    )
}

/// One message round trip on every session (`concurrency` at a time); all must echo.
async fn message_each(sessions: Vec<Session>, first: u64, concurrency: usize) -> Vec<Session> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for (i, mut session) in sessions.into_iter().enumerate() {
        let gate = gate.clone();
        let message = support::client::message(first + i as u64);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("message gate");
            let mut echo = vec![0u8; message.len()];
            tokio::time::timeout(
                ROUND_TRIP_TIMEOUT,
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

/// Waits (at most 60 s) until the proxy holds fewer than `limit` descriptors.
async fn wait_fds_below(pid: u32, limit: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fds = process::fd_count(pid);
        if fds < limit {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("warning: the proxy still holds {fds} descriptors 60 s after the idle sessions closed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
