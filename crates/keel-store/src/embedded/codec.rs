//! How the embedded store lays an event into a `keel-log` record and back.
//!
//! An event is stored in CloudEvents' Kafka binary mode (`ce_*` headers, data as the value),
//! so any Kafka tool reading the topic sees ordinary CloudEvents; the record key is the
//! stream id and one extra header, `keel_stream_version`, holds the event's version. The
//! global position is the record's offset and the recorded time its timestamp.
//!
//! Snapshot records (a separate compacted topic) have the stream id as key, the state as
//! value and the headers `keel_stream_version` and `keel_state_version`.

use bytes::Bytes;
use keel_core::Event;
use keel_log::{Header, NewRecord, Record};

use crate::error::ReadError;
use crate::stream::{RecordedEvent, Snapshot};

/// The header holding an event's (or snapshot's) stream version, as decimal ASCII.
pub(crate) const VERSION_HEADER: &str = "keel_stream_version";
/// The header holding a snapshot's state version, as decimal ASCII.
pub(crate) const STATE_VERSION_HEADER: &str = "keel_state_version";

/// The record for `event`, number `version` of `stream`.
pub(crate) fn event_record(stream: &str, version: u64, event: &Event) -> NewRecord {
    let version = version.to_string();
    let mut record = event.to_record_with(
        Some(stream.as_bytes()),
        &[(VERSION_HEADER, version.as_bytes())],
    );
    // The recorded time is the log's clock at the append, not the event's own time.
    record.timestamp_ms = None;
    record
}

/// The stream and version of a record, without decoding the event: what the index needs.
/// `None` for a record the store did not write (no version header or no key).
pub(crate) fn stream_of(record: &Record) -> Option<(&str, u64)> {
    let stream = std::str::from_utf8(record.key.as_deref()?).ok()?;
    Some((stream, header_number(record, VERSION_HEADER)?))
}

/// The recorded event a record holds.
pub(crate) fn recorded_event(record: &Record) -> Result<RecordedEvent, ReadError> {
    let corrupt = |reason: String| ReadError::Corrupt {
        position: record.offset,
        reason,
    };
    let (stream, version) =
        stream_of(record).ok_or_else(|| corrupt("not an event store record".into()))?;
    let headers = record
        .headers
        .iter()
        .map(|header| (header.key.as_str(), header.value.as_deref()));
    let event = Event::from_binary(record.key.as_deref(), headers, record.value.as_deref())
        .map_err(|e| corrupt(crate::error::one_line(e)))?;
    Ok(RecordedEvent {
        stream: stream.to_owned(),
        version,
        position: record.offset,
        recorded_at_ms: record.timestamp_ms,
        event,
    })
}

/// The record for a snapshot.
pub(crate) fn snapshot_record(snapshot: &Snapshot) -> NewRecord {
    let header = |key: &'static str, value: String| Header::new(key, Some(Bytes::from(value)));
    NewRecord {
        key: Some(Bytes::copy_from_slice(snapshot.stream.as_bytes())),
        value: Some(Bytes::copy_from_slice(&snapshot.state)),
        headers: vec![
            header(VERSION_HEADER, snapshot.version.to_string()),
            header(STATE_VERSION_HEADER, snapshot.state_version.to_string()),
        ],
        timestamp_ms: None,
    }
}

/// The snapshot a record holds.
pub(crate) fn snapshot(record: &Record) -> Result<Snapshot, ReadError> {
    let corrupt = || ReadError::Corrupt {
        position: record.offset,
        reason: "not a snapshot record".into(),
    };
    let (stream, version) = stream_of(record).ok_or_else(corrupt)?;
    let state_version = header_number(record, STATE_VERSION_HEADER).ok_or_else(corrupt)?;
    Ok(Snapshot {
        stream: stream.to_owned(),
        version,
        state_version: u32::try_from(state_version).map_err(|_| corrupt())?,
        state: record.value.as_deref().ok_or_else(corrupt)?.to_vec(),
    })
}

fn header_number(record: &Record, name: &str) -> Option<u64> {
    let header = record.headers.iter().find(|h| h.key == name)?;
    std::str::from_utf8(header.value.as_deref()?)
        .ok()?
        .parse()
        .ok()
}
