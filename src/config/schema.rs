//! The typed configuration: what the rest of the proxy reads. Values here are
//! already validated, normalised (domains and JIDs prepared as the server
//! prepares them, absolute paths) and have secrets resolved from their files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::jid::Domain;
use super::secret::Secret;

/// Declares a closed set of string values with its TOML spelling, so the reader
/// can list the allowed values when it meets an unknown one.
macro_rules! config_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const CHOICES: &'static [(&'static str, $name)] = &[$(($text, $name::$variant)),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Listen,
    pub tls: TlsConfig,
    pub upstream: Upstream,
    pub limits: Limits,
    pub store: StoreConfig,
    /// Keyed by prepared domain (see `crate::jid`).
    pub hosts: BTreeMap<String, Host>,
    /// Keyed by prepared component domain.
    pub components: BTreeMap<String, Component>,
    /// Absolute path of the file this was loaded from.
    pub source: PathBuf,
}

impl Config {
    /// The served host `domain`, prepared as the server prepares it (case,
    /// width, root dot); `None` for a domain that does not parse.
    pub fn host(&self, domain: &str) -> Option<&Host> {
        self.hosts.get(Domain::parse(domain).ok()?.as_str())
    }

    /// The component named `name`, prepared like [`Config::host`].
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.get(Domain::parse(name).ok()?.as_str())
    }

    /// The framer's limits for streams in either direction.
    pub fn framer_limits(&self) -> crate::xml::Limits {
        crate::xml::Limits {
            max_stanza_bytes: self.limits.max_stanza_bytes,
            max_depth: self.limits.max_depth,
            max_attributes: self.limits.max_attributes,
        }
    }

    /// The secret the proxy presents upstream when it connects on behalf of
    /// component `name`.
    pub fn component_secret_for_upstream(&self, name: &str) -> Option<&Secret> {
        self.component(name).map(Component::secret_for_upstream)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub c2s: SocketAddr,
    pub c2s_direct_tls: Option<SocketAddr>,
    /// Always `Some` when components are configured, except after a hot reload
    /// that added it: listeners only change on restart (see `reload`).
    pub component: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    /// XMPP over WebSocket (RFC 7395), plaintext: meant to sit behind a reverse proxy
    /// that terminates TLS, so it counts as secure (SASL is offered).
    pub websocket: Option<SocketAddr>,
    /// XMPP over WebSocket on TLS with the proxy's certificates.
    pub websocket_tls: Option<SocketAddr>,
    /// Sources (load balancers) whose connections to the client listeners start with a
    /// PROXY protocol header (v1 or v2) carrying the client's real address. Empty: no
    /// PROXY protocol.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

/// `cert` and `key` are both set or both unset; they are required when
/// `required` is true or a direct-TLS listener exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub required: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[store]`: the durable store of work done on users' behalf (see `crate::store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The database file. Default: `stanzagate.redb` in systemd's state directory
    /// (`$STATE_DIRECTORY`) when there is one, else next to the config file.
    pub path: PathBuf,
    /// Operations queued for one offline user; more are refused to the entity.
    pub max_queued_per_user: usize,
    /// Operations queued for all offline users together (accounts that never log in
    /// again must not fill the disk).
    pub max_queued_total: usize,
    /// Queued operations older than this are dropped, not applied.
    pub max_queue_age: Duration,
}

impl StoreConfig {
    pub const FILE_NAME: &'static str = "stanzagate.redb";
    pub const DEFAULT_MAX_QUEUED_PER_USER: usize = 100;
    pub const DEFAULT_MAX_QUEUED_TOTAL: usize = 100_000;
    pub const DEFAULT_MAX_QUEUE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Where the store goes when `store.path` is not set: systemd's state directory
    /// (the first, if it lists several), else the config file's directory.
    pub fn default_path(config_dir: &std::path::Path) -> PathBuf {
        Self::default_path_in(std::env::var_os("STATE_DIRECTORY"), config_dir)
    }

