//! [`Readers`]: the admin side's reading consumers (ListOffsets, ListGroups and the Fetch
//! of [`AdminTransport::read`](keel_core::AdminTransport::read)), a small bounded pool, so
//! concurrent callers — the console's sampler measuring several groups at once, a page
//! loading while it samples — do not queue behind one client.
//!
//! A reader serves one call at a time, since a read assigns it the partition it reads.
//! Readers are made on demand, at most [`KafkaConfig::admin_readers`] of them, and kept
//! for the next call; a caller finding every one busy and the bound reached waits for one
//! to come back. Each costs a connection per broker and a few librdkafka threads, which
//! is why the pool is bounded.
//!
//! Not here: what the readers ask (`admin.rs`) or their settings (`config.rs`).

use std::sync::{Condvar, Mutex};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;

use crate::config::KafkaConfig;

/// The pool: the idle readers and how many exist in all.
pub(crate) struct Readers {
    config: KafkaConfig,
    state: Mutex<Pool>,
    returned: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<BaseConsumer>,
    made: usize,
}

/// A reader lent to one caller; back to the pool when dropped.
pub(crate) struct Reader<'a> {
    readers: &'a Readers,
    consumer: Option<BaseConsumer>,
}

impl Readers {
    /// An empty pool for `config`'s cluster, of at most `config.admin_readers()` readers.
    pub(crate) fn new(config: &KafkaConfig) -> Readers {
        Readers {
            config: config.clone(),
            state: Mutex::default(),
            returned: Condvar::new(),
        }
    }

    /// An idle reader, a new one while under the bound, or else the first one given back.
    /// Blocks the calling thread (call it on a blocking one).
    pub(crate) fn get(&self) -> Result<Reader<'_>, KafkaError> {
        let mut pool = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(consumer) = pool.idle.pop() {
                return Ok(self.lend(consumer));
            }
            if pool.made < self.config.admin_readers() {
                pool.made += 1;
                // Made outside the lock: creating a client starts its threads.
                drop(pool);
                return match self.config.reader().create() {
                    Ok(consumer) => Ok(self.lend(consumer)),
                    Err(error) => {
                        self.forget_one();
                        Err(error)
                    }
                };
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lend(&self, consumer: BaseConsumer) -> Reader<'_> {
        Reader {
            readers: self,
            consumer: Some(consumer),
        }
    }

    /// A reader that could not be made frees its place for the next caller.
    fn forget_one(&self) {
        let mut pool = self.state.lock().unwrap_or_else(|p| p.into_inner());
        pool.made -= 1;
        self.returned.notify_one();
    }

    /// How many readers exist (idle or lent).
    #[cfg(test)]
    fn made(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).made
    }
}

impl std::ops::Deref for Reader<'_> {
    type Target = BaseConsumer;

    fn deref(&self) -> &BaseConsumer {
        self.consumer.as_ref().expect("a lent reader until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let mut pool = self.readers.state.lock().unwrap_or_else(|p| p.into_inner());
            pool.idle.push(consumer);
            self.readers.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Making a client does not connect, so no broker is needed here.
    fn pool_of(readers: usize) -> Arc<Readers> {
        Arc::new(Readers::new(
            &KafkaConfig::new("127.0.0.1:1").with_admin_readers(readers),
        ))
    }

    #[test]
    fn readers_are_made_on_demand_and_reused() {
        let readers = pool_of(3);
        assert_eq!(readers.made(), 0, "none before the first call");
        drop(readers.get().unwrap());
        drop(readers.get().unwrap());
        assert_eq!(readers.made(), 1, "one caller at a time needs one reader");
        let a = readers.get().unwrap();
        let b = readers.get().unwrap();
        assert_eq!(readers.made(), 2);
        drop((a, b));
    }

    #[test]
    fn a_caller_past_the_bound_waits_for_a_reader_to_come_back() {
        let readers = pool_of(1);
        let held = readers.get().unwrap();
        let waiter = {
            let readers = readers.clone();
            std::thread::spawn(move || drop(readers.get().unwrap()))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the second caller waits");
        drop(held);
        waiter.join().unwrap();
        assert_eq!(readers.made(), 1, "the bound holds");
    }
}
