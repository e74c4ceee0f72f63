//! TLS for every listener of `keel serve` (Kafka's `SSL` and `SASL_SSL`, HTTPS for the API,
//! the console and the schema registry) on rustls with the `ring` provider — never aws-lc,
//! whose C build this project keeps out.
//!
//! [`TlsIdentity`] is a listener's certificate chain and private key as PEM bytes (the
//! binary reads the files; this crate reads no files). Client certificates are not asked for:
//! clients authenticate with SASL or a token over the encrypted connection.
//! [`starts_with_handshake`] tells a TLS client from a plaintext one before the handshake,
//! so a listener can answer the plaintext one in words it understands.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// A certificate chain and its private key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (PEM `CERTIFICATE` blocks).
    pub cert_pem: Vec<u8>,
    /// The private key (PEM PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

/// Why a TLS identity cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// No certificate in the certificate PEM.
    #[error("no certificate found in the certificate file")]
    NoCertificate,
    /// The PEM does not parse.
    #[error("{what} does not parse as PEM: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsIdentity {
    /// The rustls server configuration for this identity, TLS 1.2 and 1.3 on `ring`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "the certificate file",
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| TlsError::Pem {
            what: "the key file",
            reason: e.to_string(),
        })?;
        // rustls 0.23.48 deprecates the ring provider because it has no post-quantum key
        // exchange; the alternative is aws-lc, whose C build this project keeps out
        // (DEPENDENCIES.md). Classical X25519/ECDHE is what Kafka clients offer today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        Ok(Arc::new(config))
    }
}

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 0x16;

/// Waits for the client's first byte without consuming it and says whether it opens a TLS
/// handshake; `false` also for a client that closed without sending anything.
///
/// Cancel safety: safe; peeking takes nothing from the socket.
pub async fn starts_with_handshake(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let read = stream.peek(&mut first).await?;
    Ok(read == 1 && first[0] == HANDSHAKE_RECORD)
}