    /// [`Self::default_path`] with `$STATE_DIRECTORY`'s value given.
    pub fn default_path_in(
        state_directory: Option<std::ffi::OsString>,
        config_dir: &std::path::Path,
    ) -> PathBuf {
        let state = state_directory
            .and_then(|dirs| std::env::split_paths(&dirs).next())
            .filter(|dir| !dir.as_os_str().is_empty());
        state
            .unwrap_or_else(|| config_dir.to_path_buf())
            .join(Self::FILE_NAME)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host:port`; the host may be a name, resolved at connect time.
    pub c2s: String,
    pub component: Option<String>,
    pub tls: UpstreamTls,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
    /// Whether each client connection to the server starts with a PROXY protocol
    /// header carrying the client's address.
    pub proxy_protocol: UpstreamProxyProtocol,
}

config_enum! {
    /// The PROXY protocol header the proxy writes toward the server: off, the text
    /// form (v1) or the binary form (v2).
    UpstreamProxyProtocol {
        #[default]
        None = "none",
        V1 = "v1",
        V2 = "v2",
    }
}

config_enum! {
    /// How the proxy secures its connections to the legacy server.
    UpstreamTls {
        #[default]
        None = "none",
        StartTls = "starttls",
        Direct = "direct",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_stanza_bytes: usize,
    pub max_depth: usize,
    pub max_attributes: usize,
    /// From stream start to successful authentication.
    pub handshake_timeout: Duration,
    pub delegation_timeout: Duration,
    pub privileged_iq_timeout: Duration,
    /// A peer that accepts none of the proxy's bytes for this long is disconnected.
    pub write_timeout: Duration,
    /// Quotas on what a peer can make the proxy hold (see README, "Security model").
    pub quotas: Quotas,
}

/// Every structure a peer can grow, bounded. Exceeding one is an error for the
/// offender only (a stanza error or a stream error on its stream) and a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// Stanzas a Stream Management client has not acknowledged that the proxy must
    /// remember (its own injections and consumed stanzas).
    pub max_sm_unacked: usize,
    /// Stanzas other tasks may queue for one client session (answers, injections).
    pub max_session_queue: usize,
    /// Delegated IQs one client session may have waiting for a component.
    pub max_delegations_per_session: usize,
    /// Delegated IQs waiting for one component, all users together.
    pub max_delegations_per_component: usize,
    /// Stanzas queued toward one component (delegated IQs, presence and push copies).
    pub max_component_queue: usize,
    /// Privileged operations (roster, IQ) of one entity in progress at once.
    pub max_privileged_ops_per_entity: usize,
    /// Proxy-run operations (roster fetches, privileged requests) waiting on one
    /// client session at once.
    pub max_operations_per_session: usize,
    /// Contacts' presences remembered for privileged entities' dumps.
    pub max_presence_book: usize,
    /// Users whose web-app roster is cached.
    pub max_roster_cache: usize,
    /// Ended resumable streams whose counters are kept.
    pub max_resumable_sessions: usize,
    /// Copies of roster pushes awaiting an entity's answer.
    pub max_push_copies: usize,
    /// Admin HTTP connections open at once.
    pub admin_max_connections: usize,
    /// How long an admin HTTP client may take to send its request head.
    pub admin_header_timeout: Duration,
    /// Client connections open at once from one real address (loopback exempt).
    pub max_connections_per_ip: usize,
    /// Authentication attempts per minute from one real address (loopback exempt).
    pub logins_per_ip_per_minute: usize,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            max_sm_unacked: 500,
            max_session_queue: 1_000,
            max_delegations_per_session: 100,
            max_delegations_per_component: 10_000,
            max_component_queue: 20_000,
            max_privileged_ops_per_entity: 200,
            max_operations_per_session: 100,
            max_presence_book: 100_000,
            max_roster_cache: 100_000,
            max_resumable_sessions: 100_000,
            max_push_copies: 10_000,
            admin_max_connections: 64,
            admin_header_timeout: Duration::from_secs(10),
            max_connections_per_ip: 100,
            logins_per_ip_per_minute: 120,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 64,
            max_attributes: 64,
            handshake_timeout: Duration::from_secs(30),
            delegation_timeout: Duration::from_secs(30),
            privileged_iq_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            quotas: Quotas::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Host {
    /// Keyed by namespace; the `disco#items` alias is stored under its
    /// `urn:xmpp:delegation:2:bare:disco#items:*` form.
    pub delegations: BTreeMap<String, Delegation>,
    /// Keyed by prepared JID.
    pub privileged_entities: BTreeMap<String, Privileges>,
    pub roster_admin: Option<RosterAdmin>,
    /// `[hosts."D".tls]`: the certificate shown to clients that ask for this domain
    /// (SNI); others get `[tls]`'s.
    pub tls: Option<HostTls>,
}

/// A served domain's own certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The managing entity (prepared JID); a plain domain is a configured component.
    pub jid: String,
    /// Attribute names for XEP-0355 attribute filtering; empty means no filtering.
    pub filtering: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    pub roster: RosterPerm,
    /// Whether roster pushes are forwarded (the XEP-0356 `push` attribute).
    pub roster_push: bool,
    pub message: MessagePerm,
    /// `Roster` implies `roster` is `Get` or `Both`.
    pub presence: PresencePerm,
    /// Namespace -> permission for privileged IQs.
    pub iq: BTreeMap<String, IqPerm>,
}

