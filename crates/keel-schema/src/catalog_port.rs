//! The event catalog of a broker this process does not own (a Kafka cluster), learned
//! through its admin port: the same facts as [`scan`](crate::scan) on the embedded log,
//! from the newest [`CATALOG_PORT_SAMPLE_RECORDS`] records of each partition (at most
//! [`CATALOG_PORT_SAMPLE_BYTES_MAX`] bytes), [`CATALOG_PORT_TOPICS_CONCURRENCY`] topics at
//! once, within a time budget — a cluster may hold thousands of topics, and each read is a
//! fetch.
//!
//! The caller names the topics with their partitions' stored ranges and the consumer groups
//! of each (the console takes both from its sampler, which reads them anyway), so the scan
//! itself asks for nothing but records. Past the budget no read starts; the topics it left
//! are named in the errors, with the facts read so far.
//!
//! Not here: the embedded log's scan (`catalog.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use keel_core::{AdminTransport, PartitionOffsets, Record};

use crate::catalog::{Catalog, TopicFacts, is_catalogued, observe_record};
use crate::limits::{
    CATALOG_PORT_SAMPLE_BYTES_MAX, CATALOG_PORT_SAMPLE_RECORDS, CATALOG_PORT_TOPICS_CONCURRENCY,
    REPLAY_CHUNK_BYTES,
};

/// Scans `topics` (each with its partitions' stored ranges; internal and dead-letter topics
/// are left out, as on the log) through `admin` into a [`Catalog`] whose consumers are
/// `consumers` (groups by topic), reading for at most `time_max`. Read errors of a
/// partition, and the topics the budget cut short, are returned alongside.
pub async fn scan_port(
    admin: &dyn AdminTransport,
    topics: &[(String, Vec<PartitionOffsets>)],
    consumers: &BTreeMap<String, BTreeSet<String>>,
    time_max: Duration,
) -> (Catalog, Vec<String>) {
    let deadline = Instant::now() + time_max;
    // The futures are made before the stream: closures inside it would make the scan's
    // future not `Send` for every lifetime (rustc's higher-ranked closure inference).
    let reads: Vec<_> = topics
        .iter()
        .filter(|(topic, _)| is_catalogued(topic))
        .map(|(topic, ranges)| sample_topic(admin, topic, ranges, deadline))
        .collect();
    let samples: Vec<TopicSample> = stream::iter(reads)
        .buffered(CATALOG_PORT_TOPICS_CONCURRENCY)
        .collect()
        .await;
    let mut catalog = Catalog::default();
    let mut errors = Vec::new();
    let mut cut_short = Vec::new();
    for mut sample in samples {
        sample.facts.consumers = consumers.get(&sample.topic).cloned().unwrap_or_default();
        errors.append(&mut sample.errors);
        if sample.cut_short {
            cut_short.push(sample.topic.clone());
        }
        catalog.topics.insert(sample.topic, sample.facts);
    }
    if !cut_short.is_empty() {
        errors.push(format!(
            "{} topic(s) not read whole within {} ms: {}",
            cut_short.len(),
            time_max.as_millis(),
            cut_short.join(", ")
        ));
    }
    (catalog, errors)
}

/// What the scan learned of one topic.
struct TopicSample {
    topic: String,
    facts: TopicFacts,
    errors: Vec<String>,
    /// The budget ran out before every partition was read.
    cut_short: bool,
}

/// Reads the newest records of each partition of `topic` in turn, until `deadline`.
async fn sample_topic(
    admin: &dyn AdminTransport,
    topic: &str,
    ranges: &[PartitionOffsets],
    deadline: Instant,
) -> TopicSample {
    let mut sample = TopicSample {
        topic: topic.to_string(),
        facts: TopicFacts {
            partitions: ranges.len() as u32,
            ..TopicFacts::default()
        },
        errors: Vec::new(),
        cut_short: false,
    };
    for range in ranges {
        let end = range.high_watermark;
        let mut offset = end
            .saturating_sub(CATALOG_PORT_SAMPLE_RECORDS)
            .max(range.log_start);
        let mut bytes = 0;
        while offset < end && bytes < CATALOG_PORT_SAMPLE_BYTES_MAX {
            if Instant::now() >= deadline {
                sample.cut_short = true;
                return sample;
            }
            let records = match admin
                .read(topic, range.partition, offset, REPLAY_CHUNK_BYTES)
                .await
            {
                Ok(records) => records,
                Err(error) => {
                    sample
                        .errors
                        .push(format!("{topic}/{}: {error}", range.partition));
                    break;
                }
            };
            // A read may start below the offset asked for (a fetch returns whole batches).
            let fresh: Vec<&Record> = records
                .iter()
                .filter(|r| r.offset >= offset && r.offset < end)
                .collect();
            let Some(last) = fresh.last() else { break };
            offset = last.offset + 1;
            for record in fresh {
                bytes += record.size_bytes();
                observe_record(&mut sample.facts, record);
            }
        }
    }
    sample
}
