//! A certificate for tests of TLS listeners (feature `testing`, for dev-dependencies only):
//! self-signed, made by the `openssl` command, valid for `localhost` and `127.0.0.1`, so
//! clients nobody here wrote (curl, kcat, librdkafka, Python's and Java's TLS) trust it as
//! their CA file.
//!
//! Not here: loading certificates (`tls.rs`), or anything a running server does.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tls::TlsIdentity;

/// A fresh P-256 key and its self-signed certificate, written to `cert.pem` and `key.pem`
/// in `dir`: the identity for a listener, and the certificate's path for its clients.
/// Panics when the openssl command is missing or fails (a test cannot go on without it).
pub fn self_signed(dir: &Path) -> (TlsIdentity, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command runs");
    assert!(
        made.status.success(),
        "openssl could not make the test certificate: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let identity = TlsIdentity {
        cert_pem: std::fs::read(&cert).expect("the certificate openssl wrote"),
        key_pem: std::fs::read(&key).expect("the key openssl wrote"),
    };
    (identity, cert)
}
