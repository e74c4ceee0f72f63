//! A group's durable consumers on a topic's stream: one per partition, in generations
//! (`<group>_p<partition>_g<n>`; see `lease.rs` for why). Shared by the lease (a new owner
//! starts a generation at the commit) and the admin port (committed offsets are the latest
//! generation's acknowledgement floor; setting one starts a generation there).

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::Stream;
use futures_util::TryStreamExt;

use crate::limits::{ACK_PENDING_MAX, ACK_WAIT};
use crate::names::{ConsumerName, Names};

/// Every Keel consumer of `stream`, by group, partition and generation.
pub(crate) async fn generations(stream: &Stream) -> Result<Vec<ConsumerName>, String> {
    let mut names: Vec<ConsumerName> = stream
        .consumer_names()
        .try_collect::<Vec<String>>()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|name| ConsumerName::parse(name))
        .collect();
    names.sort_by(|a, b| {
        (&a.group, a.partition, a.generation).cmp(&(&b.group, b.partition, b.generation))
    });
    Ok(names)
}

/// The latest generation of each (group, partition) among `names` (sorted as
/// [`generations`] returns them).
pub(crate) fn latest(names: &[ConsumerName]) -> Vec<&ConsumerName> {
    names
        .iter()
        .enumerate()
        .filter(|(at, c)| {
            names
                .get(at + 1)
                .is_none_or(|next| next.group != c.group || next.partition != c.partition)
        })
        .map(|(_, c)| c)
        .collect()
}

/// A place in a stream: a group's partition of a topic.
pub(crate) struct Place<'a> {
    pub(crate) stream: &'a Stream,
    pub(crate) names: &'a Names,
    pub(crate) topic: &'a str,
    pub(crate) group: &'a str,
    pub(crate) partition: u32,
}

impl Place<'_> {
    /// This partition's generations, oldest first.
    pub(crate) async fn generations(&self) -> Result<Vec<ConsumerName>, String> {
        let mut names = generations(self.stream).await?;
        names.retain(|c| c.group == self.group && c.partition == self.partition);
        Ok(names)
    }

    /// A new generation that delivers from `offset` on (committed offset `offset`), after
    /// `older`, which are deleted once it exists.
    pub(crate) async fn start_generation(
        &self,
        offset: u64,
        older: &[ConsumerName],
    ) -> Result<Consumer<PullConfig>, String> {
        let next = ConsumerName {
            group: self.group.to_string(),
            partition: self.partition,
            generation: older.last().map_or(1, |c| c.generation + 1),
        };
        let config = PullConfig {
            durable_name: Some(next.encode()),
            description: Some(format!(
                "keel group {} on {} partition {}",
                self.group, self.topic, self.partition
            )),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: offset + 1,
            },
            ack_policy: AckPolicy::All,
            ack_wait: ACK_WAIT,
            max_ack_pending: ACK_PENDING_MAX,
            filter_subject: self.names.subject(self.topic, self.partition),
            ..PullConfig::default()
        };
        let consumer = self
            .stream
            .create_consumer(config)
            .await
            .map_err(|e| e.to_string())?;
        for old in older {
            // A leftover generation only costs space; the next start deletes it again.
            let _ = self.stream.delete_consumer(&old.encode()).await;
        }
        Ok(consumer)
    }
}
