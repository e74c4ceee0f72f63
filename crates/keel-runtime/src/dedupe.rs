//! The dedupe step of the middleware: the [`Inbox`] port ("has this consumer processed this
//! event id? mark it processed") and its in-memory implementation, [`MemoryDedupeWindow`].
//!
//! # Dedupe window versus inbox
//!
//! [`MemoryDedupeWindow`] remembers the last `capacity` (consumer, event id) pairs in this
//! process. It drops a redelivery that arrives while the pair is still remembered — a
//! duplicate publish, a replay of a recent event — and nothing else: it forgets on restart,
//! forgets the oldest pairs when full, and marks an event processed *after* the handler
//! returned, so a crash between the handler's side effects and the mark re-runs the handler.
//! It makes duplicates rarer; it does not make effects exactly-once. Handlers behind it must
//! still be idempotent.
//!
//! A transactional inbox (SQLite or PostgreSQL, in the `keel-sql` crate, not here) promises
//! more: its `processed_events` row keyed by (consumer, event id) is inserted in the *same
//! database transaction* as the handler's own writes, so the effects and the mark commit
//! together or not at all, across restarts. The plan for that: the handler [`Context`] will
//! carry the open transaction; the SQL inbox's `is_processed` reads inside it (with a row
//! lock), and its mark is part of the handler's commit rather than a separate
//! `mark_processed` call, which it implements as a no-op. This trait is therefore
//! deliberately small and async, so that both shapes fit it.
//!
//! [`Context`]: crate::Context

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use keel_core::{BoxFuture, PolicyError};

use crate::limits::DEDUPE_WINDOW_MAX;

/// Why an inbox could not answer. The router treats it as a transient failure of the event:
/// it retries, and the event is never handled without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inbox error: {0}")]
pub struct InboxError(pub String);

/// The port of the dedupe step: remembers which events a consumer has processed.
///
/// `consumer` names the group and handler (`<group>/<handler>`), so two handlers of one
/// event never shadow each other. Ids are CloudEvents ids, which a replay from the dead
/// letters keeps, so a replayed event that was in fact processed is dropped here.
pub trait Inbox: Send + Sync + 'static {
    /// Whether `event_id` was processed by `consumer`.
    ///
    /// Cancel safety: must be cancel safe (it only reads); the router may drop it during
    /// shutdown.
    fn is_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Records that `consumer` processed `event_id`; called after the handler succeeded.
    ///
    /// Cancel safety: if dropped, the mark may or may not be recorded; either is safe, as a
    /// missing mark only lets a later duplicate through to the (idempotent) handler.
    fn mark_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<(), InboxError>>;
}

/// A bounded in-memory dedupe window: remembers the most recent `capacity` (consumer, event
/// id) pairs, first in first out. Weaker than a transactional inbox; see the module docs.
#[derive(Debug)]
pub struct MemoryDedupeWindow {
    capacity: usize,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    seen: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl MemoryDedupeWindow {
    /// A window remembering up to `capacity` pairs, 1..=[`DEDUPE_WINDOW_MAX`].
    pub fn new(capacity: usize) -> Result<MemoryDedupeWindow, PolicyError> {
        if !(1..=DEDUPE_WINDOW_MAX).contains(&capacity) {
            return Err(PolicyError {
                setting: "dedupe.capacity",
                reason: format!("{capacity} is not in 1..={DEDUPE_WINDOW_MAX}"),
            });
        }
        Ok(MemoryDedupeWindow {
            capacity,
            state: Mutex::new(Window::default()),
        })
    }

    /// How many pairs are remembered now.
    pub fn len(&self) -> usize {
        self.window().order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while holding this lock cannot leave the window inconsistent in a way
        // that matters (at worst one pair is in `seen` but not in `order`), so go on.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn contains(&self, consumer: &str, event_id: &str) -> bool {
        self.window()
            .seen
            .contains(&(consumer.to_string(), event_id.to_string()))
    }

    fn insert(&self, consumer: &str, event_id: &str) {
        let pair = (consumer.to_string(), event_id.to_string());
        let mut window = self.window();
        if window.seen.insert(pair.clone()) {
            window.order.push_back(pair);
            while window.order.len() > self.capacity {
                if let Some(oldest) = window.order.pop_front() {
                    window.seen.remove(&oldest);
                }
            }
        }
    }
}

impl Inbox for MemoryDedupeWindow {
    fn is_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let processed = self.contains(consumer, event_id);
        Box::pin(async move { Ok(processed) })
    }

    fn mark_processed<'a>(
        &'a self,
        consumer: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<(), InboxError>> {
        self.insert(consumer, event_id);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(future: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn remembers_per_consumer_and_forgets_the_oldest() {
        let window = MemoryDedupeWindow::new(2).unwrap();
        let seen = |c, id| block_on(window.is_processed(c, id)).unwrap();
        assert!(!seen("g/h", "a"));
        block_on(window.mark_processed("g/h", "a")).unwrap();
        assert!(seen("g/h", "a"));
        assert!(!seen("other/h", "a"), "consumers are independent");
        block_on(window.mark_processed("g/h", "a")).unwrap();
        assert_eq!(window.len(), 1, "marking twice keeps one entry");
        block_on(window.mark_processed("g/h", "b")).unwrap();
        block_on(window.mark_processed("g/h", "c")).unwrap();
        assert_eq!(window.len(), 2);
        assert!(!seen("g/h", "a"), "the oldest pair is forgotten");
        assert!(seen("g/h", "b") && seen("g/h", "c"));
    }

    #[test]
    fn capacity_is_bounded() {
        assert!(MemoryDedupeWindow::new(0).is_err());
        assert!(MemoryDedupeWindow::new(DEDUPE_WINDOW_MAX + 1).is_err());
    }
}
