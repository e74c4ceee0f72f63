//! Protobuf schemas: `.proto` text (or a base64 `FileDescriptorProto`, as Confluent's
//! non-Java serializers send it) compiled by `protox` (imports resolved through references,
//! Google's well-known types built in) into `prost-reflect` descriptors, Confluent Schema
//! Registry's Protobuf compatibility rules, and the message codec.
//!
//! The rules are those of Confluent's `protobuf/diff` (`SchemaDiff`, `MessageSchemaDiff`,
//! `FieldSchemaDiff`, `OneOfDiff`): the writer's file is the *original*, the reader's the
//! *update*, and every difference whose type is not in Confluent's `COMPATIBLE_CHANGES` breaks
//! compatibility:
//!
//! | change | compatible |
//! |---|---|
//! | message added, moved or reordered; enum added, removed or changed; field added or removed; field renamed; oneof added or removed; field added to a oneof | yes |
//! | package changed (`PACKAGE_CHANGED`); message removed (`MESSAGE_REMOVED`) | no |
//! | required field added or removed (`REQUIRED_FIELD_ADDED`/`_REMOVED`) | no |
//! | field kind changed between scalar (enums included), message and map (`FIELD_KIND_CHANGED`) | no |
//! | a numeric field's explicit label changed (`optional` ↔ `repeated`: `FIELD_NUMERIC_LABEL_CHANGED`); a string or bytes field's is compatible | no |
//! | scalar changed across wire groups (`FIELD_SCALAR_KIND_CHANGED`): `int32 int64 uint32 uint64 bool` and enums; `sint32 sint64`; `string bytes`; `fixed32 sfixed32`; `fixed64 sfixed64`; `float`; `double` | no |
//! | message type's name within its package changed (`Parcel.Size` → `Size`), or the message changed incompatibly (`FIELD_NAMED_TYPE_CHANGED`) | no |
//! | a oneof member removed while its oneof (or a renamed one) lives on (`ONEOF_FIELD_REMOVED`); fields from more than one place (plain fields, other oneofs) gathered into one oneof (`MULTIPLE_FIELDS_MOVED_TO_ONEOF`, `FIELD_MOVED_TO_EXISTING_ONEOF`) | no |
//! | a oneof member moved to the top level | yes |
//!
//! Paths name the message and the field number (`#/Order/3`) or the oneof (`#/Order/payment`).
//!
//! Not here: the wire format's message indexes (`wire.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message as _;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor,
};
use protox::Compiler;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value;

use crate::avro::CodecError;
use crate::budget::Budget;
use crate::difference::{Difference, DifferenceKind, push};
use crate::memo::Memo;
use crate::schema::{Form, Reference, Schema, SchemaError};

/// The name the schema's own text is compiled under; references use theirs.
const MAIN_FILE: &str = "__keel_schema__.proto";

/// Source texts by file name: the schema under [`MAIN_FILE`], every referenced schema (and
/// what it references) under its reference name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources(BTreeMap<String, Arc<str>>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let Some(source) = self.0.get(name) else {
            return Err(protox::Error::file_not_found(name));
        };
        Ok(match serialized_descriptor(source) {
            Some(mut descriptor) => {
                descriptor.name = Some(name.to_string());
                File::from_file_descriptor_proto(descriptor)
            }
            None => File::from_source(name, source)?,
        })
    }
}

