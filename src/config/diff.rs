//! `ConfigDiff`: what changed between two configurations, in words for the logs,
//! and which of those changes only take effect after a restart.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use super::keypath::KeyPath;
use super::schema::{
    Component, Config, Delegation, Host, Limits, Privileges, RosterAdmin, StoreConfig, TlsConfig,
};
use super::secret::Secret;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Changes now in effect, e.g. `limits.delegation_timeout_ms 30000 -> 5000`.
    pub changes: Vec<String>,
    /// Changes to listeners and upstream endpoints, which the running proxy keeps
    /// using until it restarts.
    pub needs_restart: Vec<String>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.needs_restart.is_empty()
    }

    /// Compares two configurations. Secrets are reported as changed, never shown.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut d = Differ::default();
        d.restart_settings(old, new);
        d.tls(&old.tls, &new.tls);
        d.upstream_reloadable(old, new);
        d.store(&old.store, &new.store);
        d.limits(&old.limits, &new.limits);
        let hosts = KeyPath::root().field("hosts");
        d.map(&hosts, &old.hosts, &new.hosts, Differ::host);
        let components = KeyPath::root().field("components");
        d.map(
            &components,
            &old.components,
            &new.components,
            Differ::component,
        );
        ConfigDiff {
            changes: d.changes,
            needs_restart: d.needs_restart,
        }
    }
}

/// `new` with the settings that need a restart put back to their `old` values, so
/// the published configuration describes the listeners that actually run.
pub(crate) fn keep_restart_settings(old: &Config, mut new: Config) -> Config {
    new.listen = old.listen.clone();
    new.upstream.c2s = old.upstream.c2s.clone();
    new.upstream.component = old.upstream.component.clone();
    new.upstream.tls = old.upstream.tls;
    new.store.path = old.store.path.clone();
    new
}

#[derive(Default)]
struct Differ {
    changes: Vec<String>,
    needs_restart: Vec<String>,
}

fn unset_or<T: Display>(value: Option<&T>) -> String {
    value.map_or_else(|| "(unset)".to_owned(), ToString::to_string)
}

