//! Delegation bench: closed-loop round trips of a delegated IQ (XEP-0355) through
//! stanzagate in front of a plain Prosody, against the reference — Prosody with
//! prosody-modules' mod_delegation, clients and component attached to it directly —
//! with the same fast Rust component answering in both setups. Then, through
//! stanzagate with one client, the latency a delegated IQ adds over a pass-through IQ
//! (a ping answered by Prosody).
//!
//! Both setups run side by side: every client of both is logged in once, and the
//! setups take turns in short slices (one per setup per sweep, order rotated), so the
//! machine's noise hits both alike and each sweep yields its own ratio. Prosody logs
//! at `warn` and stanzagate at `info` in both setups.
//!
//! Run with `cargo bench --bench delegation` (~65 s). Under `cargo test` (no `--bench`
//! argument) it exits at once. Needs the Debian packages `prosody` and
//! `prosody-modules`. Knobs: `DELEG_CLIENTS` (`1,100`), `DELEG_WARMUP_SECS` (2, per
//! setup and client count), `DELEG_SWEEPS` (8), `DELEG_SLICE_MS` (1000),
//! `DELEG_LATENCY_SWEEPS` (6).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stanzagate::net::Conn;
use stanzagate::xml::children::children;
use stanzagate::xml::{escape_attr, Frame, Framer, Limits, Namespaces, Stanza};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use common::prosody::{installed, reference_modules_installed};
use common::{Prosody, ProsodySpec, Proxy, ProxySpec, Raw, DOMAIN};
use support::process;

const COMPONENT: &str = "component.localhost";
const SECRET: &str = "secret";
/// The delegated namespace.
const NS_BENCH: &str = "urn:example:bench";
const NS_DELEGATION: &str = "urn:xmpp:delegation:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_CLIENT: &str = "jabber:client";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Prosody's log level in both setups.
const PROSODY_LOG: &str = "warn";
/// stanzagate's `RUST_LOG` in the bench (the harness defaults to debug for tests).
const PROXY_LOG: &str = "info";

/// Clients wait.
const IDLE: u8 = 0;
/// Clients run, nothing is recorded.
const WARM: u8 = 1;
/// Clients run and record.
const MEASURE: u8 = 2;
/// Clients return.
const STOP: u8 = 3;

/// Every request is a delegated IQ.
const MODE_DELEGATED: u8 = 0;
/// Requests alternate: delegated IQ, ping, delegated IQ, …
const MODE_ALTERNATE: u8 = 1;

/// Logins in flight at once.
const LOGIN_CONCURRENCY: usize = 32;
/// A round trip slower than this means the setup is broken.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Unmeasured run-in at the start of each slice.
const LEAD_IN: Duration = Duration::from_millis(100);
/// Bound on the wait for a setup's clients to park after a slice.
const PARK_TIMEOUT: Duration = Duration::from_secs(15);

