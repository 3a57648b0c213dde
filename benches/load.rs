//! Load bench: closed-loop message round trips through three paths in the same run —
//! clients straight to a fast echo upstream (direct), through a plain
//! `copy_bidirectional` TCP relay, and through stanzagate — at 1, 100 and 1000
//! connections. Prints round trips/s, p50/p99 latency, the CPU the relaying process
//! spends per round trip, and stanzagate ÷ relay.
//!
//! The machine is shared and noisy, so for each connection count every path's clients
//! are logged in at once and the paths take turns in short slices (one slice per path
//! per sweep): slow drifts in the machine's load hit every path alike, and each sweep
//! yields its own ratio.
//!
//! Run with `cargo bench --bench load`. Under `cargo test` (no `--bench` argument) it
//! exits at once. Knobs: `LOAD_WARMUP_SECS` (3, per path), `LOAD_MEASURE_SECS` (6, per
//! path), `LOAD_SLICE_MS` (1000), `LOAD_CONNS` (`1,100,1000`), `LOAD_PATHS` (a subset of
//! `direct,relay,stanzagate,stanzagate-b`, e.g. one path to profile it),
//! `STANZAGATE_BIN` (the proxy under test; default: the one Cargo built) and
//! `STANZAGATE_BIN_B` (a second proxy binary measured as `stanzagate-b` in the same
//! run, for A/B comparisons).

mod support;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use support::client::{self, MESSAGE_BYTES};
use support::process::{self, ProxySetup};

/// Clients wait.
const IDLE: u8 = 0;
/// Clients run, nothing is recorded.
const WARM: u8 = 1;
/// Clients run and record.
const MEASURE: u8 = 2;
/// Clients finish and hand in their samples.
const STOP: u8 = 3;
/// Logins in flight at once, so accept backlogs never overflow.
const LOGIN_CONCURRENCY: usize = 64;
/// A round trip slower than this means the path is broken.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Unmeasured run-in at the start of each slice.
const LEAD_IN: Duration = Duration::from_millis(100);
/// Pause after each slice so its last round trips end before the next path starts.
const GAP: Duration = Duration::from_millis(50);

/// One way from the clients to the echo upstream.
struct Route {
    /// Name in `LOAD_PATHS` and in the table.
    key: &'static str,
    addr: SocketAddr,
    /// The relaying process (none for direct).
    middle: Option<u32>,
}

/// What the measured slices of one path produced.
#[derive(Default)]
struct Sample {
    round_trips: u64,
    elapsed: Duration,
    /// Nanoseconds per round trip.
    latencies: Vec<u64>,
    /// CPU time of the relaying process (relay or stanzagate), user and kernel.
    middle_user: Duration,
    middle_sys: Duration,
    /// CPU time of this process (clients and echo upstream).
    bench_cpu: Duration,
    /// Round trips/s of each slice, in sweep order.
    slice_rates: Vec<f64>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU µs per round trip spent by `cpu`.
    fn cpu_per_rt(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.round_trips.max(1) as f64
    }

    fn percentile_us(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let at = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[at] as f64 / 1000.0
    }
}

/// The logged-in clients of one path, driven by a shared phase.
struct Fleet {
    phase: Arc<AtomicU8>,
    wake: Arc<Notify>,
    /// Round trips recorded so far (to rate each slice).
    recorded: Arc<AtomicU64>,
    clients: JoinSet<io::Result<Vec<u64>>>,
}

impl Fleet {
    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        self.wake.notify_waiters();
    }
}

