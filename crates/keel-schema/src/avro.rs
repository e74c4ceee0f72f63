//! Avro schemas: parsing with references (by the `apache-avro` crate), the compatibility rules
//! Confluent Schema Registry applies to Avro, and the datum codec.
//!
//! Compatibility is Avro's schema resolution, as Avro Java's `SchemaCompatibility` decides it
//! (Confluent's registry calls exactly that), reader against writer:
//!
//! - Same type: primitives match; arrays compare `items`, maps `values`; fixed and enum and
//!   record need the same unqualified name or a reader alias naming the writer's full name;
//!   fixed needs the same size; an enum reader needs every writer symbol unless it has a
//!   `default`; a record reader needs, for each of its fields, a writer field of that name
//!   (or of one of its aliases) whose type it reads, else a `default`.
//! - Promotions: `int` → `long`, `float`, `double`; `long` → `float`, `double`; `float` →
//!   `double`; `string` ↔ `bytes`. Logical types are read as their underlying type.
//! - Unions: a writer union needs each branch read; a reader union needs some branch that
//!   reads the writer.
//!
//! Each [`Difference`] carries Avro Java's incompatibility type and its location as a path
//! (`#/fields/1/type`), as Confluent's messages do. The walk is memoised per pair of nodes
//! (recursive types end on a pair already being compared) and spends from a [`Budget`].
//!
//! Not here: choosing which versions to compare (`compatibility.rs`) or framing bytes with a
//! schema id (`wire.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{DecimalSchema, InnerDecimalSchema};
use apache_avro::schema::{EnumSchema, FixedSchema, Name, RecordSchema, UuidSchema};
use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_json::Value;

use crate::budget::Budget;
use crate::difference::{Difference, DifferenceKind, push};
use crate::memo::Memo;
use crate::schema::{Form, Reference, Schema, SchemaError, canonical_text, check_depth};

type AvroSchema = apache_avro::Schema;

/// Parses an Avro schema whose references are resolved: every referenced schema (and what
/// it references, transitively) is handed to the parser as a named type, then inlined.
pub(crate) fn parse(text: &str, references: &[(Reference, Schema)]) -> Result<Form, SchemaError> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| SchemaError(format!("not JSON: {e}")))?;
    check_depth(&document, 0)?;
    let mut dependencies: Vec<Arc<str>> = Vec::new();
    for (_, other) in references {
        let Form::Avro {
            dependencies: theirs,
            ..
        } = other.form()
        else {
            unreachable!("references were checked to be of the same type")
        };
        for text in theirs.iter().cloned().chain([Arc::from(other.canonical())]) {
            if !dependencies.contains(&text) {
                dependencies.push(text);
            }
        }
    }
    let invalid = |e: apache_avro::Error| SchemaError(format!("not an Avro schema: {e}"));
    let (mut schema, schemata) = AvroSchema::parse_str_with_list(
        &canonical_text(&document),
        dependencies.iter().map(AsRef::<str>::as_ref),
    )
    .map_err(invalid)?;
    schema.denormalize(&schemata).map_err(invalid)?;
    Ok(Form::Avro {
        document,
        schema,
        dependencies,
    })
}

impl Schema {
    /// The parsed Avro schema (references inlined), for an `AVRO` schema.
    pub fn avro(&self) -> Option<&apache_avro::Schema> {
        match self.form() {
            Form::Avro { schema, .. } => Some(schema),
            _ => None,
        }
    }

    /// Avro's Parsing Canonical Form of an `AVRO` schema: what its fingerprint is taken of.
    pub fn avro_canonical_form(&self) -> Option<String> {
        self.avro().map(AvroSchema::canonical_form)
    }

    /// The 64-bit Rabin fingerprint (CRC-64-AVRO) of an `AVRO` schema's Parsing Canonical
    /// Form, as Avro's single-object encoding uses it.
    pub fn avro_fingerprint(&self) -> Option<u64> {
        let schema = self.avro()?;
        let bytes: [u8; 8] = schema
            .fingerprint::<apache_avro::rabin::Rabin>()
            .bytes
            .try_into()
            .expect("a Rabin fingerprint is 8 bytes");
        Some(u64::from_le_bytes(bytes))
    }
}

/// Why a payload could not be encoded or decoded with its schema (any format).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value does not fit the schema.
    #[error("value does not match its schema: {0}")]
    Encode(String),
    /// The bytes are not a datum of the writer's schema, or the reader cannot read them.
    #[error("bytes do not decode with their schema: {0}")]
    Decode(String),
    /// The schema is not of the codec's type.
    #[error("schema type {0} has no Avro codec")]
    NotAvro(crate::SchemaType),
    /// The schema is not a Protobuf schema.
    #[error("schema type {0} is not Protobuf")]
    NotProtobuf(crate::SchemaType),
    /// The bytes are not in Confluent's wire format.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// The schema id or subject is unknown to the registry.
    #[error(transparent)]
    Registry(#[from] crate::RegistryError),
}

