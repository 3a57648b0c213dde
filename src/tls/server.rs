//! The certificate the proxy presents to clients. Swapped atomically on config reload so
//! new connections get the new certificate while established ones keep theirs.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_rustls::TlsAcceptor;

use super::{certificates, provider, read, TlsError};
use crate::config::TlsConfig;

/// Holder of the current acceptor; `None` when no certificate is configured.
#[derive(Default)]
pub struct ServerTls {
    acceptor: ArcSwapOption<TlsAcceptor>,
}

impl ServerTls {
    /// Loads the certificate named by `cfg` (absent cert/key: TLS is not offered).
    pub fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let tls = ServerTls::default();
        tls.reload(cfg)?;
        Ok(tls)
    }

    /// Rebuilds the acceptor from the files; on error the previous one stays.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), TlsError> {
        let acceptor = match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => Some(Arc::new(build(cert, key)?)),
            _ => None,
        };
        self.acceptor.store(acceptor);
        Ok(())
    }

    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }
}

fn build(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = certificates(cert)?;
    let key_pem = read(key)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Pem {
            path: key.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: key.to_path_buf(),
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // XEP-0368 clients negotiate ALPN "xmpp-client"; STARTTLS clients send none.
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    // Idle sessions dominate a proxy's memory: keep rustls from holding resumption state.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(TlsAcceptor::from(Arc::new(config)))
}
