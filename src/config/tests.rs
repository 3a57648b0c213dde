//! Loading and validation tests against whole `proxy.toml` documents.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;

/// Everything required and nothing else (TLS off so no certificate is needed).
const BASE: &str = r#"[listen]
c2s = "0.0.0.0:5222"

[upstream]
c2s = "127.0.0.1:15222"

[tls]
required = false

"#;

const FULL_EXAMPLE: &str = r#"[listen]
c2s = "0.0.0.0:5222"              # STARTTLS
c2s_direct_tls = "0.0.0.0:5223"   # optional, XEP-0368
component = "127.0.0.1:5347"      # XEP-0114
http = "127.0.0.1:5280"           # admin: refresh, metrics, health

[tls]
cert = "/etc/stanzagate/fullchain.pem"
key = "privkey.pem"
required = true                    # no SASL before STARTTLS

[upstream]
c2s = "127.0.0.1:15222"            # the legacy server's client port
component = "127.0.0.1:15347"      # its component port
tls = "none"                       # none | starttls | direct

[limits]   # all optional
max_stanza_bytes = 262144
max_depth = 64
max_attributes = 64
handshake_timeout_ms = 30000       # stream start to authenticated
delegation_timeout_ms = 30000
privileged_iq_timeout_ms = 30000

[store]    # all optional
path = "stanzagate.redb"           # default: $STATE_DIRECTORY, else next to this file
max_queued_per_user = 50
max_queue_age_s = 86400

[hosts."capulet.lit".delegations."urn:xmpp:mam:2"]
jid = "pubsub.capulet.lit"
filtering = ["node"]

[hosts."capulet.lit".delegations."http://jabber.org/protocol/pubsub"]
jid = "pubsub.capulet.lit"

[hosts."capulet.lit".privileged_entities."pubsub.capulet.lit"]
roster = "both"                    # none | get | set | both
roster_push = true                 # optional (default true): XEP-0356 push attribute
message = "outgoing"               # none | outgoing
presence = "roster"                # none | managed_entity | roster
iq = { "http://jabber.org/protocol/pubsub" = "set" }   # ns -> none|get|set|both

[hosts."capulet.lit".roster_admin]
url = "http://app.internal/contacts/%s"
refresh_token_file = "refresh.token"
timeout_ms = 5000                  # optional
max_concurrent_fetches = 32        # optional
cache_ttl_s = 300                  # optional

[components."pubsub.capulet.lit"]
secret_file = "secrets/pubsub.secret"
upstream_secret = "upstream-pass"
delegation_namespace = "urn:xmpp:delegation:2"
"#;

fn temp_dir() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

/// Loads `text` as `proxy.toml` in a fresh directory.
fn load(text: &str) -> Result<Config, ConfigErrors> {
    let dir = temp_dir();
    Config::load(&write(dir.path(), "proxy.toml", text))
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match load(text) {
        Ok(cfg) => panic!("expected errors, loaded {cfg:#?}"),
        Err(errors) => errors.0,
    }
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let index = text.lines().position(|l| l.contains(needle));
    index.unwrap_or_else(|| panic!("{needle:?} not in the text")) + 1
}

