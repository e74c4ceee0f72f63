//! The event catalog's facts, learned from the log itself: which event types travel on
//! which topic, which sources publish them, which consumer groups read the topic, and the
//! latest payload of each type as an example.
//!
//! The scan reads at most [`CATALOG_SAMPLE_RECORDS`] records from the end of each partition,
//! so a catalog of a large log costs a bounded read. Internal topics (`_…`, `__…`, `keel.…`)
//! and dead-letter topics (`….dlq`) are not channels of the service landscape and are left out.
//!
//! Not here: the same facts learned through the admin port, for a broker this process does
//! not own (`catalog_port.rs`), the AsyncAPI document (`asyncapi.rs`) and the HTML page
//! (`html.rs`).

use std::collections::{BTreeMap, BTreeSet};

use keel_core::{Event, Record};
use keel_log::Log;
use serde_json::Value;

use crate::limits::{CATALOG_SAMPLE_RECORDS, REPLAY_CHUNK_BYTES};

/// What the log says about its topics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// One entry per user topic, by name.
    pub topics: BTreeMap<String, TopicFacts>,
}

/// One topic: its events and its consumers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicFacts {
    /// Partition count.
    pub partitions: u32,
    /// The event types seen, by CloudEvents `type`.
    pub events: BTreeMap<String, EventFacts>,
    /// Consumer groups with committed offsets on the topic.
    pub consumers: BTreeSet<String>,
    /// Records of the sample that were not CloudEvents.
    pub undecodable: u64,
}

/// One event type on one topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFacts {
    /// CloudEvents `source`s that published it.
    pub sources: BTreeSet<String>,
    /// Schema versions seen (`schemaversion`, 1 when absent).
    pub versions: BTreeSet<u32>,
    /// Events of this type in the sample.
    pub count: u64,
    /// The data of the latest such event, when it is JSON.
    pub example: Option<Value>,
}

/// Whether a topic is part of the service landscape (not internal, not dead letters).
pub fn is_catalogued(topic: &str) -> bool {
    !(topic.starts_with('_') || topic.starts_with("keel.") || topic.ends_with(".dlq"))
}

/// Scans `log` into a [`Catalog`]. Read errors of a partition leave that partition out of
/// the sample rather than failing the whole catalog; they are returned alongside.
pub fn scan(log: &Log) -> (Catalog, Vec<String>) {
    let mut catalog = Catalog::default();
    let mut errors = Vec::new();
    for topic in log.topics() {
        if !is_catalogued(topic.name()) {
            continue;
        }
        let facts = catalog.topics.entry(topic.name().to_string()).or_default();
        facts.partitions = topic.partitions().len() as u32;
        for (index, partition) in topic.partitions().iter().enumerate() {
            let end = partition.high_watermark();
            let mut offset = end
                .saturating_sub(CATALOG_SAMPLE_RECORDS)
                .max(partition.log_start_offset());
            while offset < end {
                let records = match partition.read_records(offset, REPLAY_CHUNK_BYTES) {
                    Ok(records) => records,
                    Err(error) => {
                        errors.push(format!("{}/{index}: {error}", topic.name()));
                        break;
                    }
                };
                let Some(last) = records.last() else { break };
                offset = last.offset + 1;
                for record in &records {
                    observe_record(facts, record);
                }
            }
        }
    }
    let offsets = log.group_offsets();
    for group in offsets.groups() {
        for (topic, _, _) in offsets.group(&group) {
            if let Some(facts) = catalog.topics.get_mut(&topic) {
                facts.consumers.insert(group.clone());
            }
        }
    }
    (catalog, errors)
}

/// Counts `record` into `facts`: its event type, source and version, or as undecodable
/// when it is no CloudEvent.
pub(crate) fn observe_record(facts: &mut TopicFacts, record: &Record) {
    let headers = record
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_deref()));
    match Event::from_record(record.key.as_deref(), headers, record.value.as_deref()) {
        Ok(event) => observe(facts, &event),
        Err(_) => facts.undecodable += 1,
    }
}

fn observe(facts: &mut TopicFacts, event: &Event) {
    let entry = facts.events.entry(event.ty.clone()).or_default();
    entry.sources.insert(event.source.clone());
    entry.versions.insert(event.schema_version().unwrap_or(1));
    entry.count += 1;
    if let Some(example) = event
        .data
        .as_deref()
        .and_then(|data| serde_json::from_slice(data).ok())
    {
        entry.example = Some(example);
    }
}