/// One way to get a delegated IQ answered.
struct Setup {
    /// Name in the tables.
    key: &'static str,
    /// Where clients log in.
    c2s: u16,
    /// Where the component connects.
    component: u16,
    /// Server processes whose CPU time is charged to this setup.
    servers: Vec<(&'static str, u32)>,
}

/// What the clients of one setup share with the controller.
struct Control {
    phase: AtomicU8,
    mode: AtomicU8,
    /// Clients with an index below this run; the others stay parked.
    active: AtomicUsize,
    /// Clients not parked (a slice ends when this is back to zero).
    running: AtomicUsize,
    wake: Notify,
    /// Latencies (ns) of the slice so far, handed in by each client as it parks.
    delegated: Mutex<Vec<u64>>,
    ping: Mutex<Vec<u64>>,
}

impl Control {
    fn new() -> Control {
        Control {
            phase: AtomicU8::new(IDLE),
            mode: AtomicU8::new(MODE_DELEGATED),
            active: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            wake: Notify::new(),
            delegated: Mutex::new(Vec::new()),
            ping: Mutex::new(Vec::new()),
        }
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Ends a run: clients finish their round trip, hand in their samples and park.
    async fn park(&self) {
        self.set(IDLE);
        let deadline = Instant::now() + PARK_TIMEOUT;
        while self.running.load(Ordering::SeqCst) != 0 {
            assert!(Instant::now() < deadline, "clients did not park");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn take(&self) -> (Vec<u64>, Vec<u64>) {
        (
            std::mem::take(&mut *self.delegated.lock().expect("samples lock")),
            std::mem::take(&mut *self.ping.lock().expect("samples lock")),
        )
    }
}

/// What the measured slices of one setup produced.
#[derive(Default)]
struct Sample {
    round_trips: u64,
    elapsed: Duration,
    /// Nanoseconds per round trip, delegated IQs and pings.
    delegated: Vec<u64>,
    ping: Vec<u64>,
    /// CPU time of each server process over the measured slices.
    server_cpu: Vec<Duration>,
    /// CPU time of this process (clients and component).
    bench_cpu: Duration,
    /// Round trips/s of each slice, in sweep order.
    slice_rates: Vec<f64>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn cpu_per_rt(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.round_trips.max(1) as f64
    }
}

/// The PIDs the watchdog kills before ending the bench.
static WATCHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Ends the bench if it overruns; the harness's processes have no parent-death
/// signal, so they are killed by PID first.
fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("bench watchdog: still running after {limit:?}; killing servers, exiting");
        for &pid in WATCHED.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // SAFETY: kill(2) on the PID of a child this process started and has not
            // reaped (the harness reaps only when stopping it).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        std::process::exit(3);
    });
}

fn watch(pid: Option<u32>) -> u32 {
    let pid = pid.expect("server pid");
    WATCHED.lock().expect("watch list").push(pid);
    pid
}

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    assert!(
        installed() && reference_modules_installed(),
        "the delegation bench needs the Debian packages prosody and prosody-modules"
    );
    // Before any thread exists: the harness starts stanzagate with this RUST_LOG.
    std::env::set_var("STANZAGATE_TEST_LOG", PROXY_LOG);

    let client_counts: Vec<usize> = support::stats::env_counts("DELEG_CLIENTS", &[1, 100]);
    let warmup = Duration::from_secs(support::stats::env_num("DELEG_WARMUP_SECS", 2));
    let sweeps = support::stats::env_num("DELEG_SWEEPS", 8).max(1) as u32;
    let slice = Duration::from_millis(support::stats::env_num("DELEG_SLICE_MS", 1000).max(100));
    let latency_sweeps = support::stats::env_num("DELEG_LATENCY_SWEEPS", 6) as u32;
    let max_clients = client_counts.iter().copied().max().unwrap_or(1).max(1);
    let per_run = |sweeps: u32| (warmup + (slice + LEAD_IN) * sweeps) * 2;
    let budget = per_run(sweeps) * client_counts.len() as u32
        + per_run(latency_sweeps)
        + Duration::from_secs(90);
    watchdog(budget);
    let nofile = process::raise_nofile();
    assert!(
        nofile as usize >= 6 * max_clients + 256,
        "RLIMIT_NOFILE is {nofile}, too low for {max_clients} clients per setup"
    );

    println!("delegation bench: {}", process::machine());
    println!(
        "stanzagate binary: {} (Prosody log level {PROSODY_LOG}, stanzagate RUST_LOG={PROXY_LOG})",
        env!("CARGO_BIN_EXE_stanzagate")
    );
    println!(
        "closed-loop delegated IQ round trips; per setup and client count {}s warm-up, \
         then {sweeps} interleaved {} ms slices measured",
        warmup.as_secs(),
        slice.as_millis()
    );

