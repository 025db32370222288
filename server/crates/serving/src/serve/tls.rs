//! TLS for the SQL protocols, from PEM files.

use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls;

use crate::serve::TlsConfig;

/// Why the configured certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read.
    #[error("reading {path}: {source}")]
    ReadCertificate {
        /// The configured `cert` path.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The private key file could not be read.
    #[error("reading {path}: {source}")]
    ReadKey {
        /// The configured `key` path.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The certificate file is not a PEM certificate chain.
    #[error("{path}: {source}")]
    ParseCertificate {
        /// The configured `cert` path.
        path: String,
        /// What is wrong with the PEM.
        source: rustls::pki_types::pem::Error,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path}: {source}")]
    ParseKey {
        /// The configured `key` path.
        path: String,
        /// What is wrong with the PEM.
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the certificate and key (e.g. the key does not match the certificate).
    #[error("certificate {path}: {source}")]
    UnusableCertificate {
        /// The configured `cert` path.
        path: String,
        /// rustls' reason.
        source: rustls::Error,
    },
}

fn read_certificate(config: &TlsConfig) -> Result<Vec<u8>, TlsError> {
    std::fs::read(&config.cert).map_err(|source| TlsError::ReadCertificate { path: config.cert.clone(), source })
}

fn read_key(config: &TlsConfig) -> Result<Vec<u8>, TlsError> {
    std::fs::read(&config.key).map_err(|source| TlsError::ReadKey { path: config.key.clone(), source })
}

/// A TLS acceptor for the Postgres listener.
pub fn pg_acceptor(config: &TlsConfig) -> Result<pgwire::tokio::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_slice_iter(&read_certificate(config)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::ParseCertificate { path: config.cert.clone(), source })?;
    let key = PrivateKeyDer::from_pem_slice(&read_key(config)?)
        .map_err(|source| TlsError::ParseKey { path: config.key.clone(), source })?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::UnusableCertificate { path: config.cert.clone(), source })?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(server)))
}

/// TLS settings for the Flight listener.
pub fn flight_identity(config: &TlsConfig) -> Result<tonic::transport::ServerTlsConfig, TlsError> {
    let identity = tonic::transport::Identity::from_pem(read_certificate(config)?, read_key(config)?);
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let config = TlsConfig { cert: missing.clone(), key: missing.clone() };
        let Err(err) = pg_acceptor(&config) else { panic!("a missing certificate was accepted") };
        assert!(matches!(err, TlsError::ReadCertificate { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("reading {missing}: ")), "{err}");
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let config = TlsConfig { cert: cert.display().to_string(), key: missing };
        assert!(matches!(flight_identity(&config), Err(TlsError::ReadKey { .. })));
    }
}
