//! TLS for the PostgreSQL wire port and Arrow Flight SQL: one certificate chain and key
//! (PEM files), rustls with the ring provider (the stack object_store and webhook
//! deliveries already build).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key are, and whether plaintext is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Refuse clients that do not ask for TLS (psql's `sslmode=disable`/`prefer` with
    /// no TLS offered, a Flight client over plain HTTP/2).
    pub required: bool,
}

/// The application protocols each port speaks inside TLS (ALPN): PostgreSQL 17
/// clients offer `postgresql`, gRPC clients `h2`.
pub const PG_ALPN: &[u8] = b"postgresql";
pub const GRPC_ALPN: &[u8] = b"h2";

impl TlsSettings {
    /// An acceptor for connections that will speak `alpn`.
    ///
    /// # Errors
    /// A file that cannot be read or holds no certificate or key, or a key that does
    /// not match the certificate.
    pub fn acceptor(&self, alpn: &[u8]) -> anyhow::Result<TlsAcceptor> {
        Ok(TlsAcceptor::from(self.server_config(alpn)?))
    }

    fn server_config(&self, alpn: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
        let chain = read_chain(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            anyhow::anyhow!(
                "--tls-key {}: expected a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                self.key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .with_context(|| {
                format!(
                    "--tls-cert {} and --tls-key {} do not make a usable pair",
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {}: expected PEM certificates: {e}",
                path.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "--tls-cert {}: no certificate in the file (expected PEM `BEGIN CERTIFICATE` blocks)",
            path.display()
        );
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let settings = TlsSettings {
            cert: empty.clone(),
            key: dir.path().join("missing.key"),
            required: false,
        };
        let err = settings.acceptor(PG_ALPN).err().unwrap().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no certificate"),
            "{err}"
        );
    }
}
