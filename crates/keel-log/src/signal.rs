//! The append signal: how async code waits for a partition's high watermark to move without
//! a thread per waiter, and without keel-log knowing any async runtime (it uses only
//! `std::task`). Every path that makes records visible goes through `Partition::publish`,
//! which wakes this signal, so a waiter sees appends of every writer — a Kafka produce, an
//! embedded publish, a dead-letter replay, a registry write — and only those of its own
//! partition.
//!
//! Not here: the synchronous `Partition::wait_for`, which waits on the partition's
//! condition variable under the same lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::partition::Partition;

/// The wakers of the futures now waiting on one partition. One entry per live
/// [`HighWatermarkPast`] that has been polled and not yet woken: a future removes its entry
/// when it is dropped, so the list never holds more than the waiters alive.
#[derive(Debug, Default)]
pub(crate) struct AppendSignal {
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    next_id: u64,
    wakers: Vec<(u64, Waker)>,
}

impl AppendSignal {
    /// Wakes every waiter. The caller has already made the new high watermark visible, so a
    /// waiter polled after this sees it, and one registered before is woken here.
    pub(crate) fn wake_all(&self) {
        let wakers = std::mem::take(&mut self.waiters.lock().expect("signal lock").wakers);
        for (_, waker) in wakers {
            waker.wake();
        }
    }
}

/// Resolves, with the new high watermark, once the partition's high watermark is above the
/// one it was created with. Made by [`Partition::high_watermark_past`].
///
/// Cancel safety: cancel safe; dropping it removes its waker.
#[derive(Debug)]
pub struct HighWatermarkPast {
    partition: Arc<Partition>,
    seen: u64,
    /// This future's entry in the partition's waiters, while it has one.
    id: Option<u64>,
}

impl HighWatermarkPast {
    pub(crate) fn new(partition: Arc<Partition>, seen: u64) -> HighWatermarkPast {
        HighWatermarkPast {
            partition,
            seen,
            id: None,
        }
    }
}

impl Future for HighWatermarkPast {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let partition = self.partition.clone();
        let mut waiters = partition
            .append_signal()
            .waiters
            .lock()
            .expect("signal lock");
        // Checked under the waiters' lock: `publish` makes the high watermark visible before
        // it takes this lock to wake, so either this sees the new value or its waker is in
        // the list when the wake comes.
        let high_watermark = partition.high_watermark();
        if high_watermark > self.seen {
            if let Some(id) = self.id.take() {
                waiters.wakers.retain(|(i, _)| *i != id);
            }
            return Poll::Ready(high_watermark);
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = waiters.next_id;
                waiters.next_id += 1;
                self.id = Some(id);
                id
            }
        };
        match waiters.wakers.iter_mut().find(|(i, _)| *i == id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => waiters.wakers.push((id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for HighWatermarkPast {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let signal = self.partition.append_signal();
            signal
                .waiters
                .lock()
                .expect("signal lock")
                .wakers
                .retain(|(i, _)| *i != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::{Log, NewRecord, TopicConfig};

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(future: &mut HighWatermarkPast, counter: &Arc<Counter>) -> Poll<u64> {
        let waker = Waker::from(counter.clone());
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    fn waiting(partition: &Partition) -> usize {
        partition
            .append_signal()
            .waiters
            .lock()
            .unwrap()
            .wakers
            .len()
    }

    /// An append wakes the waiters of its own partition, not those of another; a dropped
    /// waiter leaves no waker behind.
    #[test]
    fn an_append_wakes_only_its_partitions_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let topic = log.create_topic("orders", TopicConfig::new(2)).unwrap();
        let (zero, one) = (
            topic.partition(0).unwrap().clone(),
            topic.partition(1).unwrap().clone(),
        );
        let (woken_zero, woken_one) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let mut wait_zero = zero.high_watermark_past(zero.high_watermark());
        let mut wait_one = one.high_watermark_past(one.high_watermark());
        assert_eq!(poll(&mut wait_zero, &woken_zero), Poll::Pending);
        assert_eq!(poll(&mut wait_one, &woken_one), Poll::Pending);
        // Polled again by the same task: still one waker each.
        assert_eq!(poll(&mut wait_zero, &woken_zero), Poll::Pending);
        assert_eq!((waiting(&zero), waiting(&one)), (1, 1));

        zero.append(&[NewRecord::new(None::<Vec<u8>>, "a")])
            .unwrap();
        assert_eq!(woken_zero.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            woken_one.0.load(Ordering::SeqCst),
            0,
            "another partition's append"
        );
        assert_eq!(poll(&mut wait_zero, &woken_zero), Poll::Ready(1));
        assert_eq!(poll(&mut wait_one, &woken_one), Poll::Pending);

        drop(wait_one);
        assert_eq!(waiting(&one), 0, "a dropped waiter leaves no waker");
        // A waiter created after the append it waits for resolves at once.
        let mut late = one.high_watermark_past(0);
        one.append(&[NewRecord::new(None::<Vec<u8>>, "b")]).unwrap();
        assert_eq!(poll(&mut late, &woken_one), Poll::Ready(1));
        assert_eq!(waiting(&one), 0);
    }
}
