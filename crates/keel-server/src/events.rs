//! Finding events for the event browser and `GET /api/topics/{topic}/events`: newest first
//! or from an offset or a time, filtered by key, event id, type, correlation id or a JSON
//! path of the data; and an event's journey, the events of its conversation across topics
//! linked by `causationid`.
//!
//! Written once over the administrative port (`keel_core::AdminTransport`: stored ranges,
//! the offset at a time, reads), so the owned log and a Kafka cluster are searched by the
//! same code. Neither has a secondary index, so every search is a bounded scan — at most
//! [`ScanLimits`] records per request, fewer on a cluster where every read is a fetch —
//! and an answer says whether it stopped at that budget ([`EventPage::scan_limited`]) so
//! the page can say "stopped after N records". A scan reads whole batches and decodes
//! each record once.
//!
//! Not here: rendering, HTTP.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keel_core::{AdminTransport, Event, PartitionOffsets, Record, TransportError};
use keel_runtime::admin::scan::scan;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Most events one page holds.
pub(crate) const PAGE_EVENTS_MAX: usize = 500;
/// Events on a page unless the caller asks for another number.
pub(crate) const PAGE_EVENTS_DEFAULT: usize = 50;
/// Most events a journey holds.
pub(crate) const JOURNEY_EVENTS_MAX: usize = 500;
/// Bytes asked of the source to read one event.
const READ_BYTES: usize = 256 * 1024;
/// Records read per step when scanning backwards from the end of a partition.
const BACKWARD_STEP: u64 = 256;

/// How many records a search and a journey read before they stop and say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanLimits {
    /// Most records one search reads.
    pub(crate) search_records: u64,
    /// Most records a journey reads from the end of each partition.
    pub(crate) journey_partition_records: u64,
    /// Most records a journey reads in all.
    pub(crate) journey_records: u64,
    /// How long a journey goes on to the next topic: on a cluster of hundreds of topics
    /// each costs a round trip or more even when empty.
    pub(crate) journey_time: Duration,
}

impl ScanLimits {
    /// On the owned log, where a read is a copy from the page cache.
    pub(crate) const LOG: ScanLimits = ScanLimits {
        search_records: 200_000,
        journey_partition_records: 20_000,
        journey_records: 2_000_000,
        journey_time: Duration::from_secs(60),
    };
    /// On a cluster, where every read is a fetch over the network (about 1 MiB each) and
    /// a journey visits every topic: bounded so a page answers in seconds.
    pub(crate) const CLUSTER: ScanLimits = ScanLimits {
        search_records: 20_000,
        journey_partition_records: 2_000,
        journey_records: 20_000,
        journey_time: Duration::from_secs(5),
    };
}

/// Where a search starts and which way it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Start {
    /// From the newest event backwards.
    #[default]
    Newest,
    /// From `offset` forwards (in every selected partition).
    Offset,
    /// From the first event at or after `time_ms` forwards.
    Time,
}

/// A search, as query parameters of the event browser and the API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only this partition.
    pub(crate) partition: Option<u32>,
    /// Newest first (default), from an offset, or from a time.
    pub(crate) start: Option<Start>,
    /// With `start=offset`: the first offset.
    pub(crate) offset: Option<u64>,
    /// With `start=time`: ms since the epoch; with `start=newest`: only events before it.
    pub(crate) time_ms: Option<i64>,
    /// The record key (the CloudEvent's `partitionkey`).
    pub(crate) key: Option<String>,
    /// The CloudEvent `id`.
    pub(crate) id: Option<String>,
    /// The CloudEvent `type`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub(crate) ty: Option<String>,
    /// The `correlationid`.
    pub(crate) correlation: Option<String>,
    /// A path into the JSON data, `customer.email` or `$.items[0].sku`.
    pub(crate) path: Option<String>,
    /// With `path`: the value there, compared as text (`"a"` and `a` both match the string
    /// a); without it, the path only has to exist.
    pub(crate) value: Option<String>,
    /// Events per page (at most 500).
    pub(crate) limit: Option<usize>,
    /// Where the previous page stopped, `partition:offset` pairs joined by `,` (the
    /// `next_cursor` of the previous answer): newest first goes on below each offset,
    /// oldest first from it.
    pub(crate) cursor: Option<String>,
}

