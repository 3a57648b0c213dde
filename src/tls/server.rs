//! The certificates the proxy presents to clients: a served domain's own
//! (`[hosts."D".tls]`, chosen by the SNI name the client asks for) or `[tls]`'s. Swapped
//! atomically on config reload so new connections get the new certificates while
//! established ones keep theirs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::{certificates, provider, read, TlsError};
use crate::config::Config;

/// Holder of the current acceptor; `None` when no certificate is configured.
#[derive(Default)]
pub struct ServerTls {
    acceptor: ArcSwapOption<TlsAcceptor>,
    /// The same certificates for secure WebSockets, negotiating ALPN `http/1.1`.
    web: ArcSwapOption<TlsAcceptor>,
}

impl ServerTls {
    /// Loads the certificates `cfg` names (none at all: TLS is not offered).
    pub fn new(cfg: &Config) -> Result<Self, TlsError> {
        let tls = ServerTls::default();
        tls.reload(cfg)?;
        Ok(tls)
    }

    /// Rebuilds the acceptor from the files; on error the previous one stays.
    pub fn reload(&self, cfg: &Config) -> Result<(), TlsError> {
        let default = match (&cfg.tls.cert, &cfg.tls.key) {
            (Some(cert), Some(key)) => Some(certified(cert, key)?),
            _ => None,
        };
        let mut by_name = HashMap::new();
        for (domain, host) in &cfg.hosts {
            if let Some(tls) = &host.tls {
                by_name.insert(domain.to_ascii_lowercase(), certified(&tls.cert, &tls.key)?);
            }
        }
        if default.is_none() && by_name.is_empty() {
            self.acceptor.store(None);
            self.web.store(None);
            return Ok(());
        }
        let resolver = Arc::new(SniResolver { by_name, default });
        // XEP-0368 clients negotiate ALPN "xmpp-client"; STARTTLS clients send none.
        let xmpp = acceptor(resolver.clone(), b"xmpp-client")?;
        // Browsers offer "h2" and "http/1.1"; WebSocket upgrades need HTTP/1.1.
        let web = acceptor(resolver, b"http/1.1")?;
        self.acceptor.store(Some(Arc::new(xmpp)));
        self.web.store(Some(Arc::new(web)));
        Ok(())
    }

    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }

    /// For `listen.websocket_tls`.
    pub fn web_acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.web.load_full()
    }
}

/// Picks a certificate by the name the client asked for (SNI), else `[tls]`'s.
#[derive(Debug)]
struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

fn acceptor(resolver: Arc<SniResolver>, alpn: &[u8]) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![alpn.to_vec()];
    // Idle sessions dominate a proxy's memory: keep rustls from holding resumption state.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A certificate chain and its private key, ready to sign handshakes.
fn certified(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
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
    let signing = provider().key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}
