//! A schema as the registry keeps it: parsed, checked, compiled for validation, and held in
//! one canonical text so the same contract always gets the same global id.
//!
//! JSON Schema (`JSON`), Avro (`AVRO`) and Protobuf (`PROTOBUF`) are read. A JSON Schema is accepted when it is JSON, no larger than [`SCHEMA_BYTES_MAX`], no
//! deeper than [`SCHEMA_DEPTH_MAX`], every `$ref` points inside the document or at one of its
//! [`Reference`]s and resolves, and the `jsonschema` crate compiles it (which checks it
//! against its meta-schema; draft 2020-12 unless `$schema` names another draft). Avro is
//! parsed by `avro.rs`, Protobuf by `protobuf.rs`.
//!
//! Not here: payload validation errors (`validation.rs`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::compare::local_target;
use crate::limits::{SCHEMA_BYTES_MAX, SCHEMA_DEPTH_MAX};

/// The kind of schema document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SchemaType {
    /// JSON Schema (Confluent's `JSON`).
    #[default]
    Json,
    /// Apache Avro.
    Avro,
    /// Protocol Buffers (`.proto` text).
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
                "unknown schema type {text:?}: expected JSON, AVRO or PROTOBUF"
            ))),
        }
    }
}

/// Why a schema text is not an acceptable schema. The message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

/// A schema's use of another registered schema, as Confluent spells it: the `name` the
/// schema text uses (a JSON Schema `$ref` URI, an Avro type's full name, a `.proto` import
/// path) and the subject and version that hold it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Reference {
    /// The name the referring schema uses.
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version in that subject.
    pub version: u32,
}

/// A checked schema of any supported type: its canonical text, the references it was parsed
/// with, and the parsed form the comparison, validation and codecs use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Schema {
    schema_type: SchemaType,
    canonical: Arc<str>,
    references: Arc<[Reference]>,
    form: Arc<Form>,
}

/// A schema parsed for its type.
#[derive(Debug)]
pub(crate) enum Form {
    /// JSON Schema: the document as written, and the same with every referenced document
    /// embedded under `$defs` and its `$ref`s made local (what is compared and compiled).
    Json { document: Value, bundled: Value },
    /// Avro: the schema's JSON, the parsed schema with every referenced named type inlined
    /// (Avro's "denormalized" form), and the texts of every schema it depends on.
    Avro {
        document: Value,
        schema: apache_avro::Schema,
        dependencies: Vec<Arc<str>>,
    },
    /// Protobuf: the `.proto` text (as a JSON string), the compiled descriptors, and the
    /// source of every file it imports by reference.
    Protobuf {
        document: Value,
        pool: prost_reflect::DescriptorPool,
        sources: crate::protobuf::Sources,
    },
}

impl Schema {
    /// Parses and checks a schema of `schema_type` that uses no references.
    pub fn parse(schema_type: SchemaType, text: &str) -> Result<Schema, SchemaError> {
        Schema::parse_with_references(schema_type, text, &[])
    }

    /// Parses and checks a schema whose `references` are already resolved to the schemas
    /// they name (each of the same type; the registry looks them up by subject and version).
    pub fn parse_with_references(
        schema_type: SchemaType,
        text: &str,
        references: &[(Reference, Schema)],
    ) -> Result<Schema, SchemaError> {
        if text.len() > SCHEMA_BYTES_MAX {
            return Err(SchemaError(format!(
                "{} bytes, more than the limit of {SCHEMA_BYTES_MAX}",
                text.len()
            )));
        }
        if let Some((reference, other)) = references
            .iter()
            .find(|(_, other)| other.schema_type != schema_type)
        {
            return Err(SchemaError(format!(
                "reference {:?} names a {} schema; a {schema_type} schema can only reference {schema_type} schemas",
                reference.name, other.schema_type
            )));
        }
        let form = match schema_type {
            SchemaType::Json => {
                let document: Value = serde_json::from_str(text)
                    .map_err(|e| SchemaError(format!("not JSON: {e}")))?;
                json_form(document, references)?
            }
            SchemaType::Avro => crate::avro::parse(text, references)?,
            SchemaType::Protobuf => crate::protobuf::parse(text, references)?,
        };
        let canonical = match &form {
            Form::Json { document, .. } | Form::Avro { document, .. } => canonical_text(document),
            // A `.proto` file is kept as written (trimmed): it is no JSON to sort.
            Form::Protobuf { document, .. } => document.as_str().unwrap_or_default().to_string(),
        };
        let mut references: Vec<Reference> = references.iter().map(|(r, _)| r.clone()).collect();
        references.sort();
        Ok(Schema {
            schema_type,
            canonical: canonical.into(),
            references: references.into(),
            form: Arc::new(form),
        })
    }