/// One stored event as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct FoundEvent {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: u32,
    /// The offset.
    pub(crate) offset: u64,
    /// The record timestamp, ms since the epoch.
    pub(crate) timestamp_ms: i64,
    /// The record key, as (lossy) UTF-8.
    pub(crate) key: Option<String>,
    /// Every record header, values as (lossy) UTF-8.
    pub(crate) headers: Vec<(String, String)>,
    /// The CloudEvent in structured JSON mode; `null` when the record is not one.
    #[schema(value_type = Option<Object>)]
    pub(crate) event: Option<Value>,
    /// Why the record is not a readable CloudEvent.
    pub(crate) event_error: Option<String>,
    /// The value as text when it is not a CloudEvent (lossy UTF-8, cut at 4 KiB).
    pub(crate) raw_value: Option<String>,
}

/// A page of search results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// Matching events, in the order of the search (newest first, or oldest first).
    pub(crate) events: Vec<FoundEvent>,
    /// Records read.
    pub(crate) scanned: u64,
    /// Whether the search stopped at its record budget before the end of the data.
    pub(crate) scan_limited: bool,
    /// The record budget of a search on this source.
    pub(crate) scan_records_max: u64,
    /// The `cursor` of the next page; `null` when every selected partition was read to its
    /// end (its start, newest first).
    pub(crate) next_cursor: Option<String>,
}

/// An event's conversation: every event found with its correlation id (or linked to it by
/// `causationid`), oldest first, each with the id of its cause.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct Journey {
    /// The correlation id searched for (the event's, or its own id when it has none).
    pub(crate) correlation: String,
    /// The events, by time.
    pub(crate) events: Vec<FoundEvent>,
    /// Whether a partition held more records than the search reads from its end, or the
    /// search stopped at its budget.
    pub(crate) scan_limited: bool,
    /// Records read.
    pub(crate) scanned: u64,
    /// The record budget of a journey on this source.
    pub(crate) scan_records_max: u64,
    /// Topics searched: the event's own first, then those named after it (`.dlq`), then
    /// the others by name, until the time or record budget ran out.
    pub(crate) topics_searched: usize,
    /// Topics the source has.
    pub(crate) topics_total: usize,
    /// Other topics that could not be read, each with the reason (a codec this client lacks,
    /// no permission): left out of the journey rather than failing it.
    pub(crate) unreadable: Vec<String>,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SearchError {
    /// No such topic.
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    /// No such partition.
    #[error("topic '{topic}' has no partition {partition}")]
    PartitionNotFound {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A parameter is missing or malformed.
    #[error("{0}")]
    BadQuery(String),
    /// No event at that place.
    #[error("no event at {topic}/{partition}/{offset}")]
    NoEvent {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset.
        offset: u64,
    },
    /// The source could not answer.
    #[error(transparent)]
    Transport(TransportError),
}

impl From<TransportError> for SearchError {
    fn from(error: TransportError) -> SearchError {
        match error {
            TransportError::UnknownTopic { topic } => SearchError::TopicNotFound(topic),
            TransportError::UnknownPartition { topic, partition } => {
                SearchError::PartitionNotFound { topic, partition }
            }
            other => SearchError::Transport(other),
        }
    }
}

/// Searches `topic` as `query` says, reading at most `limits.search_records` records.
pub(crate) async fn search(
    admin: &dyn AdminTransport,
    topic: &str,
    query: &EventQuery,
    limits: ScanLimits,
) -> Result<EventPage, SearchError> {
    let stored = admin.partition_offsets(topic).await?;
    let partitions: Vec<PartitionOffsets> = match query.partition {
        Some(index) => vec![
            stored
                .iter()
                .find(|p| p.partition == index)
                .copied()
                .ok_or(SearchError::PartitionNotFound {
                    topic: topic.to_string(),
                    partition: index,
                })?,
        ],
        None => stored,
    };
    let limit = query
        .limit
        .unwrap_or(PAGE_EVENTS_DEFAULT)
        .clamp(1, PAGE_EVENTS_MAX);
    let filter = Filter::from_query(query)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let mut page = EventPage {
        scan_records_max: limits.search_records,
        ..EventPage::default()
    };
    let mut budget = limits.search_records;
    let start = query.start.unwrap_or_default();
    let newest = start == Start::Newest;
    // Per partition: its matches in search order, how far the scan got, its range.
    let mut scanned: Vec<(u32, Vec<FoundEvent>, u64, u64, u64)> = Vec::new();
    for stored in partitions {
        let index = stored.partition;
        let high = stored.high_watermark;
        let (mut from, mut to) = match start {
            Start::Newest => {
                let end = match query.time_ms {
                    Some(before) => admin
                        .offset_for_time(topic, index, before)
                        .await?
                        .unwrap_or(high),
                    None => high,
                };
                (stored.log_start, end)
            }
            Start::Offset => {
                let offset = query
                    .offset
                    .ok_or_else(|| SearchError::BadQuery("start=offset needs an offset".into()))?;
                (offset, high)
            }
            Start::Time => {
                let time = query
                    .time_ms
                    .ok_or_else(|| SearchError::BadQuery("start=time needs time_ms".into()))?;
                let offset = admin
                    .offset_for_time(topic, index, time)
                    .await?
                    .unwrap_or(high);
                (offset, high)
            }
        };
        if let Some(&at) = cursor.get(&index) {
            if newest {
                to = to.min(at);
            } else {
                from = from.max(at);
            }
        }
        from = from.max(stored.log_start);
        to = to.min(high);
        let mut found = Vec::new();
        let visit = |record: Record| {
            let event = found_event(topic, index, record);
            if filter.matches(&event) {
                found.push(event);
            }
            found.len() < limit
        };
        let range = Range {
            topic,
            stored: &stored,
            from,
            to,
        };
        let outcome = if newest {
            scan_backward(admin, range, &mut budget, visit).await?
        } else {
            scan_forward(admin, range, &mut budget, visit).await?
        };
        page.scanned += outcome.read;
        page.scan_limited |= outcome.budget_hit;
        scanned.push((index, found, outcome.reached, from, to));
    }
    let mut merged: Vec<FoundEvent> = scanned
        .iter()
        .flat_map(|(_, found, _, _, _)| found.iter().cloned())
        .collect();
    if newest {
        merged.sort_by(|a, b| {
            (b.timestamp_ms, b.partition, b.offset).cmp(&(a.timestamp_ms, a.partition, a.offset))
        });
    } else {
        merged.sort_by_key(|e| (e.timestamp_ms, e.partition, e.offset));
    }
    merged.truncate(limit);
    // Each partition goes on after its last event on this page, or where its scan got when
    // every match it found is on the page.
    let mut next = Vec::new();
    let mut more = false;
    for (index, found, reached, from, to) in &scanned {
        let shown = merged.iter().filter(|e| e.partition == *index).count();
        let last_shown = found[..shown].last().map(|e| e.offset);
        let at = match (shown == found.len(), last_shown, newest) {
            (true, _, _) => *reached,
            (false, Some(offset), true) => offset,
            (false, Some(offset), false) => offset + 1,
            (false, None, true) => *to,
            (false, None, false) => *from,
        };
        more |= at != if newest { *from } else { *to };
        next.push(format!("{index}:{at}"));
    }
    page.events = merged;
    page.next_cursor = more.then(|| next.join(","));
    Ok(page)
}

/// Parses `partition:offset,…`.
fn parse_cursor(text: Option<&str>) -> Result<BTreeMap<u32, u64>, SearchError> {
    let mut cursor = BTreeMap::new();
    for pair in text
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let parsed = pair
            .split_once(':')
            .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)));
        let Some((partition, offset)) = parsed else {
            return Err(SearchError::BadQuery(format!(
                "cursor '{pair}' is not partition:offset"
            )));
        };
        cursor.insert(partition, offset);
    }
    Ok(cursor)
}

