//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as a Kafka broker runs them, and the
//! salted credentials they check, stored as Kafka stores them: salt, iteration count, stored
//! key and server key — never the password.
//!
//! The server side of one exchange is [`ScramServer`]: client-first → server-first,
//! client-final → server-final or a refusal. No I/O; the fuzz target drives it with arbitrary
//! bytes. Channel binding is not offered (gs2 header `n,,` or `y,,`), as in Kafka.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

/// Iterations for new credentials: Kafka's minimum and its tools' default.
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;
/// Fewest iterations accepted (Kafka refuses fewer).
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
/// Most iterations accepted: each authentication costs this many HMACs.
pub const SCRAM_ITERATIONS_MAX: u32 = 16384;
/// Bytes of random salt for new credentials.
const SALT_BYTES: usize = 32;
/// Longest SCRAM message accepted: names and nonces are short.
const MESSAGE_BYTES_MAX: usize = 4096;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (Kafka's mechanism type 1).
    Sha256,
    /// SCRAM-SHA-512 (Kafka's mechanism type 2).
    Sha512,
}

impl ScramMechanism {
    /// Both, in Kafka's order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// By SASL name.
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's wire number (DescribeUserScramCredentials, AlterUserScramCredentials).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// By Kafka's wire number.
    pub fn from_kafka_type(value: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == value)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest().output_len()
    }
}

/// What a server keeps of a password for one mechanism (RFC 5802 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The mechanism.
    pub mechanism: ScramMechanism,
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Why a credential could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The iteration count is outside the accepted range.
    #[error("{0} iterations is outside {SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX}")]
    Iterations(u32),
    /// The salt or salted password has the wrong shape.
    #[error("{0}")]
    Invalid(&'static str),
    /// The system's random generator failed.
    #[error("no random salt available")]
    Random,
}

impl ScramCredential {
    /// A new credential for `password` with a random salt.
    pub fn new(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let mut salt = vec![0u8; SALT_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| CredentialError::Random)?;
        ScramCredential::with_salt(mechanism, password, salt, iterations)
    }

    /// The credential for `password` with a given salt (for tests and for checking PLAIN).
    pub fn with_salt(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let salted = salted_password(mechanism, password, &salt, iterations)?;
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from a salted password (what AlterUserScramCredentials carries: the
    /// client salts, the broker never sees the password).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
            return Err(CredentialError::Iterations(iterations));
        }
        if salt.is_empty() || salted_password.len() != mechanism.output_len() {
            return Err(CredentialError::Invalid(
                "empty salt or salted password of the wrong length",
            ));
        }
        let key = hmac::Key::new(mechanism.hmac(), salted_password);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), client_key.as_ref());
        let server_key = hmac::sign(&key, b"Server Key");
        Ok(ScramCredential {
            mechanism,
            salt,
            iterations,
            stored_key: stored_key.as_ref().to_vec(),
            server_key: server_key.as_ref().to_vec(),
        })
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checks
    /// passwords against the SCRAM credentials: one user database for both).
    pub fn matches_password(&self, password: &str) -> bool {
        ScramCredential::with_salt(self.mechanism, password, self.salt.clone(), self.iterations)
            .is_ok_and(|other| same_secret(&other.stored_key, &self.stored_key))
    }
}

fn salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, CredentialError> {
    let rounds = std::num::NonZeroU32::new(iterations).ok_or(CredentialError::Iterations(0))?;
    if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
        return Err(CredentialError::Iterations(iterations));
    }
    let mut out = vec![0u8; mechanism.output_len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        rounds,
        salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(out)
}

/// Why an exchange failed. The message goes to the audit log; the client gets only Kafka's
/// `SASL_AUTHENTICATION_FAILED` and a generic text, so it cannot tell a wrong user from a
/// wrong password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// A message does not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The user has no credential for this mechanism.
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    /// The proof does not match the stored key.
    #[error("wrong password for '{0}'")]
    WrongProof(String),
    /// A message arrived after the exchange finished or failed.
    #[error("SCRAM exchange already finished")]
    Finished,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    SentFirst {
        user: String,
        credential: ScramCredential,
        nonce: String,
        gs2_header: String,
        /// client-first-bare "," server-first, the start of the AuthMessage.
        auth_start: String,
    },
    Done,
}