/// A schema text that is a base64 `FileDescriptorProto`, as Confluent's Python, Go and .NET
/// serializers register Protobuf schemas (and Confluent's registry accepts): the descriptor.
fn serialized_descriptor(text: &str) -> Option<prost_types::FileDescriptorProto> {
    use base64::Engine as _;
    if text.contains(|c: char| c.is_whitespace() || c == ';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Compiles a `.proto` text whose imports are its references' names.
pub(crate) fn parse(text: &str, references: &[(Reference, Schema)]) -> Result<Form, SchemaError> {
    let mut sources = Sources::default();
    for (reference, other) in references {
        let Form::Protobuf {
            sources: theirs, ..
        } = other.form()
        else {
            unreachable!("references were checked to be of the same type")
        };
        for (name, source) in &theirs.0 {
            if name != MAIN_FILE {
                sources.0.insert(name.clone(), source.clone());
            }
        }
        sources
            .0
            .insert(reference.name.clone(), Arc::from(other.canonical()));
    }
    sources.0.insert(MAIN_FILE.into(), Arc::from(text.trim()));
    let mut resolver = ChainFileResolver::new();
    resolver.add(sources.clone());
    resolver.add(GoogleFileResolver::new());
    let mut compiler = Compiler::with_file_resolver(resolver);
    compiler
        .open_file(MAIN_FILE)
        .map_err(|e| SchemaError(format!("not a Protobuf schema: {}", one_line(&e))))?;
    let pool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(MAIN_FILE)
        .expect("the compiled file is in its pool");
    if file.messages().len() == 0 {
        return Err(SchemaError(
            "a Protobuf schema defines at least one message".into(),
        ));
    }
    Ok(Form::Protobuf {
        document: Value::String(text.trim().to_string()),
        pool,
        sources,
    })
}

fn one_line(error: &impl std::fmt::Display) -> String {
    error.to_string().replace(['\n', '\r'], " ")
}

impl Schema {
    /// A `PROTOBUF` schema as Confluent's `format=serialized` answers it: its compiled
    /// `FileDescriptorProto`, base64.
    pub fn protobuf_serialized(&self) -> Option<String> {
        use base64::Engine as _;
        let Form::Protobuf { pool, .. } = self.form() else {
            return None;
        };
        let bytes = main_file(pool).file_descriptor_proto().encode_to_vec();
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The messages of a `PROTOBUF` schema's own file, in order (message index 0 first).
    pub fn protobuf_messages(&self) -> Vec<MessageDescriptor> {
        match self.form() {
            Form::Protobuf { pool, .. } => main_file(pool).messages().collect(),
            _ => Vec::new(),
        }
    }
}

fn main_file(pool: &DescriptorPool) -> prost_reflect::FileDescriptor {
    pool.get_file_by_name(MAIN_FILE)
        .expect("the compiled file is in its pool")
}

/// The message at Confluent's message indexes (`[0]` the first top-level message, `[1, 0]`
/// the first message nested in the second).
pub(crate) fn message_at(
    schema: &Schema,
    indexes: &[i32],
) -> Result<MessageDescriptor, CodecError> {
    let Form::Protobuf { pool, .. } = schema.form() else {
        return Err(CodecError::NotProtobuf(schema.schema_type()));
    };
    let missing = || CodecError::Decode(format!("no message at indexes {indexes:?}"));
    let (first, rest) = indexes.split_first().ok_or_else(missing)?;
    let mut message = main_file(pool)
        .messages()
        .nth(usize::try_from(*first).map_err(|_| missing())?)
        .ok_or_else(missing)?;
    for index in rest {
        let nested = message
            .child_messages()
            .nth(usize::try_from(*index).map_err(|_| missing())?)
            .ok_or_else(missing)?;
        message = nested;
    }
    Ok(message)
}

/// The message indexes of `message` in its file.
pub(crate) fn indexes_of(message: &MessageDescriptor) -> Vec<i32> {
    let position = |found: Option<usize>| i32::try_from(found.unwrap_or(0)).unwrap_or(0);
    let mut indexes = Vec::new();
    let mut current = message.clone();
    while let Some(parent) = current.parent_message() {
        indexes.push(position(parent.child_messages().position(|m| m == current)));
        current = parent;
    }
    indexes.push(position(
        current.parent_file().messages().position(|m| m == current),
    ));
    indexes.reverse();
    indexes
}

/// Encodes a JSON value (protobuf's JSON mapping) as the binary message `message`.
pub fn encode_protobuf(message: &MessageDescriptor, value: &Value) -> Result<Vec<u8>, CodecError> {
    let dynamic = DynamicMessage::deserialize(message.clone(), value)
        .map_err(|e| CodecError::Encode(one_line(&e)))?;
    Ok(dynamic.encode_to_vec())
}

/// Decodes a binary message `message` into protobuf's JSON mapping.
pub fn decode_protobuf(message: &MessageDescriptor, bytes: &[u8]) -> Result<Value, CodecError> {
    let dynamic = DynamicMessage::decode(message.clone(), bytes)
        .map_err(|e| CodecError::Decode(one_line(&e)))?;
    serde_json::to_value(&dynamic).map_err(|e| CodecError::Decode(one_line(&e)))
}

/// Whether `value` is the JSON of the schema's first message; the error says why not.
pub(crate) fn validate(pool: &DescriptorPool, value: &Value) -> Result<(), String> {
    let message = main_file(pool)
        .messages()
        .next()
        .expect("a parsed schema has a message");
    DynamicMessage::deserialize(message, value)
        .map(drop)
        .map_err(|e| one_line(&e))
}

/// The differences Confluent counts as breaking between the writer's file (original) and
/// the reader's (update).
pub(crate) fn reader_differences(
    writer: &DescriptorPool,
    reader: &DescriptorPool,
    budget: &mut Budget,
) -> Vec<Difference> {
    let (writer, reader) = (main_file(writer), main_file(reader));
    let mut out = Vec::new();
    if writer.package_name() != reader.package_name() {
        push(
            &mut out,
            "#",
            DifferenceKind::PackageChanged,
            format!(
                "package changed from '{}' to '{}'",
                writer.package_name(),
                reader.package_name()
            ),
        );
    }
    let mut differ = Differ {
        memo: Memo::default(),
        budget,
        depth: 0,
    };
    differ.messages(writer.messages(), reader.messages(), "#", &mut out);
    out
}

struct Differ<'b> {
    /// Message pairs by full names: recursive messages end on a pair already being compared.
    memo: Memo<(String, String)>,
    budget: &'b mut Budget,
    depth: usize,
}

/// A field's kind as Confluent groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Scalar,
    Message,
    Map,
}

fn field_kind(field: &FieldDescriptor) -> FieldKind {
    if field.is_map() {
        FieldKind::Map
    } else if matches!(field.kind(), Kind::Message(_)) {
        FieldKind::Message
    } else {
        FieldKind::Scalar
    }
}

/// The wire group of a scalar: changing within a group keeps old bytes readable.
fn scalar_group(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            "varint (int32, int64, uint32, uint64, bool, enum)"
        }
        Kind::Sint32 | Kind::Sint64 => "zigzag (sint32, sint64)",
        Kind::String | Kind::Bytes => "length-delimited (string, bytes)",
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32 (fixed32, sfixed32)",
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64 (fixed64, sfixed64)",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::Message(_) => "message",
    }
}

