//! Soak bench: a long run of stanzagate with misbehaving clients in the mix, watching
//! the proxy's memory and the latency the well-behaved users see.
//!
//! Two stanzagate processes with the same configuration run side by side, each in front
//! of the SM-aware bench upstream (`support::upstream`, one per run, shared), each with
//! plaintext and direct-TLS client listeners, a component listener and admin HTTP, and
//! two namespaces delegated to a bench component (`support::component`, one connected
//! to each proxy) that answers `urn:example:soak:answered` and never answers
//! `urn:example:soak:ignored`:
//! - the **subject** gets the well-behaved clients and, after the baseline, the
//!   misbehaving ones;
//! - the **control** gets only its own, identical well-behaved clients. Machine noise
//!   (other jobs on the shared cores, CPU frequency) hits both alike, so the subject ÷
//!   control latency ratio isolates what the misbehaving clients do to the subject.
//!
//! Clients (all in this process, loopback only, a bounded number of connections):
//! - **well-behaved** (`SOAK_GOOD` per proxy, direct TLS, SM enabled): paced round
//!   trips, one every `SOAK_GOOD_INTERVAL_MS` — 250-byte messages echoed by the
//!   upstream, every `SOAK_GOOD_DELEGATED_EVERY`-th an answered delegated IQ instead;
//!   they answer every `<r/>` and ask for acks themselves, checking the `h` they get
//!   back (the upstream checks theirs). Latency is recorded per bucket
//!   (`SOAK_BUCKET_SECS`). Any error of theirs (stream error, close, timeout, error
//!   answer, wrong SM `h`) is a failure: it is reported and the client reconnects.
//! - **never-acking SM clients** (`SOAK_NOACK`, plaintext): enable SM, then every
//!   `SOAK_NOACK_INTERVAL_MS` send an answered delegated IQ (whose answer the proxy
//!   injects, so it keeps it until acknowledged) and a message; read everything, never
//!   send `<a/>`.
//! - **slow handshakes** (`SOAK_SLOW`): half dribble the client stream header onto the
//!   plaintext listener, half a TLS ClientHello onto the direct-TLS listener, one byte
//!   every `SOAK_SLOW_BYTE_MS`; when the proxy closes the connection they reconnect.
//! - **delegated-IQ flooders** (`SOAK_FLOOD`, plaintext): `SOAK_FLOOD_RATE` IQs/s each
//!   in the namespace the component never answers (the proxy answers them
//!   `service-unavailable` after `limits.delegation_timeout_ms`, 30 s by default).
//!
//! A misbehaving client the proxy disconnects (e.g. a quota's stream error) counts how
//! it ended, reconnects after 1 s and carries on.
//!
//! Timeline: `SOAK_BASELINE_SECS` with the well-behaved clients only, then the mix for
//! `SOAK_SECS`. Both proxies' RSS (`VmRSS`), descriptors and CPU, the subject's pending
//! delegated IQs (`/metrics`), this process's CPU and the machine's load average are
//! sampled every `SOAK_SAMPLE_SECS`; RSS start, middle, end and the least-squares slope
//! are taken after `SOAK_WARMUP_SECS` of the mix (by default 120 s, or a third of a
//! shorter run, so the flooders' 30 s delegation timeouts are in a steady state).
//!
//! Run with `cargo bench --bench soak` (1 min baseline + 30 min). Under `cargo test` (no
//! `--bench` argument) it exits at once. Knobs (defaults): `SOAK_SECS` (1800),
//! `SOAK_BASELINE_SECS` (60), `SOAK_WARMUP_SECS`, `SOAK_SAMPLE_SECS` (10),
//! `SOAK_BUCKET_SECS` (60), `SOAK_CONTROL` (1; 0: no control proxy), `SOAK_GOOD` (50),
//! `SOAK_GOOD_INTERVAL_MS` (100), `SOAK_GOOD_DELEGATED_EVERY` (5; 0: messages only),
//! `SOAK_NOACK` (20), `SOAK_NOACK_INTERVAL_MS` (200), `SOAK_SLOW` (20),
//! `SOAK_SLOW_BYTE_MS` (2000), `SOAK_FLOOD` (4), `SOAK_FLOOD_RATE` (200),
//! `STANZAGATE_BIN`. It fails (after printing the report) if a well-behaved client
//! failed, an SM `h` was wrong, or a proxy exited.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stanzagate::xml::children::stanza_error_condition;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use support::process::{self, ProxyOptions, ProxySetup};
use support::stats::{env_num, micros, percentile_us, slope};
use support::xmpp::{self, Ended, Xmpp};
use support::DOMAIN;

const COMPONENT: &str = "component.bench.local";
const SECRET: &str = "soak-secret";
const NS_ANSWERED: &str = "urn:example:soak:answered";
const NS_IGNORED: &str = "urn:example:soak:ignored";
/// A well-behaved round trip slower than this is a failure.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect + login (+ SM enable) bound for every client.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A write that blocks longer than this ends a misbehaving client's connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before a disconnected client reconnects.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// Well-behaved clients send `<r/>` after this many requests.
const GOOD_REQUEST_ACK_EVERY: u64 = 20;
/// Flooders send a batch this often.
const FLOOD_TICK: Duration = Duration::from_millis(50);
/// RSS verdict: least-squares growth over the measured window below this share of the
/// start RSS counts as flat.
const FLAT_SHARE: f64 = 0.05;
/// Fleet indices.
const SUBJECT: usize = 0;
const CONTROL: usize = 1;

