//! A schema as the registry keeps it: parsed, checked, compiled for validation, and held in
//! one canonical text so the same contract always gets the same global id.
//!
//! Only JSON Schema is supported (the schema type `JSON`); `AVRO` and `PROTOBUF` are refused
//! with a clear error. A schema is accepted when it is JSON, no larger than
//! [`SCHEMA_BYTES_MAX`], no deeper than [`SCHEMA_DEPTH_MAX`], every `$ref` points inside the
//! document and resolves, and the `jsonschema` crate compiles it (which checks it against its
//! meta-schema; draft 2020-12 unless `$schema` names another draft).
//!
//! Not here: payload validation errors (`validation.rs`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::compare::local_target;
use crate::limits::{SCHEMA_BYTES_MAX, SCHEMA_DEPTH_MAX};

/// The kind of schema document. Keel reads JSON Schema; the others are named so that a client
/// asking for them gets a precise refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SchemaType {
    /// JSON Schema (Confluent's `JSON`).
    #[default]
    Json,
    /// Apache Avro (not supported yet).
    Avro,
    /// Protocol Buffers (not supported).
    Protobuf,
}

impl SchemaType {
    /// The name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            SchemaType::Json => "JSON",
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaType {
    type Err = SchemaError;

    fn from_str(text: &str) -> Result<SchemaType, SchemaError> {
        match text.to_ascii_uppercase().as_str() {
            "JSON" => Ok(SchemaType::Json),
            "AVRO" => Ok(SchemaType::Avro),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(SchemaError(format!(
                "unknown schema type {text:?}: expected JSON"
            ))),
        }
    }
}

/// Why a schema text is not an acceptable schema. The message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

/// A checked JSON Schema: its document and its canonical text.
#[derive(Debug, Clone)]
pub struct Schema {
    document: Arc<Value>,
    canonical: Arc<str>,
}

impl Schema {
    /// Parses and checks a schema of `schema_type` from its text.
    pub fn parse(schema_type: SchemaType, text: &str) -> Result<Schema, SchemaError> {
        if schema_type != SchemaType::Json {
            return Err(SchemaError(format!(
                "schema type {schema_type} is not supported; Keel registers JSON Schema (JSON)"
            )));
        }
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(SchemaError(format!(
                "{} bytes, more than the limit of {SCHEMA_BYTES_MAX}",
                text.len()
            )));
        }
        let document: Value =
            serde_json::from_str(text).map_err(|e| SchemaError(format!("not JSON: {e}")))?;
        Schema::from_value(document)
    }

    /// Checks a schema document already parsed.
    pub fn from_value(document: Value) -> Result<Schema, SchemaError> {
        if !document.is_object() && !document.is_boolean() {
            return Err(SchemaError(
                "a JSON Schema is an object or a boolean".into(),
            ));
        }
        check_depth(&document, 0)?;
        check_refs(&document, &document, "#")?;
        jsonschema::validator_for(&document).map_err(|e| SchemaError(one_line(&e.to_string())))?;
        let canonical = canonical_text(&document);
        Ok(Schema {
            document: Arc::new(document),
            canonical: canonical.into(),
        })
    }

    /// The schema document.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The canonical text: compact JSON with object keys sorted, so two spellings of one
    /// schema compare equal and get the same id.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Compiles the schema for validating payloads.
    pub(crate) fn compile(&self) -> jsonschema::Validator {
        jsonschema::validator_for(&self.document)
            .expect("a parsed schema compiled when it was checked")
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for Schema {}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn check_depth(value: &Value, depth: usize) -> Result<(), SchemaError> {
    if depth > SCHEMA_DEPTH_MAX {
        return Err(SchemaError(format!(
            "nested deeper than {SCHEMA_DEPTH_MAX} levels"
        )));
    }
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| check_depth(v, depth + 1)),
        Value::Object(map) => map.values().try_for_each(|v| check_depth(v, depth + 1)),
        _ => Ok(()),
    }
}

/// Every `$ref` must be local (`#...`) and resolve: the registry compares and validates a
/// schema on its own, without fetching other documents.
fn check_refs(root: &Value, value: &Value, path: &str) -> Result<(), SchemaError> {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref") {
                let Some(text) = reference.as_str() else {
                    return Err(SchemaError(format!("{path}/$ref is not a string")));
                };
                if !text.starts_with('#') {
                    return Err(SchemaError(format!(
                        "{path}/$ref {text:?} points outside the document; only local references (#/$defs/...) are supported"
                    )));
                }
                if local_target(root, text).is_none() {
                    return Err(SchemaError(format!(
                        "{path}/$ref {text:?} does not resolve"
                    )));
                }
            }
            for (key, child) in map {
                check_refs(root, child, &format!("{path}/{key}"))?;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, child)| check_refs(root, child, &format!("{path}/{index}"))),
        _ => Ok(()),
    }
}

/// Compact JSON with every object's keys in sorted order.
pub(crate) fn canonical_text(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}
