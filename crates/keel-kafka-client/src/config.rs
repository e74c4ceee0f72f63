//! [`KafkaConfig`]: where the cluster is and the client settings Keel fixes, turned into
//! rdkafka's `ClientConfig` for the producer.
//!
//! Not here: reading environment variables or files (the binary does that) or any I/O.
//!
//! The settings Keel fixes are the ones its promises rest on; [`KafkaConfig::set`] can add
//! any other librdkafka property (security, timeouts, batching), but not override these:
//!
//! | property | value | why |
//! |---|---|---|
//! | `partitioner` | `murmur2_random` | the Java client's and `keel-log`'s mapping, so a key lands in the same partition whoever writes it (librdkafka's default, CRC32, does not) |
//! | `enable.idempotence` | `true` | a retried produce is not written twice and keeps its order per partition |
//! | `acks` | `all` | an acknowledged publish is on every in-sync replica |
//!
//! `enable.auto.commit` and `enable.auto.offset.store` are refused too: Keel's consumers
//! commit the runtime's commit point (the lowest unfinished offset) themselves; and
//! `transactional.id`: a transactional route's member derives its own from
//! [`KafkaConfig::with_transactional_id_prefix`] (one producer per member, EOS-v2).
//!
//! The producer sends at once unless `linger.ms` is set (librdkafka: 5 ms): a publish
//! returns on the broker's acknowledgement, so a linger would be added to every awaited
//! publish; concurrent publishes still share requests (`limits.rs`).
//!
//! A consumer's fetch pacing is Keel's unless set: `fetch.queue.backoff.ms` 10 (librdkafka:
//! 1000) and `fetch.wait.max.ms` 100 (librdkafka: 500), so a partition whose prefetch queue
//! filled is fetched again within milliseconds of draining, not after a second (`limits.rs`
//! says why, `BENCHMARKS.md` what it changed).
//!
//! `isolation.level` is librdkafka's default, `read_committed`, unless set: Keel's
//! consumers never see records of aborted or still-open transactions (a transactional
//! route's failed attempts, another producer's aborts). A transactional route's consumer is
//! `read_committed` whatever is set, since reading another route's uncommitted output would
//! make its own effects depend on records that may vanish.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::limits::{
    ADMIN_READERS_DEFAULT, FETCH_QUEUE_BACKOFF, FETCH_WAIT_MAX, LAG_STATISTICS_INTERVAL,
    PRODUCE_LINGER, READER_FETCH_WAIT, TRANSACTION_TIMEOUT,
};

/// Connection and client settings for one Kafka cluster (or `keel serve`).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    bootstrap_servers: String,
    client_id: String,
    transactional_id_prefix: String,
    admin_readers: usize,
    extra: Vec<(String, String)>,
}

/// The group id of the admin side's reading consumer, which never joins or commits.
const READER_GROUP: &str = "keel-admin-reader";

/// Keel's own property for [`KafkaConfig::with_admin_readers`], taken with librdkafka's
/// (which has no `keel.` properties) so one table configures the cluster's clients.
pub const ADMIN_READERS_PROPERTY: &str = "keel.admin.readers";

/// The most admin readers [`ADMIN_READERS_PROPERTY`] accepts.
const ADMIN_READERS_MAX: usize = 64;

/// The properties [`KafkaConfig::set`] refuses, because Keel's guarantees depend on them.
const FIXED: [&str; 6] = [
    "partitioner",
    "enable.idempotence",
    "acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
];