/// Encodes a JSON value as an Avro binary datum of `schema`: objects become records (fields
/// by name, defaults for missing ones), strings enums or bytes, a union takes the first
/// branch the value fits.
pub fn encode_avro(schema: &Schema, value: &Value) -> Result<Vec<u8>, CodecError> {
    let avro = schema
        .avro()
        .ok_or(CodecError::NotAvro(schema.schema_type()))?;
    let encode = |e: apache_avro::Error| CodecError::Encode(one_line(&e));
    let resolved = to_avro_value(value)
        .map_err(encode)?
        .resolve(avro)
        .map_err(encode)?;
    GenericDatumWriter::builder(avro)
        .build()
        .and_then(|writer| writer.write_value_to_vec(resolved))
        .map_err(encode)
}

/// Decodes an Avro binary datum written with `writer`, read with `reader` when given (Avro's
/// schema resolution: defaults filled, promotions applied), as JSON.
pub fn decode_avro(
    writer: &Schema,
    reader: Option<&Schema>,
    bytes: &[u8],
) -> Result<Value, CodecError> {
    let writer_avro = writer
        .avro()
        .ok_or(CodecError::NotAvro(writer.schema_type()))?;
    let reader_avro = match reader {
        Some(reader) => Some(
            reader
                .avro()
                .ok_or(CodecError::NotAvro(reader.schema_type()))?,
        ),
        None => None,
    };
    let decode = |e: apache_avro::Error| CodecError::Decode(one_line(&e));
    let mut input = bytes;
    let value = GenericDatumReader::builder(writer_avro)
        .maybe_reader_schema(reader_avro)
        .build()
        .and_then(|reader| reader.read_value(&mut input))
        .map_err(decode)?;
    if !input.is_empty() {
        return Err(CodecError::Decode(format!(
            "{} bytes left after the datum",
            input.len()
        )));
    }
    // apache-avro 0.22 can answer a truncated datum with a record holding nulls instead of an
    // error; a value that does not fit its own schema is such a misread.
    let schema_read = reader_avro.unwrap_or(writer_avro);
    if !value.validate(schema_read) {
        return Err(CodecError::Decode(
            "the datum is truncated or does not fit its schema".into(),
        ));
    }
    Value::try_from(value).map_err(decode)
}

/// A JSON value as Avro's generic value (objects as maps, numbers as long or double), for
/// `resolve` to fit to a schema.
fn to_avro_value(value: &Value) -> Result<AvroValue, apache_avro::Error> {
    AvroValue::try_from(value.clone())
}

/// Whether `value` encodes as a datum of `schema`; the error says why not.
pub(crate) fn validate(schema: &AvroSchema, value: &Value) -> Result<(), String> {
    to_avro_value(value)
        .and_then(|v| v.resolve(schema))
        .map(drop)
        .map_err(|e| one_line(&e))
}

fn one_line(error: &impl std::fmt::Display) -> String {
    error.to_string().replace(['\n', '\r'], " ")
}

/// The differences that stop `reader` from reading data written with `writer`.
pub(crate) fn reader_differences(
    writer: &AvroSchema,
    reader: &AvroSchema,
    budget: &mut Budget,
) -> Vec<Difference> {
    let mut checker = Checker {
        writer_names: named_types(writer),
        reader_names: named_types(reader),
        memo: Memo::default(),
        budget,
        depth: 0,
    };
    let mut out = Vec::new();
    checker.check(writer, reader, "#", &mut out);
    out
}

/// Every named type (record, enum, fixed) defined in a schema, by full name, so a
/// `Ref` left for a recursive or repeated type resolves.
fn named_types(schema: &AvroSchema) -> HashMap<String, &AvroSchema> {
    fn walk<'s>(schema: &'s AvroSchema, names: &mut HashMap<String, &'s AvroSchema>) {
        // A `Ref` has a name too, but it is a use, not a definition.
        if let Some(name) = schema.name()
            && !matches!(schema, AvroSchema::Ref { .. })
            && names.insert(name.fullname(None), schema).is_some()
        {
            return;
        }
        match schema {
            AvroSchema::Array(array) => walk(&array.items, names),
            AvroSchema::Map(map) => walk(&map.types, names),
            AvroSchema::Union(union) => union.variants().iter().for_each(|v| walk(v, names)),
            AvroSchema::Record(record) => record.fields.iter().for_each(|f| walk(&f.schema, names)),
            _ => {}
        }
    }
    let mut names = HashMap::new();
    walk(schema, &mut names);
    names
}

