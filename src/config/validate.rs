//! The semantic rules of `proxy.toml`: value rules applied while reading (address
//! forms, namespaces, URLs, JIDs) and rules spanning several sections, applied to
//! the assembled configuration.

use std::net::{Ipv6Addr, SocketAddr};

use super::jid::{Domain, Jid, JidError};
use super::keypath::KeyPath;
use super::schema::{Config, IqPerm, PresencePerm, PrivilegeNs, Privileges};
use crate::xml::ns::{
    BARE_DISCO_INFO_ANY, BARE_DISCO_ITEMS_ALIAS, BARE_DISCO_ITEMS_ANY, DELEGATION_PREFIX,
};

/// A problem found by a rule, before it is located by line.
pub(crate) type Problem = (KeyPath, String);

pub(crate) fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP:port address (e.g. \"0.0.0.0:5222\")"))
}

/// `host:port`, where host is a DNS name, an IPv4 address or a bracketed IPv6
/// address; resolution happens at connect time.
pub(crate) fn upstream_addr(text: &str) -> Result<String, String> {
    let malformed = || format!("{text:?} is not host:port (e.g. \"127.0.0.1:15222\")");
    let (host, port) = text.rsplit_once(':').ok_or_else(malformed)?;
    let port_ok = port.parse::<u16>().is_ok_and(|port| port != 0);
    if !port_ok || hostname(host).is_err() {
        return Err(malformed());
    }
    Ok(text.to_owned())
}

/// A DNS name or IP literal, as used for `upstream.server_name`.
pub(crate) fn hostname(text: &str) -> Result<String, String> {
    if let Some(literal) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return match literal.parse::<Ipv6Addr>() {
            Ok(_) => Ok(text.to_owned()),
            Err(_) => Err(format!("{text:?} is not a valid IPv6 literal")),
        };
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if text.len() <= 253 && text.split('.').all(label_ok) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a valid host name"))
    }
}

/// A source network for `listen.proxy_protocol_from`: `10.0.0.0/8`, or one address.
pub fn source_net(text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{text:?} is not an address or a network such as 10.0.0.0/8"))
}

/// A served host or component name: a JID that is a plain domain. Returns the
/// prepared domain.
pub(crate) fn domain_name(text: &str) -> Result<String, String> {
    match Domain::parse(text) {
        Ok(domain) => Ok(domain.as_str().to_owned()),
        Err(JidError::UnexpectedNode | JidError::UnexpectedResource) => Err(format!(
            "{text:?} must be a bare domain, without user or resource"
        )),
        Err(e) => Err(format!("{text:?} is not a valid JID: {e}")),
    }
}

/// Any JID (a component or a user account), prepared.
pub(crate) fn entity_jid(text: &str) -> Result<String, String> {
    Jid::parse(text)
        .map(|jid| jid.to_string())
        .map_err(|e| format!("{text:?} is not a valid JID: {e}"))
}

/// A namespace that may be delegated, in its canonical spelling.
pub(crate) fn delegation_namespace(ns: &str) -> Result<String, String> {
    match ns {
        "" => Err("the namespace must not be empty".to_owned()),
        BARE_DISCO_INFO_ANY | BARE_DISCO_ITEMS_ANY => Ok(ns.to_owned()),
        BARE_DISCO_ITEMS_ALIAS => Ok(BARE_DISCO_ITEMS_ANY.to_owned()),
        _ if ns.starts_with(DELEGATION_PREFIX) => {
            Err("delegating urn:xmpp:delegation:* is forbidden (XEP-0355 §8)".to_owned())
        }
        _ => Ok(ns.to_owned()),
    }
}

/// The roster-admin URL template: http(s) with exactly one `%s`.
pub(crate) fn roster_url(url: &str) -> Result<String, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    match url.matches("%s").count() {
        1 => Ok(url.to_owned()),
        n => Err(format!(
            "{url:?} must contain %s (the username) exactly once, found {n}"
        )),
    }
}

pub(crate) fn non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// Rules that relate several sections of an assembled configuration.
pub(crate) fn cross_check(cfg: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_hosts_present(cfg, &mut problems);
    check_component_endpoints(cfg, &mut problems);
    check_tls_files(cfg, &mut problems);
    check_listen_distinct(cfg, &mut problems);
    check_delegations(cfg, &mut problems);
    check_privileged_entities(cfg, &mut problems);
    check_component_names(cfg, &mut problems);
    problems
}