fn main() {
    if process::run_relay_child() {
        return;
    }
    if !support::invoked_as_bench() {
        return;
    }
    let warmup = Duration::from_secs(support::stats::env_num("LOAD_WARMUP_SECS", 3));
    let measure = Duration::from_secs(support::stats::env_num("LOAD_MEASURE_SECS", 6));
    let slice = Duration::from_millis(support::stats::env_num("LOAD_SLICE_MS", 1000).max(100));
    let sweeps = (measure.as_millis() / slice.as_millis()).max(1) as u32;
    let conn_counts: Vec<usize> = support::stats::env_counts("LOAD_CONNS", &[1, 100, 1000]);
    let selected = std::env::var("LOAD_PATHS").ok();
    let selected = |key: &str| {
        selected
            .as_deref()
            .is_none_or(|list| list.split(',').any(|k| k.trim() == key))
    };
    let bin_b = std::env::var_os("STANZAGATE_BIN_B").map(PathBuf::from);
    let route_count = 3 + usize::from(bin_b.is_some());
    let per_count = (warmup + (slice + LEAD_IN + GAP) * sweeps) * route_count as u32;
    let budget =
        (per_count + Duration::from_secs(30)) * conn_counts.len() as u32 + Duration::from_secs(60);
    process::watchdog(budget);
    let nofile = process::raise_nofile();
    let needed = 2 * route_count * conn_counts.iter().max().copied().unwrap_or(0) + 64;
    assert!(
        nofile as usize >= needed,
        "RLIMIT_NOFILE is {nofile}, the bench needs {needed}"
    );

    println!("load bench: {}", process::machine());
    println!(
        "{MESSAGE_BYTES}-byte messages, closed loop; per path and connection count {}s \
         warm-up, then {sweeps} interleaved {} ms slices measured",
        warmup.as_secs(),
        slice.as_millis()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let echo = runtime.block_on(support::echo::spawn());

    // Children live until the end of main; each route names its process by PID.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut children: Vec<process::Guarded> = Vec::new();
    let mut routes = vec![Route {
        key: "direct",
        addr: echo,
        middle: None,
    }];
    let (relay, relay_addr) = process::start_relay(echo, budget);
    eprintln!("relay: pid {}", relay.pid());
    routes.push(Route {
        key: "relay",
        addr: relay_addr,
        middle: Some(relay.pid()),
    });
    children.push(relay);
    let proxies = [
        Some(("stanzagate", process::stanzagate_bin())),
        bin_b.map(|b| ("stanzagate-b", b)),
    ];
    for (key, bin) in proxies.into_iter().flatten() {
        let proxy_dir = dir.path().join(key);
        std::fs::create_dir_all(&proxy_dir).expect("proxy dir");
        let proxy = process::start_stanzagate(
            &proxy_dir,
            &ProxySetup {
                bin: bin.clone(),
                upstream: echo,
                tls: None,
                direct_tls: false,
            },
        );
        eprintln!("{key}: {} pid {}", bin.display(), proxy.process.pid());
        routes.push(Route {
            key,
            addr: proxy.c2s,
            middle: Some(proxy.process.pid()),
        });
        children.push(proxy.process);
    }
    let active: Vec<usize> = (0..routes.len())
        .filter(|&ri| selected(routes[ri].key))
        .collect();

    // samples[conn index][route index]
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    for &conns in &conn_counts {
        let mut row: Vec<Sample> = routes.iter().map(|_| Sample::default()).collect();
        runtime.block_on(async {
            let mut fleets: Vec<Option<Fleet>> = Vec::new();
            for (ri, route) in routes.iter().enumerate() {
                fleets.push(if active.contains(&ri) {
                    Some(login_fleet(route.addr, conns).await.unwrap_or_else(|e| {
                        panic!("{}: logging in {conns} clients failed: {e}", route.key)
                    }))
                } else {
                    None
                });
            }
            for &ri in &active {
                let fleet = fleets[ri].as_ref().expect("active fleet");
                fleet.set(WARM);
                tokio::time::sleep(warmup).await;
                fleet.set(IDLE);
                tokio::time::sleep(GAP).await;
            }
            for sweep in 0..sweeps as usize {
                // Rotate the order so no path always follows the same one.
                for k in 0..active.len() {
                    let ri = active[(sweep + k) % active.len()];
                    let fleet = fleets[ri].as_ref().expect("active fleet");
                    measure_slice(fleet, routes[ri].middle, slice, &mut row[ri]).await;
                }
                for child in &mut children {
                    child.assert_running();
                }
                let rates: Vec<String> = active
                    .iter()
                    .map(|&ri| {
                        let rate = row[ri].slice_rates.last().copied().unwrap_or(f64::NAN);
                        format!("{} {rate:.0}", routes[ri].key)
                    })
                    .collect();
                eprintln!(
                    "{conns:>4} conns, sweep {}: {}",
                    sweep + 1,
                    rates.join(", ")
                );
            }
            for (ri, fleet) in fleets.into_iter().enumerate() {
                let Some(mut fleet) = fleet else { continue };
                fleet.set(STOP);
                while let Some(joined) = fleet.clients.join_next().await {
                    let latencies = joined
                        .expect("client task")
                        .unwrap_or_else(|e| panic!("{} client failed: {e}", routes[ri].key));
                    row[ri].latencies.extend(latencies);
                }
            }
        });
        samples.push(row);
        // Let the closed connections drain out of every process.
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(children);

    println!();
    println!(
        "| conns | path         |   rt/s | p50 µs |   p99 µs | ÷ relay | ÷ direct | \
         relaying process CPU µs/rt user + sys | bench process CPU µs/rt |"
    );
    println!(
        "|------:|--------------|-------:|-------:|---------:|--------:|---------:|\
         --------------------------------------:|------------------------:|"
    );
    for (ci, &conns) in conn_counts.iter().enumerate() {
        let direct_rate = samples[ci][0].rate();
        let relay_rate = samples[ci][1].rate();
        for &ri in &active {
            let sample = &mut samples[ci][ri];
            let rate = sample.rate();
            println!(
                "| {conns:>5} | {:<12} | {rate:>6.0} | {:>6} | {:>8} | {:>7.2} | {:>8.2} | \
                 {:>37} | {:>23.1} |",
                routes[ri].key,
                micros(sample.percentile_us(0.50)),
                micros(sample.percentile_us(0.99)),
                rate / relay_rate,
                rate / direct_rate,
                match routes[ri].middle {
                    None => "-".to_owned(),
                    Some(_) => format!(
                        "{:.1} + {:.1} = {:.1}",
                        sample.cpu_per_rt(sample.middle_user),
                        sample.cpu_per_rt(sample.middle_sys),
                        sample.cpu_per_rt(sample.middle_user + sample.middle_sys)
                    ),
                },
                sample.cpu_per_rt(sample.bench_cpu),
            );
        }
    }
    println!();
    println!("throughput ÷ plain relay: all slices pooled; median and range of the sweeps");
    for (ci, &conns) in conn_counts.iter().enumerate() {
        for &ri in active.iter().filter(|&&ri| ri >= 2) {
            let pooled = samples[ci][ri].rate() / samples[ci][1].rate();
            let mut per_sweep: Vec<f64> = samples[ci][ri]
                .slice_rates
                .iter()
                .zip(&samples[ci][1].slice_rates)
                .map(|(rate, relay)| rate / relay)
                .collect();
            per_sweep.sort_by(f64::total_cmp);
            let median = per_sweep.get(per_sweep.len() / 2).copied();
            println!(
                "  {conns:>5} conns {:<12}: {pooled:.2}  (median {:.2}, range {:.2}–{:.2})",
                routes[ri].key,
                median.unwrap_or(f64::NAN),
                per_sweep.first().copied().unwrap_or(f64::NAN),
                per_sweep.last().copied().unwrap_or(f64::NAN),
            );
        }
    }
}

/// Latency for the table: one decimal below 100 µs.
fn micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// Logs in `conns` clients at `target` and leaves them waiting for their phase.
async fn login_fleet(target: SocketAddr, conns: usize) -> io::Result<Fleet> {
    let gate = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let mut logins = JoinSet::new();
    for user in 0..conns as u64 {
        let gate = gate.clone();
        logins.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("login gate");
            let mut tcp = TcpStream::connect(target).await?;
            tcp.set_nodelay(true)?;
            tokio::time::timeout(Duration::from_secs(30), client::login(&mut tcp, user))
                .await
                .map_err(|_| io::Error::other("login timed out"))??;
            Ok::<_, io::Error>((user, tcp))
        });
    }
    let mut streams = Vec::with_capacity(conns);
    while let Some(joined) = logins.join_next().await {
        streams.push(joined.map_err(io::Error::other)??);
    }
    let mut fleet = Fleet {
        phase: Arc::new(AtomicU8::new(IDLE)),
        wake: Arc::new(Notify::new()),
        recorded: Arc::new(AtomicU64::new(0)),
        clients: JoinSet::new(),
    };
    for (user, tcp) in streams {
        let phase = fleet.phase.clone();
        let wake = fleet.wake.clone();
        let recorded = fleet.recorded.clone();
        fleet
            .clients
            .spawn(client_loop(tcp, user, phase, wake, recorded));
    }
    Ok(fleet)
}