    let users: Vec<String> = (0..max_clients).map(|i| format!("user{i}")).collect();
    let started = Instant::now();
    // stanzagate in front of a Prosody that knows nothing of delegation.
    let plain = Prosody::start(
        &ProsodySpec::default()
            .with_component(COMPONENT, SECRET)
            .with_users(users.clone())
            .with_log_level(PROSODY_LOG),
    );
    let plain_pid = watch(plain.pid());
    let proxy = Proxy::start(
        &ProxySpec::plaintext()
            .with_component(COMPONENT, SECRET)
            .with_extra(&format!(
                "[hosts.\"{DOMAIN}\".delegations.\"{NS_BENCH}\"]\njid = \"{COMPONENT}\"\n"
            )),
        &plain,
    );
    let proxy_pid = watch(proxy.pid());
    // The reference: Prosody's own mod_delegation.
    let reference = Prosody::start(
        &ProsodySpec::default()
            .with_component(COMPONENT, SECRET)
            .with_users(users)
            .with_reference_delegation(NS_BENCH, COMPONENT)
            .with_log_level(PROSODY_LOG),
    );
    let reference_pid = watch(reference.pid());
    let setups = [
        Setup {
            key: "stanzagate",
            c2s: proxy.c2s(),
            component: proxy.ports.component,
            servers: vec![("stanzagate", proxy_pid), ("prosody", plain_pid)],
        },
        Setup {
            key: "reference",
            c2s: reference.c2s,
            component: reference.component,
            servers: vec![("prosody", reference_pid)],
        },
    ];
    eprintln!(
        "stanzagate pid {proxy_pid} (prosody pid {plain_pid}), reference prosody pid \
         {reference_pid}"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    // results[client count index][setup], then the latency run per setup.
    let mut results: Vec<[Sample; 2]> = Vec::new();
    let mut latency: [Sample; 2] = Default::default();
    let mut answered = [0u64; 2];
    runtime.block_on(async {
        let mut components = Vec::new();
        let mut controls = Vec::new();
        let mut fleets = Vec::new();
        for setup in &setups {
            let stats = Arc::new(AtomicU64::new(0));
            let raw = Raw::component(setup.component, COMPONENT, SECRET).await;
            let (conn, framer) = raw.into_parts();
            conn.tcp().set_nodelay(true).expect("nodelay");
            components.push((
                stats.clone(),
                tokio::spawn(component_loop(conn, framer, stats)),
            ));
            let mut clients = login(setup.c2s, max_clients).await;
            // One checked round trip of each kind before anything is measured: a
            // setup that answers with errors must not be timed.
            let (conn, framer) = &mut clients[0];
            check(conn, framer).await.unwrap_or_else(|e| {
                panic!("{}: the delegated IQ or the ping fails: {e}", setup.key)
            });
            let control = Arc::new(Control::new());
            let mut tasks = JoinSet::new();
            for (index, (conn, framer)) in clients.into_iter().enumerate() {
                tasks.spawn(client_loop(conn, framer, index, control.clone()));
            }
            controls.push(control);
            fleets.push(tasks);
        }
        eprintln!(
            "ready after {:.1}s: {max_clients} clients per setup logged in",
            started.elapsed().as_secs_f64()
        );

        for &count in &client_counts {
            let mut row: [Sample; 2] = Default::default();
            run(
                &setups,
                &controls,
                (count, MODE_DELEGATED),
                (warmup, sweeps, slice),
                &mut row,
            )
            .await;
            results.push(row);
        }
        if latency_sweeps > 0 {
            run(
                &setups,
                &controls,
                (1, MODE_ALTERNATE),
                (warmup / 2, latency_sweeps, slice),
                &mut latency,
            )
            .await;
        }

        for (si, (control, mut tasks)) in controls.iter().zip(fleets).enumerate() {
            control.set(STOP);
            while let Some(joined) = tasks.join_next().await {
                joined
                    .expect("client task")
                    .unwrap_or_else(|e| panic!("{} client failed: {e}", setups[si].key));
            }
        }
        for (si, (stats, task)) in components.into_iter().enumerate() {
            answered[si] = stats.load(Ordering::Relaxed);
            task.abort();
        }
    });
    drop(runtime);
    // Both setups must have run clean: no warnings from the servers.
    let warnings = |text: &str, needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    let prosody_log =
        |p: &Prosody| std::fs::read_to_string(p.dir.path().join("prosody.log")).unwrap_or_default();
    eprintln!(
        "warnings logged: stanzagate {}, its prosody {}, reference prosody {}",
        warnings(&proxy.log(), "WARN"),
        warnings(&prosody_log(&plain), "warn"),
        warnings(&prosody_log(&reference), "warn"),
    );
    drop(proxy);
    drop(plain);
    drop(reference);

    report(
        &setups,
        &client_counts,
        &mut results,
        &mut latency,
        latency_sweeps > 0,
    );
    eprintln!(
        "delegation wrappers answered by the component: stanzagate {}, reference {}; \
         total run {:.0}s",
        answered[0],
        answered[1],
        started.elapsed().as_secs_f64()
    );
}

/// Runs both setups with `active` clients in `mode`: a warm-up each, then `sweeps`
/// rounds of one measured slice per setup (order rotated each sweep).
async fn run(
    setups: &[Setup],
    controls: &[Arc<Control>],
    (active, mode): (usize, u8),
    (warmup, sweeps, slice): (Duration, u32, Duration),
    row: &mut [Sample; 2],
) {
    for control in controls {
        control.active.store(active, Ordering::SeqCst);
        control.mode.store(mode, Ordering::SeqCst);
        control.set(WARM);
        tokio::time::sleep(warmup).await;
        control.park().await;
        control.take();
    }
    let label = if mode == MODE_ALTERNATE {
        "1 client, delegated/ping alternating".to_owned()
    } else {
        format!("{active} clients")
    };
    for sweep in 0..sweeps as usize {
        for k in 0..setups.len() {
            let si = (sweep + k) % setups.len();
            measure_slice(&setups[si], &controls[si], slice, &mut row[si]).await;
        }
        let rates: Vec<String> = (0..setups.len())
            .map(|si| {
                let rate = row[si].slice_rates.last().copied().unwrap_or(f64::NAN);
                format!("{} {rate:.0}/s", setups[si].key)
            })
            .collect();
        eprintln!("{label}, sweep {}: {}", sweep + 1, rates.join(", "));
    }
}

/// One measured slice of one setup; adds what it measured to `sample`.
async fn measure_slice(setup: &Setup, control: &Control, slice: Duration, sample: &mut Sample) {
    let cpu = |pid: u32| {
        let (user, sys) = process::cpu_time(pid);
        user + sys
    };
    let servers_cpu = || -> Vec<Duration> { setup.servers.iter().map(|&(_, p)| cpu(p)).collect() };
    control.set(WARM);
    tokio::time::sleep(LEAD_IN).await;
    let (servers_before, bench_before) = (servers_cpu(), cpu(std::process::id()));
    let began = Instant::now();
    control.set(MEASURE);
    tokio::time::sleep(slice).await;
    control.park().await;
    let elapsed = began.elapsed();
    let (servers_after, bench_after) = (servers_cpu(), cpu(std::process::id()));
    let (delegated, ping) = control.take();
    let round_trips = (delegated.len() + ping.len()) as u64;
    sample.round_trips += round_trips;
    sample.elapsed += elapsed;
    sample.delegated.extend(delegated);
    sample.ping.extend(ping);
    sample
        .server_cpu
        .resize(setup.servers.len(), Duration::ZERO);
    for (i, (after, before)) in servers_after.iter().zip(&servers_before).enumerate() {
        sample.server_cpu[i] += after.saturating_sub(*before);
    }
    sample.bench_cpu += bench_after.saturating_sub(bench_before);
    sample
        .slice_rates
        .push(round_trips as f64 / elapsed.as_secs_f64().max(1e-9));
}

/// Latency for the tables: one decimal below 100 µs.
fn micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn report(
    setups: &[Setup],
    client_counts: &[usize],
    results: &mut [[Sample; 2]],
    latency: &mut [Sample; 2],
    with_latency: bool,
) {
    println!();
    println!(
        "| clients | setup      | delegated rt/s | p50 µs | p99 µs | ÷ reference | \
         server CPU µs/rt | bench process CPU µs/rt |"
    );
    println!(
        "|--------:|------------|---------------:|-------:|-------:|------------:|\
         -----------------|------------------------:|"
    );
    for (ci, &count) in client_counts.iter().enumerate() {
        let reference_rate = results[ci][1].rate();
        for (si, setup) in setups.iter().enumerate() {
            let sample = &mut results[ci][si];
            let rate = sample.rate();
            let servers: Vec<String> = setup
                .servers
                .iter()
                .zip(&sample.server_cpu)
                .map(|(&(name, _), &cpu)| format!("{name} {:.1}", sample.cpu_per_rt(cpu)))
                .collect();
            println!(
                "| {count:>7} | {:<10} | {rate:>14.0} | {:>6} | {:>6} | {:>11.2} | {} | {:>23.1} |",
                setup.key,
                micros(support::stats::percentile_us(&mut sample.delegated, 0.50)),
                micros(support::stats::percentile_us(&mut sample.delegated, 0.99)),
                rate / reference_rate,
                servers.join(" + "),
                sample.cpu_per_rt(sample.bench_cpu),
            );
        }
    }
    println!();
    println!("stanzagate ÷ reference (delegated rt/s): all slices pooled; median and range of the sweeps");
    for (ci, &count) in client_counts.iter().enumerate() {
        let [ours, theirs] = &results[ci];
        let mut per_sweep: Vec<f64> = ours
            .slice_rates
            .iter()
            .zip(&theirs.slice_rates)
            .map(|(a, b)| a / b)
            .collect();
        per_sweep.sort_by(f64::total_cmp);
        println!(
            "  {count:>4} clients: {:.2}  (median {:.2}, range {:.2}–{:.2})",
            ours.rate() / theirs.rate(),
            per_sweep
                .get(per_sweep.len() / 2)
                .copied()
                .unwrap_or(f64::NAN),
            per_sweep.first().copied().unwrap_or(f64::NAN),
            per_sweep.last().copied().unwrap_or(f64::NAN),
        );
    }
    if !with_latency {
        return;
    }
    println!();
    println!("1 client alternating a delegated IQ and a ping (answered by Prosody):");
    println!();
    println!(
        "| setup      | delegated p50 µs | delegated p99 µs | ping p50 µs | ping p99 µs | \
         added p50 µs | added p99 µs | round trips each |"
    );
    println!(
        "|------------|-----------------:|-----------------:|------------:|------------:|\
         -------------:|-------------:|-----------------:|"
    );
    for (si, setup) in setups.iter().enumerate() {
        let sample = &mut latency[si];
        let d50 = support::stats::percentile_us(&mut sample.delegated, 0.50);
        let d99 = support::stats::percentile_us(&mut sample.delegated, 0.99);
        let p50 = support::stats::percentile_us(&mut sample.ping, 0.50);
        let p99 = support::stats::percentile_us(&mut sample.ping, 0.99);
        println!(
            "| {:<10} | {:>16} | {:>16} | {:>11} | {:>11} | {:>+12.1} | {:>+12.1} | {:>16} |",
            setup.key,
            micros(d50),
            micros(d99),
            micros(p50),
            micros(p99),
            d50 - p50,
            d99 - p99,
            sample.delegated.len().min(sample.ping.len()),
        );
    }
}

/// Logs in `count` clients (`user0..`) at `port`; returns their streams in user order.
/// The harness's login future is not `Send`, so the logins run on a `LocalSet`.
async fn login(port: u16, count: usize) -> Vec<(Conn, Framer)> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let gate = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
            let mut logins = JoinSet::new();
            for index in 0..count {
                let gate = gate.clone();
                logins.spawn_local(async move {
                    let _permit = gate.acquire_owned().await.expect("login gate");
                    let raw = Raw::login(port, &format!("user{index}")).await;
                    let (conn, framer) = raw.into_parts();
                    conn.tcp().set_nodelay(true).expect("nodelay");
                    (index, conn, framer)
                });
            }
            let mut clients: Vec<Option<(Conn, Framer)>> = (0..count).map(|_| None).collect();
            while let Some(joined) = logins.join_next().await {
                let (index, conn, framer) = joined.expect("login task");
                clients[index] = Some((conn, framer));
            }
            clients.into_iter().map(|c| c.expect("logged in")).collect()
        })
        .await
}

