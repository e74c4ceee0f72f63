//! The ports: every seam between Keel's engine-neutral code and the engines under it, in one
//! place. A transport crate (the embedded log, Kafka, and each further engine) implements
//! [`PublishTransport`], [`ConsumeTransport`] (with [`Membership`] and [`PartitionLease`])
//! and [`AdminTransport`] over the record shape ([`NewRecord`], [`Record`], [`Header`]) —
//! and nothing more: the runtime's router, publisher, operator tools and metrics are
//! written once against these traits.
//!
//! | file | holds |
//! |---|---|
//! | `record.rs` | the record shape every transport speaks |
//! | `clock.rs` | wall-clock time behind a trait ([`Clock`]) |
//! | `error.rs` | the errors crossing the seam, each saying whether a retry can help |
//! | `publish.rs` | [`PublishTransport`]: send, send to a partition, send a batch, companion topics |
//! | `consume.rs` | [`ConsumeTransport`], [`Membership`], [`PartitionLease`]: groups, reads, commits |
//! | `partitioner.rs` | [`partition_for_key`]: murmur2, the Java client's key → partition mapping |
//! | `group.rs` | [`GroupPolicy`], [`StartFrom`]: the membership settings every transport honours |
//! | `name_escape.rs` | [`escape_name`]: Keel's names in an engine's narrower alphabet |
//! | `admin.rs` | [`AdminTransport`]: topics, stored ranges, reads, committed offsets |
//! | `forward.rs` | [`PublishPort`]: events forwarded by the outbox relay, implemented once by the runtime |
//!
//! No async runtime: methods return boxed futures ([`BoxFuture`]) that the caller's runtime
//! drives, and every trait is object safe.

pub(crate) mod admin;
pub(crate) mod clock;
pub(crate) mod consume;
pub(crate) mod error;
pub(crate) mod forward;
pub mod group;
pub(crate) mod name_escape;
pub(crate) mod partitioner;
pub(crate) mod publish;
pub(crate) mod record;

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;

/// A boxed, sendable future: the return type of the ports' async methods, so the traits are
/// object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends `items` one at a time, in order, and gives every later item of a key whose earlier
/// item failed `not_attempted()` instead of sending it: the per-key stop rule of
/// [`PublishPort::publish_batch`](forward::PublishPort::publish_batch) and
/// [`PublishTransport::send_batch`](publish::PublishTransport::send_batch).
pub(crate) async fn each_in_key_order<T, K, O, E, F>(
    items: Vec<T>,
    key: impl Fn(&T) -> Option<K>,
    mut send: impl FnMut(T) -> F,
    not_attempted: impl Fn() -> E,
) -> Vec<Result<O, E>>
where
    K: Eq + Hash,
    F: Future<Output = Result<O, E>>,
{
    let mut failed_keys: HashSet<K> = HashSet::new();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let key = key(&item);
        if key.as_ref().is_some_and(|k| failed_keys.contains(k)) {
            results.push(Err(not_attempted()));
            continue;
        }
        let result = send(item).await;
        if let (Err(_), Some(key)) = (&result, key) {
            failed_keys.insert(key);
        }
        results.push(result);
    }
    results
}
