//! The key-ordered schedule of one partition: which fetched events may start now, and the
//! offset that is safe to commit. Pure bookkeeping, no I/O and no async, so it is tested on
//! its own; `partition_worker.rs` drives it.
//!
//! The rules it keeps:
//!
//! - events with the same key start strictly one after another, in offset order: a key's
//!   next event becomes ready only when the previous one *finished* (handled, dropped as a
//!   duplicate, or dead-lettered — retries included);
//! - events without a key have no order to keep and are ready at once;
//! - among ready events the lowest offset starts first, so the commit point moves as early as
//!   possible; a key that is retrying holds back only its own later events;
//! - the commit point is the lowest offset not finished (or one past the last fetched event),
//!   so a committed offset never passes unfinished work.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as KeyEntry;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use bytes::Bytes;
use foldhash::fast::RandomState;

/// The schedule of one partition; `T` is what is kept of a fetched event until it starts
/// (the worker's record).
///
/// Same-key events form a chain through [`Unfinished::next_same_key`], so finishing an event
/// readies its successor without hashing the key; the key map is touched only when a key
/// gets its first unfinished event and when its last one finishes. It hashes with
/// `foldhash` (randomly seeded): SipHash of the keys was a sixth of the runtime's CPU with a
/// no-op handler, and the map never holds more than the partition's in-flight events.
#[derive(Debug)]
pub(crate) struct Schedule<T> {
    /// One past the last offset pushed.
    next_offset: u64,
    /// Fetched events not finished yet (waiting, running or retrying), by offset.
    unfinished: BTreeMap<u64, Unfinished<T>>,
    /// Per key, the offset of its last unfinished event (the tail of its chain).
    tails: HashMap<Bytes, u64, RandomState>,
    /// Offsets that may start now, lowest first.
    ready: BinaryHeap<Reverse<u64>>,
    /// Offsets started and neither finished nor abandoned.
    running: usize,
}

/// One fetched event that has not finished.
#[derive(Debug)]
struct Unfinished<T> {
    key: Option<Bytes>,
    /// The same key's next unfinished event, which becomes ready when this one finishes.
    next_same_key: Option<u64>,
    /// The payload until the event starts.
    payload: Option<T>,
}

impl<T> Schedule<T> {
    /// An empty schedule whose next event is at `start`.
    pub(crate) fn new(start: u64) -> Schedule<T> {
        Schedule {
            next_offset: start,
            unfinished: BTreeMap::new(),
            tails: HashMap::default(),
            ready: BinaryHeap::new(),
            running: 0,
        }
    }

    /// Adds the next fetched event. Offsets must increase (gaps are allowed: compaction).
    pub(crate) fn push(&mut self, offset: u64, key: Option<Bytes>, payload: T) {
        assert!(
            offset >= self.next_offset,
            "offset {offset} pushed after {}",
            self.next_offset
        );
        self.next_offset = offset + 1;
        let ready = match &key {
            Some(key) => match self.tails.entry(key.clone()) {
                KeyEntry::Occupied(mut tail) => {
                    let previous = self
                        .unfinished
                        .get_mut(tail.get())
                        .expect("a key's tail is unfinished");
                    previous.next_same_key = Some(offset);
                    tail.insert(offset);
                    false
                }
                KeyEntry::Vacant(tail) => {
                    tail.insert(offset);
                    true
                }
            },
            None => true,
        };
        if ready {
            self.ready.push(Reverse(offset));
        }
        let entry = Unfinished {
            key,
            next_same_key: None,
            payload: Some(payload),
        };
        self.unfinished.insert(offset, entry);
    }

    /// The lowest ready offset and its payload, marked running, when fewer than
    /// `concurrency` run.
    pub(crate) fn start_next(&mut self, concurrency: usize) -> Option<(u64, T)> {
        if self.running >= concurrency {
            return None;
        }
        let Reverse(offset) = self.ready.pop()?;
        self.running += 1;
        let payload = self
            .unfinished
            .get_mut(&offset)
            .and_then(|entry| entry.payload.take())
            .expect("a ready event is unfinished and not started");
        Some((offset, payload))
    }

    /// Marks a running event finished; its key's next event becomes ready.
    pub(crate) fn finish(&mut self, offset: u64) {
        let entry = self
            .unfinished
            .remove(&offset)
            .unwrap_or_else(|| panic!("finished offset {offset} was not unfinished"));
        assert!(
            entry.payload.is_none(),
            "offset {offset} finished unstarted"
        );
        assert!(self.running > 0, "finish without a running event");
        self.running -= 1;
        match (entry.next_same_key, entry.key) {
            (Some(next), _) => self.ready.push(Reverse(next)),
            (None, Some(key)) => {
                let tail = self.tails.remove(&key);
                assert_eq!(tail, Some(offset), "a key finished out of order");
            }
            (None, None) => {}
        }
    }

    /// Marks a running event given up without finishing (shutdown during a retry delay): it
    /// stays unfinished, so the commit point never passes it, and its key stays held.
    pub(crate) fn abandon(&mut self, offset: u64) {
        assert!(
            self.unfinished.contains_key(&offset),
            "abandoned offset {offset} unknown"
        );
        assert!(self.running > 0, "abandon without a running event");
        self.running -= 1;
    }

    /// The offset to commit: the lowest unfinished one, or one past the last fetched.
    pub(crate) fn commit_point(&self) -> u64 {
        self.unfinished
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_offset)
    }

    /// The next offset to fetch.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Fetched events not finished.
    pub(crate) fn unfinished(&self) -> usize {
        self.unfinished.len()
    }

    /// Events started and not finished or abandoned.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(k.as_bytes()))
    }

    #[test]
    fn same_key_waits_other_keys_run() {
        let mut schedule: Schedule<()> = Schedule::new(10);
        schedule.push(10, key("a"), ());
        schedule.push(11, key("a"), ());
        schedule.push(12, key("b"), ());
        schedule.push(13, None, ());
        assert_eq!(schedule.start_next(8).map(|s| s.0), Some(10));
        assert_eq!(
            schedule.start_next(8).map(|s| s.0),
            Some(12),
            "11 waits for 10"
        );
        assert_eq!(schedule.start_next(8).map(|s| s.0), Some(13));
        assert!(schedule.start_next(8).is_none());
        schedule.finish(12);
        schedule.finish(13);
        assert_eq!(schedule.commit_point(), 10, "10 is unfinished");
        schedule.finish(10);
        assert_eq!(schedule.commit_point(), 11);
        assert_eq!(schedule.start_next(8).map(|s| s.0), Some(11));
        schedule.finish(11);
        assert_eq!(schedule.commit_point(), 14);
        assert_eq!(schedule.unfinished(), 0);
    }

    #[test]
    fn concurrency_bounds_running() {
        let mut schedule: Schedule<()> = Schedule::new(0);
        for offset in 0..5 {
            schedule.push(offset, None, ());
        }
        assert!(schedule.start_next(2).is_some());
        assert!(schedule.start_next(2).is_some());
        assert!(schedule.start_next(2).is_none());
        assert_eq!(schedule.running(), 2);
        schedule.finish(1);
        assert_eq!(schedule.start_next(2).map(|s| s.0), Some(2));
    }

    #[test]
    fn abandoned_event_holds_commit_point_and_key() {
        let mut schedule: Schedule<()> = Schedule::new(0);
        schedule.push(0, key("a"), ());
        schedule.push(1, key("a"), ());
        schedule.start_next(4);
        schedule.abandon(0);
        assert_eq!(schedule.running(), 0);
        assert!(schedule.start_next(4).is_none());
        assert_eq!(schedule.commit_point(), 0);
    }
}
