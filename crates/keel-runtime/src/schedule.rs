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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

/// The schedule of one partition.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// One past the last offset pushed.
    next_offset: u64,
    /// Fetched events not finished yet (waiting, running or retrying), with their keys.
    unfinished: BTreeMap<u64, Option<Bytes>>,
    /// Per key, its unfinished offsets in order; the front one is ready or running.
    queues: HashMap<Bytes, VecDeque<u64>>,
    /// Offsets that may start now.
    ready: BTreeSet<u64>,
    /// Offsets started and neither finished nor abandoned.
    running: usize,
}

impl Schedule {
    /// An empty schedule whose next event is at `start`.
    pub(crate) fn new(start: u64) -> Schedule {
        Schedule {
            next_offset: start,
            unfinished: BTreeMap::new(),
            queues: HashMap::new(),
            ready: BTreeSet::new(),
            running: 0,
        }
    }

    /// Adds the next fetched event. Offsets must increase (gaps are allowed: compaction).
    pub(crate) fn push(&mut self, offset: u64, key: Option<Bytes>) {
        assert!(
            offset >= self.next_offset,
            "offset {offset} pushed after {}",
            self.next_offset
        );
        self.next_offset = offset + 1;
        match &key {
            Some(key) => {
                let queue = self.queues.entry(key.clone()).or_default();
                queue.push_back(offset);
                if queue.len() == 1 {
                    self.ready.insert(offset);
                }
            }
            None => {
                self.ready.insert(offset);
            }
        }
        self.unfinished.insert(offset, key);
    }

    /// The lowest ready offset, marked running, when fewer than `concurrency` run.
    pub(crate) fn start_next(&mut self, concurrency: usize) -> Option<(u64, Option<Bytes>)> {
        if self.running >= concurrency {
            return None;
        }
        let offset = self.ready.pop_first()?;
        self.running += 1;
        let key = self.unfinished.get(&offset).cloned().flatten();
        Some((offset, key))
    }

    /// Marks a running event finished; its key's next event becomes ready.
    pub(crate) fn finish(&mut self, offset: u64) {
        let key = self
            .unfinished
            .remove(&offset)
            .unwrap_or_else(|| panic!("finished offset {offset} was not unfinished"));
        assert!(self.running > 0, "finish without a running event");
        self.running -= 1;
        if let Some(key) = key {
            let queue = self.queues.get_mut(&key).expect("queue of a keyed event");
            assert_eq!(
                queue.pop_front(),
                Some(offset),
                "a key finished out of order"
            );
            match queue.front() {
                Some(next) => {
                    self.ready.insert(*next);
                }
                None => {
                    self.queues.remove(&key);
                }
            }
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
        let mut schedule = Schedule::new(10);
        schedule.push(10, key("a"));
        schedule.push(11, key("a"));
        schedule.push(12, key("b"));
        schedule.push(13, None);
        assert_eq!(schedule.start_next(8).map(|s| s.0), Some(10));
        assert_eq!(
            schedule.start_next(8).map(|s| s.0),
            Some(12),
            "11 waits for 10"
        );
        assert_eq!(schedule.start_next(8).map(|s| s.0), Some(13));
        assert_eq!(schedule.start_next(8), None);
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
        let mut schedule = Schedule::new(0);
        for offset in 0..5 {
            schedule.push(offset, None);
        }
        assert!(schedule.start_next(2).is_some());
        assert!(schedule.start_next(2).is_some());
        assert_eq!(schedule.start_next(2), None);
        assert_eq!(schedule.running(), 2);
        schedule.finish(1);
        assert_eq!(schedule.start_next(2).map(|s| s.0), Some(2));
    }

    #[test]
    fn abandoned_event_holds_commit_point_and_key() {
        let mut schedule = Schedule::new(0);
        schedule.push(0, key("a"));
        schedule.push(1, key("a"));
        schedule.start_next(4);
        schedule.abandon(0);
        assert_eq!(schedule.running(), 0);
        assert_eq!(schedule.start_next(4), None);
        assert_eq!(schedule.commit_point(), 0);
    }
}
