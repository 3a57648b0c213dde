//! Configuration in operation: `check-config`, hot reload (an invalid file changes
//! nothing; a new certificate is served to new connections), and the admin endpoints.

mod common;

use std::process::Command;

use common::proxy::test_certs;
use common::{peers, Prosody, ProsodySpec, Proxy, ProxySpec, Raw, TlsMode};

#[test]
fn check_config_reports_every_error_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "[listen]\nc2s = \"127.0.0.1:5222\"\n[tls]\nrequired = false\n[upstream]\nc2s = \"127.0.0.1:15222\"\n\
[hosts.\"example.org\".delegatons.\"urn:x\"]\njid = \"c.example.org\"\n\
[hosts.\"example.org\".delegations.\"urn:xmpp:delegation:2\"]\njid = \"c.example.org\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("proxy.toml:7:") && stderr.contains("delegatons"),
        "{stderr}"
    );
    assert!(stderr.contains("proxy.toml:9:"), "{stderr}");
    assert!(stderr.contains("urn:xmpp:delegation:2"), "{stderr}");

    std::fs::write(
        &path,
        "[listen]\nc2s = \"127.0.0.1:5222\"\n[tls]\nrequired = false\n[upstream]\nc2s = \"127.0.0.1:15222\"\n[hosts.\"example.org\"]\n",
    )
    .unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// `import-prosody` prints sections that, with `[listen]` and `[upstream]`, pass
/// `check-config`; what it cannot translate goes to stderr with its line (exit 2).
#[test]
fn import_prosody_output_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("prosody.cfg.lua");
    std::fs::write(
        &lua,
        "VirtualHost \"example.org\"\n    delegations = {\n        [\"urn:xmpp:mam:2\"] = { jid = \"c.example.org\"; filtering = {\"node\"} };\n    }\n\
    privileged_entities = { [\"c.example.org\"] = { roster = \"both\"; iq = { [\"urn:x\"] = \"get\" } } }\n\
Component \"c.example.org\"\n    component_secret = \"s\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .arg("import-prosody")
        .arg(&lua)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sections = String::from_utf8(out.stdout).unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        format!("[listen]\nc2s = \"127.0.0.1:5222\"\ncomponent = \"127.0.0.1:5347\"\n[tls]\nrequired = false\n\
[upstream]\nc2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n{sections}"),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{sections}",
        String::from_utf8_lossy(&check.stderr)
    );

    std::fs::write(&lua, "VirtualHost \"example.org\"\n    delegations = { [\"urn:x\"] = { jid = os.getenv(\"J\") } }\n").unwrap();
    let partial = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .arg("import-prosody")
        .arg(&lua)
        .output()
        .unwrap();
    assert_eq!(partial.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&partial.stderr);
    assert!(
        stderr.contains("prosody.cfg.lua:2: not translated"),
        "{stderr}"
    );
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_stanzagate"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn invalid_reload_changes_nothing_and_certificate_reload_reaches_new_connections() {
    let Some(_peers) = peers() else { return };
    let prosody = Prosody::start(&ProsodySpec::default());
    let (_dir, certs) = test_certs();
    let first = certs.leaf("first");
    let first_der = first.der.clone();
    let proxy = Proxy::start(&ProxySpec::tls(first), &prosody);
    let (_old_conn, served) = Raw::connect_tls(proxy.ports.c2s_direct, certs.roots()).await;
    assert_eq!(served, first_der);

    // An invalid file: logged, old config (and certificate) kept, sessions unharmed.
    let mut held = Raw::login_tls(proxy.ports.c2s_direct, certs.roots(), "alice").await;
    let mark = proxy.log_len();
    proxy.write_config("[listen]\nc2s = 5\n[hosts.\"localhost\".delegatons.\"x\"]\n");
    assert!(
        proxy.await_log(mark, "configuration reload failed"),
        "{}",
        proxy.log()
    );
    let (_c, served) = Raw::connect_tls(proxy.ports.c2s_direct, certs.roots()).await;
    assert_eq!(
        served, first_der,
        "an invalid reload must not change the certificate"
    );
    held.ping("after-invalid-reload").await;

    // A new certificate: new connections get it, the established one keeps working.
    let second = certs.leaf("second");
    let second_der = second.der.clone();
    let mark = proxy.log_len();
    proxy.write_config(&proxy.render(&ProxySpec {
        tls: TlsMode::Tls(second),
        ..ProxySpec::plaintext()
    }));
    assert!(
        proxy.await_log(mark, "TLS material reloaded"),
        "{}",
        proxy.log()
    );
    let (_c, served) = Raw::connect_tls(proxy.ports.c2s_direct, certs.roots()).await;
    assert_eq!(
        served, second_der,
        "new connections get the new certificate"
    );
    held.ping("after-cert-reload").await;
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let Some(_peers) = peers() else { return };
    let mut prosody = Prosody::start(&ProsodySpec::default());
    let proxy = Proxy::start(&ProxySpec::plaintext(), &prosody);
    let mut alice = Raw::login(proxy.c2s(), "alice").await;
    alice.ping("m1").await;
    let http = proxy.ports.http;
    assert_eq!(common::http::get(http, "/healthz").await.0, 200);
    assert_eq!(common::http::get(http, "/readyz").await.0, 200);
    let (status, metrics) = common::http::get(http, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "stanzagate_connections_open{listener=\"c2s\"} 1",
        "stanzagate_connections_total{listener=\"c2s\"}",
        "stanzagate_stanzas_total{direction=\"client_to_server\"}",
        "stanzagate_bytes_total{direction=\"server_to_client\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    drop(alice);
    prosody.stop();
    assert_eq!(common::http::get(http, "/readyz").await.0, 503);
    assert_eq!(common::http::get(http, "/nope").await.0, 404);
}
