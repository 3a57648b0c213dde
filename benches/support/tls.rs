//! TLS for the benches: a self-signed certificate for [`DOMAIN`](super::DOMAIN) written
//! to PEM files for stanzagate, and a client connector that trusts exactly it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// The PEM files stanzagate is given, and the certificate clients trust.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

/// Generates a self-signed certificate for the bench domain (rcgen's default key, ECDSA
/// P-256) and writes `cert.pem` and `key.pem` into `dir`.
pub fn self_signed(dir: &Path) -> SelfSigned {
    let certified = rcgen::generate_simple_self_signed(vec![super::DOMAIN.to_owned()])
        .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key.pem");
    SelfSigned {
        cert,
        key,
        der: certified.cert.der().clone(),
    }
}

/// A client connector (ring provider, ALPN `xmpp-client`) trusting only `cert`. With
/// `resumption` off every connection makes a full handshake, whatever the server does.
pub fn connector(cert: CertificateDer<'static>, resumption: bool) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the bench certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    TlsConnector::from(Arc::new(config))
}

/// The name clients ask for in SNI and verify the certificate against.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(super::DOMAIN).expect("server name")
}

/// The first flight of a TLS client (its ClientHello record), as bytes to dribble onto
/// a socket by hand.
pub fn client_hello(cert: CertificateDer<'static>) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust the bench certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), server_name())
        .expect("TLS client connection");
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection
            .write_tls(&mut hello)
            .expect("write the ClientHello into memory");
    }
    hello
}
