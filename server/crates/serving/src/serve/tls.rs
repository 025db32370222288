//! TLS for the SQL protocols, from PEM files.

use std::sync::Arc;

use crate::serve::TlsConfig;

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))
}

/// A TLS acceptor for the Postgres listener.
pub fn pg_acceptor(config: &TlsConfig) -> Result<pgwire::tokio::TlsAcceptor, String> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_slice_iter(&read(&config.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", config.cert))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&config.key)?).map_err(|e| format!("{}: {e}", config.key))?;
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {}: {e}", config.cert))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(server)))
}

/// TLS settings for the Flight listener.
pub fn flight_identity(config: &TlsConfig) -> Result<tonic::transport::ServerTlsConfig, String> {
    let identity = tonic::transport::Identity::from_pem(read(&config.cert)?, read(&config.key)?);
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}
