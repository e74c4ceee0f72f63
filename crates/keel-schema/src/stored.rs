//! A schema checked against the events already stored: every stored event of the subject's
//! type on a topic (or the newest of each partition, sampled) is read with the new schema,
//! after the caller's upcaster when it has one, and each one the schema cannot read is
//! reported with its partition, offset and the path that fails.
//!
//! How an event is read depends on the new schema's type:
//!
//! | new schema | stored `data` | the event is readable when |
//! |---|---|---|
//! | JSON Schema | JSON, or JSON framed in Confluent's wire format | it (upcast) validates |
//! | Avro | an Avro datum framed with its writer's schema id | Avro resolution from the writer's schema to the new one succeeds (upcast: decoded, upcast, then it must encode with the new schema) |
//! | Protobuf | a message framed with id and message indexes | the new file's message at those indexes decodes it |
//!
//! Not here: the compatibility of schemas with each other (`compatibility.rs`).

use keel_core::Event;
use keel_log::Log;
use serde_json::Value;

use crate::avro::decode_avro;
use crate::limits::{REPLAY_CHUNK_BYTES, UNREADABLE_REPORTED_MAX};
use crate::protobuf::{decode_protobuf, message_at};
use crate::registry::Registry;
use crate::schema::{Schema, SchemaType};
use crate::validation::PayloadValidator;
use crate::wire::{read_message_indexes, unframe};

/// Turns a stored payload of schema version `version` into the current shape.
pub type Upcaster<'u> = &'u dyn Fn(u32, Value) -> Result<Value, String>;

/// What to read and how far to go.
#[derive(Clone, Copy, Default)]
pub struct StoredCheck<'u> {
    /// Read only the newest this many records of each partition; `None` reads them all.
    pub sample_per_partition: Option<u64>,
    /// Stop at the first unreadable event (a CI gate) instead of reporting them all.
    pub stop_at_first: bool,
    /// Applied to each payload before it is read with the new schema.
    pub upcaster: Option<Upcaster<'u>>,
}

/// One stored event the new schema cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Where in the payload it fails (a JSON pointer; empty for the payload itself).
    pub path: String,
    /// Why, in one line.
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    /// `0@42: /total: "12" is not of type "integer"` (partition, offset, path, reason).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "the payload"
        } else {
            &self.path
        };
        write!(
            f,
            "{}@{}: {path}: {}",
            self.partition, self.offset, self.reason
        )
    }
}

/// What a check of stored events found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredReport {
    /// Records read.
    pub read: u64,
    /// Events of the subject's type among them, each read with the new schema.
    pub checked: u64,
    /// Those it cannot read, in log order (at most [`UNREADABLE_REPORTED_MAX`]).
    pub unreadable: Vec<Unreadable>,
    /// Unreadable events beyond those listed.
    pub unreadable_unlisted: u64,
}

/// Why stored events could not be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredCheckError {
    /// No such topic in the log.
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    /// A partition could not be read.
    #[error("cannot read {topic}/{partition}: {reason}")]
    Read {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The storage error.
        reason: String,
    },
}