impl Default for Privileges {
    fn default() -> Privileges {
        Privileges {
            roster: RosterPerm::None,
            roster_push: true,
            message: MessagePerm::None,
            presence: PresencePerm::None,
            iq: BTreeMap::new(),
        }
    }
}

config_enum! {
    RosterPerm {
        #[default]
        None = "none",
        Get = "get",
        Set = "set",
        Both = "both",
    }
}

config_enum! {
    MessagePerm {
        #[default]
        None = "none",
        Outgoing = "outgoing",
    }
}

config_enum! {
    PresencePerm {
        #[default]
        None = "none",
        ManagedEntity = "managed_entity",
        Roster = "roster",
    }
}

config_enum! {
    IqPerm {
        #[default]
        None = "none",
        Get = "get",
        Set = "set",
        Both = "both",
    }
}

impl RosterPerm {
    pub fn allows_get(self) -> bool {
        matches!(self, RosterPerm::Get | RosterPerm::Both)
    }

    pub fn allows_set(self) -> bool {
        matches!(self, RosterPerm::Set | RosterPerm::Both)
    }
}

impl IqPerm {
    pub fn allows_get(self) -> bool {
        matches!(self, IqPerm::Get | IqPerm::Both)
    }

    pub fn allows_set(self) -> bool {
        matches!(self, IqPerm::Set | IqPerm::Both)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RosterAdmin {
    /// Contains `%s` exactly once, to be replaced by the percent-encoded username.
    pub url: String,
    pub refresh_token: Secret,
    pub timeout: Duration,
    pub max_concurrent_fetches: usize,
    pub cache_ttl: Duration,
}

impl RosterAdmin {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
    pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 32;
    pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// What the component must present in its XEP-0114 handshake to the proxy.
    pub secret: Secret,
    /// What the proxy presents upstream, when it differs from `secret`.
    pub upstream_secret: Option<Secret>,
    pub delegation_namespace: DelegationNs,
    pub privilege_namespace: PrivilegeNs,
}

impl Component {
    pub fn secret_for_upstream(&self) -> &Secret {
        self.upstream_secret.as_ref().unwrap_or(&self.secret)
    }
}

config_enum! {
    /// The XEP-0356 namespace version spoken with a component: `:1` for components
    /// written before 2023 (Spectrum2), which know no `iq` permission.
    PrivilegeNs {
        V1 = "urn:xmpp:privilege:1",
        #[default]
        V2 = "urn:xmpp:privilege:2",
    }
}

config_enum! {
    /// The XEP-0355 namespace version spoken with a component.
    DelegationNs {
        V1 = "urn:xmpp:delegation:1",
        #[default]
        V2 = "urn:xmpp:delegation:2",
    }
}