/// Asserts that `text` fails with exactly one issue, at `key` on the line
/// containing `needle`, whose message contains `message`.
fn assert_single_issue(text: &str, key: &str, needle: &str, message: &str) {
    let found = issues(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_issue(&found[0], key, Some(line_of(text, needle)), message);
}

fn assert_issue(issue: &ConfigIssue, key: &str, line: Option<usize>, message: &str) {
    assert_eq!(issue.key, key, "{issue:#?}");
    assert_eq!(issue.line, line, "{issue:#?}");
    assert!(issue.message.contains(message), "{issue:#?}");
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn full_example_round_trips() {
    let dir = temp_dir();
    write(dir.path(), "secrets/pubsub.secret", "  s3cret\n");
    write(dir.path(), "refresh.token", "tok\n");
    let source = write(dir.path(), "proxy.toml", FULL_EXAMPLE);
    let cfg = Config::load(&source).unwrap();

    let pubsub = "pubsub.capulet.lit".to_owned();
    let delegation = |filtering: &[&str]| Delegation {
        jid: pubsub.clone(),
        filtering: filtering.iter().map(|s| s.to_string()).collect(),
    };
    let privileges = Privileges {
        roster: RosterPerm::Both,
        roster_push: true,
        message: MessagePerm::Outgoing,
        presence: PresencePerm::Roster,
        iq: BTreeMap::from([("http://jabber.org/protocol/pubsub".to_owned(), IqPerm::Set)]),
    };
    let host = Host {
        delegations: BTreeMap::from([
            ("urn:xmpp:mam:2".to_owned(), delegation(&["node"])),
            (
                "http://jabber.org/protocol/pubsub".to_owned(),
                delegation(&[]),
            ),
        ]),
        privileged_entities: BTreeMap::from([(pubsub.clone(), privileges)]),
        roster_admin: Some(RosterAdmin {
            url: "http://app.internal/contacts/%s".to_owned(),
            refresh_token: Secret::new("tok"),
            timeout: Duration::from_millis(5000),
            max_concurrent_fetches: 32,
            cache_ttl: Duration::from_secs(300),
        }),
        tls: None,
    };
    let expected = Config {
        listen: Listen {
            c2s: addr("0.0.0.0:5222"),
            c2s_direct_tls: Some(addr("0.0.0.0:5223")),
            component: Some(addr("127.0.0.1:5347")),
            http: Some(addr("127.0.0.1:5280")),
            websocket: None,
            websocket_tls: None,
            proxy_protocol_from: Vec::new(),
        },
        tls: TlsConfig {
            required: true,
            cert: Some(PathBuf::from("/etc/stanzagate/fullchain.pem")),
            key: Some(dir.path().join("privkey.pem")),
        },
        upstream: Upstream {
            c2s: "127.0.0.1:15222".to_owned(),
            component: Some("127.0.0.1:15347".to_owned()),
            tls: UpstreamTls::None,
            ca_file: None,
            server_name: None,
            proxy_protocol: UpstreamProxyProtocol::None,
        },
        limits: Limits::default(),
        store: StoreConfig {
            path: dir.path().join("stanzagate.redb"),
            max_queued_per_user: 50,
            max_queued_total: StoreConfig::DEFAULT_MAX_QUEUED_TOTAL,
            max_queue_age: Duration::from_secs(86400),
        },
        hosts: BTreeMap::from([("capulet.lit".to_owned(), host)]),
        components: BTreeMap::from([(
            pubsub.clone(),
            Component {
                secret: Secret::new("s3cret"),
                upstream_secret: Some(Secret::new("upstream-pass")),
                delegation_namespace: DelegationNs::V2,
                privilege_namespace: PrivilegeNs::V2,
            },
        )]),
        source,
    };
    assert_eq!(cfg, expected);
    assert_eq!(
        cfg.component_secret_for_upstream("PubSub.Capulet.lit"),
        Some(&Secret::new("upstream-pass"))
    );
    assert!(cfg.host("Capulet.LIT").is_some());
    assert!(!format!("{cfg:?}").contains("s3cret"));
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = load(&format!("{BASE}[hosts.\"Example.org\"]\n")).unwrap();
    assert_eq!(cfg.listen.c2s_direct_tls, None);
    assert_eq!(cfg.listen.component, None);
    assert_eq!(cfg.listen.http, None);
    assert_eq!(cfg.upstream.tls, UpstreamTls::None);
    assert_eq!(cfg.upstream.component, None);
    assert_eq!(cfg.limits, Limits::default());
    assert_eq!(cfg.limits.max_stanza_bytes, 262_144);
    assert!(!cfg.tls.required);
    assert_eq!(cfg.hosts.keys().collect::<Vec<_>>(), ["example.org"]);
    assert_eq!(cfg.host("example.ORG"), Some(&Host::default()));
    assert!(cfg.components.is_empty());
    assert!(cfg.source.is_absolute());
}

#[test]
fn component_defaults() {
    let text = r#"[listen]
c2s = "0.0.0.0:5222"
component = "127.0.0.1:5347"
[upstream]
c2s = "legacy:15222"
component = "legacy:15347"
[tls]
required = false
[hosts."a.lit"]
[components."C.a.lit"]
secret = "x"
"#;
    let cfg = load(text).unwrap();
    let component = cfg.component("c.a.lit").unwrap();
    assert_eq!(component.delegation_namespace, DelegationNs::V2);
    assert_eq!(
        component.delegation_namespace.as_str(),
        "urn:xmpp:delegation:2"
    );
    assert_eq!(component.upstream_secret, None);
    assert_eq!(
        cfg.component_secret_for_upstream("c.a.lit"),
        Some(&Secret::new("x"))
    );
}

#[test]
fn misspelled_table_is_named_with_its_line() {
    let text = format!("{BASE}[hosts.\"a\".delegatons.\"ns\"]\njid = \"c.a\"\n");
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_issue(
        &found[0],
        r#"hosts."a".delegatons"#,
        Some(10),
        "unknown key",
    );
    assert!(found[0].message.contains("delegations"), "{found:#?}");
}

#[test]
fn unknown_top_level_key() {
    let text = format!("{BASE}[hosts.\"a\"]\n\n[metrics]\nport = 1\n");
    assert_single_issue(&text, "metrics", "[metrics]", "unknown key");
}

#[test]
fn unknown_key_in_limits() {
    let text = format!("{BASE}[hosts.\"a\"]\n[limits]\nmax_stanza_size = 9000\n");
    assert_single_issue(
        &text,
        "limits.max_stanza_size",
        "max_stanza_size",
        "unknown key",
    );
}

#[test]
fn syntax_error_has_a_line() {
    let text = format!("{BASE}[hosts.\"a\"]\nbroken = \n");
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "");
    assert_eq!(found[0].line, Some(line_of(&text, "broken")));
}

#[test]
fn type_error_names_expected_type() {
    let text = format!("{BASE}[hosts.\"a\"]\n[limits]\nmax_depth = \"deep\"\n");
    assert_single_issue(
        &text,
        "limits.max_depth",
        "max_depth",
        "expected an integer, found string",
    );
}

#[test]
fn reports_every_semantic_error() {
    let text = format!(
        r#"{BASE}[hosts."capulet.lit".delegations."urn:xmpp:delegation:2"]
jid = "x@capulet.lit"

[hosts."capulet.lit".privileged_entities."juliet@capulet.lit"]
presence = "roster"

[hosts."capulet.lit".roster_admin]
url = "http://app.internal/contacts"
refresh_token = "t"
"#
    );
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    let ns = r#"hosts."capulet.lit".delegations."urn:xmpp:delegation:2""#;
    assert_issue(
        &found[0],
        ns,
        Some(line_of(&text, "urn:xmpp:delegation:2")),
        "forbidden",
    );
    let presence = r#"hosts."capulet.lit".privileged_entities."juliet@capulet.lit".presence"#;
    assert_issue(
        &found[1],
        presence,
        Some(line_of(&text, "presence")),
        "requires roster",
    );
    let url = r#"hosts."capulet.lit".roster_admin.url"#;
    assert_issue(&found[2], url, Some(line_of(&text, "url =")), "%s");
    let expected = format!(
        "proxy.toml:{}: {ns}: delegating urn:xmpp:delegation:* is forbidden (XEP-0355 §8)",
        line_of(&text, "urn:xmpp:delegation:2")
    );
    assert!(found[0].to_string().ends_with(&expected), "{}", found[0]);
}

#[test]
fn pseudo_namespaces_are_accepted_and_alias_normalised() {
    let text = format!(
        r#"{BASE}[hosts."a".delegations."urn:xmpp:delegation:2:bare:disco#info:*"]
jid = "x@a"
[hosts."a".delegations."http://jabber.org/protocol/disco#items:*"]
jid = "x@a"
"#
    );
    let cfg = load(&text).unwrap();
    let keys: Vec<_> = cfg.hosts["a"].delegations.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "urn:xmpp:delegation:2:bare:disco#info:*",
            "urn:xmpp:delegation:2:bare:disco#items:*"
        ]
    );
}

