//! Event payloads serialized against the registry, the way Confluent's serializers do it:
//! the payload of the subject's latest version (JSON text, an Avro datum, a Protobuf message
//! with its message indexes) framed by the magic byte and the schema id (`wire.rs`), so a
//! Confluent deserializer in any language reads what Keel writes, and Keel reads theirs.
//! On a CloudEvent the bytes become `data`, the format's media type `datacontenttype`, and
//! the schema's URL on the registry `dataschema` (`{registry}/schemas/ids/{id}`).
//!
//! Not here: the formats' own codecs (`avro.rs`, `protobuf.rs`) or the framing (`wire.rs`).

use std::sync::Arc;

use keel_core::Event;
use serde_json::Value;

use crate::avro::{CodecError, decode_avro, encode_avro};
use crate::protobuf::{decode_protobuf, encode_protobuf, indexes_of, message_at};
use crate::registry::{Registry, VersionSelector};
use crate::schema::{Schema, SchemaType};
use crate::wire::{frame, read_message_indexes, unframe, write_message_indexes};

/// Serializes and deserializes payloads with the schemas of a [`Registry`].
#[derive(Debug, Clone)]
pub struct SchemaCodec {
    registry: Arc<Registry>,
    base_url: String,
}

impl SchemaCodec {
    /// A codec over `registry`, which clients reach at `base_url` (what `dataschema` names,
    /// such as `http://127.0.0.1:8081`).
    pub fn new(registry: Arc<Registry>, base_url: impl Into<String>) -> SchemaCodec {
        SchemaCodec {
            registry,
            base_url: base_url.into().trim_end_matches('/').to_string(),
        }
    }

    /// Serializes `value` with the latest live version of `subject`: the schema id and the
    /// framed bytes. A value that does not fit the schema is refused.
    pub fn serialize(&self, subject: &str, value: &Value) -> Result<(u32, Vec<u8>), CodecError> {
        let latest = self
            .registry
            .version(subject, VersionSelector::Latest, false)?;
        let payload = match latest.schema_type {
            SchemaType::Json => {
                self.registry
                    .validator(latest.id)?
                    .validate(value)
                    .map_err(|e| CodecError::Encode(e.to_string()))?;
                serde_json::to_vec(value).map_err(|e| CodecError::Encode(e.to_string()))?
            }
            SchemaType::Avro => encode_avro(&latest.schema, value)?,
            SchemaType::Protobuf => {
                // Confluent's serializers write the record's own message; a value names none,
                // so the file's first message is the subject's record.
                let message = message_at(&latest.schema, &[0])?;
                let mut payload = Vec::new();
                write_message_indexes(&indexes_of(&message), &mut payload);
                payload.extend(encode_protobuf(&message, value)?);
                payload
            }
        };
        Ok((latest.id, frame(latest.id, &payload)))
    }

    /// Deserializes framed bytes with the schema their id names: the id and the value (for
    /// Protobuf, of the message its indexes name).
    pub fn deserialize(&self, bytes: &[u8]) -> Result<(u32, Value), CodecError> {
        let framed = unframe(bytes)?;
        let (_, schema) = self.registry.schema_by_id(framed.id)?;
        Ok((framed.id, decode_payload(&schema, framed.payload)?))
    }

    /// `event` carrying `value` serialized with `subject`'s latest version: `data`,
    /// `datacontenttype` and `dataschema` set.
    pub fn event(&self, event: Event, subject: &str, value: &Value) -> Result<Event, CodecError> {
        let (id, bytes) = self.serialize(subject, value)?;
        let (_, schema) = self.registry.schema_by_id(id)?;
        Ok(event
            .with_data(media_type(schema.schema_type()), bytes)
            .with_dataschema(self.dataschema(id)))
    }

    /// The value an event's `data` carries, deserialized with the schema its bytes name.
    pub fn event_value(&self, event: &Event) -> Result<Value, CodecError> {
        let data = event
            .data
            .as_deref()
            .ok_or_else(|| CodecError::Decode("the event has no data".into()))?;
        Ok(self.deserialize(data)?.1)
    }

    /// The `dataschema` URI of schema `id`: its address on the registry's REST API.
    pub fn dataschema(&self, id: u32) -> String {
        format!("{}/schemas/ids/{id}", self.base_url)
    }
}

/// An event's data as JSON: framed bytes (Confluent's wire format, which no JSON text starts
/// with) decoded with the schema their id names in `registry`, anything else read as JSON
/// text. The id of the framing, if any, comes along.
pub(crate) fn data_value(
    registry: &Registry,
    data: &[u8],
) -> Result<(Option<u32>, Value), CodecError> {
    if data.first() != Some(&crate::wire::MAGIC_BYTE) {
        let value = serde_json::from_slice(data)
            .map_err(|e| CodecError::Decode(format!("not JSON: {e}")))?;
        return Ok((None, value));
    }
    let framed = unframe(data)?;
    let (_, schema) = registry.schema_by_id(framed.id)?;
    Ok((Some(framed.id), decode_payload(&schema, framed.payload)?))
}

/// A framed value's payload decoded with the writer's schema.
pub(crate) fn decode_payload(schema: &Schema, payload: &[u8]) -> Result<Value, CodecError> {
    match schema.schema_type() {
        SchemaType::Json => {
            serde_json::from_slice(payload).map_err(|e| CodecError::Decode(e.to_string()))
        }
        SchemaType::Avro => decode_avro(schema, None, payload),
        SchemaType::Protobuf => {
            let (indexes, rest) = read_message_indexes(payload)?;
            decode_protobuf(&message_at(schema, &indexes)?, rest)
        }
    }
}

/// The media type a format's payload travels under in `datacontenttype`.
pub fn media_type(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Json => "application/json",
        SchemaType::Avro => "application/avro",
        SchemaType::Protobuf => "application/protobuf",
    }
}
