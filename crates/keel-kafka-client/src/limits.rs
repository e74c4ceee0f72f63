//! The Kafka transport's limits, in one place.

use std::time::Duration;

/// How long a publish may wait for the broker's acknowledgement, retries included, before
/// it fails (librdkafka's `delivery.timeout.ms`).
pub(crate) const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a member's librdkafka waits to fetch a partition again after finding its queue
/// at the prefetch limit (`fetch.queue.backoff.ms`, unless set; librdkafka's default is
/// 1 s). The limit (`MemberOptions::prefetch_kbytes_max`, 4 MiB) is reached whenever the
/// runtime handles slower than the broker serves — a group catching up a backlog — and with
/// the default the partition then got nothing for a second after its queue drained: a
/// router catching up 300,000 events of 100 B on 4 partitions sat idle ~0.8 s of its ~1.7 s
/// (`BENCHMARKS.md`, "The router's fetch stalls"). A re-check every 10 ms costs the broker
/// thread a queue-length comparison.
pub(crate) const FETCH_QUEUE_BACKOFF: Duration = Duration::from_millis(10);

/// How long the broker may hold a member's fetch while none of the partitions in it has new
/// records (`fetch.wait.max.ms`, unless set; librdkafka's default is 500 ms). librdkafka
/// keeps one fetch in flight per broker, so a partition whose queue drained waits for that
/// long poll to end before it is fetched again; 100 ms bounds the wait, at the price of up
/// to ten empty fetches a second per broker from an idle member.
pub(crate) const FETCH_WAIT_MAX: Duration = Duration::from_millis(100);

/// How long the producer holds a record to batch it with later ones (`linger.ms`, unless
/// set; librdkafka's default is 5 ms): none. `Publisher::publish` returns when the broker
/// acknowledged the record, so a linger is added to every publish a service awaits — one
/// task publishing one event at a time got 176 a second at 5 ms, 3,718 at 0; 32 tasks 5,142
/// and 29,398 (`BENCHMARKS.md`, "The publish's linger"). librdkafka still batches without
/// it: records queue while the connection's requests are in flight, so 1,000 concurrent
/// publishes ran at the same rate either way (~134,000 a second).
pub(crate) const PRODUCE_LINGER: Duration = Duration::ZERO;

/// How long a metadata request or a topic creation may take.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a partition's commit waits for the group coordinator's answer before the
/// runtime goes on handling (the commit itself goes on; see `KafkaPartition::commit`).
/// Healthy commits take milliseconds; a coordinator that moves takes the cluster's broker
/// session timeout (9 s by default).
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(2);

/// How often a consumer's librdkafka statistics, and so the consumer-lag gauge, are
/// refreshed, unless `statistics.interval.ms` is set on the [`KafkaConfig`](crate::KafkaConfig).
pub(crate) const LAG_STATISTICS_INTERVAL: Duration = Duration::from_secs(5);

/// How long the broker may hold the admin side's reading consumer's fetch at the end of a
/// partition (librdkafka's `fetch.wait.max.ms`, 500 ms by default).
pub(crate) const READER_FETCH_WAIT: Duration = Duration::from_millis(10);

/// How many reading consumers the admin side keeps unless configured
/// (`KafkaConfig::with_admin_readers`): the console's sampler measures 8 groups at once,
/// and each group measure holds a reader only for its ListOffsets round trips (the group's
/// own OffsetFetch goes through a client acting as the group), so 4 readers keep them from
/// queueing while a page's reads still find one — without the 8 connections and ~40
/// librdkafka threads of one reader per concurrent measure. Measured in BENCHMARKS.md
/// ("Operator reads on Apache Kafka").
pub(crate) const ADMIN_READERS_DEFAULT: usize = 4;

/// How many clients acting as a consumer group the admin side keeps for reuse (each holds
/// a connection and a few librdkafka threads).
pub(crate) const GROUP_CLIENTS_MAX: usize = 16;

/// How long a topic's settings just altered are read back until they show (a broker's
/// metadata follows the controller's within milliseconds); past it the change counts as
/// refused (`topic_config.rs` says why it is read back at all).
pub(crate) const CONFIG_VISIBLE_WAIT: Duration = Duration::from_secs(3);

/// How long a ListOffsets refused while a partition's leader moves waits to ask again.
pub(crate) const LEADER_MOVING_RETRY: Duration = Duration::from_millis(50);

/// How often a topic just created is looked for in the metadata until it shows.
pub(crate) const TOPIC_VISIBLE_POLL: Duration = Duration::from_millis(20);

/// How long a transactional route's transaction may stay open before the broker aborts it
/// (`transaction.timeout.ms`, unless set): a batch is one fetch, so this is far above one
/// batch's time, and it bounds how long a member killed mid-transaction holds back
/// `read_committed` readers of its outputs (Kafka's own default, 60 s, would hold them a
/// minute). Its sends' delivery timeout is the same, as librdkafka requires.
pub(crate) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How many messages one call takes from a partition's librdkafka queue (`batch_queue.rs`):
/// the array of message pointers lives on the stack, and a fetch of the runtime's usual
/// `fetch_bytes_max` of small events takes a few calls.
pub(crate) const BATCH_MESSAGES_MAX: usize = 64;