/// Latency samples (ns) of one time bucket, per fleet.
#[derive(Default, Clone)]
struct Bucket {
    messages: [Vec<u64>; 2],
    delegated: [Vec<u64>; 2],
}

/// Counters of one client kind.
#[derive(Default)]
struct Kind {
    /// Logged-in (or, for slow clients, opened) connections.
    connects: AtomicU64,
    /// Stanzas (or bytes, for slow clients) sent.
    sent: AtomicU64,
    /// Stanzas received.
    received: AtomicU64,
    /// How connections ended, by [`Ended::key`] (and IQ error conditions for flooders).
    ends: Mutex<BTreeMap<String, u64>>,
    /// Seconds each connection lived (slow clients).
    lifetimes: Mutex<Vec<f64>>,
}

impl Kind {
    fn count(&self, key: String) {
        *self
            .ends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn ends(&self) -> String {
        let ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        if ends.is_empty() {
            return "-".into();
        }
        ends.iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What every client task shares.
struct Soak {
    stop: AtomicBool,
    /// Start of the baseline: bucket 0 begins here.
    t0: Instant,
    bucket: Duration,
    buckets: Mutex<Vec<Bucket>>,
    /// Well-behaved clients of the subject and of the control.
    good: [Kind; 2],
    noack: Kind,
    slow: Kind,
    flood: Kind,
    /// Well-behaved clients' failures: count and the first few messages.
    good_failures: AtomicU64,
    good_failure_log: Mutex<Vec<String>>,
}

impl Soak {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn record(&self, fleet: usize, at: Instant, took: Duration, delegated: bool) {
        let since = at.saturating_duration_since(self.t0).as_secs_f64();
        let index = (since / self.bucket.as_secs_f64()) as usize;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() <= index {
            buckets.resize(index + 1, Bucket::default());
        }
        let ns = took.as_nanos() as u64;
        if delegated {
            buckets[index].delegated[fleet].push(ns);
        } else {
            buckets[index].messages[fleet].push(ns);
        }
    }

    fn good_failure(&self, who: &str, what: String) {
        if self.stopped() {
            return;
        }
        self.good_failures.fetch_add(1, Ordering::SeqCst);
        let at = self.t0.elapsed().as_secs_f64();
        let line = format!("t={at:.0}s {who}: {what}");
        eprintln!("WELL-BEHAVED CLIENT FAILURE: {line}");
        let mut log = self
            .good_failure_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if log.len() < 20 {
            log.push(line);
        }
    }
}

/// One process's figures at one reading.
#[derive(Clone, Copy, Default)]
struct Proc {
    rss: u64,
    fds: usize,
    cpu: Duration,
}

impl Proc {
    fn read(pid: u32) -> Proc {
        let (user, sys) = process::cpu_time(pid);
        Proc {
            rss: process::rss_kib(pid),
            fds: process::fd_count(pid),
            cpu: user + sys,
        }
    }
}

/// One reading.
struct Reading {
    /// Seconds since the mix started (negative during the baseline).
    t: f64,
    subject: Proc,
    control: Option<Proc>,
    bench_cpu: Duration,
    pending: Option<f64>,
    /// 1-minute load average of the machine.
    load: f64,
}

struct Knobs {
    secs: u64,
    baseline: u64,
    warmup: u64,
    sample: u64,
    bucket: u64,
    control: bool,
    good: usize,
    good_interval: Duration,
    good_delegated_every: u64,
    noack: usize,
    noack_interval: Duration,
    slow: usize,
    slow_byte: Duration,
    flood: usize,
    flood_rate: u64,
}

fn knobs() -> Knobs {
    let secs = env_num("SOAK_SECS", 1800).max(10);
    Knobs {
        secs,
        baseline: env_num("SOAK_BASELINE_SECS", 60),
        warmup: env_num("SOAK_WARMUP_SECS", 120.min(secs / 3)).min(secs.saturating_sub(10)),
        sample: env_num("SOAK_SAMPLE_SECS", 10).max(1),
        bucket: env_num("SOAK_BUCKET_SECS", 60).max(1),
        control: env_num("SOAK_CONTROL", 1) != 0,
        good: env_num("SOAK_GOOD", 50) as usize,
        good_interval: Duration::from_millis(env_num("SOAK_GOOD_INTERVAL_MS", 100).max(1)),
        good_delegated_every: env_num("SOAK_GOOD_DELEGATED_EVERY", 5),
        noack: env_num("SOAK_NOACK", 20) as usize,
        noack_interval: Duration::from_millis(env_num("SOAK_NOACK_INTERVAL_MS", 200).max(1)),
        slow: env_num("SOAK_SLOW", 20) as usize,
        slow_byte: Duration::from_millis(env_num("SOAK_SLOW_BYTE_MS", 2000).max(1)),
        flood: env_num("SOAK_FLOOD", 4) as usize,
        flood_rate: env_num("SOAK_FLOOD_RATE", 200).max(1),
    }
}

/// Starts one stanzagate for the soak in `dir`.
fn start_proxy(
    dir: &Path,
    cert: &support::tls::SelfSigned,
    upstream: &support::upstream::Upstream,
) -> process::Proxy {
    std::fs::create_dir_all(dir).expect("proxy dir");
    process::start_stanzagate_with(
        dir,
        &ProxySetup {
            bin: process::stanzagate_bin(),
            upstream: upstream.c2s,
            tls: Some((&cert.cert, &cert.key)),
            direct_tls: true,
        },
        &ProxyOptions {
            tls_optional: true,
            component_upstream: Some(upstream.component),
            http: true,
            websocket: false,
            extra: format!(
                "[hosts.\"{DOMAIN}\".delegations.\"{NS_ANSWERED}\"]\njid = \"{COMPONENT}\"\n\
                 [hosts.\"{DOMAIN}\".delegations.\"{NS_IGNORED}\"]\njid = \"{COMPONENT}\"\n\
                 [components.\"{COMPONENT}\"]\nsecret = \"{SECRET}\"\n"
            ),
        },
    )
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    let k = knobs();
    assert!(k.good >= 1, "SOAK_GOOD must be at least 1");
    process::watchdog(Duration::from_secs(k.baseline + k.secs + 300));
    let connections = 2 * k.good + k.noack + k.slow + k.flood + 2;
    let nofile = process::raise_nofile();
    assert!(
        nofile as usize >= 4 * connections + 256,
        "RLIMIT_NOFILE is {nofile}, the soak needs {}",
        4 * connections + 256
    );

    println!("soak bench: {}", process::machine());
    println!(
        "baseline {}s (well-behaved only), then {}s with the misbehaving clients; RSS \
         measured after {}s of the mix, sampled every {}s; latency buckets of {}s; control \
         proxy: {}",
        k.baseline,
        k.secs,
        k.warmup,
        k.sample,
        k.bucket,
        if k.control { "yes" } else { "no" }
    );
    println!(
        "clients: {} well-behaved per proxy (TLS, SM, one round trip per {} ms, every {}th a \
         delegated IQ), {} never-acking SM (a delegated IQ + a message per {} ms), {} slow \
         handshakes (a byte per {} ms), {} flooders ({} unanswered delegated IQs/s each)",
        k.good,
        k.good_interval.as_millis(),
        k.good_delegated_every,
        k.noack,
        k.noack_interval.as_millis(),
        k.slow,
        k.slow_byte.as_millis(),
        k.flood,
        k.flood_rate
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let cert = support::tls::self_signed(dir.path());
    let connector = support::tls::connector(cert.der.clone(), false);
    let hello = support::tls::client_hello(cert.der.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let upstream = runtime.block_on(support::upstream::spawn());
    let mut subject = start_proxy(&dir.path().join("subject"), &cert, &upstream);
    let mut control = k
        .control
        .then(|| start_proxy(&dir.path().join("control"), &cert, &upstream));
    for (name, proxy) in [("subject", Some(&subject)), ("control", control.as_ref())] {
        let Some(proxy) = proxy else { continue };
        eprintln!(
            "{name}: stanzagate {} pid {}: c2s {}, direct TLS {:?}, component {:?}, http {:?}",
            process::stanzagate_bin().display(),
            proxy.process.pid(),
            proxy.c2s,
            proxy.direct_tls,
            proxy.component,
            proxy.http
        );
    }
    let pid = subject.process.pid();
    let control_pid = control.as_ref().map(|c| c.process.pid());
    let plain = subject.c2s;
    let tls_addr = subject.direct_tls.expect("direct TLS listener");
    let http = subject.http.expect("admin HTTP listener");

    let (soak, components, readings) = runtime.block_on(async {
        let mut components = Vec::new();
        for proxy in [Some(&subject), control.as_ref()].into_iter().flatten() {
            let addr = proxy.component.expect("component listener");
            components.push(support::component::start(addr, COMPONENT, SECRET, NS_ANSWERED).await);
            // The delegation is active once the component is in; prove it.
            check_delegation(proxy.c2s).await;
        }
        let soak = Arc::new(Soak {
            stop: AtomicBool::new(false),
            t0: Instant::now(),
            bucket: Duration::from_secs(k.bucket),
            buckets: Mutex::new(Vec::new()),
            good: Default::default(),
            noack: Kind::default(),
            slow: Kind::default(),
            flood: Kind::default(),
            good_failures: AtomicU64::new(0),
            good_failure_log: Mutex::new(Vec::new()),
        });
        let mut tasks = JoinSet::new();
        let fleets = [Some(&subject), control.as_ref()];
        for (fleet, proxy) in fleets.into_iter().enumerate() {
            let Some(proxy) = proxy else { continue };
            for i in 0..k.good {
                tasks.spawn(good_client(
                    soak.clone(),
                    connector.clone(),
                    proxy.direct_tls.expect("direct TLS listener"),
                    (fleet, i),
                    k.good_interval,
                    k.good_delegated_every,
                ));
            }
        }
        let baseline_end = soak.t0 + Duration::from_secs(k.baseline);
        let end = baseline_end + Duration::from_secs(k.secs);
        let mut next_sample = soak.t0;
        let mut mix_started = None;
        let mut readings: Vec<Reading> = Vec::new();
        loop {
            let now = Instant::now();
            if mix_started.is_none() && now >= baseline_end {
                mix_started = Some(now);
                eprintln!(
                    "t={:.0}s: the misbehaving clients start",
                    soak.t0.elapsed().as_secs_f64()
                );
                for i in 0..k.noack {
                    tasks.spawn(noack_client(soak.clone(), plain, i, k.noack_interval));
                }
                for i in 0..k.slow {
                    let (target, bytes, label) = if i % 2 == 0 {
                        (plain, xmpp::header().into_bytes(), "header")
                    } else {
                        (tls_addr, hello.clone(), "tls")
                    };
                    tasks.spawn(slow_client(soak.clone(), target, bytes, label, k.slow_byte));
                }
                for i in 0..k.flood {
                    tasks.spawn(flood_client(soak.clone(), plain, i, k.flood_rate));
                }
            }
            if now >= end {
                break;
            }
            if now >= next_sample {
                subject.process.assert_running();
                if let Some(control) = control.as_mut() {
                    control.process.assert_running();
                }
                let reading = Reading {
                    t: mix_started.map_or_else(
                        || -(baseline_end - now).as_secs_f64(),
                        |m| now.duration_since(m).as_secs_f64(),
                    ),
                    subject: Proc::read(pid),
                    control: control_pid.map(Proc::read),
                    bench_cpu: {
                        let (user, sys) = process::cpu_time(std::process::id());
                        user + sys
                    },
                    pending: process::metric(http, "stanzagate_delegation_pending"),
                    load: load_average(),
                };
                progress(&soak, &reading, readings.last());
                readings.push(reading);
                for component in &components {
                    if component.lost.swap(false, Ordering::SeqCst) {
                        soak.good_failure(
                            "component",
                            "the proxy closed the component stream".into(),
                        );
                    }
                }
                next_sample += Duration::from_secs(k.sample);
            }
            let wake = next_sample.min(if mix_started.is_none() {
                baseline_end
            } else {
                end
            });
            tokio::time::sleep_until(wake.into()).await;
        }
        soak.stop.store(true, Ordering::SeqCst);
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            eprintln!("warning: some clients did not stop within 30 s; aborting them");
            tasks.abort_all();
        }
        (soak, components, readings)
    });
    subject.process.assert_running();
    if let Some(control) = control.as_mut() {
        control.process.assert_running();
    }
    drop(control);
    drop(subject);
    report(&k, &soak, &readings, &components, &upstream.stats);
    for name in ["subject", "control"] {
        if let Some((bytes, lines, warnings)) = log_summary(&dir.path().join(name)) {
            println!(
                "{name} log (RUST_LOG=info): {:.1} MB, {lines} lines, {warnings} WARN/ERROR",
                bytes as f64 / 1e6
            );
        }
    }
    let failures = soak.good_failures.load(Ordering::SeqCst)
        + upstream.stats.ack_mismatches.load(Ordering::SeqCst);
    assert!(
        failures == 0,
        "soak FAILED: {failures} well-behaved client failures or SM ack mismatches (see above)"
    );
}

/// Size, lines and WARN/ERROR lines of the stanzagate log in `dir`.
fn log_summary(dir: &Path) -> Option<(u64, u64, u64)> {
    use std::io::BufRead;
    let file = std::fs::File::open(dir.join("stanzagate.log")).ok()?;
    let bytes = file.metadata().ok()?.len();
    let (mut lines, mut warnings) = (0, 0);
    for line in std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
    {
        lines += 1;
        if memchr::memmem::find(&line, b" WARN ").is_some()
            || memchr::memmem::find(&line, b" ERROR ").is_some()
        {
            warnings += 1;
        }
    }
    Some((bytes, lines, warnings))
}

fn cpu_share(now: Duration, before: Duration, dt: f64) -> f64 {
    now.saturating_sub(before).as_secs_f64() / dt.max(1e-9) * 100.0
}

fn progress(soak: &Soak, reading: &Reading, previous: Option<&Reading>) {
    let cpu = previous.map_or(f64::NAN, |p| {
        cpu_share(reading.subject.cpu, p.subject.cpu, reading.t - p.t)
    });
    let load = |kind: &Kind| {
        format!(
            "{}c/{}s/{}r",
            kind.connects.load(Ordering::Relaxed),
            kind.sent.load(Ordering::Relaxed),
            kind.received.load(Ordering::Relaxed)
        )
    };
    eprintln!(
        "t={:>6.0}s subject rss {:>7} KiB fds {:>4} cpu {:>5.1}% pending {:>6} | control rss \
         {:>7} | load {:.1} | good {} noack {} slow {} flood {} | good failures {}",
        reading.t,
        reading.subject.rss,
        reading.subject.fds,
        cpu,
        reading
            .pending
            .map_or_else(|| "?".to_owned(), |p| format!("{p:.0}")),
        reading.control.map_or(0, |c| c.rss),
        reading.load,
        load(&soak.good[SUBJECT]),
        load(&soak.noack),
        load(&soak.slow),
        load(&soak.flood),
        soak.good_failures.load(Ordering::Relaxed),
    );
}

/// RSS start/middle/end and slope of one process after the warm-up.
fn rss_summary(
    name: &str,
    k: &Knobs,
    readings: &[Reading],
    pick: &dyn Fn(&Reading) -> Option<u64>,
) {
    let measured: Vec<(f64, u64)> = readings
        .iter()
        .filter(|r| r.t >= k.warmup as f64)
        .filter_map(|r| pick(r).map(|rss| (r.t, rss)))
        .collect();
    let (Some(&start), Some(&end)) = (measured.first(), measured.last()) else {
        println!("{name}: too few readings after the warm-up");
        return;
    };
    if measured.len() < 2 {
        println!("{name}: too few readings after the warm-up");
        return;
    }
    let middle_t = (start.0 + end.0) / 2.0;
    let middle = measured
        .iter()
        .min_by(|a, b| (a.0 - middle_t).abs().total_cmp(&(b.0 - middle_t).abs()))
        .copied()
        .unwrap_or(start);
    let points: Vec<(f64, f64)> = measured
        .iter()
        .map(|&(t, rss)| (t / 60.0, rss as f64))
        .collect();
    let per_minute = slope(&points);
    let window = (end.0 - start.0) / 60.0;
    let growth = per_minute * window;
    println!(
        "{name} RSS: start {} KiB (t={:.0}s), middle {} KiB (t={:.0}s), end {} KiB (t={:.0}s); \
         end ÷ start {:.3}; slope {:+.1} KiB/min over {} readings = {:+.0} KiB over {:.1} min \
         ({:+.2} % of start, {:+.1} % per hour) → {}",
        start.1,
        start.0,
        middle.1,
        middle.0,
        end.1,
        end.0,
        end.1 as f64 / start.1 as f64,
        per_minute,
        measured.len(),
        growth,
        window,
        growth / start.1 as f64 * 100.0,
        per_minute * 60.0 / start.1 as f64 * 100.0,
        if growth.abs() < FLAT_SHARE * start.1 as f64 {
            "flat"
        } else {
            "NOT flat"
        },
    );
}

fn report(
    k: &Knobs,
    soak: &Soak,
    readings: &[Reading],
    components: &[Arc<support::component::ComponentStats>],
    upstream: &support::upstream::UpstreamStats,
) {
    // --- memory ---
    println!();
    println!(
        "Readings (t = seconds since the mix started; one row per minute shown of every {}s):",
        k.sample
    );
    println!();
    println!(
        "| t s | subject RSS KiB | subject fds | pending delegated IQs | subject CPU % | \
         control RSS KiB | control CPU % | bench CPU % | load avg |"
    );
    println!("|----:|------:|-----:|------:|------:|------:|------:|------:|------:|");
    let every = (60 / k.sample.max(1)).max(1) as usize;
    for (i, r) in readings.iter().enumerate() {
        if i % every != 0 && i + 1 != readings.len() {
            continue;
        }
        let (cpu, control_cpu, bench_cpu) = match i.checked_sub(1).map(|j| &readings[j]) {
            None => (f64::NAN, f64::NAN, f64::NAN),
            Some(p) => {
                let dt = r.t - p.t;
                (
                    cpu_share(r.subject.cpu, p.subject.cpu, dt),
                    match (r.control, p.control) {
                        (Some(c), Some(pc)) => cpu_share(c.cpu, pc.cpu, dt),
                        _ => f64::NAN,
                    },
                    cpu_share(r.bench_cpu, p.bench_cpu, dt),
                )
            }
        };
        println!(
            "| {:.0} | {} | {} | {} | {:.1} | {} | {:.1} | {:.1} | {:.2} |",
            r.t,
            r.subject.rss,
            r.subject.fds,
            r.pending
                .map_or_else(|| "?".to_owned(), |p| format!("{p:.0}")),
            cpu,
            r.control
                .map_or_else(|| "-".to_owned(), |c| c.rss.to_string()),
            control_cpu,
            bench_cpu,
            r.load,
        );
    }
    println!();
    println!(
        "RSS after {}s of the mix (flat = least-squares growth over the window below {:.0} % \
         of the start RSS):",
        k.warmup,
        FLAT_SHARE * 100.0
    );
    rss_summary("subject", k, readings, &|r| Some(r.subject.rss));
    if k.control {
        rss_summary("control", k, readings, &|r| r.control.map(|c| c.rss));
    }

    // --- latency ---
    let mut buckets = soak
        .buckets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // Only whole buckets inside the run count; round trips finishing as it stops do not.
    let whole = ((k.baseline + k.secs) / k.bucket) as usize;
    buckets.truncate(whole);
    let phase_of = |i: usize| {
        let (from, to) = (i as u64 * k.bucket, (i as u64 + 1) * k.bucket);
        if to <= k.baseline {
            "baseline"
        } else if from >= k.baseline + k.warmup {
            "mix"
        } else {
            "mix warm-up"
        }
    };
    println!();
    println!(
        "Well-behaved clients' latency per {}s bucket (baseline: no misbehaving clients; \
         ÷ first = ÷ bucket 0 of the same proxy; ÷ control = subject ÷ control in the same \
         bucket):",
        k.bucket
    );
    println!();
    println!(
        "| bucket | from s | phase | round trips | p50 µs | p99 µs | p50 ÷ first | p99 ÷ first | \
         control p50 µs | control p99 µs | p50 ÷ control | p99 ÷ control | delegated p50 µs | \
         delegated p99 µs | delegated p50 ÷ control |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first: Option<(f64, f64)> = None;
    let mut pooled = [Bucket::default(), Bucket::default()];
    for (i, bucket) in buckets.iter_mut().enumerate() {
        let phase = phase_of(i);
        let s50 = percentile_us(&mut bucket.messages[SUBJECT], 0.50);
        let s99 = percentile_us(&mut bucket.messages[SUBJECT], 0.99);
        let c50 = percentile_us(&mut bucket.messages[CONTROL], 0.50);
        let c99 = percentile_us(&mut bucket.messages[CONTROL], 0.99);
        let d50 = percentile_us(&mut bucket.delegated[SUBJECT], 0.50);
        let d99 = percentile_us(&mut bucket.delegated[SUBJECT], 0.99);
        let cd50 = percentile_us(&mut bucket.delegated[CONTROL], 0.50);
        let base = *first.get_or_insert((s50, s99));
        println!(
            "| {i} | {} | {phase} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.2} | {:.2} | {} | \
             {} | {:.2} |",
            i as u64 * k.bucket,
            bucket.messages[SUBJECT].len() + bucket.delegated[SUBJECT].len(),
            micros(s50),
            micros(s99),
            s50 / base.0,
            s99 / base.1,
            micros(c50),
            micros(c99),
            s50 / c50,
            s99 / c99,
            micros(d50),
            micros(d99),
            d50 / cd50,
        );
        let slot = match phase {
            "baseline" => 0,
            "mix" => 1,
            _ => continue,
        };
        for fleet in [SUBJECT, CONTROL] {
            pooled[slot].messages[fleet].extend_from_slice(&bucket.messages[fleet]);
            pooled[slot].delegated[fleet].extend_from_slice(&bucket.delegated[fleet]);
        }
    }
    let [mut base, mut mix] = pooled;
    let p = |v: &mut Vec<u64>, q: f64| percentile_us(v, q);
    println!();
    for (label, q) in [("p50", 0.50), ("p99", 0.99)] {
        let s_mix = p(&mut mix.messages[SUBJECT], q);
        let s_base = p(&mut base.messages[SUBJECT], q);
        let c_mix = p(&mut mix.messages[CONTROL], q);
        let c_base = p(&mut base.messages[CONTROL], q);
        let ds_mix = p(&mut mix.delegated[SUBJECT], q);
        let ds_base = p(&mut base.delegated[SUBJECT], q);
        let dc_mix = p(&mut mix.delegated[CONTROL], q);
        let dc_base = p(&mut base.delegated[CONTROL], q);
        println!(
            "messages {label}: subject mix ÷ baseline {:.2} ({} → {} µs), control {:.2}; \
             subject ÷ control during the mix {:.2}, during the baseline {:.2}: change \
             attributable to the misbehaving clients {:.2}",
            s_mix / s_base,
            micros(s_base),
            micros(s_mix),
            c_mix / c_base,
            s_mix / c_mix,
            s_base / c_base,
            (s_mix / c_mix) / (s_base / c_base),
        );
        println!(
            "delegated IQs {label}: subject mix ÷ baseline {:.2} ({} → {} µs), control {:.2}; \
             change attributable to the misbehaving clients {:.2}",
            ds_mix / ds_base,
            micros(ds_base),
            micros(ds_mix),
            dc_mix / dc_base,
            (ds_mix / dc_mix) / (ds_base / dc_base),
        );
    }

    // --- clients ---
    println!();
    println!("| clients | connections | sent | received | how connections ended |");
    println!("|---------|------------:|-----:|---------:|-----------------------|");
    for (name, kind) in [
        ("well-behaved, subject", &soak.good[SUBJECT]),
        ("well-behaved, control", &soak.good[CONTROL]),
        ("never-acking SM", &soak.noack),
        ("slow handshake (bytes sent)", &soak.slow),
        ("delegated-IQ flood", &soak.flood),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            kind.connects.load(Ordering::Relaxed),
            kind.sent.load(Ordering::Relaxed),
            kind.received.load(Ordering::Relaxed),
            kind.ends()
        );
    }
    let mut lifetimes = soak
        .slow
        .lifetimes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if !lifetimes.is_empty() {
        lifetimes.sort_by(f64::total_cmp);
        println!(
            "slow-handshake connections closed by the proxy after {:.1} s (median; min {:.1}, \
             max {:.1})",
            lifetimes[lifetimes.len() / 2],
            lifetimes[0],
            lifetimes[lifetimes.len() - 1]
        );
    }
    for (name, component) in ["subject", "control"].iter().zip(components) {
        println!(
            "{name} component: {} delegated IQs answered, {} left unanswered, {} disco queries",
            component.answered.load(Ordering::Relaxed),
            component.ignored.load(Ordering::Relaxed),
            component.disco.load(Ordering::Relaxed),
        );
    }
    println!(
        "upstream: {} client streams, {} component links, {} SM acks checked, {} wrong",
        upstream.client_streams.load(Ordering::Relaxed),
        upstream.component_streams.load(Ordering::Relaxed),
        upstream.acks_checked.load(Ordering::Relaxed),
        upstream.ack_mismatches.load(Ordering::Relaxed),
    );
    for example in upstream
        .mismatch_examples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  SM ack mismatch: {example}");
    }
    let failures = soak.good_failures.load(Ordering::SeqCst);
    println!("well-behaved client failures: {failures}");
    for line in soak
        .good_failure_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("  {line}");
    }
}

/// One delegated IQ through the proxy must be answered by the component before the
/// soak starts (the component is connected and the rule active).
async fn check_delegation(plain: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let tcp = TcpStream::connect(plain).await?;
            tcp.set_nodelay(true)?;
            let mut x = Xmpp::new(tcp);
            x.login("check").await?;
            x.send(&delegated_iq("check", NS_ANSWERED)).await?;
            let answer = answer_to(&mut x, "check").await?;
            Ok::<_, Ended>(answer)
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(Ok(()))) => return,
            Ok(Ok(Err(text))) if Instant::now() > deadline => {
                panic!("the delegated IQ check failed: {text}")
            }
            Ok(Err(e)) if Instant::now() > deadline => panic!("the delegated IQ check failed: {e}"),
            Err(_) if Instant::now() > deadline => panic!("the delegated IQ check timed out"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn delegated_iq(id: &str, ns: &str) -> Vec<u8> {
    format!("<iq type='get' id='{id}' to='{DOMAIN}'><query xmlns='{ns}'/></iq>").into_bytes()
}

/// Reads until the IQ `id`; `Ok(Err(text))` when it is not a result.
async fn answer_to<S: AsyncRead + AsyncWrite + Unpin>(
    x: &mut Xmpp<S>,
    id: &str,
) -> Result<Result<(), String>, Ended> {
    loop {
        let stanza = x.stanza().await?;
        let Ok(head) = stanza.head() else { continue };
        if head.name() == "iq" && head.id().as_deref() == Some(id) {
            return Ok(if head.type_().as_deref() == Some("result") {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(stanza.bytes()).into_owned())
            });
        }
    }
}

/// A message of [`support::client::MESSAGE_BYTES`] bytes with id `id`.
fn message(id: &str) -> Vec<u8> {
    let head = format!("<message to='echo@{DOMAIN}/r' type='chat' id='{id}'><body>");
    let tail = "</body></message>";
    let fill = support::client::MESSAGE_BYTES.saturating_sub(head.len() + tail.len());
    let body: String = "wherefore art thou romeo "
        .chars()
        .cycle()
        .take(fill)
        .collect();
    format!("{head}{body}{tail}").into_bytes()
}

/// A well-behaved client: logs in over TLS, enables SM, then paced round trips until
/// the soak stops; reconnects (after reporting) if anything goes wrong.
async fn good_client(
    soak: Arc<Soak>,
    connector: TlsConnector,
    addr: SocketAddr,
    (fleet, index): (usize, usize),
    interval: Duration,
    delegated_every: u64,
) {
    let who = format!("{}{index}", ["good", "control"][fleet]);
    // Spread the clients over the interval.
    tokio::time::sleep(interval.mul_f64(rand::random::<f64>())).await;
    while !soak.stopped() {
        let session = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(support::tls::server_name(), tcp).await?;
            let mut x = Xmpp::new(tls);
            x.login(&who).await?;
            x.enable_sm().await?;
            Ok::<_, Ended>(x)
        };
        let mut x = match tokio::time::timeout(LOGIN_TIMEOUT, session).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                soak.good_failure(&who, format!("login failed: {e}"));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            Err(_) => {
                soak.good_failure(&who, "login timed out".into());
                continue;
            }
        };
        soak.good[fleet].connects.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = good_session(&soak, fleet, &mut x, interval, delegated_every).await {
            soak.good_failure(&who, e);
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

/// Round trips on one well-behaved session until the soak stops or something fails.
async fn good_session<S: AsyncRead + AsyncWrite + Unpin>(
    soak: &Soak,
    fleet: usize,
    x: &mut Xmpp<S>,
    interval: Duration,
    delegated_every: u64,
) -> Result<(), String> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    // `sm_sent` when our outstanding `<r/>` went out.
    let mut ack_expected: Option<u64> = None;
    while !soak.stopped() {
        ticks.tick().await;
        seq += 1;
        let delegated = delegated_every > 0 && seq % delegated_every == 0;
        let id = format!("{}{seq}", if delegated { 'd' } else { 'm' });
        let request = if delegated {
            delegated_iq(&id, NS_ANSWERED)
        } else {
            message(&id)
        };
        let start = Instant::now();
        x.send_stanzas(&request, 1)
            .await
            .map_err(|e| format!("send: {e}"))?;
        soak.good[fleet].sent.fetch_add(1, Ordering::Relaxed);
        let wait = async {
            loop {
                let stanza = x.stanza().await?;
                let Ok(head) = stanza.head() else { continue };
                if xmpp::is_sm(&stanza, "r") {
                    let h = x.sm_received.unwrap_or(0);
                    x.send(format!("<a xmlns='{}' h='{h}'/>", xmpp::NS_SM).as_bytes())
                        .await?;
                    continue;
                }
                if xmpp::is_sm(&stanza, "a") {
                    let h = xmpp::ack_h(&stanza);
                    if let Some(expected) = ack_expected.take() {
                        if h != Some(expected) {
                            return Ok::<_, Ended>(Err(format!(
                                "SM: <a h='{h:?}'/> answering our <r/> after {expected} stanzas"
                            )));
                        }
                    }
                    continue;
                }
                if head.id().as_deref() != Some(id.as_str()) {
                    continue;
                }
                soak.good[fleet].received.fetch_add(1, Ordering::Relaxed);
                let ok = match head.name() {
                    "message" => !delegated && stanza.bytes()[..] == request[..],
                    "iq" => delegated && head.type_().as_deref() == Some("result"),
                    _ => false,
                };
                return Ok(if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "unexpected answer: {}",
                        String::from_utf8_lossy(stanza.bytes())
                    ))
                });
            }
        };
        match tokio::time::timeout(ROUND_TRIP_TIMEOUT, wait).await {
            Ok(Ok(Ok(()))) => soak.record(fleet, start, start.elapsed(), delegated),
            Ok(Ok(Err(text))) => return Err(text),
            Ok(Err(e)) => return Err(format!("{e}")),
            Err(_) => return Err(format!("round trip {id} timed out")),
        }
        if seq % GOOD_REQUEST_ACK_EVERY == 0 && ack_expected.is_none() {
            ack_expected = Some(x.sm_sent);
            x.send(format!("<r xmlns='{}'/>", xmpp::NS_SM).as_bytes())
                .await
                .map_err(|e| format!("send <r/>: {e}"))?;
        }
    }
    Ok(())
}

