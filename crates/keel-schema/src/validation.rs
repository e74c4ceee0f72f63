//! Payload validation against a registered schema, with an error that names the failing
//! path in the payload, so a producer sees which field broke its contract.
//!
//! Not here: checking schemas themselves (`schema.rs`).

use serde_json::Value;

use crate::schema::{Form, Schema, compile_json};
use crate::{avro, protobuf};

/// A compiled schema, ready to validate payloads. Built once per schema id and cached by
/// the [`Registry`](crate::Registry).
#[derive(Debug)]
pub struct PayloadValidator {
    compiled: Compiled,
}

#[derive(Debug)]
enum Compiled {
    Json(jsonschema::Validator),
    /// An Avro schema validates a JSON payload by whether it encodes as its datum.
    Avro(apache_avro::Schema),
    /// A Protobuf schema validates a JSON payload (protobuf's JSON mapping) against its first
    /// message.
    Protobuf(prost_reflect::DescriptorPool),
}

/// Why a payload does not match its schema: the first failing location, in the payload
/// (a JSON pointer, `""` for the whole payload), and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload breaks its schema at {}: {reason}", shown(.path))]
pub struct PayloadError {
    /// JSON pointer into the payload (`/items/0/qty`); empty for the payload itself.
    pub path: String,
    /// The broken rule, in one line.
    pub reason: String,
}

fn shown(path: &str) -> String {
    if path.is_empty() {
        "the root".to_string()
    } else {
        format!("{path:?}")
    }
}

impl PayloadValidator {
    /// Compiles `schema`.
    pub fn new(schema: &Schema) -> PayloadValidator {
        let compiled = match schema.form() {
            Form::Json { bundled, .. } => Compiled::Json(compile_json(bundled)),
            Form::Avro { schema, .. } => Compiled::Avro(schema.clone()),
            Form::Protobuf { pool, .. } => Compiled::Protobuf(pool.clone()),
        };
        PayloadValidator { compiled }
    }

    /// Validates `payload`; the error names the first failing path (Avro's errors name the
    /// value instead, so their path is the root).
    pub fn validate(&self, payload: &Value) -> Result<(), PayloadError> {
        match &self.compiled {
            Compiled::Json(compiled) => match compiled.iter_errors(payload).next() {
                None => Ok(()),
                Some(error) => Err(PayloadError {
                    path: error.instance_path().as_str().to_string(),
                    reason: error.to_string().replace(['\n', '\r'], " "),
                }),
            },
            Compiled::Avro(schema) => {
                avro::validate(schema, payload).map_err(|reason| PayloadError {
                    path: String::new(),
                    reason,
                })
            }
            Compiled::Protobuf(pool) => {
                protobuf::validate(pool, payload).map_err(|reason| PayloadError {
                    path: String::new(),
                    reason,
                })
            }
        }
    }
}