/// A schema as resolution sees it: logical types as their underlying type, references
/// followed.
#[derive(Clone, Copy)]
enum Kind<'s> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'s AvroSchema),
    Map(&'s AvroSchema),
    Union(&'s [AvroSchema]),
    Record(&'s RecordSchema),
    Enum(&'s EnumSchema),
    Fixed(&'s FixedSchema),
    /// A reference to a type the schema does not define (cannot happen after parsing).
    Unknown,
}

impl Kind<'_> {
    fn name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Bytes => "bytes",
            Kind::String => "string",
            Kind::Array(_) => "array",
            Kind::Map(_) => "map",
            Kind::Union(_) => "union",
            Kind::Record(_) => "record",
            Kind::Enum(_) => "enum",
            Kind::Fixed(_) => "fixed",
            Kind::Unknown => "unknown",
        }
    }
}

fn kind<'s>(schema: &'s AvroSchema, names: &HashMap<String, &'s AvroSchema>) -> Kind<'s> {
    match schema {
        AvroSchema::Null => Kind::Null,
        AvroSchema::Boolean => Kind::Boolean,
        AvroSchema::Int | AvroSchema::Date | AvroSchema::TimeMillis => Kind::Int,
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => Kind::Long,
        AvroSchema::Float => Kind::Float,
        AvroSchema::Double => Kind::Double,
        AvroSchema::Bytes
        | AvroSchema::BigDecimal
        | AvroSchema::Uuid(UuidSchema::Bytes)
        | AvroSchema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => Kind::Bytes,
        AvroSchema::String | AvroSchema::Uuid(UuidSchema::String) => Kind::String,
        AvroSchema::Array(array) => Kind::Array(&array.items),
        AvroSchema::Map(map) => Kind::Map(&map.types),
        AvroSchema::Union(union) => Kind::Union(union.variants()),
        AvroSchema::Record(record) => Kind::Record(record),
        AvroSchema::Enum(enumeration) => Kind::Enum(enumeration),
        AvroSchema::Fixed(fixed)
        | AvroSchema::Duration(fixed)
        | AvroSchema::Uuid(UuidSchema::Fixed(fixed))
        | AvroSchema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(fixed),
            ..
        }) => Kind::Fixed(fixed),
        AvroSchema::Ref { name } => match names.get(&name.fullname(None)) {
            Some(target) if !matches!(target, AvroSchema::Ref { .. }) => kind(target, names),
            _ => Kind::Unknown,
        },
    }
}

/// The named type a `Ref` stands for; any other node is itself.
fn definition<'s>(
    schema: &'s AvroSchema,
    names: &HashMap<String, &'s AvroSchema>,
) -> &'s AvroSchema {
    match schema {
        AvroSchema::Ref { name } => names.get(&name.fullname(None)).copied().unwrap_or(schema),
        _ => schema,
    }
}

/// A pair of nodes by address: both schemas are borrowed for the whole check, so an address
/// names one node.
type PairKey = (usize, usize);

struct Checker<'s, 'b> {
    writer_names: HashMap<String, &'s AvroSchema>,
    reader_names: HashMap<String, &'s AvroSchema>,
    /// Every pair: recursive types are assumed to match on the second visit, as Avro Java
    /// does, and a pair reached again costs a lookup.
    memo: Memo<PairKey>,
    budget: &'b mut Budget,
    depth: usize,
}

