//! What every connection handler needs from the running proxy: the live config, TLS
//! material and the registries of sessions. Built once in `main`, passed as `Arc`.

use std::sync::Arc;

use crate::c2s::stream_mgmt::ResumeStore;
use crate::c2s::SessionRegistry;
use crate::component::ComponentRegistry;
use crate::config::ConfigHandle;
use crate::roster::RosterService;
use crate::router::delegation::Delegations;
use crate::router::privilege::Privilege;
use crate::tls::{ServerTls, TlsError, UpstreamConnector};

pub struct Shared {
    pub config: Arc<ConfigHandle>,
    pub server_tls: ServerTls,
    /// Present when `upstream.tls` is not `none`.
    pub upstream_tls: arc_swap::ArcSwapOption<UpstreamConnector>,
    pub resume: ResumeStore,
    pub sessions: SessionRegistry,
    pub components: ComponentRegistry,
    pub delegation: Delegations,
    pub privilege: Privilege,
    pub roster: RosterService,
}

impl Shared {
    pub fn new(config: Arc<ConfigHandle>) -> Result<Arc<Self>, TlsError> {
        let current = config.current();
        let shared = Shared {
            server_tls: ServerTls::new(&current.tls)?,
            upstream_tls: arc_swap::ArcSwapOption::empty(),
            resume: ResumeStore::default(),
            sessions: SessionRegistry::default(),
            components: ComponentRegistry::default(),
            delegation: Delegations::default(),
            privilege: Privilege::default(),
            roster: RosterService::default(),
            config,
        };
        shared.reload_upstream_tls(&current.upstream)?;
        Ok(Arc::new(shared))
    }

    /// Rebuilds TLS material after a config reload; errors leave the old material.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        let current = self.config.current();
        self.server_tls.reload(&current.tls)?;
        self.reload_upstream_tls(&current.upstream)
    }

    fn reload_upstream_tls(&self, upstream: &crate::config::Upstream) -> Result<(), TlsError> {
        let connector = match upstream.tls {
            crate::config::UpstreamTls::None => None,
            _ => Some(Arc::new(UpstreamConnector::new(upstream)?)),
        };
        self.upstream_tls.store(connector);
        Ok(())
    }
}
