//! Login bench: what the durable store costs on the login path. Sequential full logins
//! (stream header, SASL PLAIN, restart, bind) against the fast echo upstream, the paths
//! taking turns in rounds in the same run:
//! - `direct`: to the echo upstream, no proxy (the floor);
//! - `empty`: through stanzagate, nothing queued for the user (one read transaction);
//! - `queued`: through stanzagate, 100 queued messages for the user, all sent on the
//!   user's stream between the bind result and the client's first stanza;
//! - `before` (with `STANZAGATE_BIN_B`): another stanzagate binary, e.g. one without
//!   the store, logging in with nothing queued.
//!
//! A login is timed from connect to the bind result reaching the client, which the
//! proxy flushes after applying the queue. Run with `cargo bench --bench login`.
//! Knobs: `LOGIN_ROUNDS` (5), `LOGIN_PER_ROUND` (20), `LOGIN_QUEUED` (100),
//! `STANZAGATE_BIN`, `STANZAGATE_BIN_B`.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use stanzagate::store::{Embedded, OpKind, Queued, Store};
use tokio::net::TcpStream;

use support::process::{self, ProxyOptions, ProxySetup};
use support::stats::env_num;
use support::DOMAIN;

/// One login, timed.
async fn login(addr: SocketAddr, user: &str) -> Duration {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    support::client::login_as(&mut tcp, user)
        .await
        .unwrap_or_else(|e| panic!("login as {user} via {addr}: {e}"));
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn main() {
    if !support::invoked_as_bench() {
        return;
    }
    let rounds = env_num("LOGIN_ROUNDS", 5).max(1) as usize;
    let per_round = env_num("LOGIN_PER_ROUND", 20).max(1) as usize;
    let queued = env_num("LOGIN_QUEUED", 100) as usize;
    process::watchdog(Duration::from_secs(600));
    println!("login bench: {}", process::machine());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    let echo = runtime.block_on(support::echo::spawn());
    let dir = tempfile::tempdir().expect("temp dir");

    // The users of the `queued` path, each with its own queue, filled before the proxy
    // opens the store (one process per store file).
    let store_path = dir.path().join("subject").join("stanzagate.redb");
    std::fs::create_dir_all(store_path.parent().expect("dir")).expect("subject dir");
    let queued_users: Vec<String> = (0..rounds * per_round).map(|n| format!("q{n}")).collect();
    {
        let store = Embedded::open(&store_path).expect("store");
        let filled = Instant::now();
        for user in &queued_users {
            let bare = format!("{user}@{DOMAIN}");
            for n in 0..queued {
                let stanza = format!(
                    "<message xmlns='jabber:client' from='{bare}' to='echo@{DOMAIN}' type='chat'>\
<body>queued {n}</body><delay xmlns='urn:xmpp:delay' from='{DOMAIN}' stamp='2026-12-07T00:00:00.000Z'/></message>"
                );
                let op = Queued {
                    kind: OpKind::Message,
                    entity: format!("gw.{DOMAIN}"),
                    queued_at: SystemTime::now(),
                    stanza: Bytes::from(stanza),
                };
                let limits = stanzagate::store::Limits {
                    per_user: queued,
                    total: usize::MAX,
                };
                store.enqueue(&bare, &op, limits).expect("enqueue");
            }
        }
        // What an empty queue costs a login, in isolation.
        let reads = 10_000u32;
        let timed = Instant::now();
        for _ in 0..reads {
            let (found, _) = store
                .queued(
                    "nobody@bench.local",
                    SystemTime::now(),
                    Duration::from_secs(3600),
                )
                .expect("read");
            assert!(found.is_empty());
        }
        println!(
            "reading an empty queue: {:.1} µs (mean of {reads})",
            timed.elapsed().as_secs_f64() * 1e6 / f64::from(reads)
        );
        println!(
            "{} operations queued for {} users in {:.1} s ({:.0} enqueues/s, one transaction each)",
            queued * queued_users.len(),
            queued_users.len(),
            filled.elapsed().as_secs_f64(),
            (queued * queued_users.len()) as f64 / filled.elapsed().as_secs_f64()
        );
    }
    let start = |name: &str, bin: PathBuf, store: Option<&PathBuf>| {
        let proxy_dir = dir.path().join(name);
        std::fs::create_dir_all(&proxy_dir).expect("proxy dir");
        let extra = store
            .map(|p| format!("[store]\npath = \"{}\"\n", p.display()))
            .unwrap_or_default();
        process::start_stanzagate_with(
            &proxy_dir,
            &ProxySetup {
                bin,
                upstream: echo,
                tls: None,
                direct_tls: false,
            },
            &ProxyOptions {
                extra,
                ..ProxyOptions::default()
            },
        )
    };
    let subject = start("subject", process::stanzagate_bin(), Some(&store_path));
    let before =
        std::env::var_os("STANZAGATE_BIN_B").map(|b| start("before", PathBuf::from(b), None));

    let mut paths: Vec<(&str, SocketAddr)> = vec![
        ("direct", echo),
        ("empty", subject.c2s),
        ("queued", subject.c2s),
    ];
    if let Some(before) = &before {
        paths.push(("before", before.c2s));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    runtime.block_on(async {
        // Warm-up: one login per path.
        for (name, addr) in &paths {
            if *name != "queued" {
                login(*addr, "warm").await;
            }
        }
        let mut next_queued = queued_users.iter();
        for round in 0..rounds {
            for k in 0..paths.len() {
                let pi = (round + k) % paths.len();
                let (name, addr) = paths[pi];
                for n in 0..per_round {
                    let user = match name {
                        "queued" => next_queued.next().expect("a queued user").clone(),
                        _ => format!("{name}{round}x{n}"),
                    };
                    times[pi].push(login(addr, &user).await);
                }
            }
        }
    });
    // Every queued operation was applied (else the `queued` path measured nothing).
    let applied = std::fs::read_to_string(dir.path().join("subject").join("stanzagate.log"))
        .unwrap_or_default()
        .matches("applied what was queued")
        .count();
    assert_eq!(
        applied,
        queued_users.len(),
        "every queued user's login applied its queue"
    );

    println!();
    println!("| path | logins | p50 ms | p99 ms | p50 ÷ empty |");
    println!("|------|-------:|-------:|-------:|------------:|");
    let mut p50s = Vec::new();
    for samples in &mut times {
        samples.sort();
        p50s.push(percentile(samples, 0.5));
    }
    let empty = p50s[1];
    for (pi, (name, _)) in paths.iter().enumerate() {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.2} |",
            times[pi].len(),
            p50s[pi].as_secs_f64() * 1e3,
            percentile(&times[pi], 0.99).as_secs_f64() * 1e3,
            p50s[pi].as_secs_f64() / empty.as_secs_f64(),
        );
    }
}
