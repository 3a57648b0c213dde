//! Building the typed `Config` from the TOML tree, section by section. Each key is
//! read with the value rules of `validate`; a value that fails is replaced by a
//! placeholder so the remaining sections are still checked. The issues recorded
//! alongside guarantee such a placeholder never leaves the loader.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use toml_edit::TableLike;

use super::files::{read_secret, resolve};
use super::read::{Entry, Fields, Reader};
use super::schema::{
    Component, Config, Delegation, DelegationNs, Host, HostTls, IqPerm, Limits, Listen,
    MessagePerm, PresencePerm, PrivilegeNs, Privileges, Quotas, RosterAdmin, RosterPerm,
    StoreConfig, TlsConfig, Upstream, UpstreamProxyProtocol, UpstreamTls,
};
use super::secret::Secret;
use super::validate;

/// The smallest stanza limit that still fits a typical roster or disco result.
const MIN_STANZA_BYTES: u64 = 4096;

const PLACEHOLDER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

pub(crate) fn config(
    root: &dyn TableLike,
    r: &mut Reader<'_>,
    base: &Path,
    source: PathBuf,
) -> Config {
    let mut top = r.root(root);
    let listen = listen(top.section(r, "listen"), r);
    let tls = tls(top.section(r, "tls"), r, base);
    let upstream = upstream(top.section(r, "upstream"), r, base);
    let limits = limits(top.section(r, "limits"), r);
    let store = store(top.section(r, "store"), r, base);
    let hosts = top
        .get(r, "hosts")
        .map(|entry| named(r, &entry, validate::domain_name, host(base)))
        .unwrap_or_default();
    let components = top
        .get(r, "components")
        .map(|entry| named(r, &entry, validate::domain_name, component(base)))
        .unwrap_or_default();
    top.finish(r);
    Config {
        listen,
        tls,
        upstream,
        limits,
        store,
        hosts,
        components,
        source,
    }
}

fn store(mut f: Fields<'_>, r: &mut Reader<'_>, base: &Path) -> StoreConfig {
    let store = StoreConfig {
        path: f
            .read(r, "path", path_reader(base))
            .unwrap_or_else(|| StoreConfig::default_path(base)),
        max_queued_per_user: f
            .read(r, "max_queued_per_user", |r, e| r.count(e, 1))
            .unwrap_or(StoreConfig::DEFAULT_MAX_QUEUED_PER_USER),
        max_queued_total: f
            .read(r, "max_queued_total", |r, e| r.count(e, 1))
            .unwrap_or(StoreConfig::DEFAULT_MAX_QUEUED_TOTAL),
        max_queue_age: f
            .read(r, "max_queue_age_s", Reader::seconds)
            .unwrap_or(StoreConfig::DEFAULT_MAX_QUEUE_AGE),
    };
    f.finish(r);
    store
}

/// Reads a table keyed by user-chosen names. Names are normalised (case, aliases)
/// so that two spellings of one name are caught as a duplicate.
fn named<'d, T>(
    r: &mut Reader<'_>,
    entry: &Entry<'d>,
    normalize: fn(&str) -> Result<String, String>,
    mut read: impl FnMut(&mut Reader<'_>, Entry<'d>) -> T,
) -> BTreeMap<String, T> {
    let mut map = BTreeMap::new();
    for (key, item) in r.names(entry) {
        let raw = key.get();
        // An invalid name is still read (to report problems inside it) under
        // its name as written, which is also how the error shows it.
        let (name, problem) = match normalize(raw) {
            Ok(name) => (name, None),
            Err(message) => (raw.to_owned(), Some(message)),
        };
        let child = r.enter(entry.path.name(&name), key, item);
        let duplicate = map.contains_key(&name);
        match problem {
            Some(message) => r.issue_at(&child, message),
            None if duplicate => r.issue_at(&child, format!("duplicate of {name:?}")),
            None => {}
        }
        let value = read(r, child);
        if !duplicate {
            map.insert(name, value);
        }
    }
    map
}

fn listen(mut f: Fields<'_>, r: &mut Reader<'_>) -> Listen {
    let addr = |r: &mut Reader<'_>, e: &Entry<'_>| r.parsed(e, validate::listen_addr);
    let listen = Listen {
        c2s: f.read_required(r, "c2s", addr).unwrap_or(PLACEHOLDER_ADDR),
        c2s_direct_tls: f.read(r, "c2s_direct_tls", addr),
        component: f.read(r, "component", addr),
        http: f.read(r, "http", addr),
        websocket: f.read(r, "websocket", addr),
        websocket_tls: f.read(r, "websocket_tls", addr),
        proxy_protocol_from: f
            .read(r, "proxy_protocol_from", |r, e| {
                let texts = r.strings(e)?;
                let mut nets = Vec::with_capacity(texts.len());
                for text in texts {
                    nets.push(r.parsed_text(e, &text, validate::source_net)?);
                }
                Some(nets)
            })
            .unwrap_or_default(),
    };
    f.finish(r);
    listen
}

fn path_reader(base: &Path) -> impl Fn(&mut Reader<'_>, &Entry<'_>) -> Option<PathBuf> + '_ {
    move |r, e| r.parsed(e, |text| resolve(base, text))
}

