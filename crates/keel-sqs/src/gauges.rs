//! [`SqsGauges`]: the lag and dead-letter gauges on SQS, read from the group queues at each
//! scrape. SQS keeps no offsets, so the admin port's formulas (`AdminGauges`) cannot run
//! here; the series and their names are the embedded log's all the same:
//!
//! - lag in events of a group: its queue's messages not yet deleted —
//!   `ApproximateNumberOfMessages` (waiting) + `ApproximateNumberOfMessagesNotVisible`
//!   (received, not committed) — as partition 0: one queue holds every partition of the
//!   topic;
//! - lag in seconds: the age of the first waiting message SQS hands out (a FIFO queue hands
//!   out each key's oldest first), peeked with a visibility timeout of 0 so it is
//!   receivable again at once — one message, so the peek never holds two of a key in flight
//!   (moto hands several expired ones back last-first); 0 when nothing waits; left out when
//!   every message is in a member's hands (their age is the member's to know);
//! - dead letters: the `<topic>.dlq` queue of [`DEAD_LETTER_KEEPER`], its messages and the
//!   oldest's age the same way.
//!
//! The counts are SQS's approximate ones (on AWS they settle within about a minute).
//!
//! Not here: encoding (`keel_runtime::Metrics`), the router's own counters.

use std::sync::Arc;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use keel_core::{Clock, SystemClock, TransportError};
use keel_runtime::admin::gauges::scrape;
use keel_runtime::admin::groups::age_ms;
use keel_runtime::limits::{DLQ_SUFFIX, LAG_PARTITIONS_MAX};
use keel_runtime::{ConsumerLag, DeadLetterDepth, GaugeSource};
use tokio::runtime::Handle;

use crate::connection::{Connection, DEAD_LETTER_KEEPER, unavailable};

/// Messages one peek looks at: one, see the module comment.
const PEEK_MESSAGES_MAX: i32 = 1;

/// A [`GaugeSource`] over an account's group queues. Its questions run on the tokio runtime
/// it was made on, from the scraping thread (`Metrics::encode` is called off the executor).
#[derive(Debug)]
pub(crate) struct SqsGauges {
    connection: Arc<Connection>,
    runtime: Handle,
}

/// A queue's messages not yet deleted, and the age of the oldest waiting one.
struct Depth {
    messages: u64,
    oldest_age_ms: Option<u64>,
}

impl SqsGauges {
    /// Call it inside a tokio runtime (the transport's `connect`).
    pub(crate) fn new(connection: Arc<Connection>) -> SqsGauges {
        SqsGauges {
            connection,
            runtime: Handle::current(),
        }
    }

    async fn lags_now(&self) -> Result<Vec<ConsumerLag>, TransportError> {
        let now_ms = SystemClock.now_ms();
        let mut out = Vec::new();
        for queue in self.connection.group_queues().await? {
            if queue.group == DEAD_LETTER_KEEPER && queue.topic.ends_with(DLQ_SUFFIX) {
                continue; // the dead letters' keeper: counted as dead letters, not lag
            }
            if out.len() > LAG_PARTITIONS_MAX {
                break;
            }
            let depth = self.depth(&queue.url, now_ms).await?;
            out.push(ConsumerLag {
                topic: queue.topic,
                group: queue.group,
                partition: 0,
                events: depth.messages,
                age_ms: depth.oldest_age_ms,
            });
        }
        Ok(out)
    }

    async fn dead_letters_now(&self) -> Result<Vec<DeadLetterDepth>, TransportError> {
        let now_ms = SystemClock.now_ms();
        let mut out = Vec::new();
        for queue in self.connection.group_queues().await? {
            let Some(source) = queue.topic.strip_suffix(DLQ_SUFFIX) else {
                continue;
            };
            if queue.group != DEAD_LETTER_KEEPER {
                continue;
            }
            let depth = self.depth(&queue.url, now_ms).await?;
            out.push(DeadLetterDepth {
                topic: source.to_string(),
                depth: depth.messages,
                oldest_age_ms: depth.oldest_age_ms.filter(|_| depth.messages > 0),
            });
        }
        Ok(out)
    }

    async fn depth(&self, url: &str, now_ms: i64) -> Result<Depth, TransportError> {
        let sqs = &self.connection.sqs;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(unavailable)?;
        let count = |name: QueueAttributeName| -> u64 {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let waiting = count(QueueAttributeName::ApproximateNumberOfMessages);
        let in_flight = count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        let oldest_age_ms = if waiting == 0 {
            (in_flight == 0).then_some(0)
        } else {
            let peeked = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(PEEK_MESSAGES_MAX)
                .visibility_timeout(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(unavailable)?;
            peeked
                .messages()
                .iter()
                .filter_map(|m| {
                    m.attributes()?
                        .get(&MessageSystemAttributeName::SentTimestamp)?
                        .parse::<i64>()
                        .ok()
                })
                .min()
                .map(|sent_ms| age_ms(now_ms, sent_ms))
        };
        Ok(Depth {
            messages: waiting + in_flight,
            oldest_age_ms,
        })
    }
}

impl GaugeSource for SqsGauges {
    fn lags(&self) -> Vec<ConsumerLag> {
        scrape(&self.runtime, "lag", self.lags_now()).unwrap_or_default()
    }

    fn dead_letters(&self) -> Vec<DeadLetterDepth> {
        scrape(&self.runtime, "dead-letter", self.dead_letters_now()).unwrap_or_default()
    }
}
