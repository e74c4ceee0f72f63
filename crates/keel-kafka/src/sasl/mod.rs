//! SASL on the Kafka listener: which mechanisms a listener offers ([`SaslConfig`]), the user
//! database ([`Users`], `users.rs`), PLAIN (`plain.rs`), SCRAM (`scram.rs`), and one connection's authentication
//! ([`Session`]).
//!
//! Decision table for a request on a listener with SASL, as Kafka's `SaslServerAuthenticator`:
//!
//! | state | request | answer | then |
//! |---|---|---|---|
//! | not authenticated | ApiVersions | served | — |
//! | not authenticated | SaslHandshake, offered mechanism | `NONE`, the mechanisms | handshaken |
//! | not authenticated | SaslHandshake, other mechanism | `UNSUPPORTED_SASL_MECHANISM` (33), the mechanisms | — |
//! | handshaken | SaslAuthenticate, exchange goes on | `NONE`, the server's bytes | — |
//! | handshaken | SaslAuthenticate, exchange succeeds | `NONE`, the server's last bytes | authenticated as the user |
//! | handshaken | SaslAuthenticate, exchange fails | `SASL_AUTHENTICATION_FAILED` (58) | connection closed 100 ms later (Kafka's `connection.failed.authentication.delay.ms`), audit line |
//! | not authenticated | anything else | none | connection closed, audit line |
//! | authenticated | SaslHandshake, SaslAuthenticate | `ILLEGAL_SASL_STATE` (34) | — |
//! | authenticated | anything else | served as the user | — |
//!
//! The client learns only that authentication failed, never whether the user exists; the
//! audit line (target `keel::audit`) says why, with the peer and the user named.

pub mod plain;
pub mod scram;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use scram::{ScramMechanism, ScramServer};
pub use users::{USERS_TOPIC, Users, UsersError};

/// A SASL mechanism a listener can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// SASL/PLAIN: user and password in the clear (use it over TLS only), checked against the
    /// user's SCRAM credential.
    Plain,
    /// SASL/SCRAM-SHA-256 or -512.
    Scram(ScramMechanism),
}

impl SaslMechanism {
    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }

    /// By SASL name.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        match name {
            "PLAIN" => Some(SaslMechanism::Plain),
            _ => ScramMechanism::from_name(name).map(SaslMechanism::Scram),
        }
    }
}

/// SASL on a listener: the mechanisms offered and where users live.
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// Offered mechanisms, in the order advertised.
    pub mechanisms: Vec<SaslMechanism>,
    /// The user database.
    pub users: Arc<Users>,
}

/// Who a connection is, once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A listener without SASL: every client is anonymous (Kafka's `User:ANONYMOUS`).
    Anonymous,
    /// An authenticated user (`User:<name>`).
    User(String),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Anonymous => write!(f, "User:ANONYMOUS"),
            Principal::User(name) => write!(f, "User:{name}"),
        }
    }
}

/// Kafka's `UNSUPPORTED_SASL_MECHANISM`.
pub(crate) const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// Kafka's `ILLEGAL_SASL_STATE`.
pub(crate) const ILLEGAL_SASL_STATE: i16 = 34;
/// Kafka's `SASL_AUTHENTICATION_FAILED`.
pub(crate) const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// One connection's authentication.
#[derive(Debug)]
pub(crate) struct Session {
    config: Option<SaslConfig>,
    state: State,
}

#[derive(Debug)]
enum State {
    Unauthenticated,
    Handshaken(SaslMechanism, Option<ScramServer>),
    Authenticated(Principal),
}

/// What a SASL request came to.
#[derive(Debug)]
pub(crate) enum Step {
    /// Answer with this error code (0: none) and these bytes, and go on.
    Answer { error_code: i16, bytes: Vec<u8> },
    /// Answer `SASL_AUTHENTICATION_FAILED` and close the connection.
    Failed,
}

impl Session {
    /// A session on a listener with `config` (none: no SASL, everyone anonymous).
    pub(crate) fn new(config: Option<SaslConfig>) -> Session {
        let state = match config {
            None => State::Authenticated(Principal::Anonymous),
            Some(_) => State::Unauthenticated,
        };
        Session { config, state }
    }

    /// The authenticated principal, or `None` before authentication.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        match &self.state {
            State::Authenticated(principal) => Some(principal),
            _ => None,
        }
    }

    /// The mechanisms offered, by name.
    pub(crate) fn mechanisms(&self) -> Vec<&'static str> {
        self.config
            .iter()
            .flat_map(|c| c.mechanisms.iter().map(|m| m.name()))
            .collect()
    }

    /// SaslHandshake: the error code.
    pub(crate) fn handshake(&mut self, mechanism: &str) -> i16 {
        if !matches!(self.state, State::Unauthenticated) {
            return ILLEGAL_SASL_STATE;
        }
        let offered = self.config.as_ref().and_then(|config| {
            SaslMechanism::from_name(mechanism).filter(|m| config.mechanisms.contains(m))
        });
        match offered {
            Some(mechanism) => {
                let scram = match mechanism {
                    SaslMechanism::Scram(scram) => Some(ScramServer::new(scram)),
                    SaslMechanism::Plain => None,
                };
                self.state = State::Handshaken(mechanism, scram);
                0
            }
            None => UNSUPPORTED_SASL_MECHANISM,
        }
    }

    /// SaslAuthenticate with the client's bytes.
    pub(crate) fn authenticate(&mut self, bytes: &[u8], peer: SocketAddr) -> Step {
        let State::Handshaken(mechanism, scram) = &mut self.state else {
            return Step::Answer {
                error_code: ILLEGAL_SASL_STATE,
                bytes: Vec::new(),
            };
        };
        let mechanism = *mechanism;
        let users = &self
            .config
            .as_ref()
            .expect("handshaken only with SASL")
            .users;
        let outcome = match scram {
            None => plain::authenticate(bytes, users).map(|user| (Vec::new(), Some(user))),
            Some(scram) => scram
                .step(bytes, |user| {
                    let SaslMechanism::Scram(m) = mechanism else {
                        return None;
                    };
                    users.credential(user, m)
                })
                .map_err(|error| error.to_string()),
        };
        match outcome {
            Ok((bytes, Some(user))) => {
                tracing::info!(target: "keel::audit", event = "authenticated", %peer, mechanism = mechanism.name(), principal = %Principal::User(user.clone()), "SASL authentication succeeded");
                self.state = State::Authenticated(Principal::User(user));
                Step::Answer {
                    error_code: 0,
                    bytes,
                }
            }
            Ok((bytes, None)) => Step::Answer {
                error_code: 0,
                bytes,
            },
            Err(reason) => {
                tracing::warn!(target: "keel::audit", event = "authentication_failed", %peer, mechanism = mechanism.name(), reason, "SASL authentication failed");
                self.state = State::Unauthenticated;
                Step::Failed
            }
        }
    }
}
