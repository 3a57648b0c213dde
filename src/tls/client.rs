//! TLS toward the legacy server (`upstream.tls = starttls | direct`): certificates are
//! verified against `upstream.ca_file` or the system roots.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{certificates, provider, TlsError};
use crate::config::Upstream;

#[derive(Clone)]
pub struct UpstreamConnector {
    connector: TlsConnector,
    server_name: Option<String>,
}

impl UpstreamConnector {
    pub fn new(cfg: &Upstream) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &cfg.ca_file {
            Some(path) => {
                for cert in certificates(path)? {
                    roots.add(cert)?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A single unparsable system root must not disable the others.
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(UpstreamConnector {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: cfg.server_name.clone(),
        })
    }

    /// Performs the handshake, verifying the certificate for `upstream.server_name` or
    /// else the XMPP domain the client asked for.
    pub async fn connect(
        &self,
        domain: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = self.server_name.as_deref().unwrap_or(domain).to_owned();
        let name = ServerName::try_from(name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.connector.connect(name, tcp).await
    }
}
