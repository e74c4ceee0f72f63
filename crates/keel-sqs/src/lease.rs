//! [`QueueLease`]: a member's reads and commits on its group's SQS FIFO queue, as the
//! router's `PartitionLease`.
//!
//! SQS has no offsets, so the lease makes its own: each message it receives gets the next
//! number of this lease (from 0), and the lease holds it — invisible to the group's other
//! members — until a commit passes it. A commit deletes the held messages below it. SQS
//! hands a message group (a key) to one receiver at a time while any of its messages is in
//! flight, so per-key order holds across members with no lease of Keel's own.
//!
//! A poller task keeps up to [`HELD_MAX`] messages received ahead (long polling) and a
//! renewer task, every third of the visibility timeout, makes every held message invisible
//! for another timeout: a handler may run as long as it needs while the process lives. A member that
//! dies stops renewing, and its messages come back to the group after the visibility
//! timeout (the takeover time, like a Kafka session timeout). A lease dropped in an orderly
//! way (a router stopping) makes its uncommitted messages visible again at once.
//!
//! Decision table for a held message:
//!
//! | what happens | the message |
//! |---|---|
//! | handled, commit passes it | deleted |
//! | the worker restarts (`start` again) | served again from the lease, same offset |
//! | the lease is dropped | visible again at once, to any member |
//! | the process dies or hangs | visible again after the visibility timeout |
//! | its deletion fails | the commit fails; it stays held and is deleted by a later commit |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use keel_core::{
    BoxFuture, CommitError, FetchError, LeaseStart, PartitionLease, Record, TransportError,
};
use keel_runtime::wait_for_signal;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connection::unavailable;
use crate::envelope;
use crate::limits::{BATCH_MAX, HELD_FULL_PAUSE, HELD_MAX, RECEIVE_ERROR_PAUSE, RECEIVE_WAIT_S};

/// A group's queue, read by one member.
pub(crate) struct QueueLease {
    shared: Arc<Shared>,
    poller: JoinHandle<()>,
    renewer: JoinHandle<()>,
}

struct Shared {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    visibility_s: i32,
    held: Mutex<Held>,
    /// Signalled when messages were received.
    arrived: Notify,
}

#[derive(Default)]
struct Held {
    /// The offset the next received message gets.
    next_offset: u64,
    /// Every message at or above this offset is held; below, deleted.
    committed: u64,
    messages: BTreeMap<u64, HeldMessage>,
}

struct HeldMessage {
    record: Record,
    /// SQS's id of the message, the same on every delivery.
    message_id: String,
    /// The receipt of its latest delivery: what deletes it or changes its visibility.
    receipt: String,
}

impl QueueLease {
    /// A lease on the queue at `queue_url`, its messages invisible to others for
    /// `visibility_s` seconds at a time; starts receiving at once.
    pub(crate) fn start(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        visibility_s: i32,
    ) -> QueueLease {
        let shared = Arc::new(Shared {
            sqs,
            queue_url,
            visibility_s,
            held: Mutex::new(Held::default()),
            arrived: Notify::new(),
        });
        let poller = tokio::spawn(poll(shared.clone()));
        let renewer = tokio::spawn(renew(shared.clone()));
        QueueLease {
            shared,
            poller,
            renewer,
        }
    }
}

impl Drop for QueueLease {
    fn drop(&mut self) {
        self.poller.abort();
        self.renewer.abort();
        let receipts = self.shared.receipts(u64::MAX);
        if receipts.is_empty() {
            return;
        }
        // Give the uncommitted messages back at once rather than after the timeout.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            runtime.spawn(async move {
                // A message SQS refuses to give back is visible or deleted already.
                if let Err(error) = shared.set_visibility(&receipts, 0).await {
                    tracing::warn!(queue = %shared.queue_url, %error, "cannot give messages back; they return after the visibility timeout");
                }
            });
        }
    }
}

/// Receives while there is room, until aborted.
async fn poll(shared: Arc<Shared>) {
    loop {
        let room = HELD_MAX.saturating_sub(shared.held.lock().expect("held").messages.len());
        if room == 0 {
            tokio::time::sleep(HELD_FULL_PAUSE).await;
            continue;
        }
        if let Err(error) = shared.receive(room.min(BATCH_MAX)).await {
            tracing::warn!(queue = %shared.queue_url, %error, "cannot receive; trying again");
            tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
        }
    }
}

/// Every third of the visibility timeout, makes every held message invisible for another
/// timeout, until aborted. Its own task, so a slow receive never delays a renewal.
async fn renew(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(shared.visibility_s as u64) / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let receipts = shared.receipts(u64::MAX);
        match shared.set_visibility(&receipts, shared.visibility_s).await {
            Ok(lost) if !lost.is_empty() => {
                // SQS refuses a renewal of a message no longer in flight under that receipt:
                // its visibility timeout passed first. Another member may receive it and
                // handle it again (SQS's at-least-once; the inbox keeps the effect once).
                tracing::warn!(
                    queue = %shared.queue_url,
                    ?lost,
                    "held messages became visible again before their renewal; another member may handle them again"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(queue = %shared.queue_url, %error, "cannot renew held messages");
            }
        }
    }
}