fn tls(mut f: Fields<'_>, r: &mut Reader<'_>, base: &Path) -> TlsConfig {
    let tls = TlsConfig {
        required: f.read(r, "required", Reader::boolean).unwrap_or(true),
        cert: f.read(r, "cert", path_reader(base)),
        key: f.read(r, "key", path_reader(base)),
    };
    f.finish(r);
    tls
}

fn upstream(mut f: Fields<'_>, r: &mut Reader<'_>, base: &Path) -> Upstream {
    let addr = |r: &mut Reader<'_>, e: &Entry<'_>| r.parsed(e, validate::upstream_addr);
    let upstream = Upstream {
        c2s: f.read_required(r, "c2s", addr).unwrap_or_default(),
        component: f.read(r, "component", addr),
        tls: f
            .read(r, "tls", |r, e| r.choice(e, UpstreamTls::CHOICES))
            .unwrap_or_default(),
        ca_file: f.read(r, "ca_file", path_reader(base)),
        server_name: f.read(r, "server_name", |r, e| r.parsed(e, validate::hostname)),
        proxy_protocol: f
            .read(r, "proxy_protocol", |r, e| {
                r.choice(e, UpstreamProxyProtocol::CHOICES)
            })
            .unwrap_or_default(),
    };
    f.finish(r);
    upstream
}

fn limits(mut f: Fields<'_>, r: &mut Reader<'_>) -> Limits {
    let d = Limits::default();
    let positive = |r: &mut Reader<'_>, e: &Entry<'_>| r.count(e, 1);
    let limits = Limits {
        max_stanza_bytes: f
            .read(r, "max_stanza_bytes", |r, e| r.count(e, MIN_STANZA_BYTES))
            .unwrap_or(d.max_stanza_bytes),
        max_depth: f.read(r, "max_depth", positive).unwrap_or(d.max_depth),
        max_attributes: f
            .read(r, "max_attributes", positive)
            .unwrap_or(d.max_attributes),
        handshake_timeout: f
            .read(r, "handshake_timeout_ms", Reader::millis)
            .unwrap_or(d.handshake_timeout),
        delegation_timeout: f
            .read(r, "delegation_timeout_ms", Reader::millis)
            .unwrap_or(d.delegation_timeout),
        privileged_iq_timeout: f
            .read(r, "privileged_iq_timeout_ms", Reader::millis)
            .unwrap_or(d.privileged_iq_timeout),
        write_timeout: f
            .read(r, "write_timeout_ms", Reader::millis)
            .unwrap_or(d.write_timeout),
        quotas: quotas(&mut f, r),
    };
    f.finish(r);
    limits
}

fn quotas(f: &mut Fields<'_>, r: &mut Reader<'_>) -> Quotas {
    let d = Quotas::default();
    let admin_header_timeout = f
        .read(r, "admin_header_timeout_ms", Reader::millis)
        .unwrap_or(d.admin_header_timeout);
    let mut count =
        |key: &'static str, default: usize| f.read(r, key, |r, e| r.count(e, 1)).unwrap_or(default);
    Quotas {
        max_sm_unacked: count("max_sm_unacked", d.max_sm_unacked),
        max_session_queue: count("max_session_queue", d.max_session_queue),
        max_delegations_per_session: count(
            "max_delegations_per_session",
            d.max_delegations_per_session,
        ),
        max_delegations_per_component: count(
            "max_delegations_per_component",
            d.max_delegations_per_component,
        ),
        max_component_queue: count("max_component_queue", d.max_component_queue),
        max_privileged_ops_per_entity: count(
            "max_privileged_ops_per_entity",
            d.max_privileged_ops_per_entity,
        ),
        max_operations_per_session: count(
            "max_operations_per_session",
            d.max_operations_per_session,
        ),
        max_presence_book: count("max_presence_book", d.max_presence_book),
        max_roster_cache: count("max_roster_cache", d.max_roster_cache),
        max_resumable_sessions: count("max_resumable_sessions", d.max_resumable_sessions),
        max_push_copies: count("max_push_copies", d.max_push_copies),
        admin_max_connections: count("admin_max_connections", d.admin_max_connections),
        max_connections_per_ip: count("max_connections_per_ip", d.max_connections_per_ip),
        logins_per_ip_per_minute: count("logins_per_ip_per_minute", d.logins_per_ip_per_minute),
        admin_header_timeout,
    }
}

fn host(base: &Path) -> impl FnMut(&mut Reader<'_>, Entry<'_>) -> Host + '_ {
    move |r, entry| {
        let mut f = r.table(&entry);
        let host = Host {
            delegations: f
                .get(r, "delegations")
                .map(|e| named(r, &e, validate::delegation_namespace, delegation))
                .unwrap_or_default(),
            privileged_entities: f
                .get(r, "privileged_entities")
                .map(|e| named(r, &e, validate::entity_jid, privileges))
                .unwrap_or_default(),
            roster_admin: f
                .get(r, "roster_admin")
                .map(|e| roster_admin(r.table(&e), r, base)),
            tls: f.get(r, "tls").and_then(|e| host_tls(r.table(&e), r, base)),
        };
        f.finish(r);
        host
    }
}