impl ScramServer {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::Start,
        }
    }

    /// Handles the client's next message: the server-first message after client-first, then
    /// the server-final message and the authenticated user after client-final. `lookup`
    /// finds a user's credential for this mechanism.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl Fn(&str) -> Option<ScramCredential>,
    ) -> Result<(Vec<u8>, Option<String>), ScramError> {
        if message.len() > MESSAGE_BYTES_MAX {
            self.state = State::Done;
            return Err(ScramError::Malformed("message too long"));
        }
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.client_first(message, lookup).map(|out| (out, None)),
            State::SentFirst {
                user,
                credential,
                nonce,
                gs2_header,
                auth_start,
            } => {
                let out = client_final(
                    message,
                    &credential,
                    &nonce,
                    &gs2_header,
                    &auth_start,
                    &user,
                )?;
                Ok((out, Some(user)))
            }
            State::Done => Err(ScramError::Finished),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        lookup: impl Fn(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        // gs2-header: ("n" | "y") "," [authzid] ","; "p=" (channel binding) is not offered.
        let (cbind, rest) = message
            .split_once(',')
            .ok_or(ScramError::Malformed("no gs2 header"))?;
        if cbind != "n" && cbind != "y" {
            return Err(ScramError::Malformed("channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no gs2 header"))?;
        let gs2_header = format!("{cbind},{authzid},");
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", value)) => user = Some(sasl_name(value)?),
                Some(("r", value)) if !value.is_empty() => client_nonce = Some(value),
                Some(("m", _)) => return Err(ScramError::Malformed("mandatory extension")),
                // Kafka's extensions (tokenauth=...) are not honoured; others are ignored.
                Some(("tokenauth", _)) => {
                    return Err(ScramError::Malformed("delegation tokens are not supported"));
                }
                _ => {}
            }
        }
        let user = user.ok_or(ScramError::Malformed("no user name"))?;
        if let Some(authzid) = authzid.strip_prefix("a=")
            && sasl_name(authzid)? != user
        {
            return Err(ScramError::Malformed(
                "authorization id differs from the user",
            ));
        }
        let client_nonce = client_nonce.ok_or(ScramError::Malformed("no nonce"))?;
        if client_nonce
            .bytes()
            .any(|b| !(0x21..=0x7e).contains(&b) || b == b',')
        {
            return Err(ScramError::Malformed("nonce is not printable"));
        }
        let credential = lookup(&user)
            .filter(|c| c.mechanism == self.mechanism)
            .ok_or_else(|| ScramError::UnknownUser(user.clone()))?;
        let mut random = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| ScramError::Malformed("no random nonce"))?;
        let nonce = format!("{client_nonce}{}", BASE64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::SentFirst {
            user,
            credential,
            nonce,
            gs2_header,
            auth_start: format!("{bare},{server_first}"),
        };
        Ok(server_first.into_bytes())
    }
}

fn client_final(
    message: &str,
    credential: &ScramCredential,
    nonce: &str,
    gs2_header: &str,
    auth_start: &str,
    user: &str,
) -> Result<Vec<u8>, ScramError> {
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no proof"))?;
    let mut binding = None;
    let mut final_nonce = None;
    for attribute in without_proof.split(',') {
        match attribute.split_once('=') {
            Some(("c", value)) => binding = Some(value),
            Some(("r", value)) => final_nonce = Some(value),
            _ => {}
        }
    }
    if binding != Some(BASE64.encode(gs2_header).as_str()) {
        return Err(ScramError::Malformed(
            "channel binding differs from the gs2 header",
        ));
    }
    // Kafka's ScramSaslServer accepts a final nonce that ends with the server's, and
    // librdkafka before 2.2 (Debian's kcat) relies on it: it sends its own nonce again in
    // front of the server's (which already starts with it). The server's nonce, and so the
    // exchange's freshness, is still all there; the proof covers the message as sent.
    if !final_nonce.is_some_and(|sent| sent.ends_with(nonce)) {
        return Err(ScramError::Malformed("nonce differs"));
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("proof is not base64"))?;
    let mechanism = credential.mechanism;
    let auth_message = format!("{auth_start},{without_proof}");
    let stored = hmac::Key::new(mechanism.hmac(), &credential.stored_key);
    let signature = hmac::sign(&stored, auth_message.as_bytes());
    if proof.len() != signature.as_ref().len() {
        return Err(ScramError::WrongProof(user.to_string()));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(signature.as_ref())
        .map(|(p, s)| p ^ s)
        .collect();
    let computed = digest::digest(mechanism.digest(), &client_key);
    if !same_secret(computed.as_ref(), &credential.stored_key) {
        return Err(ScramError::WrongProof(user.to_string()));
    }
    let server = hmac::Key::new(mechanism.hmac(), &credential.server_key);
    let server_signature = hmac::sign(&server, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature.as_ref())).into_bytes())
}

