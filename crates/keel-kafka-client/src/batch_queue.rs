//! [`BatchQueue`]: many messages per call from one assigned partition's librdkafka queue
//! (`rd_kafka_consume_batch_queue`), which the `rdkafka` crate does not offer. Its
//! `PartitionQueue::poll` takes one message per call, and each call reads the clock, locks
//! the queue and wraps the message in an event allocated and freed per record (the router's
//! fetch path costs ~1,100–2,400 fewer instructions per event in batches: BENCHMARKS.md,
//! "Session 15").
//!
//! The workspace's only `unsafe` code (its lints deny it everywhere else). A [`BatchQueue`]
//! is a second handle on the queue the crate's `split_partition_queue` detached from the
//! consumer (that one keeps the "not empty" callback); both read the same messages in the
//! same order.
//!
//! Not here: what a message becomes (`record.rs`), when to read (`member.rs`).
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use rdkafka::bindings as native;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::limits::BATCH_MESSAGES_MAX;
use crate::record::KafkaMessage;

/// One partition's queue of fetched messages, read many at a time.
pub(crate) struct BatchQueue<C: ConsumerContext + 'static> {
    queue: NonNull<native::rd_kafka_queue_t>,
    /// Keeps the consumer alive as long as the queue handle: librdkafka requires every
    /// queue handle to be destroyed before its client is.
    _consumer: Arc<BaseConsumer<C>>,
}

// SAFETY: librdkafka's queue handles may be used from any thread (every operation takes
// the queue's own lock); the consumer handle is `Send + Sync` already.
unsafe impl<C: ConsumerContext> Send for BatchQueue<C> {}
// SAFETY: as for `Send`: a shared handle only serves the queue, which locks itself.
unsafe impl<C: ConsumerContext> Sync for BatchQueue<C> {}

/// A consumed message, valid while [`BatchQueue::take`] hands it to its closure.
pub(crate) struct Consumed<'a> {
    message: &'a native::rd_kafka_message_t,
}

impl<C: ConsumerContext> BatchQueue<C> {
    /// A handle on the fetch queue of `topic`/`partition` of `consumer`; `None` when
    /// librdkafka has no such partition (or the topic name holds a NUL).
    pub(crate) fn of_partition(
        consumer: &Arc<BaseConsumer<C>>,
        topic: &str,
        partition: i32,
    ) -> Option<BatchQueue<C>> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is live (`consumer` holds it) and `topic` is a
        // NUL-terminated string that outlives the call; the returned handle is ours to
        // destroy (`Drop`).
        let queue = unsafe {
            native::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        };
        Some(BatchQueue {
            queue: NonNull::new(queue)?,
            _consumer: consumer.clone(),
        })
    }

    /// Takes up to `messages_max` queued messages without waiting, in offset order, and
    /// hands each to `each` (a fetch error as `Err`, in librdkafka's words). Returns how
    /// many were taken; fewer than asked means the queue is empty now.
    pub(crate) fn take(
        &self,
        messages_max: usize,
        mut each: impl FnMut(Result<Consumed<'_>, RDKafkaErrorCode>),
    ) -> usize {
        let mut taken = 0;
        while taken < messages_max {
            let asked = (messages_max - taken).min(BATCH_MESSAGES_MAX);
            let mut batch = Batch::consume(self.queue, asked);
            batch.hand_out(&mut each);
            taken += batch.count;
            if batch.count < asked {
                break;
            }
        }
        taken
    }
}

