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
use std::collections::{BinaryHeap, HashMap, VecDeque};

use bytes::Bytes;
use foldhash::fast::RandomState;

/// The schedule of one partition; `T` is what is kept of a fetched event until it starts
/// (the worker's record).
///
/// Same-key events form a chain through [`Fetched::next_same_key`], so finishing an event
/// readies its successor without hashing the key; the key map is touched only when a key
/// gets its first unfinished event and when its last one finishes. It hashes with
/// `foldhash` (randomly seeded): SipHash of the keys was a sixth of the runtime's CPU with a
/// no-op handler, and the map never holds more than the partition's in-flight events.
///
/// The fetched events sit in a queue in offset order rather than a `BTreeMap`: offsets only
/// grow, so an event is found at its distance from the front (or by binary search past a
/// gap), and the tree's node allocations and rebalancing were ~900 instructions an event.
#[derive(Debug)]
pub(crate) struct Schedule<T> {
    /// One past the last offset pushed.
    next_offset: u64,
    /// Fetched events from the lowest unfinished one on, in offset order. An event that
    /// finishes behind an unfinished one stays (marked finished) until the front passes it,
    /// so the front is always the commit point.
    window: VecDeque<Fetched<T>>,
    /// Events of `window` not finished (waiting, running or retrying).
    unfinished: usize,
    /// Per key, the offset of its last unfinished event (the tail of its chain).
    tails: HashMap<Bytes, u64, RandomState>,
    /// Offsets that may start now, lowest first.
    ready: BinaryHeap<Reverse<u64>>,
    /// Offsets started and neither finished nor abandoned.
    running: usize,
}

/// One fetched event of the window.
#[derive(Debug)]
struct Fetched<T> {
    offset: u64,
    key: Option<Bytes>,
    /// The same key's next unfinished event, which becomes ready when this one finishes.
    next_same_key: Option<u64>,
    /// The payload until the event starts.
    payload: Option<T>,
    finished: bool,
}

impl<T> Schedule<T> {
    /// An empty schedule whose next event is at `start`.
    pub(crate) fn new(start: u64) -> Schedule<T> {
        Schedule {
            next_offset: start,
            window: VecDeque::new(),
            unfinished: 0,
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
                    let previous =
                        position(&self.window, *tail.get()).expect("a key's tail is unfinished");
                    self.window[previous].next_same_key = Some(offset);
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
        self.window.push_back(Fetched {
            offset,
            key,
            next_same_key: None,
            payload: Some(payload),
            finished: false,
        });
        self.unfinished += 1;
    }

    /// The lowest ready offset and its payload, marked running, when fewer than
    /// `concurrency` run.
    pub(crate) fn start_next(&mut self, concurrency: usize) -> Option<(u64, T)> {
        if self.running >= concurrency {
            return None;
        }
        let Reverse(offset) = self.ready.pop()?;
        self.running += 1;
        let payload = position(&self.window, offset)
            .and_then(|index| self.window[index].payload.take())
            .expect("a ready event is unfinished and not started");
        Some((offset, payload))
    }

    /// Marks a running event finished; its key's next event becomes ready.
    pub(crate) fn finish(&mut self, offset: u64) {
        let index = position(&self.window, offset)
            .filter(|&index| !self.window[index].finished)
            .unwrap_or_else(|| panic!("finished offset {offset} was not unfinished"));
        let entry = &mut self.window[index];
        assert!(
            entry.payload.is_none(),
            "offset {offset} finished unstarted"
        );
        assert!(self.running > 0, "finish without a running event");
        entry.finished = true;
        self.running -= 1;
        self.unfinished -= 1;
        match (entry.next_same_key, entry.key.take()) {
            (Some(next), _) => self.ready.push(Reverse(next)),
            (None, Some(key)) => {
                let tail = self.tails.remove(&key);
                assert_eq!(tail, Some(offset), "a key finished out of order");
            }
            (None, None) => {}
        }
        while self.window.front().is_some_and(|front| front.finished) {
            self.window.pop_front();
        }
    }

    /// Marks a running event given up without finishing (shutdown during a retry delay): it
    /// stays unfinished, so the commit point never passes it, and its key stays held.
    pub(crate) fn abandon(&mut self, offset: u64) {
        assert!(
            position(&self.window, offset).is_some_and(|index| !self.window[index].finished),
            "abandoned offset {offset} unknown"
        );
        assert!(self.running > 0, "abandon without a running event");
        self.running -= 1;
    }

    /// The offset to commit: the lowest unfinished one, or one past the last fetched.
    pub(crate) fn commit_point(&self) -> u64 {
        self.window
            .front()
            .map_or(self.next_offset, |front| front.offset)
    }

    /// The next offset to fetch.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Fetched events not finished.
    pub(crate) fn unfinished(&self) -> usize {
        self.unfinished
    }

    /// Events started and not finished or abandoned.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running
    }
}

/// Where event `offset` is in `window`: at its distance from the front when no offsets
/// are missing between them, else found by binary search.
fn position<T>(window: &VecDeque<Fetched<T>>, offset: u64) -> Option<usize> {
    let front = window.front()?.offset;
    let guess = usize::try_from(offset.checked_sub(front)?).ok()?;
    if window
        .get(guess)
        .is_some_and(|entry| entry.offset == offset)
    {
        return Some(guess);
    }
    window
        .binary_search_by_key(&offset, |entry| entry.offset)
        .ok()
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

    /// Against a model (a set of unfinished offsets and each key's running event), over
    /// offsets with gaps and events finishing in any order: the commit point is the lowest
    /// unfinished offset, a key never runs two events, and its events start in offset order.
    #[test]
    fn commit_point_and_key_order_hold_over_gaps_and_any_finishing_order() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let mut schedule: Schedule<Option<u64>> = Schedule::new(100);
        let mut unfinished = std::collections::BTreeSet::new();
        let mut running: Vec<(u64, Option<u64>)> = Vec::new();
        let mut last_started: HashMap<u64, u64> = HashMap::new();
        let mut next_offset = 100;
        for _ in 0..20_000 {
            match random(3) {
                0 if unfinished.len() < 64 => {
                    let offset = next_offset + random(4) * random(2);
                    let key = (random(4) > 0).then(|| random(6));
                    schedule.push(offset, key.map(|k| Bytes::from(k.to_string())), key);
                    unfinished.insert(offset);
                    next_offset = offset + 1;
                }
                1 => {
                    if let Some((offset, key)) = schedule.start_next(8) {
                        if let Some(key) = key {
                            assert!(
                                running.iter().all(|(_, other)| *other != Some(key)),
                                "key {key} runs twice"
                            );
                            let previous = last_started.insert(key, offset).unwrap_or(0);
                            assert!(
                                previous < offset,
                                "key {key} started {offset} after {previous}"
                            );
                        }
                        running.push((offset, key));
                    }
                }
                _ if !running.is_empty() => {
                    let (offset, _) = running.swap_remove(random(running.len() as u64) as usize);
                    schedule.finish(offset);
                    unfinished.remove(&offset);
                }
                _ => {}
            }
            let expected = unfinished.first().copied().unwrap_or(next_offset);
            assert_eq!(schedule.commit_point(), expected);
            assert_eq!(schedule.unfinished(), unfinished.len());
        }
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