impl Shared {
    async fn receive(&self, count: usize) -> Result<(), TransportError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(count as i32)
            .wait_time_seconds(RECEIVE_WAIT_S)
            .visibility_timeout(self.visibility_s)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(unavailable)?;
        if received.messages().is_empty() {
            return Ok(());
        }
        let mut held = self.held.lock().expect("held");
        for message in received.messages() {
            let (Some(body), Some(receipt)) = (message.body(), message.receipt_handle()) else {
                continue;
            };
            let sent_ms = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let id = message.message_id().unwrap_or_default();
            if let Some(same) = held.messages.values_mut().find(|m| m.message_id == id) {
                // Held here already, and back after a late renewal: the new receipt is
                // the one SQS accepts now; the record is not served twice.
                same.receipt = receipt.to_string();
                continue;
            }
            let offset = held.next_offset;
            held.next_offset += 1;
            let record = envelope::decode(body, offset, sent_ms);
            held.messages.insert(
                offset,
                HeldMessage {
                    record,
                    message_id: id.to_string(),
                    receipt: receipt.to_string(),
                },
            );
        }
        drop(held);
        self.arrived.notify_waiters();
        Ok(())
    }

    /// The receipts of the held messages below `offset`, by offset.
    fn receipts(&self, offset: u64) -> Vec<(u64, String)> {
        let held = self.held.lock().expect("held");
        held.messages
            .range(..offset)
            .map(|(offset, m)| (*offset, m.receipt.clone()))
            .collect()
    }

    /// Sets the visibility of the messages `receipts` name; answers those SQS did not change
    /// (offset, SQS's reason): no longer in flight under that receipt — visible again, or
    /// deleted.
    async fn set_visibility(
        &self,
        receipts: &[(u64, String)],
        visibility_s: i32,
    ) -> Result<Vec<(u64, String)>, TransportError> {
        let mut refused = Vec::new();
        for chunk in receipts.chunks(BATCH_MAX) {
            let entries = chunk.iter().map(|(offset, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(offset.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(visibility_s)
                    .build()
                    .expect("id and receipt set")
            });
            let changed = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(unavailable)?;
            refused.extend(changed.failed().iter().filter_map(|failed| {
                let offset = failed.id().parse().ok()?;
                Some((
                    offset,
                    failed.message().unwrap_or(failed.code()).to_string(),
                ))
            }));
        }
        Ok(refused)
    }

    async fn delete_below(&self, offset: u64) -> Result<(), CommitError> {
        let receipts = self.receipts(offset);
        for chunk in receipts.chunks(BATCH_MAX) {
            let entries = chunk.iter().map(|(offset, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(offset.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt set")
            });
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| CommitError::Unavailable {
                    reason: unavailable(e).to_string(),
                })?;
            let mut held = self.held.lock().expect("held");
            for done in deleted.successful() {
                if let Ok(offset) = done.id().parse::<u64>() {
                    held.messages.remove(&offset);
                }
            }
            if let Some(failed) = deleted.failed().first() {
                return Err(CommitError::Unavailable {
                    reason: format!(
                        "SQS did not delete {} message(s): {} ({})",
                        deleted.failed().len(),
                        failed.message().unwrap_or("no reason given"),
                        failed.code()
                    ),
                });
            }
        }
        let mut held = self.held.lock().expect("held");
        held.committed = held.committed.max(offset);
        Ok(())
    }
}

impl PartitionLease for QueueLease {
    fn partition(&self) -> u32 {
        // One queue per group: SQS orders by message group, not by partition.
        0
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        let committed = self.shared.held.lock().expect("held").committed;
        Box::pin(async move {
            Ok(LeaseStart {
                offset: committed,
                committed: Some(committed),
            })
        })
    }

    fn has_data(&self, next_offset: u64) -> bool {
        let held = self.shared.held.lock().expect("held");
        held.messages.range(next_offset..).next().is_some()
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(wait_for_signal(&self.shared.arrived, move || {
            self.has_data(next_offset)
        }))
    }

    fn fetch(
        &self,
        offset: u64,
        bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        let held = self.shared.held.lock().expect("held");
        let mut records = Vec::new();
        let mut bytes = 0;
        for message in held.messages.range(offset..).map(|(_, m)| m) {
            bytes += message.record.size_bytes();
            if !records.is_empty() && bytes > bytes_max {
                break;
            }
            records.push(message.record.clone());
        }
        drop(held);
        Box::pin(async move { Ok(records) })
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(self.shared.delete_below(offset))
    }
}