/// A field's label as written (`optional`, `required`, `repeated`), `None` for a proto3 field
/// written without one, as Confluent's parser (Square's Wire) reads it.
fn label(field: &FieldDescriptor) -> Option<&'static str> {
    match field.cardinality() {
        Cardinality::Repeated => Some("repeated"),
        Cardinality::Required => Some("required"),
        Cardinality::Optional
            if field.parent_file().syntax() == prost_reflect::Syntax::Proto2
                || field.field_descriptor_proto().proto3_optional() =>
        {
            Some("optional")
        }
        Cardinality::Optional => None,
    }
}

/// A message's name within its package (`Parcel.Size`), as Confluent compares message-typed
/// fields: the same name under a renamed package is the same type (the package change is
/// reported once, for the file), but another nesting (`Size` for `Parcel.Size`) is not.
fn local_name(message: &MessageDescriptor) -> &str {
    let full = message.full_name();
    full.strip_prefix(message.package_name())
        .and_then(|name| name.strip_prefix('.'))
        .unwrap_or(full)
}

/// Fields that belong to a real oneof (proto3 `optional` makes synthetic ones, which are
/// plain fields for this purpose).
fn oneof_of(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|oneof| !oneof.is_synthetic())
        .map(|oneof| oneof.name().to_string())
}

