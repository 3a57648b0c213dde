//! WebSocket bench: closed-loop message round trips through stanzagate over its TCP
//! client port and over its WebSocket listener (RFC 7395), in the same run, against
//! the fast echo upstream, at 1, 50 and 500 connections. Prints round trips/s per path,
//! WebSocket ÷ TCP, stanzagate's CPU per round trip on each path, and its memory per
//! logged-in idle session on each path.
//!
//! The paths take turns in short slices (one per path per sweep, order alternating)
//! so the machine's drifting load hits both alike; every sweep gives a ratio.
//!
//! Run with `cargo bench --bench websocket`; under `cargo test` it exits at once.
//! Knobs: `WS_SLICE_MS` (1000), `WS_SWEEPS` (6), `WS_CONNS` (`1,50,500`),
//! `STANZAGATE_BIN`.

mod support;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use support::process::{self, ProxyOptions, ProxySetup};
use support::DOMAIN;

const IDLE: u8 = 0;
const TCP: u8 = 1;
const WS: u8 = 2;
const STOP: u8 = 3;
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);
const GAP: Duration = Duration::from_millis(50);
const MESSAGE_BYTES: usize = 250;
const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// The same 250-byte message on both paths, namespace declared (a WebSocket message
/// must stand alone; on TCP the declaration is redundant but legal).
fn message() -> String {
    let head =
        format!("<message xmlns='jabber:client' to='echo@{DOMAIN}/r' type='chat' id='rt'><body>");
    let tail = "</body></message>";
    let fill = MESSAGE_BYTES - head.len() - tail.len();
    let body: String = "wherefore art thou romeo "
        .chars()
        .cycle()
        .take(fill)
        .collect();
    format!("{head}{body}{tail}")
}

async fn ws_login(addr: std::net::SocketAddr) -> io::Result<WebSocketStream<TcpStream>> {
    use base64::Engine as _;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!("ws://{addr}/xmpp-websocket")
        .into_client_request()
        .map_err(io::Error::other)?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("xmpp"));
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(io::Error::other)?;
    let open = format!("<open xmlns='{FRAMING}' to='{DOMAIN}' version='1.0'/>");
    let creds = base64::engine::general_purpose::STANDARD.encode("\0user\0secret");
    let steps = [
        (open.clone(), "<stream:features"),
        (
            format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"),
            "<success",
        ),
        (open, "<stream:features"),
        (
            "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>".to_owned(),
            "<iq",
        ),
    ];
    for (send, until) in steps {
        ws.send(Message::text(send))
            .await
            .map_err(io::Error::other)?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.as_str().starts_with(until) => break,
                Some(Ok(_)) => {}
                _ => return Err(io::Error::other(format!("closed waiting for {until}"))),
            }
        }
    }
    Ok(ws)
}

struct Fleet {
    phase: Arc<AtomicU8>,
    count: Arc<AtomicU64>,
    clients: JoinSet<io::Result<()>>,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet {
            phase: Arc::new(AtomicU8::new(IDLE)),
            count: Arc::new(AtomicU64::new(0)),
            clients: JoinSet::new(),
        }
    }
}

