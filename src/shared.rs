//! The composition root: what connection handlers (client, component and admin
//! listeners) need from the running proxy. Built once in `main`, passed as `Arc`.
//! Features (delegation, privileges, web-app rosters) never see this struct: each gets
//! the narrow handles it needs (the hub, the config) when it is built here.

use std::sync::Arc;

use crate::config::ConfigHandle;
use crate::hub::Hub;
use crate::net::Admission;
use crate::roster::RosterService;
use crate::router::delegation::Delegations;
use crate::router::privilege::Privilege;
use crate::store::Store;
use crate::tls::{ServerTls, TlsError, UpstreamConnector};

pub struct Shared {
    pub config: Arc<ConfigHandle>,
    pub server_tls: ServerTls,
    /// Present when `upstream.tls` is not `none`.
    pub upstream_tls: arc_swap::ArcSwapOption<UpstreamConnector>,
    pub hub: Arc<Hub>,
    pub delegation: Arc<Delegations>,
    pub privilege: Arc<Privilege>,
    pub roster: Arc<RosterService>,
    /// Per-address limits on the client listeners.
    pub admission: Admission,
    /// Operations queued for offline users, applied at their next login.
    pub store: Arc<dyn Store>,
}

impl Shared {
    pub fn new(config: Arc<ConfigHandle>, store: Arc<dyn Store>) -> Result<Arc<Self>, TlsError> {
        let current = config.current();
        let hub = Arc::new(Hub::default());
        let roster = Arc::new(RosterService::new(hub.clone(), config.clone()));
        let delegation = Arc::new(Delegations::new(hub.clone(), config.clone()));
        let shared = Shared {
            server_tls: ServerTls::new(&current)?,
            upstream_tls: arc_swap::ArcSwapOption::empty(),
            privilege: Arc::new(Privilege::new(
                hub.clone(),
                config.clone(),
                roster.clone(),
                store.clone(),
                delegation.clone(),
            )),
            delegation,
            store,
            roster,
            hub,
            config,
            admission: Admission::default(),
        };
        shared.reload_upstream_tls(&current.upstream)?;
        Ok(Arc::new(shared))
    }

    /// Rebuilds TLS material after a config reload; errors leave the old material.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        let current = self.config.current();
        self.server_tls.reload(&current)?;
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