/// The event at `topic/partition/offset`.
pub(crate) async fn event_at(
    admin: &dyn AdminTransport,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<FoundEvent, SearchError> {
    let record = admin
        .read(topic, partition, offset, READ_BYTES)
        .await?
        .into_iter()
        .find(|r| r.offset == offset)
        .ok_or(SearchError::NoEvent {
            topic: topic.to_string(),
            partition,
            offset,
        })?;
    Ok(found_event(topic, partition, record))
}

/// The journey of `event`: the events sharing its correlation id (its own id when it has
/// none) and those naming it or its cause in `causationid`, across every topic, searched in
/// the newest `limits.journey_partition_records` records of each partition and at most
/// `limits.journey_records` records in all.
pub(crate) async fn journey(
    admin: &dyn AdminTransport,
    event: &FoundEvent,
    limits: ScanLimits,
) -> Result<Journey, SearchError> {
    let id = attribute(event, "id").unwrap_or_default().to_string();
    let correlation = attribute(event, "correlationid").map_or_else(|| id.clone(), str::to_string);
    let cause = attribute(event, "causationid").map(str::to_string);
    let mut journey = Journey {
        correlation: correlation.clone(),
        scan_records_max: limits.journey_records,
        ..Journey::default()
    };
    if correlation.is_empty() {
        return Ok(journey);
    }
    let related = |found: &FoundEvent| {
        let text = |name: &str| attribute(found, name);
        text("correlationid") == Some(&correlation)
            || text("id") == Some(&correlation)
            || text("causationid") == Some(&id)
            || (cause.is_some() && text("id") == cause.as_deref())
    };
    let mut budget = limits.journey_records;
    let deadline = Instant::now() + limits.journey_time;
    let mut topics: Vec<String> = admin.topics().await?.into_iter().map(|t| t.name).collect();
    journey.topics_total = topics.len();
    // Its own topic first, then those named after it (its dead letters, its retries).
    topics.sort_by_key(|t| (*t != event.topic, !t.starts_with(&event.topic)));
    for topic in &topics {
        // The event's own topic is always searched.
        if journey.topics_searched > 0 && (budget == 0 || Instant::now() >= deadline) {
            journey.scan_limited = true;
            break;
        }
        journey.topics_searched += 1;
        let searched =
            search_topic(admin, topic, limits, &mut budget, &mut journey, &related).await;
        match searched {
            Ok(()) => {}
            // Deleted since it was listed.
            Err(TransportError::UnknownTopic { .. }) => {}
            Err(error) if *topic == event.topic => return Err(error.into()),
            Err(error) => journey.unreadable.push(format!("{topic}: {error}")),
        }
    }
    journey.events.sort_by(|a, b| {
        (a.timestamp_ms, &a.topic, a.offset).cmp(&(b.timestamp_ms, &b.topic, b.offset))
    });
    Ok(journey)
}

/// Adds the events of `topic`'s newest records that are `related` to `journey`.
async fn search_topic(
    admin: &dyn AdminTransport,
    topic: &str,
    limits: ScanLimits,
    budget: &mut u64,
    journey: &mut Journey,
    related: &(impl Fn(&FoundEvent) -> bool + Sync),
) -> Result<(), TransportError> {
    for partition in &admin.partition_offsets(topic).await? {
        let end = partition.high_watermark;
        let start = end
            .saturating_sub(limits.journey_partition_records)
            .max(partition.log_start);
        journey.scan_limited |= start > partition.log_start;
        let range = Range {
            topic,
            stored: partition,
            from: start,
            to: end,
        };
        let outcome = scan_forward(admin, range, budget, |record| {
            let found = found_event(topic, partition.partition, record);
            if related(&found) {
                journey.events.push(found);
            }
            journey.events.len() < JOURNEY_EVENTS_MAX
        })
        .await?;
        journey.scanned += outcome.read;
        journey.scan_limited |= outcome.budget_hit;
    }
    Ok(())
}

/// The journey of the event at `topic/partition/offset`, with that event.
pub(crate) async fn journey_at(
    admin: &dyn AdminTransport,
    topic: &str,
    partition: u32,
    offset: u64,
    limits: ScanLimits,
) -> Result<(FoundEvent, Journey), SearchError> {
    let event = event_at(admin, topic, partition, offset).await?;
    let journey = journey(admin, &event, limits).await?;
    Ok((event, journey))
}

/// Records of an embedded event store's topic read from its end for [`store_streams`].
pub(crate) const STORE_SCAN_RECORDS_MAX: u64 = 50_000;
/// Streams listed as the most recently written.
const RECENT_STREAMS: usize = 20;
/// The header holding an embedded store event's version in its stream (keel-store's codec).
const STREAM_VERSION_HEADER: &str = "keel_stream_version";

/// An embedded event store's streams, from the newest records of its topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct StoreStreams {
    /// The events topic.
    pub(crate) topic: String,
    /// Events stored in it.
    pub(crate) events: u64,
    /// Per category (a stream id's part before its first `-`): streams and events seen.
    pub(crate) categories: Vec<(String, u64, u64)>,
    /// The most recently written streams: id, version, type of the latest event, offset.
    pub(crate) recent: Vec<(String, String, String, u64)>,
    /// Records of the snapshots topic (compaction keeps one per stream).
    pub(crate) snapshots: u64,
    /// Whether the topic held more records than were read.
    pub(crate) scan_limited: bool,
}