fn path_text(path: Option<&PathBuf>) -> String {
    unset_or(path.map(|p| p.display()).as_ref())
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

impl Differ {
    fn value(&mut self, path: &KeyPath, old: String, new: String) {
        if old != new {
            self.changes.push(format!("{path} {old} -> {new}"));
        }
    }

    fn restart(&mut self, path: &KeyPath, old: String, new: String) {
        if old != new {
            self.needs_restart.push(format!(
                "{path} changed ({old} -> {new}): needs a restart; the old value stays in effect"
            ));
        }
    }

    fn secret(&mut self, path: &KeyPath, old: Option<&Secret>, new: Option<&Secret>) {
        let change = match (old, new) {
            (None, Some(_)) => "set",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) if a != b => "changed",
            _ => return,
        };
        self.changes.push(format!("{path} {change}"));
    }

    /// Reports added and removed names, and compares the entries present in both.
    fn map<T>(
        &mut self,
        path: &KeyPath,
        old: &BTreeMap<String, T>,
        new: &BTreeMap<String, T>,
        mut each: impl FnMut(&mut Differ, &KeyPath, &T, &T),
    ) {
        for name in old.keys().filter(|name| !new.contains_key(*name)) {
            self.changes.push(format!("{} removed", path.name(name)));
        }
        for (name, value) in new {
            match old.get(name) {
                Some(previous) => each(self, &path.name(name), previous, value),
                None => self.changes.push(format!("{} added", path.name(name))),
            }
        }
    }

    fn restart_settings(&mut self, old: &Config, new: &Config) {
        let listen = KeyPath::root().field("listen");
        let (a, b) = (&old.listen, &new.listen);
        self.restart(&listen.field("c2s"), a.c2s.to_string(), b.c2s.to_string());
        let optional = [
            ("c2s_direct_tls", a.c2s_direct_tls, b.c2s_direct_tls),
            ("component", a.component, b.component),
            ("http", a.http, b.http),
            ("websocket", a.websocket, b.websocket),
            ("websocket_tls", a.websocket_tls, b.websocket_tls),
        ];
        for (field, a, b) in optional {
            self.restart(
                &listen.field(field),
                unset_or(a.as_ref()),
                unset_or(b.as_ref()),
            );
        }
        let nets = |nets: &[ipnet::IpNet]| {
            let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
            format!("[{}]", list.join(", "))
        };
        self.restart(
            &listen.field("proxy_protocol_from"),
            nets(&a.proxy_protocol_from),
            nets(&b.proxy_protocol_from),
        );
        let upstream = KeyPath::root().field("upstream");
        let (a, b) = (&old.upstream, &new.upstream);
        self.restart(&upstream.field("c2s"), a.c2s.clone(), b.c2s.clone());
        self.restart(
            &upstream.field("component"),
            unset_or(a.component.as_ref()),
            unset_or(b.component.as_ref()),
        );
        self.restart(&upstream.field("tls"), a.tls.to_string(), b.tls.to_string());
        self.restart(
            &KeyPath::root().field("store").field("path"),
            old.store.path.display().to_string(),
            new.store.path.display().to_string(),
        );
    }

    fn tls(&mut self, old: &TlsConfig, new: &TlsConfig) {
        let tls = KeyPath::root().field("tls");
        self.value(
            &tls.field("required"),
            old.required.to_string(),
            new.required.to_string(),
        );
        self.value(
            &tls.field("cert"),
            path_text(old.cert.as_ref()),
            path_text(new.cert.as_ref()),
        );
        self.value(
            &tls.field("key"),
            path_text(old.key.as_ref()),
            path_text(new.key.as_ref()),
        );
    }

    fn store(&mut self, old: &StoreConfig, new: &StoreConfig) {
        let store = KeyPath::root().field("store");
        self.value(
            &store.field("max_queued_per_user"),
            old.max_queued_per_user.to_string(),
            new.max_queued_per_user.to_string(),
        );
        self.value(
            &store.field("max_queued_total"),
            old.max_queued_total.to_string(),
            new.max_queued_total.to_string(),
        );
        self.value(
            &store.field("max_queue_age_s"),
            old.max_queue_age.as_secs().to_string(),
            new.max_queue_age.as_secs().to_string(),
        );
    }

    fn upstream_reloadable(&mut self, old: &Config, new: &Config) {
        let upstream = KeyPath::root().field("upstream");
        let (a, b) = (&old.upstream, &new.upstream);
        self.value(
            &upstream.field("ca_file"),
            path_text(a.ca_file.as_ref()),
            path_text(b.ca_file.as_ref()),
        );
        self.value(
            &upstream.field("server_name"),
            unset_or(a.server_name.as_ref()),
            unset_or(b.server_name.as_ref()),
        );
        // Read when each client connection to the server opens.
        self.value(
            &upstream.field("proxy_protocol"),
            a.proxy_protocol.to_string(),
            b.proxy_protocol.to_string(),
        );
    }

    fn limits(&mut self, old: &Limits, new: &Limits) {
        let limits = KeyPath::root().field("limits");
        let counts = [
            (
                "max_stanza_bytes",
                old.max_stanza_bytes,
                new.max_stanza_bytes,
            ),
            ("max_depth", old.max_depth, new.max_depth),
            ("max_attributes", old.max_attributes, new.max_attributes),
        ];
        let (q, p) = (&old.quotas, &new.quotas);
        let quotas = [
            ("max_sm_unacked", q.max_sm_unacked, p.max_sm_unacked),
            (
                "max_session_queue",
                q.max_session_queue,
                p.max_session_queue,
            ),
            (
                "max_delegations_per_session",
                q.max_delegations_per_session,
                p.max_delegations_per_session,
            ),
            (
                "max_delegations_per_component",
                q.max_delegations_per_component,
                p.max_delegations_per_component,
            ),
            (
                "max_component_queue",
                q.max_component_queue,
                p.max_component_queue,
            ),
            (
                "max_privileged_ops_per_entity",
                q.max_privileged_ops_per_entity,
                p.max_privileged_ops_per_entity,
            ),
            (
                "max_operations_per_session",
                q.max_operations_per_session,
                p.max_operations_per_session,
            ),
            (
                "max_presence_book",
                q.max_presence_book,
                p.max_presence_book,
            ),
            ("max_roster_cache", q.max_roster_cache, p.max_roster_cache),
            (
                "max_resumable_sessions",
                q.max_resumable_sessions,
                p.max_resumable_sessions,
            ),
            ("max_push_copies", q.max_push_copies, p.max_push_copies),
            (
                "admin_max_connections",
                q.admin_max_connections,
                p.admin_max_connections,
            ),
            (
                "max_connections_per_ip",
                q.max_connections_per_ip,
                p.max_connections_per_ip,
            ),
            (
                "logins_per_ip_per_minute",
                q.logins_per_ip_per_minute,
                p.logins_per_ip_per_minute,
            ),
        ];
        let counts = counts.into_iter().chain(quotas);
        for (field, a, b) in counts {
            self.value(&limits.field(field), a.to_string(), b.to_string());
        }
        let timeouts = [
            (
                "handshake_timeout_ms",
                old.handshake_timeout,
                new.handshake_timeout,
            ),
            (
                "delegation_timeout_ms",
                old.delegation_timeout,
                new.delegation_timeout,
            ),
            (
                "privileged_iq_timeout_ms",
                old.privileged_iq_timeout,
                new.privileged_iq_timeout,
            ),
            ("write_timeout_ms", old.write_timeout, new.write_timeout),
            (
                "admin_header_timeout_ms",
                q.admin_header_timeout,
                p.admin_header_timeout,
            ),
        ];
        for (field, a, b) in timeouts {
            self.value(&limits.field(field), millis(a), millis(b));
        }
    }

    fn host(&mut self, path: &KeyPath, old: &Host, new: &Host) {
        let delegations = path.field("delegations");
        self.map(
            &delegations,
            &old.delegations,
            &new.delegations,
            Differ::delegation,
        );
        let entities = path.field("privileged_entities");
        self.map(
            &entities,
            &old.privileged_entities,
            &new.privileged_entities,
            Differ::privileges,
        );
        let admin = path.field("roster_admin");
        match (&old.roster_admin, &new.roster_admin) {
            (None, Some(_)) => self.changes.push(format!("{admin} added")),
            (Some(_), None) => self.changes.push(format!("{admin} removed")),
            (Some(a), Some(b)) => self.roster_admin(&admin, a, b),
            (None, None) => {}
        }
        let tls = |t: &Option<crate::config::HostTls>| match t {
            Some(t) => format!("{} + {}", t.cert.display(), t.key.display()),
            None => "unset".to_owned(),
        };
        self.value(&path.field("tls"), tls(&old.tls), tls(&new.tls));
    }

    fn delegation(&mut self, path: &KeyPath, old: &Delegation, new: &Delegation) {
        self.value(&path.field("jid"), old.jid.clone(), new.jid.clone());
        self.value(
            &path.field("filtering"),
            format!("{:?}", old.filtering),
            format!("{:?}", new.filtering),
        );
    }

    fn privileges(&mut self, path: &KeyPath, old: &Privileges, new: &Privileges) {
        let fields = [
            ("roster", old.roster.as_str(), new.roster.as_str()),
            ("message", old.message.as_str(), new.message.as_str()),
            ("presence", old.presence.as_str(), new.presence.as_str()),
        ];
        for (field, a, b) in fields {
            self.value(&path.field(field), a.to_owned(), b.to_owned());
        }
        self.value(
            &path.field("roster_push"),
            old.roster_push.to_string(),
            new.roster_push.to_string(),
        );
        self.map(&path.field("iq"), &old.iq, &new.iq, |d, path, a, b| {
            d.value(path, a.to_string(), b.to_string());
        });
    }

    fn roster_admin(&mut self, path: &KeyPath, old: &RosterAdmin, new: &RosterAdmin) {
        self.value(&path.field("url"), old.url.clone(), new.url.clone());
        self.secret(
            &path.field("refresh_token"),
            Some(&old.refresh_token),
            Some(&new.refresh_token),
        );
        self.value(
            &path.field("timeout_ms"),
            millis(old.timeout),
            millis(new.timeout),
        );
        self.value(
            &path.field("max_concurrent_fetches"),
            old.max_concurrent_fetches.to_string(),
            new.max_concurrent_fetches.to_string(),
        );
        self.value(
            &path.field("cache_ttl_s"),
            old.cache_ttl.as_secs().to_string(),
            new.cache_ttl.as_secs().to_string(),
        );
    }

    fn component(&mut self, path: &KeyPath, old: &Component, new: &Component) {
        self.secret(&path.field("secret"), Some(&old.secret), Some(&new.secret));
        self.secret(
            &path.field("upstream_secret"),
            old.upstream_secret.as_ref(),
            new.upstream_secret.as_ref(),
        );
        self.value(
            &path.field("delegation_namespace"),
            old.delegation_namespace.to_string(),
            new.delegation_namespace.to_string(),
        );
        self.value(
            &path.field("privilege_namespace"),
            old.privilege_namespace.to_string(),
            new.privilege_namespace.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[listen]
c2s = "0.0.0.0:5222"
component = "127.0.0.1:5347"
[upstream]
c2s = "127.0.0.1:15222"
component = "127.0.0.1:15347"
[tls]
required = false
[limits]
delegation_timeout_ms = 30000
[hosts."a".delegations."urn:xmpp:mam:2"]
jid = "c.a"
[hosts."a".privileged_entities."c.a"]
roster = "get"
[components."c.a"]
secret = "one"
"#;

    fn config(text: &str) -> Config {
        Config::from_str(text, Path::new("/etc/stanzagate/proxy.toml")).unwrap()
    }

    fn diff(edit: impl Fn(&str) -> String) -> ConfigDiff {
        ConfigDiff::between(&config(BASE), &config(&edit(BASE)))
    }

    #[test]
    fn identical_configs_have_no_diff() {
        assert!(diff(str::to_owned).is_empty());
    }

    #[test]
    fn reports_reloadable_changes() {
        let d = diff(|t| {
            t.replace("30000", "5000")
                .replace("roster = \"get\"", "roster = \"both\"")
                .replace("\"one\"", "\"two\"")
                + "[hosts.\"a\".delegations.\"urn:xmpp:x\"]\njid = \"u@a\"\n[hosts.\"b\"]\n"
        });
        assert_eq!(
            d.changes,
            [
                "limits.delegation_timeout_ms 30000 -> 5000",
                r#"hosts."a".delegations."urn:xmpp:x" added"#,
                r#"hosts."a".privileged_entities."c.a".roster get -> both"#,
                r#"hosts."b" added"#,
                r#"components."c.a".secret changed"#,
            ]
        );
        assert!(d.needs_restart.is_empty());
        assert!(!d.changes.iter().any(|c| c.contains("two")));
    }

    #[test]
    fn endpoint_changes_need_a_restart() {
        let d = diff(|t| {
            t.replace("0.0.0.0:5222", "0.0.0.0:6222")
                .replace("127.0.0.1:15347", "legacy:15347")
        });
        assert!(d.changes.is_empty(), "{d:?}");
        assert_eq!(
            d.needs_restart,
            [
                "listen.c2s changed (0.0.0.0:5222 -> 0.0.0.0:6222): needs a restart; the old value stays in effect",
                "upstream.component changed (127.0.0.1:15347 -> legacy:15347): needs a restart; the old value stays in effect",
            ]
        );
    }

    #[test]
    fn keep_restart_settings_restores_endpoints_only() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("0.0.0.0:5222", "0.0.0.0:6222")
                .replace("30000", "5000"),
        );
        let kept = keep_restart_settings(&old, new.clone());
        assert_eq!(kept.listen, old.listen);
        assert_eq!(kept.limits, new.limits);
    }
}