impl KafkaConfig {
    /// A config for the cluster at `bootstrap_servers` (`host:port[,host:port…]`).
    pub fn new(bootstrap_servers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "keel".to_string(),
            transactional_id_prefix: "keel".to_string(),
            admin_readers: ADMIN_READERS_DEFAULT,
            extra: Vec::new(),
        }
    }

    /// Sets what the `transactional.id` of a transactional route's members starts with
    /// (`keel` unless set): each member's is `<prefix>-<group>-<topic>-<member>`, the member
    /// part unique per process and join. Give services that share a cluster prefixes of
    /// their own, so ACLs can grant each its ids.
    #[must_use]
    pub fn with_transactional_id_prefix(mut self, prefix: impl Into<String>) -> KafkaConfig {
        self.transactional_id_prefix = prefix.into();
        self
    }

    /// The `transactional.id` prefix ([`KafkaConfig::with_transactional_id_prefix`]).
    pub fn transactional_id_prefix(&self) -> &str {
        &self.transactional_id_prefix
    }

    /// Sets how many reading consumers the admin side (`KafkaAdmin`) may keep at once
    /// (4 unless set; at least one): concurrent reads, watermark
    /// and group listings take one each and wait when all are busy. As the property
    /// [`ADMIN_READERS_PROPERTY`] it comes from `--kafka-property` and the config file's
    /// `[kafka_properties]`.
    #[must_use]
    pub fn with_admin_readers(mut self, readers: usize) -> KafkaConfig {
        self.admin_readers = readers.max(1);
        self
    }

    /// How many reading consumers the admin side may keep
    /// ([`KafkaConfig::with_admin_readers`]).
    pub fn admin_readers(&self) -> usize {
        self.admin_readers
    }

    /// Sets the `client.id` brokers log and quota by.
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> KafkaConfig {
        self.client_id = client_id.into();
        self
    }

    /// Sets any other librdkafka property (for example `security.protocol`,
    /// `sasl.mechanism`, `linger.ms`). Panics on a property Keel fixes (see the module
    /// docs): that is a programmer error, not an operating one. Properties an operator
    /// typed go through [`KafkaConfig::try_set`].
    #[must_use]
    pub fn set(self, key: impl Into<String>, value: impl Into<String>) -> KafkaConfig {
        self.try_set(key, value)
            .unwrap_or_else(|refused| panic!("{refused}"))
    }

    /// Sets a librdkafka property, or says in one line why Keel fixes it (see the module
    /// docs): for properties that come from flags and config files.
    pub fn try_set(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<KafkaConfig, String> {
        let key = key.into();
        if key == ADMIN_READERS_PROPERTY {
            let value = value.into();
            return match value.trim().parse::<usize>() {
                Ok(readers @ 1..=ADMIN_READERS_MAX) => Ok(self.with_admin_readers(readers)),
                _ => Err(format!(
                    "'{key}' takes a count from 1 to {ADMIN_READERS_MAX}, not '{value}'"
                )),
            };
        }
        if FIXED.contains(&key.as_str()) {
            return Err(format!(
                "Keel fixes the Kafka property '{key}' (its delivery promises rest on it); it cannot be set"
            ));
        }
        self.extra.push((key, value.into()));
        Ok(self)
    }

    /// The bootstrap servers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// The admin client's settings (topic metadata, creating dead-letter topics).
    /// Asking for a topic's metadata must not create it (librdkafka's producer-type
    /// clients allow that by default), or a dead-letter topic would be auto-created with
    /// the broker's default partition count instead of its source's.
    pub(crate) fn admin(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("allow.auto.create.topics", "false");
        config
    }

    /// The settings of the admin side's reading consumer: assigned the partition it reads
    /// at the offset it reads from, so it never joins or commits as its group (librdkafka
    /// wants a group id to assign all the same), nothing created by naming it, and an
    /// end-of-partition event so a read stops where the stored records do. A fetch at the
    /// end of a partition answers at once instead of waiting for new records: librdkafka
    /// sends one fetch at a time per broker, so the next read's fetch would queue behind
    /// that wait (500 ms by default).
    pub(crate) fn reader(&self) -> ClientConfig {
        let mut config = self.group_client(READER_GROUP);
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.wait.max.ms",
                READER_FETCH_WAIT.as_millis().to_string(),
            );
        config
    }

    /// The settings of a client acting as `group` to read or set its committed offsets:
    /// it never joins the group or commits on its own.
    pub(crate) fn group_client(&self, group: &str) -> ClientConfig {
        let mut config = self.admin();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }

    /// The producer's settings: idempotent, acks from every in-sync replica, murmur2 keys.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random");
        self.default_ms(&mut config, "linger.ms", PRODUCE_LINGER);
        config
    }

    /// The settings of a transactional route member's producer: [`KafkaConfig::producer`]'s
    /// with `transactional_id` and, unless set, [`TRANSACTION_TIMEOUT`].
    pub(crate) fn transactional_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut config = self.producer();
        config.set("transactional.id", transactional_id);
        self.default_ms(&mut config, "transaction.timeout.ms", TRANSACTION_TIMEOUT);
        config
    }

    /// The consumer's settings for `group`: no automatic commits or offset stores (the
    /// runtime commits its commit point), no partition-EOF events, statistics (for lag)
    /// every [`LAG_STATISTICS_INTERVAL`] unless `statistics.interval.ms` was set; `start_earliest` picks
    /// where a partition without a committed offset starts.
    pub(crate) fn consumer(&self, group: &str, start_earliest: bool) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                if start_earliest { "earliest" } else { "latest" },
            );
        // The statistics carry the consumer lag the runtime's metrics report.
        self.default_ms(
            &mut config,
            "statistics.interval.ms",
            LAG_STATISTICS_INTERVAL,
        );
        self.default_ms(&mut config, "fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF);
        self.default_ms(&mut config, "fetch.wait.max.ms", FETCH_WAIT_MAX);
        config
    }

    /// Sets the milliseconds property `key` to `value` in `config` unless it was set with
    /// [`KafkaConfig::set`]: Keel's default, the operator's choice first.
    fn default_ms(&self, config: &mut ClientConfig, key: &str, value: Duration) {
        if !self.extra.iter().any(|(set, _)| set == key) {
            config.set(key, value.as_millis().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_properties_win_over_nothing_and_extras_pass_through() {
        let config = KafkaConfig::new("h:1").set("linger.ms", "5");
        let producer = config.producer();
        assert_eq!(producer.get("partitioner"), Some("murmur2_random"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("linger.ms"), Some("5"));
    }

    #[test]
    fn a_producer_sends_at_once_unless_the_operator_set_a_linger() {
        let keel = KafkaConfig::new("h:1");
        assert_eq!(keel.producer().get("linger.ms"), Some("0"));
        assert_eq!(keel.transactional_producer("t").get("linger.ms"), Some("0"));
    }

    #[test]
    fn a_consumer_paces_its_fetches_unless_the_operator_did() {
        let keel = KafkaConfig::new("h:1").consumer("g", true);
        assert_eq!(keel.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(keel.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(keel.get("statistics.interval.ms"), Some("5000"));
        let operator = KafkaConfig::new("h:1")
            .set("fetch.queue.backoff.ms", "250")
            .set("fetch.wait.max.ms", "500")
            .consumer("g", true);
        assert_eq!(operator.get("fetch.queue.backoff.ms"), Some("250"));
        assert_eq!(operator.get("fetch.wait.max.ms"), Some("500"));
    }

    #[test]
    #[should_panic(expected = "Keel fixes the Kafka property 'acks'")]
    fn a_fixed_property_cannot_be_set() {
        let _ = KafkaConfig::new("h:1").set("acks", "1");
    }

    #[test]
    fn the_admin_readers_property_sets_the_pool_and_refuses_a_bad_count() {
        let config = KafkaConfig::new("h:1")
            .try_set(ADMIN_READERS_PROPERTY, "8")
            .unwrap();
        assert_eq!(config.admin_readers(), 8);
        assert!(
            config.admin().get(ADMIN_READERS_PROPERTY).is_none(),
            "not passed to librdkafka"
        );
        for bad in ["0", "many", "65"] {
            let refused = KafkaConfig::new("h:1")
                .try_set(ADMIN_READERS_PROPERTY, bad)
                .unwrap_err();
            assert!(refused.contains("from 1 to 64"), "{refused}");
        }
    }
}