fn host_tls(mut f: Fields<'_>, r: &mut Reader<'_>, base: &Path) -> Option<HostTls> {
    let cert = f.read_required(r, "cert", path_reader(base));
    let key = f.read_required(r, "key", path_reader(base));
    f.finish(r);
    Some(HostTls {
        cert: cert?,
        key: key?,
    })
}

fn delegation(r: &mut Reader<'_>, entry: Entry<'_>) -> Delegation {
    let mut f = r.table(&entry);
    let delegation = Delegation {
        jid: f
            .read_required(r, "jid", |r, e| r.parsed(e, validate::entity_jid))
            .unwrap_or_default(),
        filtering: f.read(r, "filtering", Reader::strings).unwrap_or_default(),
    };
    f.finish(r);
    delegation
}

fn privileges(r: &mut Reader<'_>, entry: Entry<'_>) -> Privileges {
    let mut f = r.table(&entry);
    let d = Privileges::default();
    let privileges = Privileges {
        roster: f
            .read(r, "roster", |r, e| r.choice(e, RosterPerm::CHOICES))
            .unwrap_or(d.roster),
        roster_push: f
            .read(r, "roster_push", Reader::boolean)
            .unwrap_or(d.roster_push),
        message: f
            .read(r, "message", |r, e| r.choice(e, MessagePerm::CHOICES))
            .unwrap_or(d.message),
        presence: f
            .read(r, "presence", |r, e| r.choice(e, PresencePerm::CHOICES))
            .unwrap_or(d.presence),
        iq: f
            .get(r, "iq")
            .map(|e| named(r, &e, validate::non_empty, iq_perm))
            .unwrap_or_default(),
    };
    f.finish(r);
    privileges
}

fn iq_perm(r: &mut Reader<'_>, entry: Entry<'_>) -> IqPerm {
    r.choice(&entry, IqPerm::CHOICES).unwrap_or_default()
}

fn roster_admin(mut f: Fields<'_>, r: &mut Reader<'_>, base: &Path) -> RosterAdmin {
    let admin = RosterAdmin {
        url: f
            .read_required(r, "url", |r, e| r.parsed(e, validate::roster_url))
            .unwrap_or_default(),
        refresh_token: required_secret(&mut f, r, base, "refresh_token", "refresh_token_file"),
        timeout: f
            .read(r, "timeout_ms", Reader::millis)
            .unwrap_or(RosterAdmin::DEFAULT_TIMEOUT),
        max_concurrent_fetches: f
            .read(r, "max_concurrent_fetches", |r, e| r.count(e, 1))
            .unwrap_or(RosterAdmin::DEFAULT_MAX_CONCURRENT_FETCHES),
        cache_ttl: f
            .read(r, "cache_ttl_s", Reader::seconds)
            .unwrap_or(RosterAdmin::DEFAULT_CACHE_TTL),
    };
    f.finish(r);
    admin
}

fn component(base: &Path) -> impl FnMut(&mut Reader<'_>, Entry<'_>) -> Component + '_ {
    move |r, entry| {
        let mut f = r.table(&entry);
        let component = Component {
            secret: required_secret(&mut f, r, base, "secret", "secret_file"),
            upstream_secret: secret(&mut f, r, base, "upstream_secret", "upstream_secret_file"),
            delegation_namespace: f
                .read(r, "delegation_namespace", |r, e| {
                    r.choice(e, DelegationNs::CHOICES)
                })
                .unwrap_or_default(),
            privilege_namespace: f
                .read(r, "privilege_namespace", |r, e| {
                    r.choice(e, PrivilegeNs::CHOICES)
                })
                .unwrap_or_default(),
        };
        f.finish(r);
        component
    }
}

/// A secret given inline or in a file: `None` when neither key is present. A
/// present but unusable secret yields a placeholder, its issue already recorded.
fn secret(
    f: &mut Fields<'_>,
    r: &mut Reader<'_>,
    base: &Path,
    inline: &'static str,
    file: &'static str,
) -> Option<Secret> {
    let inline_entry = f.get(r, inline);
    let file_entry = f.get(r, file);
    let secret = match (&inline_entry, &file_entry) {
        (None, None) => return None,
        (Some(_), Some(file_entry)) => {
            r.issue_at(
                file_entry,
                format!("{inline} and {file} are exclusive; set only one"),
            );
            None
        }
        (Some(entry), None) => r.parsed(entry, validate::non_empty).map(Secret::new),
        (None, Some(entry)) => r.parsed(entry, |text| read_secret(&resolve(base, text)?)),
    };
    Some(secret.unwrap_or_else(|| Secret::new(String::new())))
}

fn required_secret(
    f: &mut Fields<'_>,
    r: &mut Reader<'_>,
    base: &Path,
    inline: &'static str,
    file: &'static str,
) -> Secret {
    secret(f, r, base, inline, file).unwrap_or_else(|| {
        f.issue(r, format!("one of {inline} or {file} is required"));
        Secret::new(String::new())
    })
}