#[test]
fn alias_and_canonical_form_are_duplicates() {
    let text = format!(
        r#"{BASE}[hosts."a".delegations."urn:xmpp:delegation:2:bare:disco#items:*"]
jid = "x@a"
[hosts."a".delegations."http://jabber.org/protocol/disco#items:*"]
jid = "x@a"
"#
    );
    let key = r#"hosts."a".delegations."urn:xmpp:delegation:2:bare:disco#items:*""#;
    assert_single_issue(&text, key, "protocol/disco#items", "duplicate");
}

#[test]
fn duplicate_host_in_another_case() {
    let text = format!("{BASE}[hosts.\"a.lit\"]\n[hosts.\"A.lit\"]\n");
    assert_single_issue(&text, r#"hosts."a.lit""#, "A.lit", "duplicate");
}

#[test]
fn presence_roster_needs_roster_read_access() {
    let text = format!(
        "{BASE}[hosts.\"a\".privileged_entities.\"u@a\"]\nroster = \"set\"\npresence = \"roster\"\n"
    );
    let key = r#"hosts."a".privileged_entities."u@a".presence"#;
    assert_single_issue(&text, key, "presence", "requires roster");
    let ok = text.replace("\"set\"", "\"get\"");
    assert!(load(&ok).is_ok());
}

#[test]
fn delegated_component_needs_a_components_entry() {
    let text = format!("{BASE}[hosts.\"a\".delegations.\"urn:xmpp:mam:2\"]\njid = \"pubsub.a\"\n");
    let key = r#"hosts."a".delegations."urn:xmpp:mam:2".jid"#;
    assert_single_issue(&text, key, "pubsub.a", "no [components.\"pubsub.a\"] entry");
}

#[test]
fn privileged_component_needs_a_components_entry() {
    let text = format!("{BASE}[hosts.\"a\".privileged_entities.\"pubsub.a\"]\nroster = \"get\"\n");
    let key = r#"hosts."a".privileged_entities."pubsub.a""#;
    assert_single_issue(&text, key, "pubsub.a", "no [components");
}

#[test]
fn delegation_to_a_served_host_is_refused() {
    let text = format!("{BASE}[hosts.\"a\"]\n[hosts.\"b\".delegations.\"ns\"]\njid = \"a\"\n");
    assert_single_issue(
        &text,
        r#"hosts."b".delegations."ns".jid"#,
        "jid",
        "served host",
    );
}

#[test]
fn listen_and_upstream_component_required_with_components() {
    let text = format!("{BASE}[hosts.\"a\"]\n[components.\"c.a\"]\nsecret = \"s\"\n");
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_issue(&found[0], "listen.component", Some(1), "[components]");
    assert_issue(&found[1], "upstream.component", Some(4), "[components]");
}

#[test]
fn component_secret_rules() {
    let both =
        format!("{BASE}[hosts.\"a\"]\n[components.\"c.a\"]\nsecret = \"s\"\nsecret_file = \"f\"\n");
    let both = both.replace("[listen]\n", "[listen]\ncomponent = \"127.0.0.1:5347\"\n");
    let both = both.replace("[upstream]\n", "[upstream]\ncomponent = \"legacy:5347\"\n");
    assert_single_issue(
        &both,
        r#"components."c.a".secret_file"#,
        "secret_file",
        "exclusive",
    );

    let neither = both.replace("secret = \"s\"\nsecret_file = \"f\"\n", "");
    assert_single_issue(
        &neither,
        r#"components."c.a""#,
        "[components",
        "one of secret",
    );

    let upstream_both = both.replace(
        "secret_file = \"f\"",
        "upstream_secret = \"u\"\nupstream_secret_file = \"f\"",
    );
    let key = r#"components."c.a".upstream_secret_file"#;
    assert_single_issue(&upstream_both, key, "upstream_secret_file", "exclusive");

    let missing_file = both.replace("secret = \"s\"\n", "");
    let key = r#"components."c.a".secret_file"#;
    assert_single_issue(&missing_file, key, "secret_file", "cannot read");
}

#[test]
fn refresh_token_rules() {
    let base = format!("{BASE}[hosts.\"a\".roster_admin]\nurl = \"https://x/%s\"\n");
    let neither = issues(&base);
    assert_eq!(neither.len(), 1, "{neither:#?}");
    assert_issue(
        &neither[0],
        r#"hosts."a".roster_admin"#,
        Some(10),
        "one of refresh_token",
    );

    let both = format!("{base}refresh_token = \"t\"\nrefresh_token_file = \"f\"\n");
    let key = r#"hosts."a".roster_admin.refresh_token_file"#;
    assert_single_issue(&both, key, "refresh_token_file", "exclusive");
}

#[test]
fn roster_admin_url_rules() {
    let text =
        format!("{BASE}[hosts.\"a\".roster_admin]\nurl = \"ftp://x/%s\"\nrefresh_token = \"t\"\n");
    let key = r#"hosts."a".roster_admin.url"#;
    assert_single_issue(&text, key, "url", "http:// or https://");
    let twice = text.replace("ftp://x/%s", "http://x/%s/%s");
    assert_single_issue(&twice, key, "url", "exactly once");
}

#[test]
fn required_tls_needs_cert_and_key() {
    let text = format!("{BASE}[hosts.\"a\"]\n").replace("required = false\n", "");
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_issue(&found[0], "tls.cert", Some(7), "tls.required");
    assert_issue(&found[1], "tls.key", Some(7), "tls.required");
}

#[test]
fn direct_tls_needs_cert_even_when_not_required() {
    let text = format!("{BASE}[hosts.\"a\"]\n").replace(
        "[listen]\n",
        "[listen]\nc2s_direct_tls = \"0.0.0.0:5223\"\n",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().all(|i| i.message.contains("c2s_direct_tls")),
        "{found:#?}"
    );
}

#[test]
fn unknown_enum_value_lists_allowed_values() {
    let text = format!("{BASE}[hosts.\"a\".privileged_entities.\"u@a\"]\nroster = \"all\"\n");
    let key = r#"hosts."a".privileged_entities."u@a".roster"#;
    assert_single_issue(&text, key, "roster", "allowed: none, get, set, both");
}

#[test]
fn invalid_jids_are_refused() {
    let text = format!(
        "{BASE}[hosts.\"bad host\"]\n[hosts.\"u@a\"]\n[hosts.\"ok\".delegations.\"ns\"]\njid = \"x@@y\"\n"
    );
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_issue(
        &found[0],
        r#"hosts."bad host""#,
        Some(10),
        "not a valid JID",
    );
    assert_issue(&found[1], r#"hosts."u@a""#, Some(11), "bare domain");
    let key = r#"hosts."ok".delegations."ns".jid"#;
    assert_issue(&found[2], key, Some(13), "not a valid JID");
}

#[test]
fn at_least_one_host() {
    let found = issues(BASE);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_issue(&found[0], "hosts", None, "at least one");
}

#[test]
fn missing_required_keys_are_all_reported() {
    let found = issues("[hosts.\"a\"]\n[tls]\nrequired = false\n");
    let keys: Vec<_> = found.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["listen.c2s", "upstream.c2s"], "{found:#?}");
}

#[test]
fn address_forms() {
    let text = format!("{BASE}[hosts.\"a\"]\n")
        .replace("0.0.0.0:5222", "localhost:5222")
        .replace("127.0.0.1:15222", "legacy:");
    let found = issues(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_issue(&found[0], "listen.c2s", Some(2), "IP:port");
    assert_issue(&found[1], "upstream.c2s", Some(5), "host:port");
}

#[test]
fn limits_must_be_positive() {
    let text = format!(
        "{BASE}[hosts.\"a\"]\n[limits]\nmax_stanza_bytes = 1024\nmax_depth = 0\ndelegation_timeout_ms = -5\n"
    );
    let found = issues(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_issue(
        &found[0],
        "limits.max_stanza_bytes",
        Some(12),
        "at least 4096",
    );
    assert_issue(&found[1], "limits.max_depth", Some(13), "greater than 0");
    assert_issue(
        &found[2],
        "limits.delegation_timeout_ms",
        Some(14),
        "greater than 0",
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = temp_dir();
    let text = format!("{BASE}[hosts.\"a\"]\n")
        .replace(
            "required = false\n",
            "cert = \"c.pem\"\nkey = \"../k.pem\"\n",
        )
        .replace("[upstream]\n", "[upstream]\nca_file = \"ca.pem\"\n");
    let cfg = Config::from_str(&text, &dir.path().join("proxy.toml")).unwrap();
    assert_eq!(cfg.tls.cert, Some(dir.path().join("c.pem")));
    assert_eq!(cfg.tls.key, Some(dir.path().join("../k.pem")));
    assert_eq!(cfg.upstream.ca_file, Some(dir.path().join("ca.pem")));
}

#[test]
fn unreadable_config_file_is_one_issue() {
    let dir = temp_dir();
    let errors = Config::load(&dir.path().join("absent.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(errors.to_string().contains("cannot read"), "{errors}");
}

#[test]
fn listeners_must_use_distinct_addresses() {
    let text = format!("{BASE}[hosts.\"a\"]\n")
        .replace("[listen]\n", "[listen]\nhttp = \"0.0.0.0:5222\"\n");
    assert_single_issue(&text, "listen.http", "http =", "same address as listen.c2s");
}

#[test]
fn inline_tables_are_checked_for_unknown_keys() {
    let text = format!(
        "{BASE}[hosts.\"a\".privileged_entities]\n\"u@a\" = {{ roster = \"get\", rooster = \"x\" }}\n"
    );
    let key = r#"hosts."a".privileged_entities."u@a".rooster"#;
    assert_single_issue(&text, key, "rooster", "unknown key");
}

/// Names in `proxy.toml` are prepared like addresses on the wire, so each
/// section is keyed by the form the server uses and matches any spelling of it.
#[test]
fn names_are_prepared_like_wire_jids() {
    let text = r#"[listen]
c2s = "0.0.0.0:5222"
component = "127.0.0.1:5347"
[upstream]
c2s = "legacy:15222"
component = "legacy:15347"
[tls]
required = false
[hosts."Example.ORG".delegations."urn:xmpp:mam:2"]
jid = "PUBSUB.example.org."
[hosts."Example.ORG".privileged_entities."Ｊuliet@Example.ORG"]
roster = "get"
[hosts."Example.ORG".privileged_entities."Pubsub.Example.org"]
message = "outgoing"
[components."Pubsub.Example.org"]
secret = "x"
"#;
    let cfg = load(text).unwrap();
    assert_eq!(cfg.hosts.keys().collect::<Vec<_>>(), ["example.org"]);
    assert_eq!(
        cfg.components.keys().collect::<Vec<_>>(),
        ["pubsub.example.org"]
    );
    let host = cfg.host("ＥＸＡＭＰＬＥ.org.").unwrap();
    assert_eq!(host.delegations["urn:xmpp:mam:2"].jid, "pubsub.example.org");
    assert_eq!(
        host.privileged_entities.keys().collect::<Vec<_>>(),
        ["juliet@example.org", "pubsub.example.org"]
    );
    assert!(cfg.component("PubSub.example.ORG").is_some());
    assert!(cfg.host("example.org/resource").is_none());
    assert!(cfg.host("not a domain").is_none());
}

#[test]
fn names_equal_once_prepared_are_duplicates() {
    let text = format!("{BASE}[hosts.\"example.org\"]\n[hosts.\"ｅｘａｍｐｌｅ.org.\"]\n");
    assert_single_issue(
        &text,
        r#"hosts."example.org""#,
        "ｅｘａｍｐｌｅ",
        "duplicate",
    );
    let text = format!(
        "{BASE}[hosts.\"a\".privileged_entities.\"straße@a\"]\n[hosts.\"a\".privileged_entities.\"STRASSE@a\"]\n"
    );
    let key = r#"hosts."a".privileged_entities."strasse@a""#;
    assert_single_issue(&text, key, "STRASSE", "duplicate");
}

#[test]
fn names_the_server_could_not_prepare_are_refused() {
    let text = format!("{BASE}[hosts.\"a\".privileged_entities.\"ali ce@a\"]\n");
    let key = r#"hosts."a".privileged_entities."ali ce@a""#;
    assert_single_issue(&text, key, "ali ce", "prohibited character");
    let text = format!("{BASE}[hosts.\"a\".delegations.\"ns\"]\njid = \"c.a/😀\"\n");
    let key = r#"hosts."a".delegations."ns".jid"#;
    assert_single_issue(&text, key, "jid =", "Unicode 3.2");
}

#[test]
fn quotas_are_read_and_checked() {
    let text = format!(
        "{BASE}[hosts.\"a\"]\n[limits]\nmax_sm_unacked = 20\nmax_session_queue = 7\nadmin_header_timeout_ms = 500\nwrite_timeout_ms = 1500\n"
    );
    let cfg = Config::from_str(&text, Path::new("/etc/stanzagate/proxy.toml")).unwrap();
    let q = &cfg.limits.quotas;
    assert_eq!((q.max_sm_unacked, q.max_session_queue), (20, 7));
    assert_eq!(q.admin_header_timeout, Duration::from_millis(500));
    assert_eq!(cfg.limits.write_timeout, Duration::from_millis(1500));
    assert_eq!(
        q.max_delegations_per_session,
        Quotas::default().max_delegations_per_session
    );
    let bad = format!("{BASE}[hosts.\"a\"]\n[limits]\nmax_component_queue = 0\n");
    let found = issues(&bad);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_issue(
        &found[0],
        "limits.max_component_queue",
        Some(12),
        "greater than 0",
    );
}

#[test]
fn proxy_protocol_sources_are_networks_or_addresses() {
    let listen = |nets: &str| {
        BASE.replace(
            "c2s = \"0.0.0.0:5222\"\n",
            &format!("c2s = \"0.0.0.0:5222\"\nproxy_protocol_from = [{nets}]\n"),
        ) + "[hosts.\"a\"]\n"
    };
    let text = listen("\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"");
    let cfg = Config::from_str(&text, Path::new("/etc/stanzagate/proxy.toml")).unwrap();
    let nets: Vec<String> = cfg
        .listen
        .proxy_protocol_from
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    let found = issues(&listen("\"10.0.0.0/33\""));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains("not an address or a network"),
        "{found:#?}"
    );
}

#[test]
fn upstream_proxy_protocol_is_off_v1_or_v2() {
    let upstream = |value: &str| {
        BASE.replace(
            "c2s = \"127.0.0.1:15222\"\n",
            &format!("c2s = \"127.0.0.1:15222\"\nproxy_protocol = {value}\n"),
        ) + "[hosts.\"a\"]\n"
    };
    let off = Config::from_str(&(BASE.to_owned() + "[hosts.\"a\"]\n"), Path::new("/p.toml"));
    assert_eq!(
        off.unwrap().upstream.proxy_protocol,
        UpstreamProxyProtocol::None
    );
    for (text, want) in [
        ("\"v1\"", UpstreamProxyProtocol::V1),
        ("\"v2\"", UpstreamProxyProtocol::V2),
    ] {
        let cfg = Config::from_str(&upstream(text), Path::new("/p.toml")).unwrap();
        assert_eq!(cfg.upstream.proxy_protocol, want);
    }
    let text = upstream("\"v3\"");
    assert_single_issue(&text, "upstream.proxy_protocol", "v3", "v2");
}

#[test]
fn websocket_tls_needs_a_certificate_and_its_own_address() {
    let text = BASE.replace(
        "c2s = \"0.0.0.0:5222\"\n",
        "c2s = \"0.0.0.0:5222\"\nwebsocket = \"127.0.0.1:5290\"\nwebsocket_tls = \"0.0.0.0:5443\"\n",
    ) + "[hosts.\"a\"]\n";
    let found = issues(&text);
    assert!(
        found
            .iter()
            .any(|i| i.key == "tls.cert" && i.message.contains("listen.websocket_tls")),
        "{found:#?}"
    );
    let clash = BASE.replace(
        "c2s = \"0.0.0.0:5222\"\n",
        "c2s = \"0.0.0.0:5222\"\nwebsocket = \"0.0.0.0:5222\"\n",
    ) + "[hosts.\"a\"]\n";
    assert_single_issue(
        &clash,
        "listen.websocket",
        "websocket =",
        "same address as listen.c2s",
    );
    let fine = BASE.replace(
        "c2s = \"0.0.0.0:5222\"\n",
        "c2s = \"0.0.0.0:5222\"\nwebsocket = \"127.0.0.1:5290\"\n",
    ) + "[hosts.\"a\"]\n";
    let cfg = Config::from_str(&fine, Path::new("/p.toml")).unwrap();
    assert_eq!(cfg.listen.websocket, Some(addr("127.0.0.1:5290")));
}

#[test]
fn privilege_namespace_per_component_and_no_iq_grants_in_version_1() {
    let component = |ns: &str, iq: bool| {
        let iq = if iq {
            "iq = { \"urn:example:x\" = \"get\" }\n"
        } else {
            ""
        };
        let base = BASE
            .replace(
                "c2s = \"0.0.0.0:5222\"\n",
                "c2s = \"0.0.0.0:5222\"\ncomponent = \"127.0.0.1:5347\"\n",
            )
            .replace(
                "c2s = \"127.0.0.1:15222\"\n",
                "c2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n",
            );
        format!(
            "{base}[hosts.\"a\"]\n[hosts.\"a\".privileged_entities.\"gw.a\"]\nroster = \"get\"\n{iq}\
[components.\"gw.a\"]\nsecret = \"s\"\nprivilege_namespace = \"{ns}\"\n"
        )
    };
    let v1 = Config::from_str(
        &component("urn:xmpp:privilege:1", false),
        Path::new("/p.toml"),
    )
    .unwrap();
    assert_eq!(v1.components["gw.a"].privilege_namespace, PrivilegeNs::V1);
    let text = component("urn:xmpp:privilege:1", true);
    let found = issues(&text);
    assert!(
        found
            .iter()
            .any(|i| i.key == "hosts.\"a\".privileged_entities.\"gw.a\".iq"
                && i.message.contains("has no iq permission")),
        "{found:#?}"
    );
    assert!(Config::from_str(
        &component("urn:xmpp:privilege:2", true),
        Path::new("/p.toml")
    )
    .is_ok());
    let text = component("urn:xmpp:privilege:3", false);
    assert_single_issue(
        &text,
        "components.\"gw.a\".privilege_namespace",
        "privilege:3",
        "urn:xmpp:privilege:1",
    );
}

#[test]
fn store_path_defaults_and_checks() {
    let etc = Path::new("/etc/stanzagate");
    assert_eq!(
        StoreConfig::default_path_in(None, etc),
        etc.join("stanzagate.redb")
    );
    // systemd's StateDirectory= (several directories: the first).
    assert_eq!(
        StoreConfig::default_path_in(Some("/var/lib/stanzagate:/var/lib/other".into()), etc),
        Path::new("/var/lib/stanzagate/stanzagate.redb")
    );
    let dir = temp_dir();
    let with_path = |path: &str| format!("{BASE}[store]\npath = \"{path}\"\n[hosts.\"a\"]\n");
    let source = write(dir.path(), "proxy.toml", &with_path("state/db.redb"));
    let found = Config::load(&source).unwrap_err().0;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "store.path");
    assert!(found[0].message.contains("does not exist"), "{found:#?}");
    assert_eq!(
        found[0].line,
        Some(line_of(&with_path("state/db.redb"), "path ="))
    );
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let cfg = Config::load(&source).unwrap();
    assert_eq!(cfg.store.path, dir.path().join("state/db.redb"));
    let source = write(dir.path(), "proxy.toml", &with_path("state"));
    let found = Config::load(&source).unwrap_err().0;
    assert!(found[0].message.contains("is a directory"), "{found:#?}");
    // Parsing text alone does not look at the machine.
    assert!(Config::from_str(&with_path("/nowhere/db.redb"), Path::new("/p.toml")).is_ok());
}