impl Differ<'_> {
    /// Confluent's `compareTypeElements` over messages: by name; removed breaks.
    fn messages(
        &mut self,
        writer: impl Iterator<Item = MessageDescriptor>,
        reader: impl Iterator<Item = MessageDescriptor>,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let readers: HashMap<String, MessageDescriptor> = reader
            .filter(|m| !m.is_map_entry())
            .map(|m| (m.name().to_string(), m))
            .collect();
        for written in writer.filter(|m| !m.is_map_entry()) {
            let at = format!("{path}/{}", written.name());
            match readers.get(written.name()) {
                Some(read) => self.message(&written, read, &at, out),
                None => push(
                    out,
                    &at,
                    DifferenceKind::MessageRemoved,
                    format!("message '{}' removed", written.name()),
                ),
            }
        }
    }

    /// Confluent's `MessageSchemaDiff.compare`.
    fn message(
        &mut self,
        writer: &MessageDescriptor,
        reader: &MessageDescriptor,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        if !self.budget.step(self.depth) {
            return;
        }
        let key = (
            writer.full_name().to_string(),
            reader.full_name().to_string(),
        );
        if !self.memo.enter(&key, path, out) {
            return;
        }
        let start = out.len();
        self.depth += 1;
        self.fields(writer, reader, path, out);
        self.messages(writer.child_messages(), reader.child_messages(), path, out);
        self.depth -= 1;
        let complete = !self.budget.is_exhausted();
        self.memo.leave(key, path, out, start, complete);
    }

    /// Confluent's `MessageSchemaDiff.compare` over fields, by number, oneof membership
    /// included.
    fn fields(
        &mut self,
        writer: &MessageDescriptor,
        reader: &MessageDescriptor,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let by_number = |message: &MessageDescriptor| -> BTreeMap<u32, FieldDescriptor> {
            message.fields().map(|f| (f.number(), f)).collect()
        };
        let written = by_number(writer);
        let read = by_number(reader);
        let oneofs = |fields: &BTreeMap<u32, FieldDescriptor>| {
            let mut oneofs: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for (number, field) in fields {
                if let Some(oneof) = oneof_of(field) {
                    oneofs.entry(oneof).or_default().push(*number);
                }
            }
            oneofs
        };
        let (writer_oneofs, reader_oneofs) = (oneofs(&written), oneofs(&read));
        // A writer oneof gone with all its members is one removal, not one per member.
        let deleted: Vec<&String> = writer_oneofs
            .iter()
            .filter(|(name, numbers)| {
                !reader_oneofs.contains_key(*name) && numbers.iter().all(|n| !read.contains_key(n))
            })
            .map(|(name, _)| name)
            .collect();
        // Old data may set several of a new oneof's members only if they came from more than
        // one place (each writer oneof is one place, each plain writer field another).
        for (oneof, numbers) in &reader_oneofs {
            let mut origins = std::collections::BTreeSet::new();
            let mut plain_moved = 0;
            for number in numbers {
                match written.get(number).map(oneof_of) {
                    Some(Some(from)) => {
                        origins.insert(format!("oneof {from}"));
                    }
                    Some(None) => {
                        origins.insert(format!("field {number}"));
                        plain_moved += 1;
                    }
                    None => {}
                }
            }
            if origins.len() > 1 {
                let (kind, detail) = if plain_moved > 1 {
                    (
                        DifferenceKind::MultipleFieldsMovedToOneof,
                        format!("{plain_moved} existing fields moved into oneof '{oneof}'"),
                    )
                } else {
                    (
                        DifferenceKind::FieldMovedToExistingOneof,
                        format!("fields that old data may set together now share oneof '{oneof}'"),
                    )
                };
                push(out, &format!("{path}/{oneof}"), kind, detail);
            }
        }
        let numbers: std::collections::BTreeSet<u32> =
            written.keys().chain(read.keys()).copied().collect();
        for number in numbers {
            match (written.get(&number), read.get(&number)) {
                (Some(field), None) => match oneof_of(field) {
                    Some(oneof) if !deleted.contains(&&oneof) => push(
                        out,
                        &format!("{path}/{oneof}/{number}"),
                        DifferenceKind::OneofFieldRemoved,
                        format!("field {number} removed from oneof '{oneof}'"),
                    ),
                    Some(_) => {}
                    None if field.cardinality() == Cardinality::Required => push(
                        out,
                        &format!("{path}/{number}"),
                        DifferenceKind::RequiredFieldRemoved,
                        format!("required field '{}' ({number}) removed", field.name()),
                    ),
                    None => {}
                },
                (None, Some(field)) => {
                    if oneof_of(field).is_none() && field.cardinality() == Cardinality::Required {
                        push(
                            out,
                            &format!("{path}/{number}"),
                            DifferenceKind::RequiredFieldAdded,
                            format!("required field '{}' ({number}) added", field.name()),
                        );
                    }
                }
                (Some(w), Some(r)) => {
                    let at = match oneof_of(r) {
                        Some(oneof) => format!("{path}/{oneof}/{number}"),
                        None => format!("{path}/{number}"),
                    };
                    self.field(w, r, &at, out);
                }
                (None, None) => {}
            }
        }
    }

    /// Confluent's `FieldSchemaDiff.compare` (a renamed field is compatible).
    fn field(
        &mut self,
        writer: &FieldDescriptor,
        reader: &FieldDescriptor,
        path: &str,
        out: &mut Vec<Difference>,
    ) {
        let (writer_kind, reader_kind) = (field_kind(writer), field_kind(reader));
        if writer_kind != reader_kind {
            push(
                out,
                path,
                DifferenceKind::FieldKindChanged,
                format!("field kind changed from {writer_kind:?} to {reader_kind:?}")
                    .to_lowercase(),
            );
            return;
        }
        match writer_kind {
            FieldKind::Map => {
                let (Kind::Message(w), Kind::Message(r)) = (writer.kind(), reader.kind()) else {
                    unreachable!("a map field's kind is its entry message")
                };
                self.field(
                    &w.map_entry_key_field(),
                    &r.map_entry_key_field(),
                    path,
                    out,
                );
                self.field(
                    &w.map_entry_value_field(),
                    &r.map_entry_value_field(),
                    path,
                    out,
                );
            }
            FieldKind::Scalar => {
                let (from, to) = (scalar_group(&writer.kind()), scalar_group(&reader.kind()));
                if from != to {
                    push(
                        out,
                        path,
                        DifferenceKind::FieldScalarKindChanged,
                        format!("scalar changed from {from} to {to}: old bytes read differently"),
                    );
                } else if let (Some(before), Some(after)) = (label(writer), label(reader))
                    && before != after
                    && !matches!(writer.kind(), Kind::String | Kind::Bytes)
                {
                    // Packed repeated numbers and a single number are different bytes;
                    // strings and bytes are length-delimited either way.
                    push(
                        out,
                        path,
                        DifferenceKind::FieldNumericLabelChanged,
                        format!("numeric field changed from {before} to {after}"),
                    );
                }
            }
            FieldKind::Message => {
                let (Kind::Message(w), Kind::Message(r)) = (writer.kind(), reader.kind()) else {
                    unreachable!("a message field's kind is its message")
                };
                if local_name(&w) != local_name(&r) {
                    push(
                        out,
                        path,
                        DifferenceKind::FieldNamedTypeChanged,
                        format!(
                            "message type changed from '{}' to '{}'",
                            w.full_name(),
                            r.full_name()
                        ),
                    );
                    return;
                }
                let start = out.len();
                self.message(&w, &r, &format!("{path}/{}", r.name()), out);
                if out.len() > start {
                    push(
                        out,
                        path,
                        DifferenceKind::FieldNamedTypeChanged,
                        format!("message type '{}' changed incompatibly", r.full_name()),
                    );
                }
            }
        }
    }
}
