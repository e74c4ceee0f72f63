//! Fuzz target: the SASL and TLS-adjacent decoders never panic on any bytes — a SCRAM
//! exchange (client-first then client-final, for a user that exists, both mechanisms), a
//! SASL/PLAIN message, and the PEM certificate and key parsing of the TLS identity. Nothing a
//! client or a config file sends may crash the broker; a refusal is an error value.
#![no_main]

use std::sync::OnceLock;

use keel_kafka::sasl::plain;
use keel_kafka::sasl::scram::{ScramCredential, ScramMechanism, ScramServer};
use keel_listener::tls::TlsIdentity;
use libfuzzer_sys::fuzz_target;

fn credentials() -> &'static [ScramCredential; 2] {
    static CREDENTIALS: OnceLock<[ScramCredential; 2]> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        ScramMechanism::ALL
            .map(|m| ScramCredential::with_salt(m, "pencil", b"fixed salt".to_vec(), 4096).unwrap())
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The low two bits pick the decoder, the rest where the input splits in two.
    let split = usize::from(selector >> 2).min(rest.len());
    let (first, second) = rest.split_at(split);
    match selector & 3 {
        0 | 3 => {
            for credential in credentials() {
                let mut server = ScramServer::new(credential.mechanism);
                let lookup = |user: &str| (user == "alice").then(|| credential.clone());
                if server.step(first, lookup).is_ok() {
                    let _ = server.step(second, lookup);
                }
            }
        }
        1 => {
            let identity = TlsIdentity {
                cert_pem: first.to_vec(),
                key_pem: second.to_vec(),
            };
            let _ = identity.server_config();
        }
        _ => {
            if let Ok(message) = plain::parse(rest) {
                // What the parser accepts has a user and an authorization id that is
                // empty or that user.
                assert!(!message.user.is_empty());
                assert!(message.authzid.is_empty() || message.authzid == message.user);
                if let Some(credential) = credentials().first() {
                    let _ = credential.matches_password(message.password);
                }
            }
        }
    }
});