/// The stored range of every partition of `topic`, `None` when there is no such topic.
async fn stored_ranges(
    admin: &dyn AdminTransport,
    topic: &str,
) -> Result<Option<Vec<PartitionOffsets>>, SearchError> {
    match admin.partition_offsets(topic).await {
        Ok(stored) => Ok(Some(stored)),
        Err(TransportError::UnknownTopic { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The streams of the embedded event store whose events are in `topic` and snapshots in
/// `snapshot_topic`, `None` when the source has no such topic.
pub(crate) async fn store_streams(
    admin: &dyn AdminTransport,
    topic: &str,
    snapshot_topic: &str,
) -> Result<Option<StoreStreams>, SearchError> {
    let Some(partitions) = stored_ranges(admin, topic).await? else {
        return Ok(None);
    };
    let mut out = StoreStreams {
        topic: topic.to_string(),
        ..StoreStreams::default()
    };
    let mut categories: BTreeMap<String, (std::collections::BTreeSet<String>, u64)> =
        BTreeMap::new();
    let mut latest: BTreeMap<String, (String, String, u64)> = BTreeMap::new();
    for partition in &partitions {
        let end = partition.high_watermark;
        out.events += end - partition.log_start;
        let start = end
            .saturating_sub(STORE_SCAN_RECORDS_MAX)
            .max(partition.log_start);
        out.scan_limited |= start > partition.log_start;
        let mut budget = STORE_SCAN_RECORDS_MAX;
        let range = Range {
            topic,
            stored: partition,
            from: start,
            to: end,
        };
        scan_forward(admin, range, &mut budget, |record| {
            let Some(stream) = record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
            else {
                return true;
            };
            let category = stream.split('-').next().unwrap_or_default().to_string();
            let entry = categories.entry(category).or_default();
            entry.0.insert(stream.clone());
            entry.1 += 1;
            let header = |name: &str| {
                record
                    .headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value.as_deref())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            latest.insert(
                stream,
                (
                    header(STREAM_VERSION_HEADER),
                    header("ce_type"),
                    record.offset,
                ),
            );
            true
        })
        .await?;
    }
    out.categories = categories
        .into_iter()
        .map(|(category, (streams, events))| (category, streams.len() as u64, events))
        .collect();
    let mut recent: Vec<_> = latest
        .into_iter()
        .map(|(stream, (version, ty, offset))| (stream, version, ty, offset))
        .collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.3));
    recent.truncate(RECENT_STREAMS);
    out.recent = recent;
    out.snapshots = stored_ranges(admin, snapshot_topic)
        .await?
        .map_or(0, |stored| {
            stored.iter().map(|p| p.high_watermark - p.log_start).sum()
        });
    Ok(Some(out))
}

/// The CloudEvent attribute `name` of a found event, as text.
pub(crate) fn attribute<'a>(event: &'a FoundEvent, name: &str) -> Option<&'a str> {
    event.event.as_ref()?.get(name)?.as_str()
}