fn delegated_iq(out: &mut Vec<u8>, id: &str) {
    out.clear();
    out.extend_from_slice(b"<iq type='get' id='");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"' to='");
    out.extend_from_slice(DOMAIN.as_bytes());
    out.extend_from_slice(b"'><query xmlns='");
    out.extend_from_slice(NS_BENCH.as_bytes());
    out.extend_from_slice(b"'/></iq>");
}

fn ping_iq(out: &mut Vec<u8>, id: &str) {
    out.clear();
    out.extend_from_slice(b"<iq type='get' id='");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"' to='");
    out.extend_from_slice(DOMAIN.as_bytes());
    out.extend_from_slice(b"'><ping xmlns='urn:xmpp:ping'/></iq>");
}

/// Sends `request` and reads until the IQ with `id` answers it; it must be a result.
async fn round_trip(
    conn: &mut Conn,
    framer: &mut Framer,
    request: &[u8],
    id: &str,
) -> io::Result<Stanza> {
    conn.write_all(request).await?;
    loop {
        while let Some(frame) = framer.next_frame().map_err(io::Error::other)? {
            match frame {
                Frame::Stanza(stanza) => {
                    let Ok(head) = stanza.head() else { continue };
                    if head.name() != "iq" || head.id().as_deref() != Some(id) {
                        continue;
                    }
                    if head.type_().as_deref() != Some("result") {
                        return Err(io::Error::other(format!(
                            "answer is not a result: {}",
                            String::from_utf8_lossy(stanza.bytes())
                        )));
                    }
                    return Ok(stanza);
                }
                Frame::End(_) => return Err(io::Error::other("the server closed the stream")),
                Frame::Header(_) | Frame::Whitespace(_) => {}
            }
        }
        if conn.read_buf(framer.buffer_mut()).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// One delegated IQ and one ping, answers checked in full.
async fn check(conn: &mut Conn, framer: &mut Framer) -> io::Result<()> {
    let mut request = Vec::new();
    delegated_iq(&mut request, "check-d");
    let answer = tokio::time::timeout(
        ROUND_TRIP_TIMEOUT,
        round_trip(conn, framer, &request, "check-d"),
    )
    .await
    .map_err(|_| io::Error::other("delegated IQ: no answer"))??;
    let head = answer.head().map_err(io::Error::other)?;
    let payload = head
        .child()
        .map(|c| (c.name().to_owned(), c.ns().map(str::to_owned)));
    if head.from().as_deref() != Some(DOMAIN)
        || payload != Some(("query".into(), Some(NS_BENCH.into())))
    {
        return Err(io::Error::other(format!(
            "unexpected delegated answer: {}",
            String::from_utf8_lossy(answer.bytes())
        )));
    }
    ping_iq(&mut request, "check-p");
    tokio::time::timeout(
        ROUND_TRIP_TIMEOUT,
        round_trip(conn, framer, &request, "check-p"),
    )
    .await
    .map_err(|_| io::Error::other("ping: no answer"))??;
    Ok(())
}

/// One client: closed-loop round trips while its setup runs and it is among the active
/// ones; latencies recorded while measuring, handed in when it parks.
async fn client_loop(
    mut conn: Conn,
    mut framer: Framer,
    index: usize,
    control: Arc<Control>,
) -> io::Result<()> {
    let mut delegated = Vec::new();
    let mut ping = Vec::new();
    let mut request = Vec::with_capacity(128);
    let mut id = String::with_capacity(24);
    let mut seq: u64 = 0;
    // Counted as running from the start; parks at once.
    control.running.fetch_add(1, Ordering::SeqCst);
    loop {
        let phase = control.phase.load(Ordering::SeqCst);
        if phase == STOP {
            control.running.fetch_sub(1, Ordering::SeqCst);
            return Ok(());
        }
        if phase == IDLE || index >= control.active.load(Ordering::SeqCst) {
            control
                .delegated
                .lock()
                .expect("samples lock")
                .append(&mut delegated);
            control.ping.lock().expect("samples lock").append(&mut ping);
            let woken = control.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            control.running.fetch_sub(1, Ordering::SeqCst);
            let phase = control.phase.load(Ordering::SeqCst);
            if phase == IDLE || (phase != STOP && index >= control.active.load(Ordering::SeqCst)) {
                woken.await;
            }
            control.running.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        seq += 1;
        let is_ping = control.mode.load(Ordering::Relaxed) == MODE_ALTERNATE && seq % 2 == 0;
        id.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(id, "{}{seq}", if is_ping { 'p' } else { 'd' });
        }
        if is_ping {
            ping_iq(&mut request, &id);
        } else {
            delegated_iq(&mut request, &id);
        }
        let start = Instant::now();
        tokio::time::timeout(
            ROUND_TRIP_TIMEOUT,
            round_trip(&mut conn, &mut framer, &request, &id),
        )
        .await
        .map_err(|_| io::Error::other(format!("round trip {id} timed out")))??;
        let took = start.elapsed().as_nanos() as u64;
        if phase == MEASURE && control.phase.load(Ordering::SeqCst) == MEASURE {
            if is_ping {
                ping.push(took);
            } else {
                delegated.push(took);
            }
        }
    }
}

/// The component: answers every delegation wrapper and disco#info query of each read
/// in one write; ignores everything else.
async fn component_loop(mut conn: Conn, mut framer: Framer, answered: Arc<AtomicU64>) {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        // Frames may already be buffered from the handshake.
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Stanza(stanza))) => {
                    if answer(&stanza, &mut out) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Some(Frame::End(_))) | Err(_) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        match conn.read_buf(framer.buffer_mut()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Appends the component's answer to `stanza` (if it gets one) to `out`; true for a
/// delegation wrapper.
fn answer(stanza: &Stanza, out: &mut Vec<u8>) -> bool {
    let Ok(head) = stanza.head() else {
        return false;
    };
    if head.name() != "iq" {
        return false;
    }
    let kind = head.type_();
    let Some(child) = head.child() else {
        return false;
    };
    let push = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
    let id = head.id().unwrap_or_default();
    let from = head.from().unwrap_or(std::borrow::Cow::Borrowed(DOMAIN));
    match (kind.as_deref(), child.name(), child.ns()) {
        (Some("get"), "query", Some(NS_DISCO_INFO)) => {
            // Empty nesting answer (XEP-0355 §7.2); the node is echoed, as Prosody's
            // mod_delegation refuses a result without it.
            push(out, "<iq type='result' from='");
            push(out, &escape_attr(&head.to().unwrap_or_default()));
            push(out, "' to='");
            push(out, &escape_attr(&from));
            push(out, "' id='");
            push(out, &escape_attr(&id));
            push(out, "'><query xmlns='");
            push(out, NS_DISCO_INFO);
            push(out, "'");
            if let Some(node) = child.attr("node") {
                push(out, " node='");
                push(out, &escape_attr(&node));
                push(out, "'");
            }
            push(out, "/></iq>");
            false
        }
        (Some("set"), "delegation", Some(NS_DELEGATION)) => {
            let Some(inner) = forwarded_iq(stanza.bytes(), child.range()) else {
                return false;
            };
            let Ok(inner_head) = inner.head() else {
                return false;
            };
            push(out, "<iq type='result' from='");
            push(out, COMPONENT);
            push(out, "' to='");
            push(out, &escape_attr(&from));
            push(out, "' id='");
            push(out, &escape_attr(&id));
            push(out, "'><delegation xmlns='");
            push(out, NS_DELEGATION);
            push(out, "'><forwarded xmlns='");
            push(out, NS_FORWARD);
            push(out, "'><iq xmlns='");
            push(out, NS_CLIENT);
            push(out, "' type='result' id='");
            push(out, &escape_attr(&inner_head.id().unwrap_or_default()));
            push(out, "' to='");
            push(out, &escape_attr(&inner_head.from().unwrap_or_default()));
            push(out, "'");
            if let Some(to) = inner_head.to() {
                push(out, " from='");
                push(out, &escape_attr(&to));
                push(out, "'");
            }
            push(out, "><query xmlns='");
            push(out, NS_BENCH);
            push(out, "'/></iq></forwarded></delegation></iq>");
            true
        }
        _ => false,
    }
}

/// The `jabber:client` IQ inside `<delegation><forwarded>` (the delegation element
/// spans `delegation` within `wrapper`).
fn forwarded_iq(wrapper: &Bytes, delegation: std::ops::Range<usize>) -> Option<Stanza> {
    let forwarded = children(&wrapper[delegation.clone()], Some(NS_DELEGATION))
        .ok()?
        .into_iter()
        .find(|c| c.name == "forwarded" && c.ns.as_deref() == Some(NS_FORWARD))?;
    let base = delegation.start + forwarded.range.start;
    let iq = children(
        &wrapper[base..base + forwarded.range.len()],
        Some(NS_FORWARD),
    )
    .ok()?
    .into_iter()
    .find(|c| c.name == "iq" && c.ns.as_deref() == Some(NS_CLIENT))?;
    let start = base + iq.range.start;
    Stanza::parse(
        wrapper.slice(start..start + iq.range.len()),
        Arc::new(Namespaces::new()),
        &Limits::default(),
    )
    .ok()
}
