//! The `proxy.toml` configuration: schema, loading with complete error reports,
//! semantic validation, and hot reload with change reporting.

mod build;
mod diff;
mod files;
mod issue;
mod jid;
mod keypath;
mod load;
mod prosody;
mod read;
mod reload;
mod schema;
mod secret;
mod validate;

pub use diff::ConfigDiff;
pub use issue::{ConfigErrors, ConfigIssue};
pub use jid::{Jid, JidError, JidPart};
pub use prosody::{import as import_prosody, ImportError, Imported, Untranslated};
pub use reload::{spawn_reloader, ConfigHandle};
pub use schema::{
    Component, Config, Delegation, DelegationNs, Host, HostTls, IqPerm, Limits, Listen,
    MessagePerm, PresencePerm, PrivilegeNs, Privileges, Quotas, RosterAdmin, RosterPerm,
    StoreConfig, TlsConfig, Upstream, UpstreamProxyProtocol, UpstreamTls,
};
pub use secret::Secret;

#[cfg(test)]
mod tests;

/// For unit tests elsewhere in the crate: the required listeners and upstream (with
/// the component ports, TLS off), then `rest`.
#[cfg(test)]
pub fn for_tests(rest: &str) -> Config {
    let text = format!(
        "[listen]\nc2s = \"127.0.0.1:5222\"\ncomponent = \"127.0.0.1:5347\"\n\
[tls]\nrequired = false\n\
[upstream]\nc2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n{rest}"
    );
    Config::from_str(&text, std::path::Path::new("/tmp/proxy.toml")).expect("valid test config")
}