fn root() -> KeyPath {
    KeyPath::root()
}

fn check_hosts_present(cfg: &Config, problems: &mut Vec<Problem>) {
    if cfg.hosts.is_empty() {
        let message = "at least one [hosts.\"DOMAIN\"] table is required";
        problems.push((root().field("hosts"), message.to_owned()));
    }
}

fn check_component_endpoints(cfg: &Config, problems: &mut Vec<Problem>) {
    if cfg.components.is_empty() {
        return;
    }
    let message = "required because [components] is not empty";
    if cfg.listen.component.is_none() {
        problems.push((
            root().field("listen").field("component"),
            message.to_owned(),
        ));
    }
    if cfg.upstream.component.is_none() {
        problems.push((
            root().field("upstream").field("component"),
            message.to_owned(),
        ));
    }
}

/// Checks of the places on this machine the config names but that loading does not
/// read: the store's file must be creatable (its directory exists, and the path is not
/// a directory). Whether the proxy's user may write there shows when it starts, which
/// then fails with the reason: check-config may run as another user.
pub(crate) fn places(cfg: &Config) -> Vec<Problem> {
    let path = &cfg.store.path;
    let key = root().field("store").field("path");
    if path.is_dir() {
        return vec![(
            key,
            format!("{} is a directory; name a file", path.display()),
        )];
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if parent.is_some_and(std::path::Path::is_dir) {
        return Vec::new();
    }
    let shown = parent.map_or_else(|| ".".into(), |p| p.display().to_string());
    vec![(key, format!("directory {shown} does not exist"))]
}

fn check_tls_files(cfg: &Config, problems: &mut Vec<Problem>) {
    let tls = root().field("tls");
    let reason = if cfg.listen.c2s_direct_tls.is_some() {
        "required because listen.c2s_direct_tls is set"
    } else if cfg.listen.websocket_tls.is_some() {
        "required because listen.websocket_tls is set"
    } else if cfg.tls.required {
        "required when tls.required = true (the default)"
    } else {
        "cert and key go together"
    };
    let needed = cfg.tls.required
        || cfg.listen.c2s_direct_tls.is_some()
        || cfg.listen.websocket_tls.is_some()
        || cfg.tls.cert.is_some() != cfg.tls.key.is_some();
    if needed && cfg.tls.cert.is_none() {
        problems.push((tls.field("cert"), reason.to_owned()));
    }
    if needed && cfg.tls.key.is_none() {
        problems.push((tls.field("key"), reason.to_owned()));
    }
}

fn check_listen_distinct(cfg: &Config, problems: &mut Vec<Problem>) {
    let listen = &cfg.listen;
    let addrs = [
        ("c2s", Some(listen.c2s)),
        ("c2s_direct_tls", listen.c2s_direct_tls),
        ("component", listen.component),
        ("http", listen.http),
        ("websocket", listen.websocket),
        ("websocket_tls", listen.websocket_tls),
    ];
    for (i, (name, addr)) in addrs.iter().enumerate() {
        let earlier = addrs[..i]
            .iter()
            .find(|(_, other)| addr.is_some() && other == addr);
        if let Some((other, _)) = earlier {
            let message = format!("same address as listen.{other}");
            problems.push((root().field("listen").field(name), message));
        }
    }
}

fn check_delegations(cfg: &Config, problems: &mut Vec<Problem>) {
    for (domain, host) in &cfg.hosts {
        for (ns, delegation) in &host.delegations {
            let path = root()
                .field("hosts")
                .name(domain)
                .field("delegations")
                .name(ns)
                .field("jid");
            let Ok(jid) = Jid::parse(&delegation.jid) else {
                continue;
            };
            if jid.is_domain() && cfg.hosts.contains_key(jid.domain().as_str()) {
                let message = format!("{jid} is a served host; delegate to a component");
                problems.push((path, message));
            } else if let Some(message) = missing_component(cfg, &jid) {
                problems.push((path, message));
            }
        }
    }
}

fn check_privileged_entities(cfg: &Config, problems: &mut Vec<Problem>) {
    for (domain, host) in &cfg.hosts {
        let entities = root()
            .field("hosts")
            .name(domain)
            .field("privileged_entities");
        for (name, privileges) in &host.privileged_entities {
            let path = entities.name(name);
            if let Some(message) = Jid::parse(name)
                .ok()
                .and_then(|jid| missing_component(cfg, &jid))
            {
                problems.push((path.clone(), message));
            }
            if let Some(message) = iq_without_namespace(cfg, name, privileges) {
                problems.push((path.field("iq"), message));
            }
            if privileges.presence == PresencePerm::Roster && !privileges.roster.allows_get() {
                let message = format!(
                    "presence = \"roster\" requires roster = \"get\" or \"both\", found {:?}",
                    privileges.roster.as_str()
                );
                problems.push((path.field("presence"), message));
            }
        }
    }
}

/// `iq` permissions granted to a component spoken to in `urn:xmpp:privilege:1`, which
/// has no such permission: the component could never use them.
fn iq_without_namespace(cfg: &Config, name: &str, privileges: &Privileges) -> Option<String> {
    let component = cfg.components.get(name)?;
    let granted = privileges.iq.values().any(|perm| *perm != IqPerm::None);
    (granted && component.privilege_namespace == PrivilegeNs::V1).then(|| {
        format!(
            "urn:xmpp:privilege:1 has no iq permission, and components.\"{name}\".privilege_namespace \
             is urn:xmpp:privilege:1"
        )
    })
}

/// A plain-domain entity is a component and must be declared as one, otherwise
/// nothing would ever connect as it.
fn missing_component(cfg: &Config, jid: &Jid) -> Option<String> {
    if !jid.is_domain() || cfg.components.contains_key(jid.domain().as_str()) {
        return None;
    }
    Some(format!(
        "{jid} is a component but has no [components.\"{jid}\"] entry"
    ))
}

fn check_component_names(cfg: &Config, problems: &mut Vec<Problem>) {
    for name in cfg.components.keys() {
        if cfg.hosts.contains_key(name) {
            let message = "a component cannot have the name of a served host";
            problems.push((root().field("components").name(name), message.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses() {
        for ok in ["127.0.0.1:15222", "legacy.internal:5222", "[::1]:5222"] {
            assert_eq!(upstream_addr(ok), Ok(ok.to_owned()), "{ok}");
        }
        for bad in [
            "legacy",
            "legacy:",
            ":5222",
            "legacy:0",
            "legacy:99999",
            "a b:1",
            "::1:5222",
        ] {
            assert!(upstream_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delegation_namespaces() {
        assert!(delegation_namespace("urn:xmpp:delegation:2").is_err());
        assert!(delegation_namespace("urn:xmpp:delegation:1").is_err());
        assert_eq!(
            delegation_namespace(BARE_DISCO_INFO_ANY),
            Ok(BARE_DISCO_INFO_ANY.to_owned())
        );
        assert_eq!(
            delegation_namespace(BARE_DISCO_ITEMS_ANY),
            Ok(BARE_DISCO_ITEMS_ANY.to_owned())
        );
        assert_eq!(
            delegation_namespace(BARE_DISCO_ITEMS_ALIAS),
            Ok(BARE_DISCO_ITEMS_ANY.to_owned())
        );
        assert_eq!(
            delegation_namespace("urn:xmpp:mam:2"),
            Ok("urn:xmpp:mam:2".to_owned())
        );
    }

    #[test]
    fn roster_urls() {
        assert!(roster_url("https://app/contacts/%s").is_ok());
        assert!(roster_url("ftp://app/contacts/%s").is_err());
        assert!(roster_url("http://app/contacts").is_err());
        assert!(roster_url("http://app/%s/%s").is_err());
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name("Capulet.LIT"), Ok("capulet.lit".to_owned()));
        assert_eq!(domain_name("Ｃapulet.lit."), Ok("capulet.lit".to_owned()));
        assert!(domain_name("juliet@capulet.lit").is_err());
        assert!(domain_name("capulet.lit/balcony").is_err());
        assert!(domain_name("bad domain").is_err());
    }
}