/// Waits while the phase is not `mine`; false once it is `STOP`.
async fn turn(phase: &AtomicU8, mine: u8) -> bool {
    loop {
        match phase.load(Ordering::Acquire) {
            STOP => return false,
            p if p == mine => return true,
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

async fn tcp_client(
    mut tcp: TcpStream,
    phase: Arc<AtomicU8>,
    count: Arc<AtomicU64>,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let message = message();
    let mut echo = vec![0u8; message.len()];
    while turn(&phase, TCP).await {
        tokio::time::timeout(ROUND_TRIP_TIMEOUT, async {
            tcp.write_all(message.as_bytes()).await?;
            tcp.read_exact(&mut echo).await
        })
        .await
        .map_err(|_| io::Error::other("tcp round trip timed out"))??;
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn ws_client(
    mut ws: WebSocketStream<TcpStream>,
    phase: Arc<AtomicU8>,
    count: Arc<AtomicU64>,
) -> io::Result<()> {
    let message = message();
    while turn(&phase, WS).await {
        tokio::time::timeout(ROUND_TRIP_TIMEOUT, async {
            ws.send(Message::text(message.clone()))
                .await
                .map_err(io::Error::other)?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.as_str().ends_with("</message>") => {
                        return Ok::<_, io::Error>(())
                    }
                    Some(Ok(_)) => {}
                    _ => return Err(io::Error::other("ws closed")),
                }
            }
        })
        .await
        .map_err(|_| io::Error::other("ws round trip timed out"))??;
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// What one slice measured.
#[derive(Default, Clone, Copy)]
struct Slice {
    round_trips: u64,
    seconds: f64,
    /// stanzagate's CPU (user + system) during the slice.
    proxy_cpu: Duration,
}

impl Slice {
    fn rate(&self) -> f64 {
        self.round_trips as f64 / self.seconds
    }
}

/// Runs `fleet` alone for `slice`, reading stanzagate's (`pid`) CPU time around it.
async fn slice(fleet: &Fleet, mine: u8, slice: Duration, pid: u32) -> Slice {
    let cpu = || {
        let (user, sys) = process::cpu_time(pid);
        user + sys
    };
    let before = fleet.count.load(Ordering::Relaxed);
    let cpu_before = cpu();
    let started = Instant::now();
    fleet.phase.store(mine, Ordering::Release);
    tokio::time::sleep(slice).await;
    fleet.phase.store(IDLE, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();
    // Let the slice's last round trips finish before reading the counters.
    tokio::time::sleep(GAP).await;
    Slice {
        round_trips: fleet.count.load(Ordering::Relaxed) - before,
        seconds,
        proxy_cpu: cpu().saturating_sub(cpu_before),
    }
}

/// Pooled over slices: round trips/s and stanzagate CPU µs per round trip.
fn pooled(slices: &[Slice]) -> (f64, f64) {
    let trips: u64 = slices.iter().map(|s| s.round_trips).sum();
    let seconds: f64 = slices.iter().map(|s| s.seconds).sum();
    let cpu: Duration = slices.iter().map(|s| s.proxy_cpu).sum();
    (
        trips as f64 / seconds,
        cpu.as_secs_f64() * 1e6 / trips.max(1) as f64,
    )
}

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    let slice_len = Duration::from_millis(support::stats::env_num("WS_SLICE_MS", 1000).max(100));
    let sweeps = support::stats::env_num("WS_SWEEPS", 6).max(1) as usize;
    let conn_counts: Vec<usize> = support::stats::env_counts("WS_CONNS", &[1, 50, 500]);
    process::watchdog(
        Duration::from_secs(120) + slice_len * (2 * sweeps * conn_counts.len()) as u32,
    );
    println!("websocket bench: {}", process::machine());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let echo = runtime.block_on(support::echo::spawn());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut proxy = process::start_stanzagate_with(
        dir.path(),
        &ProxySetup {
            bin: process::stanzagate_bin(),
            upstream: echo,
            tls: None,
            direct_tls: false,
        },
        &ProxyOptions {
            websocket: true,
            ..ProxyOptions::default()
        },
    );
    let ws_addr = proxy.websocket.expect("websocket listener");
    println!(
        "{MESSAGE_BYTES}-byte messages, closed loop, {sweeps} sweeps of {} ms slices per path",
        slice_len.as_millis()
    );
    println!();
    println!(
        "| conns | TCP rt/s | WebSocket rt/s | WebSocket ÷ TCP (pooled) | per sweep median (range) | \
         stanzagate CPU µs/rt TCP | WebSocket | ÷ |"
    );
    println!(
        "|------:|---------:|---------------:|-------------------------:|-------------------------:|\
         -------------------------:|----------:|---:|"
    );
    let pid = proxy.process.pid();
    let mut memory = Vec::new();
    for conns in conn_counts {
        runtime.block_on(async {
            let mut tcp_fleet = Fleet::new();
            let mut ws_fleet = Fleet::new();
            // Logged in one fleet after the other, reading stanzagate's RSS around
            // each: memory per idle session on each path.
            let rss_before = process::rss_kib(pid);
            for _ in 0..conns {
                let mut tcp = TcpStream::connect(proxy.c2s).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                support::client::login(&mut tcp, 0)
                    .await
                    .expect("tcp login");
                tcp_fleet.clients.spawn(tcp_client(
                    tcp,
                    tcp_fleet.phase.clone(),
                    tcp_fleet.count.clone(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let rss_tcp = process::rss_kib(pid);
            for _ in 0..conns {
                let ws = ws_login(ws_addr).await.expect("ws login");
                ws_fleet.clients.spawn(ws_client(
                    ws,
                    ws_fleet.phase.clone(),
                    ws_fleet.count.clone(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let rss_ws = process::rss_kib(pid);
            memory.push((
                conns,
                rss_tcp.saturating_sub(rss_before) as f64 / conns as f64,
                rss_ws.saturating_sub(rss_tcp) as f64 / conns as f64,
            ));
            // Warm-up, one slice each.
            slice(&tcp_fleet, TCP, slice_len, pid).await;
            slice(&ws_fleet, WS, slice_len, pid).await;
            let (mut tcp_slices, mut ws_slices) = (Vec::new(), Vec::new());
            for sweep in 0..sweeps {
                if sweep % 2 == 0 {
                    tcp_slices.push(slice(&tcp_fleet, TCP, slice_len, pid).await);
                    ws_slices.push(slice(&ws_fleet, WS, slice_len, pid).await);
                } else {
                    ws_slices.push(slice(&ws_fleet, WS, slice_len, pid).await);
                    tcp_slices.push(slice(&tcp_fleet, TCP, slice_len, pid).await);
                }
                proxy.process.assert_running();
            }
            for fleet in [&mut tcp_fleet, &mut ws_fleet] {
                fleet.phase.store(STOP, Ordering::Release);
                while let Some(joined) = fleet.clients.join_next().await {
                    joined.expect("client task").expect("client");
                }
            }
            let (tcp_rate, tcp_cpu) = pooled(&tcp_slices);
            let (ws_rate, ws_cpu) = pooled(&ws_slices);
            let mut ratios: Vec<f64> = ws_slices
                .iter()
                .zip(&tcp_slices)
                .map(|(w, t)| w.rate() / t.rate())
                .collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "| {conns:>5} | {tcp_rate:>8.0} | {ws_rate:>14.0} | {:>24.2} | {:>6.2} ({:.2}–{:.2}) | \
                 {tcp_cpu:>24.1} | {ws_cpu:>9.1} | {:.2} |",
                ws_rate / tcp_rate,
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1],
                ws_cpu / tcp_cpu,
            );
        });
    }
    println!();
    println!("stanzagate RSS per logged-in idle session (KiB), TCP then WebSocket fleet:");
    for (conns, tcp, ws) in memory {
        println!("  {conns:>5} sessions: TCP {tcp:.1}, WebSocket {ws:.1}");
    }
}