    /// Checks a JSON Schema document already parsed (no references).
    pub fn from_value(document: Value) -> Result<Schema, SchemaError> {
        let form = json_form(document, &[])?;
        let Form::Json { document, .. } = &form else {
            unreachable!("json_form makes a JSON form")
        };
        Ok(Schema {
            schema_type: SchemaType::Json,
            canonical: canonical_text(document).into(),
            references: Arc::new([]),
            form: Arc::new(form),
        })
    }

    /// The schema's type.
    pub fn schema_type(&self) -> SchemaType {
        self.schema_type
    }

    /// The schema document as written: a JSON Schema, an Avro schema's JSON, or a `.proto`
    /// file's text as a JSON string.
    pub fn document(&self) -> &Value {
        match &*self.form {
            Form::Json { document, .. }
            | Form::Avro { document, .. }
            | Form::Protobuf { document, .. } => document,
        }
    }

    /// The canonical text: compact JSON with object keys sorted, so two spellings of one
    /// schema compare equal and get the same id.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The references the schema was parsed with, sorted.
    pub fn references(&self) -> &[Reference] {
        &self.references
    }

    /// What identifies the schema for its global id: the canonical text and, when it has
    /// any, its references (the same text over other referenced versions is another schema,
    /// as in Confluent's registry).
    pub(crate) fn identity(&self) -> String {
        if self.references.is_empty() {
            return self.canonical.to_string();
        }
        let references = serde_json::to_string(&*self.references).expect("references serialize");
        format!("{}\n{references}", self.canonical)
    }

    pub(crate) fn form(&self) -> &Form {
        &self.form
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.schema_type == other.schema_type
            && self.canonical == other.canonical
            && self.references == other.references
    }
}

impl Eq for Schema {}

/// Checks a JSON Schema and bundles its references: each referenced document is embedded
/// under `$defs/<name>` and every `$ref` to `name` or `name#/pointer` becomes local, so the
/// comparison and the validator work on one self-contained document.
fn json_form(document: Value, references: &[(Reference, Schema)]) -> Result<Form, SchemaError> {
    if !document.is_object() && !document.is_boolean() {
        return Err(SchemaError(
            "a JSON Schema is an object or a boolean".into(),
        ));
    }
    check_depth(&document, 0)?;
    let mut bundled = document.clone();
    if !references.is_empty() {
        let names: Vec<&str> = references.iter().map(|(r, _)| r.name.as_str()).collect();
        localize_refs(&mut bundled, &|target: &str| {
            let (name, pointer) = target.split_once('#').unwrap_or((target, ""));
            names
                .contains(&name)
                .then(|| format!("#/$defs/{}{pointer}", escape_pointer(name)))
        });
        let Some(root) = bundled.as_object_mut() else {
            return Err(SchemaError("a schema with references is an object".into()));
        };
        let defs = root
            .entry("$defs")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(defs) = defs.as_object_mut() else {
            return Err(SchemaError("$defs is not an object".into()));
        };
        for (reference, other) in references {
            let Form::Json {
                bundled: theirs, ..
            } = other.form()
            else {
                unreachable!("references were checked to be of the same type")
            };
            let key = escape_pointer(&reference.name);
            let mut embedded = theirs.clone();
            localize_refs(&mut embedded, &|target: &str| {
                target
                    .strip_prefix('#')
                    .map(|pointer| format!("#/$defs/{key}{pointer}"))
            });
            defs.insert(reference.name.clone(), embedded);
        }
    }
    check_refs(&bundled, &bundled, "#")?;
    jsonschema::validator_for(&bundled).map_err(|e| SchemaError(one_line(&e.to_string())))?;
    Ok(Form::Json { document, bundled })
}

/// Rewrites every `$ref` that `local` maps to a local reference.
fn localize_refs(value: &mut Value, local: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(rewritten) = local(target)
            {
                *target = rewritten;
            }
            map.values_mut()
                .for_each(|child| localize_refs(child, local));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|child| localize_refs(child, local)),
        _ => {}
    }
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

pub(crate) fn check_depth(value: &Value, depth: usize) -> Result<(), SchemaError> {
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
                        "{path}/$ref {text:?} points outside the document; reference another schema by listing it in the request's references"
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

/// The compiled validator of a JSON Schema (its bundled form).
pub(crate) fn compile_json(bundled: &Value) -> jsonschema::Validator {
    jsonschema::validator_for(bundled).expect("a parsed schema compiled when it was checked")
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
