//! Subscriptions: catch up from a position, then follow live appends — one loop over
//! [`EventStore::read_all`], so the hand-over from catch-up to live has no gap and no
//! duplicate by construction.
//!
//! Not here: checkpoints (a projection stores the position it reached, `keel-projection`).
//!
//! # Why there is no separate "live" phase
//!
//! Subscriptions that read history and then switch to a push channel must stitch the two
//! (events appended during the catch-up arrive on both, or on neither). Here there is one
//! cursor: the next position to read. Catching up is reading pages after the cursor; being
//! live is the same read after [`EventStore::wait_for`] said the head moved. Because every
//! backend makes positions readable in order, an event is delivered once, in position order,
//! whatever the timing of concurrent appends.

use crate::error::ReadError;
use crate::limits::{SUBSCRIPTION_PAGE_EVENTS, SUBSCRIPTION_POLL};
use crate::store::{AllFilter, EventStore};
use crate::stream::RecordedEvent;
use std::collections::VecDeque;

/// A catch-up subscription over a store: every event at or after a start position that
/// passes a filter, in position order, then each new event as it is appended.
#[derive(Debug)]
pub struct Subscription<'s, S> {
    store: &'s S,
    filter: AllFilter,
    next_position: u64,
    buffer: VecDeque<RecordedEvent>,
}

impl<'s, S: EventStore> Subscription<'s, S> {
    /// Starts at position `from` (0: the beginning; a checkpoint: the position after the
    /// last event handled).
    pub fn new(store: &'s S, from: u64, filter: AllFilter) -> Subscription<'s, S> {
        Subscription {
            store,
            filter,
            next_position: from,
            buffer: VecDeque::new(),
        }
    }

    /// The next event, waiting for one to be appended when caught up.
    ///
    /// Cancel safe: the cursor moves only when an event is returned, so a `next` dropped in a
    /// `select!` loses nothing and the following call returns the same event.
    pub async fn next(&mut self) -> Result<RecordedEvent, ReadError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next_position = event.position + 1;
                return Ok(event);
            }
            let page = self
                .store
                .read_all(self.next_position, SUBSCRIPTION_PAGE_EVENTS, &self.filter)
                .await?;
            if page.is_empty() {
                let head = self
                    .store
                    .wait_for(self.next_position, SUBSCRIPTION_POLL)
                    .await?;
                // A filtered read can be empty while the head moved (other categories'
                // events): skip past them so the next read starts after what was checked.
                if !matches!(self.filter, AllFilter::All) && head > self.next_position {
                    self.skip_checked(head).await?;
                }
                continue;
            }
            self.buffer.extend(page);
        }
    }

    /// Like [`Subscription::next`], but returns `None` once caught up (nothing at or after
    /// the cursor is readable), for callers that catch up and stop, such as a rebuild.
    pub async fn next_caught_up(&mut self) -> Result<Option<RecordedEvent>, ReadError> {
        if self.buffer.is_empty() {
            let page = self
                .store
                .read_all(self.next_position, SUBSCRIPTION_PAGE_EVENTS, &self.filter)
                .await?;
            self.buffer.extend(page);
        }
        match self.buffer.pop_front() {
            Some(event) => {
                self.next_position = event.position + 1;
                Ok(Some(event))
            }
            None => Ok(None),
        }
    }

    /// The position the next read starts from: one past the last event returned.
    pub fn position(&self) -> u64 {
        self.next_position
    }

    /// Re-reads from the cursor up to `head` and, if nothing there passes the filter, moves
    /// the cursor to `head`: a filtered subscription then does not re-read a long run of
    /// other categories' events on every wake-up.
    async fn skip_checked(&mut self, head: u64) -> Result<(), ReadError> {
        let page = self
            .store
            .read_all(self.next_position, 1, &self.filter)
            .await?;
        match page.first() {
            Some(event) if event.position < head => {}
            _ => self.next_position = head,
        }
        Ok(())
    }
}