impl<'s> Checker<'s, '_> {
    fn check(
        &mut self,
        writer: &'s AvroSchema,
        reader: &'s AvroSchema,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        if !self.budget.step(self.depth) {
            return;
        }
        // By the nodes a `Ref` stands for: a recursive type met again through its name is
        // the pair already being compared, which Avro Java takes as compatible.
        let key = (
            std::ptr::from_ref(definition(writer, &self.writer_names)) as usize,
            std::ptr::from_ref(definition(reader, &self.reader_names)) as usize,
        );
        if !self.memo.enter(&key, path, out) {
            return;
        }
        let start = out.len();
        self.depth += 1;
        self.check_nodes(writer, reader, path, out);
        self.depth -= 1;
        let complete = !self.budget.is_exhausted();
        self.memo.leave(key, path, out, start, complete);
    }

    /// Avro Java's `ReaderWriterCompatibilityChecker.calculateCompatibility`.
    fn check_nodes(
        &mut self,
        writer_node: &'s AvroSchema,
        reader_node: &'s AvroSchema,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let writer = kind(writer_node, &self.writer_names);
        let reader = kind(reader_node, &self.reader_names);
        match (writer, reader) {
            (Kind::Array(w), Kind::Array(r)) => self.check(w, r, &format!("{path}/items"), out),
            (Kind::Map(w), Kind::Map(r)) => self.check(w, r, &format!("{path}/values"), out),
            (Kind::Fixed(w), Kind::Fixed(r)) => {
                check_name(&w.name, &r.name, r.aliases.as_deref(), path, out);
                if w.size != r.size {
                    push(
                        out,
                        &format!("{path}/size"),
                        DifferenceKind::FixedSizeMismatch,
                        format!("expected: {}, found: {}", w.size, r.size),
                    );
                }
            }
            (Kind::Enum(w), Kind::Enum(r)) => {
                check_name(&w.name, &r.name, r.aliases.as_deref(), path, out);
                let missing: Vec<&str> = w
                    .symbols
                    .iter()
                    .filter(|symbol| !r.symbols.contains(symbol))
                    .map(String::as_str)
                    .collect();
                let defaulted = r.default.as_ref().is_some_and(|d| r.symbols.contains(d));
                if !missing.is_empty() && !defaulted {
                    push(
                        out,
                        &format!("{path}/symbols"),
                        DifferenceKind::MissingEnumSymbols,
                        format!(
                            "the reader's enum lacks the writer's symbols [{}] and has no default",
                            missing.join(", ")
                        ),
                    );
                }
            }
            (Kind::Record(w), Kind::Record(r)) => {
                check_name(&w.name, &r.name, r.aliases.as_deref(), path, out);
                for (index, field) in r.fields.iter().enumerate() {
                    let found = std::iter::once(&field.name)
                        .chain(field.aliases.iter())
                        .find_map(|name| w.fields.iter().find(|wf| &wf.name == name));
                    match found {
                        Some(written) => self.check(
                            &written.schema,
                            &field.schema,
                            &format!("{path}/fields/{index}/type"),
                            out,
                        ),
                        None if field.default.is_none() => push(
                            out,
                            &format!("{path}/fields/{index}"),
                            DifferenceKind::ReaderFieldMissingDefaultValue,
                            format!(
                                "the new field '{}' has no default value and is missing in the writer's schema",
                                field.name
                            ),
                        ),
                        None => {}
                    }
                }
            }
            (Kind::Union(w), _) => {
                for (index, branch) in w.iter().enumerate() {
                    self.check(branch, reader_node, &format!("{path}/{index}"), out);
                }
            }
            (_, Kind::Union(r)) => {
                let readable = r.iter().any(|branch| {
                    let mut found = Vec::new();
                    self.check(writer_node, branch, path, &mut found);
                    found.is_empty()
                });
                if !readable {
                    push(
                        out,
                        path,
                        DifferenceKind::MissingUnionBranch,
                        format!(
                            "the reader's union lacks the writer's type: {}",
                            writer.name()
                        ),
                    );
                }
            }
            _ if promotes(writer, reader) => {}
            _ => push(
                out,
                path,
                DifferenceKind::TypeMismatch,
                format!(
                    "the reader's type {} cannot read the writer's type {}",
                    reader.name(),
                    writer.name()
                ),
            ),
        }
    }
}

/// Avro Java's `schemaNameEquals`: the same unqualified name, or a reader alias naming the
/// writer's full name.
fn check_name(
    writer: &Name,
    reader: &Name,
    aliases: Option<&[apache_avro::schema::Alias]>,
    path: &str,
    out: &mut Vec<Difference>,
) {
    let writer_full = writer.fullname(None);
    let aliased = aliases
        .unwrap_or_default()
        .iter()
        .any(|alias| alias.fullname(None) == writer_full);
    if writer.name() != reader.name() && !aliased {
        push(
            out,
            &format!("{path}/name"),
            DifferenceKind::NameMismatch,
            format!("expected: {writer_full}, found: {}", reader.fullname(None)),
        );
    }
}

/// Avro's promotions and same-kind primitives.
fn promotes(writer: Kind<'_>, reader: Kind<'_>) -> bool {
    matches!(
        (writer, reader),
        (Kind::Null, Kind::Null)
            | (Kind::Boolean, Kind::Boolean)
            | (
                Kind::Int,
                Kind::Int | Kind::Long | Kind::Float | Kind::Double
            )
            | (Kind::Long, Kind::Long | Kind::Float | Kind::Double)
            | (Kind::Float, Kind::Float | Kind::Double)
            | (Kind::Double, Kind::Double)
            | (Kind::Bytes | Kind::String, Kind::Bytes | Kind::String)
    )
}
