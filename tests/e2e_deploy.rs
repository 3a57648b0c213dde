//! What `deploy/` ships for monitoring is checked against the proxy itself: after a
//! short end-to-end run through every feature (logins, delegation, a privileged
//! component, web-app rosters, a quota, a refused PROXY header, a reload), every
//! `stanzagate_*` metric the Prometheus alert rules and the Grafana dashboard name
//! must exist on `/metrics`. A rule or panel naming a metric that does not exist
//! would stay silent or empty forever.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{manifest_dir, peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, WebApp};

const DELEGATE: &str = "component.localhost";
const GATEWAY: &str = "gateway.localhost";
const SECRET: &str = "secret";
const NS: &str = "urn:example:delegated";
const TOKEN: &str = "deploy-token";
const LIMIT: Duration = Duration::from_secs(60);

/// Every `stanzagate_*` name in `text`.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("stanzagate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `stanzagate_*` in prose names no metric.
        if end > "stanzagate_".len() {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The metric names in a Prometheus text exposition.
fn exposed(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A connection whose PROXY header names alice's address (loopback itself is exempt
/// from per-address limits).
async fn behind_balancer(proxy: &Proxy) -> Raw {
    let mut raw = Raw::connect(proxy.c2s()).await;
    raw.send_bytes(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 5222\r\n")
        .await;
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_dashboard_name_is_exported() {
    let Some(peers) = peers() else { return };
    let app = WebApp::start(&peers).await;
    app.set("alice", r#"{"bob@localhost": {"name": "Bob"}}"#);
    let prosody = Prosody::start(
        &ProsodySpec::default()
            .with_component(DELEGATE, SECRET)
            .with_component(GATEWAY, SECRET),
    );
    let extra = format!(
        "[limits]\nmax_connections_per_ip = 2\n\n\
[hosts.\"localhost\".delegations.\"{NS}\"]\njid = \"{DELEGATE}\"\n\n\
[hosts.\"localhost\".privileged_entities.\"{GATEWAY}\"]\nroster = \"get\"\n\n{}",
        app.toml(TOKEN, 3000)
    );
    let spec = ProxySpec::plaintext()
        .with_component(DELEGATE, SECRET)
        .with_component(GATEWAY, SECRET)
        // Loopback plays a balancer: every client connection brings a header.
        .with_listen("proxy_protocol_from = [\"127.0.0.1\"]\n")
        .with_extra(&extra);
    let proxy = Proxy::start(&spec, &prosody);
    let delegate = peers
        .python
        .component("delegate.py", DELEGATE, SECRET, proxy.ports.component, &[])
        .await;

    // A login, a delegated IQ and a roster from the web app.
    let mut alice = behind_balancer(&proxy).await;
    alice.login_on_stream("alice").await;
    alice
        .send(&format!(
            "<iq type='get' id='d1' to='localhost'><query xmlns='{NS}'/></iq>"
        ))
        .await;
    let answer = alice.expect_iq("d1").await;
    assert_eq!(answer.head().unwrap().type_().as_deref(), Some("result"));
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = alice.expect_iq("r1").await;
    assert!(String::from_utf8_lossy(roster.bytes()).contains("bob@localhost"));

    // A privileged roster read by a gateway (slixmpp's xep_0356).
    let mut gateway = peers
        .python
        .component(
            "privileged.py",
            GATEWAY,
            SECRET,
            proxy.ports.component,
            &["--roster-get", "alice@localhost"],
        )
        .await;
    let line = gateway.await_line("ROSTER", LIMIT).await;
    assert!(
        line.as_deref().is_some_and(|l| l.contains("bob@localhost")),
        "{line:?}"
    );

    // The balancer forgetting the header.
    let mut missing = Raw::connect(proxy.c2s()).await;
    missing.send(&Raw::header("localhost")).await;
    assert!(missing.next().await.is_none(), "closed");

    // A quota: alice plus one more connection from her address, then a third.
    let mut second = behind_balancer(&proxy).await;
    second.send(&Raw::header("localhost")).await;
    second.expect("features").await;
    let mut third = behind_balancer(&proxy).await;
    third.send(&Raw::header("localhost")).await;
    assert_eq!(third.expect_stream_error().await, "policy-violation");

    // A reload.
    let mark = proxy.log_len();
    let edited = proxy
        .render(&spec)
        .replace("max_connections_per_ip = 2", "max_connections_per_ip = 3");
    proxy.write_config(&edited);
    assert!(proxy.await_log(mark, "configuration reloaded"));

    let (status, metrics) = common::http::get(proxy.ports.http, "/metrics").await;
    assert_eq!(status, 200);
    let exported = exposed(&metrics);
    let root = manifest_dir();
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/stanzagate-alerts.yml"))
        .expect("alert rules");
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/stanzagate-dashboard.json"))
        .expect("dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            targets.iter().all(|t| t["expr"].is_string()),
            "every panel queries: {panel}"
        );
    }
    for (file, text, at_least) in [("alerts", &alerts, 8), ("dashboard", &dashboard, 12)] {
        let named = named_metrics(text);
        assert!(named.len() >= at_least, "{file} names {named:?}");
        let missing: Vec<_> = named.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics /metrics does not have: {missing:?}\n{metrics}"
        );
    }
    drop(delegate);
}

/// The Kubernetes manifest's `proxy.toml` is valid and takes PROXY protocol from the
/// Service's load balancer, which is told to send it; the manifest and the systemd
/// unit give the state directory a writable home under their hardening.
#[test]
fn the_manifests_take_proxy_protocol_and_keep_state_writable() {
    let root = manifest_dir();
    let manifest =
        std::fs::read_to_string(root.join("deploy/kubernetes/stanzagate.yaml")).expect("manifest");
    let block = manifest
        .split_once("proxy.toml: |\n")
        .and_then(|(_, rest)| rest.split("\n---").next())
        .expect("an embedded proxy.toml");
    let toml: String = block
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = stanzagate::config::Config::from_str(&toml, std::path::Path::new("/k8s.toml"))
        .unwrap_or_else(|e| panic!("the manifest's proxy.toml: {e:?}\n{toml}"));
    assert!(!cfg.listen.proxy_protocol_from.is_empty());
    let service = manifest
        .split("\n---")
        .find(|doc| doc.contains("kind: Service") && doc.contains("name: stanzagate\n"))
        .expect("the public Service");
    assert!(service.contains("type: LoadBalancer"), "{service}");
    assert!(
        service.contains("aws-load-balancer-proxy-protocol: \"*\""),
        "{service}"
    );
    assert!(manifest.contains("mountPath: /var/lib/stanzagate"));
    assert!(manifest.contains("{ name: STATE_DIRECTORY, value: /var/lib/stanzagate }"));
    assert!(manifest.contains("readOnlyRootFilesystem: true"));
    assert!(manifest.contains("claimName: stanzagate-state"));
    let unit =
        std::fs::read_to_string(root.join("deploy/systemd/stanzagate.service")).expect("unit");
    assert!(unit.contains("\nStateDirectory=stanzagate\n"));
    assert!(unit.contains("\nProtectSystem=strict\n"));
}