impl<C: ConsumerContext> Drop for BatchQueue<C> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_partition`, is destroyed once,
        // and the consumer (a field) is still alive here.
        unsafe { native::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// The messages of one `rd_kafka_consume_batch_queue` call. Each is destroyed as soon as
/// it was handed out, so its header allocations are freed before the next message's are
/// made (freed at the end of the batch, they cost malloc more than the batch saved); the
/// ones not handed out are destroyed when the batch drops (a closure panicked): a message
/// not destroyed would keep its fetch buffer, and the consumer could never be destroyed.
struct Batch {
    messages: [*mut native::rd_kafka_message_t; BATCH_MESSAGES_MAX],
    count: usize,
    /// How many of the first messages were destroyed.
    destroyed: usize,
}

impl Batch {
    /// Up to `asked` (at most [`BATCH_MESSAGES_MAX`]) messages of `queue`, without waiting.
    fn consume(queue: NonNull<native::rd_kafka_queue_t>, asked: usize) -> Batch {
        let mut batch = Batch {
            messages: [ptr::null_mut(); BATCH_MESSAGES_MAX],
            count: 0,
            destroyed: 0,
        };
        // SAFETY: the queue handle is live (its `BatchQueue` holds it) and the array has
        // room for `asked` pointers; librdkafka fills the first `count` of them.
        let count = unsafe {
            native::rd_kafka_consume_batch_queue(
                queue.as_ptr(),
                0,
                batch.messages.as_mut_ptr(),
                asked.min(BATCH_MESSAGES_MAX),
            )
        };
        // A negative count is an invalid argument, which a partition queue never is.
        batch.count = usize::try_from(count).unwrap_or(0);
        batch
    }

    /// Hands each message to `each` in order (a fetch error as `Err`), destroying it
    /// right after.
    fn hand_out(&mut self, each: &mut impl FnMut(Result<Consumed<'_>, RDKafkaErrorCode>)) {
        while self.destroyed < self.count {
            let message = self.messages[self.destroyed];
            {
                // SAFETY: librdkafka set the first `count` pointers to live messages; this
                // one is destroyed only below, after the borrow ends.
                let message = unsafe { &*message };
                each(match RDKafkaErrorCode::from(message.err) {
                    RDKafkaErrorCode::NoError => Ok(Consumed { message }),
                    error => Err(error),
                });
            }
            self.destroyed += 1;
            // SAFETY: a message of this batch, not destroyed before (`destroyed` moved past
            // it first, so `Drop` will not destroy it again).
            unsafe { native::rd_kafka_message_destroy(message) }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        for &message in &self.messages[self.destroyed..self.count] {
            // SAFETY: messages of this batch that `hand_out` did not destroy.
            unsafe { native::rd_kafka_message_destroy(message) }
        }
    }
}

impl KafkaMessage for Consumed<'_> {
    fn offset(&self) -> i64 {
        self.message.offset
    }

    fn timestamp_ms(&self) -> i64 {
        let mut kind = native::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is live for `'a`.
        let timestamp = unsafe { native::rd_kafka_message_timestamp(self.message, &mut kind) };
        // As the `rdkafka` crate reads it: -1 is "no timestamp" whatever the type says.
        match kind {
            native::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => 0,
            _ if timestamp == -1 => 0,
            _ => timestamp,
        }
    }

    fn key(&self) -> Option<&[u8]> {
        // SAFETY: a consumed message's key is `key_len` bytes owned by the message.
        unsafe { slice(self.message.key, self.message.key_len) }
    }

    fn payload(&self) -> Option<&[u8]> {
        // SAFETY: a consumed message's payload is `len` bytes owned by the message.
        unsafe { slice(self.message.payload, self.message.len) }
    }

    fn headers(&self) -> Vec<(Cow<'_, str>, Option<&[u8]>)> {
        let mut headers = ptr::null_mut();
        // SAFETY: the message is live; librdkafka parses its headers once and keeps them
        // with the message.
        let found = unsafe { native::rd_kafka_message_headers(self.message, &mut headers) };
        if RDKafkaErrorCode::from(found) != RDKafkaErrorCode::NoError || headers.is_null() {
            return Vec::new();
        }
        // SAFETY: `headers` belongs to the message, live for `'a`.
        let count = unsafe { native::rd_kafka_header_cnt(headers) };
        let mut list = Vec::with_capacity(count);
        for index in 0..count {
            let (mut name, mut value, mut size): (*const c_char, *const c_void, usize) =
                (ptr::null(), ptr::null(), 0);
            // SAFETY: `index` is below the count; the name and value point into the
            // message's headers, live for `'a`.
            let found = unsafe {
                native::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if RDKafkaErrorCode::from(found) != RDKafkaErrorCode::NoError || name.is_null() {
                continue;
            }
            // SAFETY: librdkafka's header names are NUL-terminated; the value is `size`
            // bytes or null (a null header value).
            let (name, value) = unsafe { (CStr::from_ptr(name), slice(value, size)) };
            // Kafka's header names are UTF-8; `to_string_lossy` checks the same but costs
            // twice as much per name (eight names an event).
            let name = match std::str::from_utf8(name.to_bytes()) {
                Ok(name) => Cow::Borrowed(name),
                Err(_) => name.to_string_lossy(),
            };
            list.push((name, value));
        }
        list
    }
}

/// `size` bytes at `data`, `None` for a null pointer (Kafka's null key or value).
///
/// # Safety
/// A non-null `data` must point to `size` readable bytes that live for `'a`.
unsafe fn slice<'a>(data: *const c_void, size: usize) -> Option<&'a [u8]> {
    // SAFETY: the caller's promise.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) })
}
