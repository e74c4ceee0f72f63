//! The registry's records in its internal compacted topic [`SCHEMAS_TOPIC`]: what each key
//! and value look like, and how they are read back.
//!
//! The layout follows Confluent's `_schemas` topic, JSON keys and values, so an operator can
//! read it with any Kafka tool:
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}` | `{"subject","version","id","schemaType","schema","references","deleted"}` |
//! | `{"keytype":"CONFIG","subject":S or null,"magic":0}` | `{"compatibilityLevel":L}` |
//! | `{"keytype":"MODE","subject":S or null,"magic":0}` | `{"mode":M}` |
//!
//! A record with no value (a tombstone) removes its key: a version deleted permanently, a
//! config or mode reset. Keys serialize with a fixed field order, so compaction, which keeps
//! the latest record per key *bytes*, keeps the latest state of each.

use serde::{Deserialize, Serialize};

use crate::schema::Reference;

/// The internal topic holding the registry (one partition, `fsync = always`, compacted).
pub const SCHEMAS_TOPIC: &str = "_keel_schemas";

/// The key of one registry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RecordKey {
    /// One version of a subject.
    Schema {
        subject: String,
        version: u32,
        magic: u8,
    },
    /// The compatibility level of a subject, or the global one (`subject: null`).
    Config { subject: Option<String>, magic: u8 },
    /// The mode of a subject, or the global one.
    Mode { subject: Option<String>, magic: u8 },
}

/// The value of a `SCHEMA` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaValue {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: u32,
    pub(crate) schema_type: String,
    pub(crate) schema: String,
    /// The schemas this one references (Confluent's `references`), absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) references: Vec<Reference>,
    pub(crate) deleted: bool,
}

/// The value of a `CONFIG` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigValue {
    pub(crate) compatibility_level: String,
}

/// The value of a `MODE` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModeValue {
    pub(crate) mode: String,
}

impl RecordKey {
    pub(crate) fn schema(subject: &str, version: u32) -> RecordKey {
        RecordKey::Schema {
            subject: subject.to_string(),
            version,
            magic: 1,
        }
    }

    pub(crate) fn config(subject: Option<&str>) -> RecordKey {
        RecordKey::Config {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }

    pub(crate) fn mode(subject: Option<&str>) -> RecordKey {
        RecordKey::Mode {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("registry keys serialize")
    }
}

/// Serializes a record value.
pub(crate) fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("registry values serialize")
}
