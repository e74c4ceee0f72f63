//! TLS for every listener of `keel serve` (Kafka's `SSL` and `SASL_SSL`, HTTPS for the API,
//! the console and the schema registry) on rustls with the `ring` provider — never aws-lc,
//! whose C build this project keeps out.
//!
//! [`TlsIdentity`] is a listener's certificate chain and private key as PEM bytes (the
//! binary reads the files; this crate reads no files). Client certificates are not asked for:
//! clients authenticate with SASL or a token over the encrypted connection.
//! [`opening`] tells a TLS client from a plaintext one before the handshake, so a listener
//! can answer the plaintext one in words it understands, or name it in its log;
//! [`is_handshake_record`] recognizes a TLS client on a plaintext listener.
//!
//! The listener, not the client, picks the cipher suite ([`CIPHER_SUITES`]): OpenSSL and Java
//! clients list AES-256-GCM first, which costs a server with AES-NI more than AES-128-GCM for
//! no protection a Kafka deployment needs.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as suite;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// The cipher suites every listener accepts, in the order it chooses them whatever the client
/// prefers: ring's suites (every one a Kafka client offers), AES-128-GCM before AES-256-GCM
/// before ChaCha20-Poly1305 in each TLS version. AES-128 runs 10 rounds per block where AES-256
/// runs 14; under `SASL_SSL` the server decrypts every produced byte (BENCHMARKS.md, "Where
/// the cost of `SASL_SSL` goes"). ChaCha20 stays last: it is for clients without AES hardware,
/// and rustls cannot tell those apart.
pub const CIPHER_SUITES: [SupportedCipherSuite; 9] = [
    suite::TLS13_AES_128_GCM_SHA256,
    suite::TLS13_AES_256_GCM_SHA384,
    suite::TLS13_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

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
    /// The rustls server configuration for this identity, TLS 1.2 and 1.3 on `ring`, choosing
    /// among [`CIPHER_SUITES`] in their order.
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
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: CIPHER_SUITES.to_vec(),
            ..rustls::crypto::ring::default_provider()
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The first byte of a record's protocol version: 3 for SSL 3.0 and every TLS version.
const RECORD_VERSION_MAJOR: u8 = 3;

/// How a connection opens, from its first bytes, before anything is read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A TLS handshake record: a TLS client.
    Handshake,
    /// Bytes that are not a TLS handshake: a client speaking the listener's protocol in the
    /// clear. Up to [`OPENING_PEEK_BYTES`] of them, so the listener can name what it got.
    Plaintext {
        /// The first bytes, as peeked.
        bytes: [u8; OPENING_PEEK_BYTES],
        /// How many of `bytes` arrived.
        len: usize,
    },
    /// The client closed without sending anything.
    Closed,
}

/// How many first bytes [`opening`] looks at: a Kafka frame's length prefix and the request
/// header's api key and version.
pub const OPENING_PEEK_BYTES: usize = 8;

/// Waits for the client's first bytes without consuming them and says how the connection
/// opens. One peek: `Plaintext` may hold fewer than [`OPENING_PEEK_BYTES`] bytes.
///
/// Cancel safety: safe; peeking takes nothing from the socket.
pub async fn opening(stream: &TcpStream) -> std::io::Result<Opening> {
    let mut bytes = [0u8; OPENING_PEEK_BYTES];
    let len = stream.peek(&mut bytes).await?;
    Ok(match len {
        0 => Opening::Closed,
        _ if bytes[0] == HANDSHAKE_RECORD => Opening::Handshake,
        len => Opening::Plaintext { bytes, len },
    })
}

/// Whether `bytes` (at least 2 of them) open a TLS handshake record — a TLS client's first
/// bytes, read by a listener that expected plaintext (a Kafka length prefix of `0x1603....`
/// would announce a frame of over 369 MB, beyond any `request_bytes_max`).
pub fn is_handshake_record(bytes: &[u8]) -> bool {
    matches!(bytes, [HANDSHAKE_RECORD, RECORD_VERSION_MAJOR, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_a_handshake_record_and_a_kafka_frame_is_not() {
        // The record header rustls and OpenSSL send first: handshake, TLS 1.0 record version.
        assert!(is_handshake_record(&[0x16, 0x03, 0x01, 0x00, 0xc8]));
        // An ApiVersions request's length prefix.
        assert!(!is_handshake_record(&[0, 0, 0, 12]));
        assert!(!is_handshake_record(&[0x16]));
    }

    /// How a connection that sent `sent`, then closed its side, opens.
    async fn opened(sent: &[u8]) -> Opening {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(sent).await.unwrap();
        client.shutdown().await.unwrap();
        opening(&server).await.unwrap()
    }

    /// The suite a listener picks for a ClientHello offering `offered` over `version`.
    fn chosen(
        server: &Arc<rustls::ServerConfig>,
        version: &'static rustls::SupportedProtocolVersion,
        offered: &[SupportedCipherSuite],
    ) -> rustls::CipherSuite {
        #[allow(deprecated)] // the ring provider: see server_config
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: offered.to_vec(),
            ..rustls::crypto::ring::default_provider()
        };
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        let mut server = rustls::ServerConnection::new(server.clone()).unwrap();
        server.read_tls(&mut hello.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        server.negotiated_cipher_suite().unwrap().suite()
    }

    #[test]
    fn the_listener_picks_aes_128_gcm_whatever_the_client_prefers() {
        use rustls::version::{TLS12, TLS13};
        let dir = std::env::temp_dir().join(format!("keel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (identity, _) = crate::testing::self_signed(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let server = identity.server_config().unwrap();
        let [aes128, aes256, chacha] = [
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        let [ecdsa_aes128, ecdsa_aes256] = [
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ];
        // (version, the client's suites in its order of preference, the listener's choice)
        let cases = [
            (&TLS13, vec![aes256, aes128], aes128),
            (&TLS13, vec![chacha, aes256], aes256),
            (&TLS13, vec![chacha], chacha),
            (&TLS12, vec![ecdsa_aes256, ecdsa_aes128], ecdsa_aes128),
        ];
        for (version, offered, expected) in cases {
            let picked = chosen(&server, version, &offered);
            assert_eq!(picked, expected.suite(), "{offered:?}");
        }
    }

    #[tokio::test]
    async fn opening_tells_a_handshake_from_plaintext_and_from_nothing() {
        assert_eq!(opened(&[0x16, 0x03, 0x01]).await, Opening::Handshake);
        let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0];
        match opened(&request).await {
            Opening::Plaintext { bytes, len } => {
                assert!((1..=OPENING_PEEK_BYTES).contains(&len));
                assert_eq!(bytes[..len], request[..len]);
            }
            other => panic!("a Kafka request opened as {other:?}"),
        }
        assert_eq!(opened(&[]).await, Opening::Closed);
    }
}
