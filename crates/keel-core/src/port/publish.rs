//! The transport port, publishing half: [`PublishTransport`], what a broker must do to store
//! records — send one (to the partition its key maps to, or to a given one), send a batch in
//! order per key, and create a topic's companions (`<topic>.dlq`, `<topic>.retry`) with the
//! topic's partition count.
//!
//! Not here: events. The runtime's `Publisher` validates and traces an event and maps it to
//! a record (CloudEvents binary mode) before it reaches a transport, so every transport
//! stores the same bytes and counts `keel_events_published_total` the same way.

use super::error::{SendError, TransportError};
use super::record::NewRecord;
use super::{BoxFuture, each_in_key_order};

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset the transport assigned.
    pub offset: u64,
}

/// A broker's publishing side. Object safe: the runtime holds an
/// `Arc<dyn PublishTransport>`; a tool borrows one (`&dyn PublishTransport`, which may be a
/// short-lived view such as the embedded log's synchronous port) for one operation.
///
/// A record without an explicit partition goes where its key maps — murmur2 of the key,
/// positive, modulo the partition count, as the Java Kafka client and `keel-log` do — so a
/// key lands in the same partition whichever transport or client writes it; records
/// without a key may go anywhere and have no order.
pub trait PublishTransport: Send + Sync + std::fmt::Debug {
    /// Stores `record` in `topic`, in the partition its key maps to; `Ok` once the broker
    /// acknowledged it as stored.
    ///
    /// Cancel safety: not cancel safe; a dropped send may or may not be stored.
    fn send<'a>(
        &'a self,
        topic: &'a str,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>>;

    /// Stores `record` in `partition` of `topic` (redeliveries and dead letters keep the
    /// partition their event came from).
    ///
    /// Cancel safety: as [`PublishTransport::send`].
    fn send_to<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        record: NewRecord,
    ) -> BoxFuture<'a, Result<Published, SendError>>;

    /// Stores `records` in `topic` in their order per key and returns one result per
    /// record, in the order given. Once a record fails, no later record of the same key in
    /// this call is stored (each gets [`SendError::NotAttempted`] or the failure), so a
    /// caller that stops a key at its first failure never finds a later record of the key
    /// stored ahead of an earlier one.
    ///
    /// The default sends one record at a time ([`send_each`]); a transport overrides it to
    /// store many records per request.
    ///
    /// Cancel safety: as [`PublishTransport::send`], for each record.
    fn send_batch<'a>(
        &'a self,
        topic: &'a str,
        records: Vec<NewRecord>,
    ) -> BoxFuture<'a, Vec<Result<Published, SendError>>> {
        send_each(self, topic, records)
    }

    /// The partition count of `name`, a companion of `source` (its `.retry` or `.dlq`
    /// topic), created with `source`'s partition count (and, where the engine has them,
    /// its durability settings) when missing.
    ///
    /// Cancel safety: cancel safe; a dropped call may still create the topic.
    fn ensure_companion<'a>(
        &'a self,
        source: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<u32, TransportError>>;
}

/// [`PublishTransport::send_batch`] one record at a time, in order, giving the later records
/// of a key [`SendError::NotAttempted`] once one of its records failed: the default, and
/// what a transport without a batch request uses.
pub fn send_each<'a, T: PublishTransport + ?Sized>(
    transport: &'a T,
    topic: &'a str,
    records: Vec<NewRecord>,
) -> BoxFuture<'a, Vec<Result<Published, SendError>>> {
    Box::pin(each_in_key_order(
        records,
        |record| record.key.clone(),
        move |record| transport.send(topic, record),
        || SendError::NotAttempted,
    ))
}
