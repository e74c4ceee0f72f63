//! The event store's vocabulary: stream ids and their categories, expected versions, the
//! recorded event, what an append returns, snapshots.
//!
//! Not here: how any backend stores them, and errors (`error.rs`).

use std::fmt;

use keel_core::Event;

use crate::error::InvalidStream;
use crate::limits::STREAM_ID_BYTES_MAX;

/// What the caller believes the stream's version is before its append; the store appends
/// only if it is right, so two writers that decided on the same state cannot both win.
///
/// A stream's version is the number of events in it: an empty (absent) stream has version
/// 0, and the event numbered `n` (from 1) leaves the stream at version `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds (no concurrency check).
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must hold exactly this many events. `Exact(0)` means the same as
    /// [`ExpectedVersion::NoStream`].
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(version) => actual == version,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// Which way a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the given version up (oldest first).
    Forward,
    /// From the given version down (newest first).
    Backward,
}

/// One stored event: the CloudEvent as appended plus where the store put it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The stream it belongs to.
    pub stream: String,
    /// Its number in the stream, from 1 (the stream's version right after it).
    pub version: u64,
    /// Its global position: unique across the store, increasing in append order. Positions
    /// of one backend are dense from 0 unless something other than the store wrote to its log.
    pub position: u64,
    /// When the store recorded it, in ms since the Unix epoch (the store's clock, not the
    /// event's `time`), so "state as of a time" needs no trust in producers' clocks.
    pub recorded_at_ms: i64,
    /// The event.
    pub event: Event,
}

/// Where an append put its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append (the version of its last event).
    pub version: u64,
    /// Global position of the first event appended.
    pub first_position: u64,
    /// Global position of the last event appended; `wait_for` it to read your own write.
    pub last_position: u64,
}

/// A stream's state saved at a version, so loading it need not replay every event.
///
/// The store keeps the latest snapshot per stream and treats `state` as opaque bytes; the
/// aggregate layer encodes it and uses `state_version` to ignore snapshots of an older state
/// shape (it then replays from the start, which is always correct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream.
    pub stream: String,
    /// The stream version the state includes (events 1..=version are folded in).
    pub version: u64,
    /// The shape of `state`, chosen by whoever encodes it.
    pub state_version: u32,
    /// The encoded state.
    pub state: Vec<u8>,
}

/// Checks a stream id: non-empty, at most [`STREAM_ID_BYTES_MAX`] bytes, no control
/// characters (ids appear in log lines and keys).
pub fn validate_stream_id(stream: &str) -> Result<(), InvalidStream> {
    let reason = if stream.is_empty() {
        "empty"
    } else if stream.len() > STREAM_ID_BYTES_MAX {
        "longer than 256 bytes"
    } else if stream.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(InvalidStream {
        stream: stream.chars().take(80).collect(),
        reason,
    })
}

/// The category of a stream: the part of its id before the first `-` (`order-42` →
/// `order`), or the whole id when it has none — the convention EventStoreDB users know.
/// Reading a category reads every stream of one aggregate type in global order.
pub fn category(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        let check = |stream, expected| assert_eq!(category(stream), expected, "{stream}");
        check("order-42", "order");
        check("order-42-x", "order");
        check("order", "order");
        check("-x", "");
    }

    #[test]
    fn stream_ids() {
        let check = |stream: &str, ok: bool| {
            assert_eq!(validate_stream_id(stream).is_ok(), ok, "{stream:?}")
        };
        check("order-1", true);
        check("", false);
        check("a\nb", false);
        check(&"x".repeat(256), true);
        check(&"x".repeat(257), false);
    }

    #[test]
    fn expectations() {
        assert!(ExpectedVersion::Any.admits(7));
        assert!(ExpectedVersion::NoStream.admits(0));
        assert!(!ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(0).admits(0));
        assert!(ExpectedVersion::Exact(3).admits(3));
        assert!(!ExpectedVersion::Exact(3).admits(4));
    }
}