/// A stretch `from..to` of one partition to scan.
#[derive(Clone, Copy)]
struct Range<'a> {
    topic: &'a str,
    /// The partition and its stored range.
    stored: &'a PartitionOffsets,
    from: u64,
    to: u64,
}

/// What a scan did.
struct Scanned {
    read: u64,
    budget_hit: bool,
    /// Where a next scan in the same direction goes on: one past the last record visited
    /// (forward), or the lowest offset visited (backward); the range's end when done.
    reached: u64,
}

/// Visits the records of `range` oldest first until `visit` returns false or `budget`
/// records were read.
async fn scan_forward(
    admin: &dyn AdminTransport,
    range: Range<'_>,
    budget: &mut u64,
    mut visit: impl FnMut(Record) -> bool + Send,
) -> Result<Scanned, TransportError> {
    let from = range.from.max(range.stored.log_start);
    let to = range.to.min(range.stored.high_watermark);
    let mut outcome = Scanned {
        read: 0,
        budget_hit: false,
        reached: to.max(from),
    };
    if from < to && *budget == 0 {
        outcome.budget_hit = true;
        outcome.reached = from;
        return Ok(outcome);
    }
    scan(admin, range.topic, range.stored, from, to, |record| {
        if *budget == 0 {
            outcome.budget_hit = true;
            outcome.reached = record.offset;
            return Ok::<_, TransportError>(false);
        }
        *budget -= 1;
        outcome.read += 1;
        let next = record.offset + 1;
        if visit(record) {
            Ok(true)
        } else {
            outcome.reached = next;
            Ok(false)
        }
    })
    .await?;
    Ok(outcome)
}