/// Reads the stored events of type `subject` on `topic` with `schema`; `progress` is told
/// the records read so far and the total to read after each chunk.
pub fn check_stored_events(
    log: &Log,
    registry: &Registry,
    topic: &str,
    subject: &str,
    schema: &Schema,
    options: StoredCheck<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<StoredReport, StoredCheckError> {
    let found = log
        .topic(topic)
        .ok_or_else(|| StoredCheckError::TopicNotFound(topic.to_string()))?;
    let ranges: Vec<(u64, u64)> = found
        .partitions()
        .iter()
        .map(|p| {
            let end = p.high_watermark();
            let start = match options.sample_per_partition {
                Some(sample) => end.saturating_sub(sample).max(p.log_start_offset()),
                None => p.log_start_offset(),
            };
            (start, end)
        })
        .collect();
    let total: u64 = ranges.iter().map(|(start, end)| end - start).sum();
    let reader = Reader::new(registry, schema);
    let mut report = StoredReport::default();
    for (index, (partition, (start, end))) in found.partitions().iter().zip(ranges).enumerate() {
        let partition_index = u32::try_from(index).unwrap_or(u32::MAX);
        let mut offset = start;
        while offset < end {
            let records = partition
                .read_records(offset, REPLAY_CHUNK_BYTES)
                .map_err(|e| StoredCheckError::Read {
                    topic: topic.to_string(),
                    partition: partition_index,
                    reason: e.to_string(),
                })?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for record in records.iter().filter(|r| r.offset < end) {
                report.read += 1;
                let headers = record
                    .headers
                    .iter()
                    .map(|h| (h.key.as_str(), h.value.as_deref()));
                let Ok(event) =
                    Event::from_record(record.key.as_deref(), headers, record.value.as_deref())
                else {
                    continue;
                };
                if event.ty != subject {
                    continue;
                }
                report.checked += 1;
                if let Err((path, reason)) = reader.read(&event, options.upcaster) {
                    if report.unreadable.len() < UNREADABLE_REPORTED_MAX {
                        report.unreadable.push(Unreadable {
                            partition: partition_index,
                            offset: record.offset,
                            path,
                            reason,
                        });
                    } else {
                        report.unreadable_unlisted += 1;
                    }
                    if options.stop_at_first {
                        progress(report.read, total);
                        return Ok(report);
                    }
                }
            }
            progress(report.read, total);
        }
    }
    Ok(report)
}

/// The new schema, ready to read stored payloads.
struct Reader<'r> {
    registry: &'r Registry,
    schema: &'r Schema,
    validator: PayloadValidator,
}

/// Where a payload fails and why.
type Failure = (String, String);

fn at_root(error: impl std::fmt::Display) -> Failure {
    (String::new(), error.to_string())
}

impl<'r> Reader<'r> {
    fn new(registry: &'r Registry, schema: &'r Schema) -> Reader<'r> {
        Reader {
            registry,
            schema,
            validator: PayloadValidator::new(schema),
        }
    }

    fn read(&self, event: &Event, upcaster: Option<Upcaster<'_>>) -> Result<(), Failure> {
        let data = event.data.as_deref().unwrap_or_default();
        let version = event.schema_version().unwrap_or(1);
        let upcast = |value: Value| match upcaster {
            Some(upcast) => upcast(version, value).map_err(|e| at_root(format!("upcaster: {e}"))),
            None => Ok(value),
        };
        match self.schema.schema_type() {
            SchemaType::Json => {
                let text = match unframe(data) {
                    Ok(framed) if data.first() == Some(&0) => framed.payload,
                    _ => data,
                };
                let value: Value =
                    serde_json::from_slice(text).map_err(|e| at_root(format!("not JSON: {e}")))?;
                self.validate(upcast(value)?)
            }
            SchemaType::Avro => {
                let framed = unframe(data).map_err(at_root)?;
                let (_, writer) = self.registry.schema_by_id(framed.id).map_err(at_root)?;
                match upcaster {
                    None => decode_avro(&writer, Some(self.schema), framed.payload)
                        .map(drop)
                        .map_err(at_root),
                    Some(_) => {
                        let value = decode_avro(&writer, None, framed.payload).map_err(at_root)?;
                        self.validate(upcast(value)?)
                    }
                }
            }
            SchemaType::Protobuf => {
                let framed = unframe(data).map_err(at_root)?;
                let (indexes, payload) = read_message_indexes(framed.payload).map_err(at_root)?;
                let message = message_at(self.schema, &indexes).map_err(at_root)?;
                let value = decode_protobuf(&message, payload).map_err(at_root)?;
                match upcaster {
                    None => Ok(()),
                    Some(_) => self.validate(upcast(value)?),
                }
            }
        }
    }

    fn validate(&self, value: Value) -> Result<(), Failure> {
        self.validator
            .validate(&value)
            .map_err(|e| (e.path.clone(), e.reason))
    }
}
