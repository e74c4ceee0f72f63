//! [`Users`]: the SASL user database, its SCRAM credentials kept in the internal compacted
//! topic [`USERS_TOPIC`] (one partition, `fsync = always`) and in memory.
//!
//! One record per user: the key is the user name, the value JSON with one entry per
//! mechanism (`{"SCRAM-SHA-512":{"salt":…,"iterations":4096,"stored_key":…,"server_key":…}}`,
//! bytes in base64), a tombstone when the user has none left. A change is appended (and
//! fsynced) before memory changes, under one lock, as the schema registry does. Passwords are
//! never stored; SASL/PLAIN checks a password against the SCRAM credential.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use keel_log::{Log, NewRecord, Partition};
use serde::{Deserialize, Serialize};

use crate::sasl::scram::{ScramCredential, ScramMechanism};

/// The internal topic holding the users. Its `__` prefix keeps every Kafka client out.
pub const USERS_TOPIC: &str = "__keel_users";
/// Most users a server keeps.
pub const USERS_MAX: usize = 10_000;
/// Longest user name (Kafka's principal names are short; the bound keeps records small).
pub const USER_NAME_BYTES_MAX: usize = 256;
/// Bytes read per call while replaying the topic.
const REPLAY_CHUNK_BYTES: usize = 1024 * 1024;

/// Why the user database could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// The users topic could not be created, read or appended to.
    #[error("users topic {USERS_TOPIC}: {0}")]
    Storage(String),
    /// A stored record does not parse.
    #[error("users topic {USERS_TOPIC}: user '{user}' has an unreadable record: {reason}")]
    Corrupt {
        /// The record's key.
        user: String,
        /// What is wrong.
        reason: String,
    },
    /// The name is empty, too long or not UTF-8.
    #[error("invalid user name: {0}")]
    InvalidName(String),
    /// [`USERS_MAX`] users exist already.
    #[error("the server already holds {USERS_MAX} users")]
    TooMany,
}

/// The user database. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Users {
    partition: Arc<Partition>,
    users: Mutex<BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl Users {
    /// Opens the users of `log`, creating the topic if missing and replaying it.
    pub fn open(log: &Log) -> Result<Users, UsersError> {
        let partition = crate::internal_topic::open_state_partition(log, USERS_TOPIC)
            .map_err(UsersError::Storage)?;
        let mut users = BTreeMap::new();
        let mut corrupt = None;
        partition
            .replay(REPLAY_CHUNK_BYTES, |record| {
                let Some(user) = record.key.and_then(|k| String::from_utf8(k.to_vec()).ok()) else {
                    return;
                };
                match record.value.map(|v| decode(&user, &v)).transpose() {
                    Ok(Some(credentials)) => {
                        users.insert(user, credentials);
                    }
                    Ok(None) => {
                        users.remove(&user);
                    }
                    Err(error) => corrupt = corrupt.take().or(Some(error)),
                }
            })
            .map_err(|e| UsersError::Storage(e.to_string()))?;
        if let Some(error) = corrupt {
            return Err(error);
        }
        Ok(Users {
            partition,
            users: Mutex::new(users),
        })
    }

    /// The credential of `user` for `mechanism`.
    pub fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.lock().get(user)?.get(&mechanism).cloned()
    }

    /// Every credential of `user`.
    pub fn credentials(&self, user: &str) -> Vec<ScramCredential> {
        self.lock()
            .get(user)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every user with the mechanisms and iteration counts of their credentials.
    pub fn list(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        self.lock()
            .iter()
            .map(|(user, credentials)| {
                let mechanisms = credentials
                    .values()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect();
                (user.clone(), mechanisms)
            })
            .collect()
    }

    /// Adds or replaces `user`'s credential for its mechanism; durable when it returns.
    pub fn upsert(&self, user: &str, credential: ScramCredential) -> Result<(), UsersError> {
        check_name(user)?;
        let mut users = self.lock();
        if !users.contains_key(user) && users.len() >= USERS_MAX {
            return Err(UsersError::TooMany);
        }
        let mut credentials = users.get(user).cloned().unwrap_or_default();
        credentials.insert(credential.mechanism, credential);
        self.store(user, Some(&credentials))?;
        users.insert(user.to_string(), credentials);
        Ok(())
    }

    /// Removes `user`'s credential for `mechanism`, or all of them; whether anything was
    /// removed. Durable when it returns.
    pub fn remove(
        &self,
        user: &str,
        mechanism: Option<ScramMechanism>,
    ) -> Result<bool, UsersError> {
        let mut users = self.lock();
        let Some(mut credentials) = users.get(user).cloned() else {
            return Ok(false);
        };
        let removed = match mechanism {
            Some(mechanism) => credentials.remove(&mechanism).is_some(),
            None => {
                credentials.clear();
                true
            }
        };
        if !removed {
            return Ok(false);
        }
        let remaining = (!credentials.is_empty()).then_some(&credentials);
        self.store(user, remaining)?;
        match remaining {
            Some(_) => users.insert(user.to_string(), credentials),
            None => users.remove(user),
        };
        Ok(true)
    }

    fn store(
        &self,
        user: &str,
        credentials: Option<&BTreeMap<ScramMechanism, ScramCredential>>,
    ) -> Result<(), UsersError> {
        let value = credentials.map(|credentials| {
            let stored: BTreeMap<&str, StoredCredential> = credentials
                .values()
                .map(|c| {
                    let stored = StoredCredential {
                        salt: BASE64.encode(&c.salt),
                        iterations: c.iterations,
                        stored_key: BASE64.encode(&c.stored_key),
                        server_key: BASE64.encode(&c.server_key),
                    };
                    (c.mechanism.name(), stored)
                })
                .collect();
            Bytes::from(serde_json::to_vec(&stored).expect("credentials serialize"))
        });
        let record = NewRecord {
            value,
            ..NewRecord::new(Some(Bytes::copy_from_slice(user.as_bytes())), Bytes::new())
        };
        self.partition
            .append(&[record])
            .map_err(|e| UsersError::Storage(e.to_string()))?;
        Ok(())
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>>
    {
        self.users.lock().expect("users lock")
    }
}

fn check_name(user: &str) -> Result<(), UsersError> {
    if user.is_empty() || user.len() > USER_NAME_BYTES_MAX || user.chars().any(char::is_control) {
        return Err(UsersError::InvalidName(format!(
            "'{user}' must be 1..={USER_NAME_BYTES_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

fn decode(
    user: &str,
    value: &[u8],
) -> Result<BTreeMap<ScramMechanism, ScramCredential>, UsersError> {
    let corrupt = |reason: String| UsersError::Corrupt {
        user: user.to_string(),
        reason,
    };
    let stored: BTreeMap<String, StoredCredential> =
        serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let mut credentials = BTreeMap::new();
    for (name, stored) in stored {
        let mechanism = ScramMechanism::from_name(&name)
            .ok_or_else(|| corrupt(format!("unknown mechanism {name}")))?;
        let bytes = |field: &str| {
            BASE64
                .decode(field)
                .map_err(|e| corrupt(format!("{name}: {e}")))
        };
        credentials.insert(
            mechanism,
            ScramCredential {
                mechanism,
                salt: bytes(&stored.salt)?,
                iterations: stored.iterations,
                stored_key: bytes(&stored.stored_key)?,
                server_key: bytes(&stored.server_key)?,
            },
        );
    }
    Ok(credentials)
}