/// Visits the records of `range` newest first, reading forward in steps from the end,
/// until `visit` returns false or `budget` records were read.
async fn scan_backward(
    admin: &dyn AdminTransport,
    range: Range<'_>,
    budget: &mut u64,
    mut visit: impl FnMut(Record) -> bool + Send,
) -> Result<Scanned, TransportError> {
    let from = range.from.max(range.stored.log_start);
    let mut end = range.to.min(range.stored.high_watermark);
    let mut read = 0;
    while end > from {
        if *budget == 0 {
            return Ok(Scanned {
                read,
                budget_hit: true,
                reached: end,
            });
        }
        let start = end.saturating_sub(BACKWARD_STEP.min(*budget)).max(from);
        let mut step = Vec::new();
        scan(admin, range.topic, range.stored, start, end, |record| {
            step.push(record);
            Ok::<_, TransportError>(true)
        })
        .await?;
        for record in step.into_iter().rev() {
            read += 1;
            *budget = budget.saturating_sub(1);
            let offset = record.offset;
            if !visit(record) {
                return Ok(Scanned {
                    read,
                    budget_hit: false,
                    reached: offset,
                });
            }
        }
        end = start;
    }
    Ok(Scanned {
        read,
        budget_hit: false,
        reached: from.min(end),
    })
}

