//! Test certificates: one CA per test, leaf certificates for `localhost` signed by it,
//! written as PEM files the proxy and the clients read.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub struct Certs {
    ca_key: KeyPair,
    ca: rcgen::Certificate,
    pub ca_pem: PathBuf,
    pub dir: PathBuf,
}

/// One leaf certificate on disk.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

impl Certs {
    pub fn new(dir: &Path) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "stanzagate test CA");
        let ca = params.self_signed(&ca_key).expect("CA cert");
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write CA");
        Certs {
            ca_key,
            ca,
            ca_pem,
            dir: dir.to_path_buf(),
        }
    }

    /// A fresh leaf for `localhost`; `label` distinguishes files and the subject CN.
    pub fn leaf(&self, label: &str) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("stanzagate {label}"));
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign leaf");
        let cert_path = self.dir.join(format!("{label}.crt"));
        let key_path = self.dir.join(format!("{label}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Leaf {
            cert: cert_path,
            key: key_path,
            der: cert.der().to_vec(),
        }
    }

    /// Root store trusting only this CA (for raw TLS clients).
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("add CA");
        roots
    }
}

/// A TLS client trusting `roots` that offers `alpn`, for connecting to "localhost".
pub fn connector(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}