/// Sends with [`WRITE_TIMEOUT`].
async fn send_bounded<S: AsyncRead + AsyncWrite + Unpin>(
    x: &mut Xmpp<S>,
    bytes: &[u8],
    count: u64,
) -> Result<(), Ended> {
    tokio::time::timeout(WRITE_TIMEOUT, x.send_stanzas(bytes, count))
        .await
        .map_err(|_| Ended::Timeout("write"))?
}

/// Logs in on the plaintext listener (SM optional) within [`LOGIN_TIMEOUT`].
async fn plain_login(addr: SocketAddr, user: &str, sm: bool) -> Result<Xmpp<TcpStream>, Ended> {
    let login = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut x = Xmpp::new(tcp);
        x.login(user).await?;
        if sm {
            x.enable_sm().await?;
        }
        Ok(x)
    };
    tokio::time::timeout(LOGIN_TIMEOUT, login)
        .await
        .map_err(|_| Ended::Timeout("login"))?
}

/// A never-acking SM client: delegated IQs (answered, so the proxy injects the answers)
/// and messages; reads everything; never sends `<a/>`. Reconnects when disconnected.
async fn noack_client(soak: Arc<Soak>, addr: SocketAddr, index: usize, interval: Duration) {
    let user = format!("noack{index}");
    let kind = &soak.noack;
    let mut seq: u64 = 0;
    tokio::time::sleep(interval.mul_f64(rand::random::<f64>())).await;
    while !soak.stopped() {
        let mut x = match plain_login(addr, &user, true).await {
            Ok(x) => x,
            Err(e) => {
                kind.count(format!("login:{}", e.key()));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        kind.connects.fetch_add(1, Ordering::Relaxed);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            if soak.stopped() {
                break None;
            }
            tokio::select! {
                _ = ticks.tick() => {
                    seq += 1;
                    let mut batch = delegated_iq(&format!("n{seq}"), NS_ANSWERED);
                    batch.extend_from_slice(&message(&format!("nm{seq}")));
                    if let Err(e) = send_bounded(&mut x, &batch, 2).await {
                        break Some(e);
                    }
                    kind.sent.fetch_add(2, Ordering::Relaxed);
                }
                stanza = x.stanza() => match stanza {
                    Ok(stanza) => {
                        let counted = stanza
                            .head()
                            .map(|h| matches!(h.name(), "message" | "iq" | "presence"))
                            .unwrap_or(false);
                        if counted {
                            kind.received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => break Some(e),
                },
            }
        };
        if let Some(e) = ended {
            kind.count(e.key());
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}

/// A slow handshake: `bytes` (a stream header or a TLS ClientHello) one byte per
/// `per_byte`; when the proxy closes the connection, note how long it lived and
/// reconnect.
async fn slow_client(
    soak: Arc<Soak>,
    addr: SocketAddr,
    bytes: Vec<u8>,
    label: &'static str,
    per_byte: Duration,
) {
    let kind = &soak.slow;
    tokio::time::sleep(per_byte.mul_f64(rand::random::<f64>())).await;
    while !soak.stopped() {
        let mut tcp = match tokio::time::timeout(LOGIN_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                kind.count(format!("{label}: connect:{:?}", e.kind()));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            Err(_) => {
                kind.count(format!("{label}: connect:timeout"));
                continue;
            }
        };
        kind.connects.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        let mut next = 0usize;
        let mut got: Vec<u8> = Vec::new();
        let mut buf = [0u8; 1024];
        let ended: Option<String> = loop {
            if soak.stopped() {
                break None;
            }
            tokio::select! {
                _ = tokio::time::sleep(per_byte) => {
                    if next < bytes.len() {
                        if tcp.write_all(&bytes[next..next + 1]).await.is_err() {
                            break Some("closed-on-write".into());
                        }
                        next += 1;
                        kind.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                read = tcp.read(&mut buf) => match read {
                    Ok(0) => break Some(if contains(&got, b"connection-timeout") {
                        "stream-error:connection-timeout".into()
                    } else if contains(&got, b"stream:error") {
                        "stream-error:other".into()
                    } else {
                        "closed".into()
                    }),
                    Ok(n) => {
                        if got.len() < 4096 {
                            got.extend_from_slice(&buf[..n]);
                        }
                    }
                    Err(e) => break Some(format!("io:{:?}", e.kind())),
                },
            }
        };
        if let Some(key) = ended {
            kind.lifetimes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(opened.elapsed().as_secs_f64());
            kind.count(format!("{label}: {key}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A flooder: `rate` delegated IQs/s that the component never answers, in batches every
/// [`FLOOD_TICK`]; counts the answers (errors after the proxy's timeout). Reconnects
/// when disconnected.
async fn flood_client(soak: Arc<Soak>, addr: SocketAddr, index: usize, rate: u64) {
    let user = format!("flood{index}");
    let kind = &soak.flood;
    let per_tick = ((rate as f64 * FLOOD_TICK.as_secs_f64()).round() as u64).max(1);
    let mut seq: u64 = 0;
    tokio::time::sleep(FLOOD_TICK.mul_f64(rand::random::<f64>())).await;
    while !soak.stopped() {
        let mut x = match plain_login(addr, &user, false).await {
            Ok(x) => x,
            Err(e) => {
                kind.count(format!("login:{}", e.key()));
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        kind.connects.fetch_add(1, Ordering::Relaxed);
        let mut ticks = tokio::time::interval(FLOOD_TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(128 * per_tick as usize);
        let ended = loop {
            if soak.stopped() {
                break None;
            }
            tokio::select! {
                _ = ticks.tick() => {
                    batch.clear();
                    for _ in 0..per_tick {
                        seq += 1;
                        batch.extend_from_slice(&delegated_iq(&format!("f{seq}"), NS_IGNORED));
                    }
                    if let Err(e) = send_bounded(&mut x, &batch, per_tick).await {
                        break Some(e);
                    }
                    kind.sent.fetch_add(per_tick, Ordering::Relaxed);
                }
                stanza = x.stanza() => match stanza {
                    Ok(stanza) => {
                        let Ok(head) = stanza.head() else { continue };
                        if head.name() == "iq" {
                            kind.received.fetch_add(1, Ordering::Relaxed);
                            if head.type_().as_deref() == Some("error") {
                                let condition = stanza_error_condition(stanza.bytes())
                                    .unwrap_or_else(|| "?".into());
                                kind.count(format!("(iq error: {condition})"));
                            }
                        }
                    }
                    Err(e) => break Some(e),
                },
            }
        };
        if let Some(e) = ended {
            kind.count(e.key());
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
}