fn found_event(topic: &str, partition: u32, record: Record) -> FoundEvent {
    let decoded = Event::from_record(
        record.key.as_deref(),
        record
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_deref())),
        record.value.as_deref(),
    );
    let (event, event_error, raw_value) = match decoded {
        Ok(event) => (Some(event.to_structured_json()), None, None),
        Err(error) => {
            let raw = record.value.as_deref().map(|v| {
                let cut = &v[..v.len().min(4096)];
                String::from_utf8_lossy(cut).into_owned()
            });
            (None, Some(error.to_string()), raw)
        }
    };
    FoundEvent {
        topic: topic.to_string(),
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        key: record
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        headers: record
            .headers
            .iter()
            .map(|h| {
                let value = h.value.as_deref().unwrap_or_default();
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect(),
        event,
        event_error,
        raw_value,
    }
}

/// A query's filters, checked once.
struct Filter {
    key: Option<String>,
    attributes: BTreeMap<&'static str, String>,
    path: Option<Vec<PathStep>>,
    value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Field(String),
    Index(usize),
}

impl Filter {
    fn from_query(query: &EventQuery) -> Result<Filter, SearchError> {
        let mut attributes = BTreeMap::new();
        for (name, wanted) in [
            ("id", &query.id),
            ("type", &query.ty),
            ("correlationid", &query.correlation),
        ] {
            if let Some(wanted) = wanted.as_ref().filter(|w| !w.is_empty()) {
                attributes.insert(name, wanted.clone());
            }
        }
        let path = match query.path.as_deref().filter(|p| !p.is_empty()) {
            Some(text) => Some(parse_path(text).map_err(SearchError::BadQuery)?),
            None => None,
        };
        Ok(Filter {
            key: query.key.clone().filter(|k| !k.is_empty()),
            attributes,
            path,
            value: query.value.clone().filter(|v| !v.is_empty()),
        })
    }

    fn matches(&self, found: &FoundEvent) -> bool {
        if self.key.is_some() && found.key != self.key {
            return false;
        }
        if self.attributes.is_empty() && self.path.is_none() {
            return true;
        }
        let Some(event) = &found.event else {
            return false;
        };
        let attributes_match = self
            .attributes
            .iter()
            .all(|(name, wanted)| event.get(*name).and_then(Value::as_str) == Some(wanted));
        let Some(path) = &self.path else {
            return attributes_match;
        };
        let Some(at) = event.get("data").and_then(|data| walk(data, path)) else {
            return false;
        };
        attributes_match
            && self.value.as_ref().is_none_or(|wanted| {
                // `a` matches the string a; `"a"`, `42` or `true` match as JSON.
                matches!(at, Value::String(text) if text == wanted)
                    || serde_json::from_str::<Value>(wanted).is_ok_and(|w| w == *at)
            })
    }
}

/// Parses `a.b[2].c`, with an optional leading `$` or `$.`.
fn parse_path(text: &str) -> Result<Vec<PathStep>, String> {
    let rest = text.strip_prefix('$').unwrap_or(text);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let mut steps = Vec::new();
    for part in rest.split('.') {
        let (name, mut indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(PathStep::Field(name.to_string()));
        }
        while let Some(open) = indexes.strip_prefix('[') {
            let close = open
                .find(']')
                .ok_or_else(|| format!("path '{text}': '[' without ']'"))?;
            let index = open[..close]
                .parse()
                .map_err(|_| format!("path '{text}': '{}' is not an index", &open[..close]))?;
            steps.push(PathStep::Index(index));
            indexes = &open[close + 1..];
        }
        if !indexes.is_empty() {
            return Err(format!("path '{text}': unexpected '{indexes}'"));
        }
    }
    if steps.is_empty() {
        return Err(format!("path '{text}' names nothing"));
    }
    Ok(steps)
}

fn walk<'a>(mut value: &'a Value, path: &[PathStep]) -> Option<&'a Value> {
    for step in path {
        value = match step {
            PathStep::Field(name) => value.get(name)?,
            PathStep::Index(index) => value.get(*index)?,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use keel_embedded::admin::{LogAdmin, at_once};
    use keel_log::{Log, TopicConfig};
    use serde_json::json;

    use super::*;

    fn search_log(log: &Log, topic: &str, query: &EventQuery) -> Result<EventPage, SearchError> {
        at_once(search(
            &LogAdmin::new(log, 0),
            topic,
            query,
            ScanLimits::LOG,
        ))
    }

    fn seeded() -> (tempfile::TempDir, Log) {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", TopicConfig::new(2)).unwrap();
        log.create_topic("payments", TopicConfig::new(1)).unwrap();
        let topic = log.topic("orders").unwrap();
        let mut batches = vec![Vec::new(), Vec::new()];
        for i in 0..600u32 {
            let key = format!("order-{}", i % 7);
            let event = Event::new("/orders", if i % 2 == 0 { "order.placed" } else { "order.paid" })
                .with_id(format!("e{i}"))
                .with_partition_key(key.clone())
                .with_correlation_id(format!("c{}", i % 3))
                .with_data_json(&json!({"total": i, "customer": {"tier": if i % 5 == 0 { "gold" } else { "basic" }}}));
            // Distinct times, so newest first is the order of `i` across partitions.
            let mut record = keel_runtime::event_record(&event);
            record.timestamp_ms = Some(1_000_000 + i64::from(i));
            batches[topic.partition_for(Some(key.as_bytes())) as usize].push(record);
        }
        for (partition, records) in topic.partitions().iter().zip(&batches) {
            partition.append(records).unwrap();
        }
        (dir, log)
    }

    fn check(query: EventQuery, expected_ids: &[&str]) {
        let (_dir, log) = seeded();
        let page = search_log(&log, "orders", &query).unwrap();
        let ids: Vec<&str> = page
            .events
            .iter()
            .map(|e| attribute(e, "id").unwrap())
            .collect();
        assert_eq!(ids, expected_ids, "{query:?}");
    }

    fn query() -> EventQuery {
        EventQuery {
            limit: Some(3),
            ..EventQuery::default()
        }
    }

    #[test]
    fn searches_find_what_their_filters_name() {
        check(query(), &["e599", "e598", "e597"]);
        check(
            EventQuery {
                id: Some("e17".into()),
                ..query()
            },
            &["e17"],
        );
        check(
            EventQuery {
                key: Some("order-3".into()),
                ..query()
            },
            &["e598", "e591", "e584"],
        );
        check(
            EventQuery {
                ty: Some("order.paid".into()),
                correlation: Some("c0".into()),
                ..query()
            },
            &["e597", "e591", "e585"],
        );
        check(
            EventQuery {
                path: Some("customer.tier".into()),
                value: Some("gold".into()),
                ..query()
            },
            &["e595", "e590", "e585"],
        );
        check(
            EventQuery {
                path: Some("$.total".into()),
                value: Some("42".into()),
                ..query()
            },
            &["e42"],
        );
        check(
            EventQuery {
                path: Some("missing".into()),
                ..query()
            },
            &[],
        );
    }

    #[test]
    fn oldest_first_from_an_offset_reads_forward() {
        let (_dir, log) = seeded();
        let query = EventQuery {
            start: Some(Start::Offset),
            offset: Some(10),
            partition: Some(1),
            limit: Some(2),
            ..EventQuery::default()
        };
        let page = search_log(&log, "orders", &query).unwrap();
        let offsets: Vec<u64> = page.events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![10, 11]);
    }

    #[test]
    fn pages_follow_their_cursor_without_gaps_or_repeats() {
        let (_dir, log) = seeded();
        for start in [Start::Newest, Start::Offset] {
            let mut query = EventQuery {
                start: Some(start),
                offset: Some(0),
                ty: Some("order.paid".into()),
                limit: Some(7),
                ..EventQuery::default()
            };
            let mut seen = Vec::new();
            loop {
                let page = search_log(&log, "orders", &query).unwrap();
                seen.extend(
                    page.events
                        .iter()
                        .map(|e| attribute(e, "id").unwrap().to_string()),
                );
                match page.next_cursor {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
            let mut expected: Vec<String> = (0..600)
                .filter(|i| i % 2 == 1)
                .map(|i| format!("e{i}"))
                .collect();
            if start == Start::Newest {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{start:?}");
        }
    }

    #[test]
    fn a_journey_follows_correlation_across_topics_within_its_budgets() {
        let (_dir, log) = seeded();
        let admin = LogAdmin::new(&log, 0);
        let cause = at_once(event_at(&admin, "orders", 0, 0)).unwrap();
        let cause_id = attribute(&cause, "id").unwrap().to_string();
        let correlation = attribute(&cause, "correlationid").unwrap().to_string();
        let effect = Event::new("/payments", "payment.requested")
            .with_causation_id(cause_id.clone())
            .with_correlation_id("elsewhere");
        log.topic("payments").unwrap().partitions()[0]
            .append(&[keel_runtime::event_record(&effect)])
            .unwrap();
        let found = at_once(journey(&admin, &cause, ScanLimits::LOG)).unwrap();
        assert_eq!(found.correlation, correlation);
        assert_eq!(
            found.events.len(),
            201,
            "200 of the correlation and the effect"
        );
        assert!(
            found
                .events
                .iter()
                .any(|e| e.topic == "payments" && attribute(e, "causationid") == Some(&cause_id))
        );
        let hurried = ScanLimits {
            journey_time: Duration::ZERO,
            ..ScanLimits::LOG
        };
        let cut = at_once(journey(&admin, &cause, hurried)).unwrap();
        assert_eq!((cut.topics_searched, cut.topics_total), (1, 2));
        assert!(cut.scan_limited, "a journey cut short says so");
        assert_eq!(cut.events.len(), 200, "its own topic's, searched first");
        let page = search_log(
            &log,
            "orders",
            &EventQuery {
                ty: Some("no.such.type".into()),
                ..EventQuery::default()
            },
        )
        .unwrap();
        assert_eq!((page.scanned, page.scan_limited), (600, false));
        let small = ScanLimits {
            search_records: 100,
            ..ScanLimits::LOG
        };
        let page = at_once(search(&admin, "orders", &EventQuery::default(), small)).unwrap();
        assert_eq!(
            (page.scanned, page.scan_limited, page.scan_records_max),
            (100, false, 100),
            "a page's 50 candidates from each of the 2 partitions, within the budget"
        );
        let page = at_once(search(
            &admin,
            "orders",
            &EventQuery {
                ty: Some("no.such.type".into()),
                ..EventQuery::default()
            },
            small,
        ))
        .unwrap();
        assert_eq!((page.scanned, page.scan_limited), (100, true));
    }

    #[test]
    fn an_embedded_stores_streams_are_counted_by_category() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("keel.events", TopicConfig::new(1))
            .unwrap();
        let records: Vec<_> = ["order-1", "order-2", "order-1", "cart-9"]
            .iter()
            .enumerate()
            .map(|(i, stream)| {
                let event = Event::new("/orders", format!("t{i}")).with_partition_key(*stream);
                let mut record = keel_runtime::event_record(&event);
                record.headers.push(keel_log::Header {
                    key: STREAM_VERSION_HEADER.into(),
                    value: Some(format!("{}", i + 1).into_bytes().into()),
                });
                record
            })
            .collect();
        log.topic("keel.events").unwrap().partitions()[0]
            .append(&records)
            .unwrap();
        let admin = LogAdmin::new(&log, 0);
        let streams = at_once(store_streams(&admin, "keel.events", "keel.snapshots"))
            .unwrap()
            .unwrap();
        assert_eq!(
            streams.categories,
            [("cart".to_string(), 1, 1), ("order".to_string(), 2, 3)]
        );
        assert_eq!(
            streams.recent[0],
            ("cart-9".to_string(), "4".to_string(), "t3".to_string(), 3)
        );
        assert_eq!(
            streams.recent[1].0, "order-1",
            "its latest event is newer than order-2's"
        );
        assert!(
            at_once(store_streams(&admin, "other.events", "x"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_paths_are_refused_by_name() {
        assert_eq!(
            parse_path("items[0].sku"),
            Ok(vec![
                PathStep::Field("items".into()),
                PathStep::Index(0),
                PathStep::Field("sku".into())
            ])
        );
        assert!(parse_path("items[x]").unwrap_err().contains("not an index"));
        assert!(parse_path("$").unwrap_err().contains("names nothing"));
    }
}