/// One client: round trips while its fleet runs, latencies recorded while measuring.
async fn client_loop(
    mut tcp: TcpStream,
    user: u64,
    phase: Arc<AtomicU8>,
    wake: Arc<Notify>,
    recorded: Arc<AtomicU64>,
) -> io::Result<Vec<u64>> {
    let message = client::message(user);
    let mut echo = vec![0u8; message.len()];
    let mut latencies = Vec::new();
    loop {
        let started_in = phase.load(Ordering::Relaxed);
        match started_in {
            STOP => return Ok(latencies),
            IDLE => {
                let woken = wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if phase.load(Ordering::SeqCst) == IDLE {
                    woken.await;
                }
                continue;
            }
            _ => {}
        }
        let start = Instant::now();
        tokio::time::timeout(
            ROUND_TRIP_TIMEOUT,
            client::round_trip(&mut tcp, &message, &mut echo),
        )
        .await
        .map_err(|_| io::Error::other("round trip timed out"))??;
        let took = start.elapsed();
        if started_in == MEASURE && phase.load(Ordering::Relaxed) == MEASURE {
            latencies.push(took.as_nanos() as u64);
            recorded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `fleet` for one slice and adds what it measured to `sample`.
async fn measure_slice(fleet: &Fleet, middle: Option<u32>, slice: Duration, sample: &mut Sample) {
    let middle_cpu = || middle.map_or((Duration::ZERO, Duration::ZERO), process::cpu_time);
    let bench_cpu = || {
        let (user, sys) = process::cpu_time(std::process::id());
        user + sys
    };
    fleet.set(WARM);
    tokio::time::sleep(LEAD_IN).await;
    let recorded_before = fleet.recorded.load(Ordering::SeqCst);
    let (middle_before, bench_before) = (middle_cpu(), bench_cpu());
    let started = Instant::now();
    fleet.set(MEASURE);
    tokio::time::sleep(slice).await;
    fleet.set(IDLE);
    let elapsed = started.elapsed();
    let (middle_after, bench_after) = (middle_cpu(), bench_cpu());
    tokio::time::sleep(GAP).await;
    let round_trips = fleet.recorded.load(Ordering::SeqCst) - recorded_before;
    sample.round_trips += round_trips;
    sample.elapsed += elapsed;
    sample.middle_user += middle_after.0.saturating_sub(middle_before.0);
    sample.middle_sys += middle_after.1.saturating_sub(middle_before.1);
    sample.bench_cpu += bench_after.saturating_sub(bench_before);
    sample
        .slice_rates
        .push(round_trips as f64 / elapsed.as_secs_f64().max(1e-9));
}