/// Compares two keys in time independent of where they differ, so timing tells an attacker
/// nothing about how close a guess was.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Decodes a saslname (`=2C` is ',', `=3D` is '='; any other '=' is malformed).
fn sasl_name(value: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in a name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty name"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, as RFC 5802 describes it, to drive the server.
    fn client_final_for(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let fields: std::collections::HashMap<&str, &str> = server_first
            .split(',')
            .filter_map(|f| f.split_once('='))
            .collect();
        let salt = BASE64.decode(fields["s"]).unwrap();
        let iterations: u32 = fields["i"].parse().unwrap();
        let salted = salted_password(mechanism, password, &salt, iterations).unwrap();
        let key = hmac::Key::new(mechanism.hmac(), &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), client_key.as_ref());
        let without_proof = format!("c={},r={}", BASE64.encode("n,,"), fields["r"]);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac::sign(
            &hmac::Key::new(mechanism.hmac(), stored_key.as_ref()),
            auth.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", BASE64.encode(proof))
    }

    fn exchange(
        mechanism: ScramMechanism,
        stored: &str,
        tried: &str,
    ) -> Result<String, ScramError> {
        let credential = ScramCredential::new(mechanism, stored, 4096).unwrap();
        let lookup = |user: &str| (user == "alice").then(|| credential.clone());
        let mut server = ScramServer::new(mechanism);
        let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
        let (first, _) = server.step(format!("n,,{bare}").as_bytes(), lookup)?;
        let first = String::from_utf8(first).unwrap();
        let last = client_final_for(mechanism, tried, bare, &first);
        let (server_final, user) = server.step(last.as_bytes(), lookup)?;
        assert!(server_final.starts_with(b"v="));
        Ok(user.unwrap())
    }

    #[test]
    fn the_right_password_authenticates_and_a_wrong_one_does_not() {
        for mechanism in ScramMechanism::ALL {
            assert_eq!(exchange(mechanism, "s3cret", "s3cret").unwrap(), "alice");
            assert!(matches!(
                exchange(mechanism, "s3cret", "guess"),
                Err(ScramError::WrongProof(_))
            ));
        }
    }

    #[test]
    fn plain_passwords_are_checked_against_the_scram_credential() {
        let credential = ScramCredential::new(ScramMechanism::Sha512, "pw", 4096).unwrap();
        assert!(credential.matches_password("pw"));
        assert!(!credential.matches_password("pW"));
    }

    #[test]
    fn malformed_first_messages_are_refused_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "gs2"),
            (b"p=tls-unique,,n=a,r=x", "channel binding"),
            (b"n,,r=abc", "no user"),
            (b"n,,n=a", "no nonce"),
            (b"n,,n=a=,r=x", "escape"),
            (b"n,a=bob,n=alice,r=x", "authorization id"),
            (b"n,,n=a,r=x,tokenauth=true", "delegation"),
            (&[0xff, 0xfe], "UTF-8"),
        ];
        for (message, reason) in cases {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            let error = server.step(message, |_| None).unwrap_err().to_string();
            assert!(error.contains(reason), "{message:?}: {error}");
        }
    }
}
