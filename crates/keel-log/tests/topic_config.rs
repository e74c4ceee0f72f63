//! A topic's settings changed while the log runs (`Log::alter_topic_config`): in force at
//! once, kept across a power cut, never half-applied, and never hiding what is stored.

use std::sync::Arc;

use bytes::Bytes;
use keel_log::sim::SimStorage;
use keel_log::{
    AppendError, CleanupPolicy, Log, LogOptions, ManualClock, NewRecord, TopicConfig, TopicError,
};

fn sim_log(storage: &SimStorage) -> Log {
    let options = LogOptions {
        storage: Arc::new(storage.clone()),
        clock: Arc::new(ManualClock::new(1_000)),
        background: false,
        ..LogOptions::default()
    };
    Log::open_with("/data", options).expect("open log")
}

fn event(bytes: usize) -> NewRecord {
    NewRecord::new(Some(Bytes::from_static(b"k")), vec![7u8; bytes])
}

#[test]
fn new_settings_rule_appends_at_once_and_survive_a_power_cut() {
    let storage = SimStorage::new();
    let log = sim_log(&storage);
    let topic = log.create_topic("t", TopicConfig::new(2)).unwrap();
    let partition = topic.partition(0).unwrap().clone();
    partition.append(&[event(4096)]).unwrap();

    let mut config = topic.config();
    config.max_batch_bytes = 1024;
    config.segment_bytes = 1024;
    config.retention_ms = Some(60_000);
    config.cleanup = CleanupPolicy::Compact;
    let altered = log.alter_topic_config("t", config.clone()).unwrap();
    assert_eq!(altered.config(), config);
    assert_eq!(
        topic.config(),
        config,
        "a topic fetched before sees the change"
    );
    assert_eq!(partition.config(), config);
    assert!(matches!(
        partition.append(&[event(4096)]),
        Err(AppendError::RecordTooLarge { max: 1024, .. })
    ));
    assert!(matches!(
        partition.append(&[NewRecord::new(None::<Bytes>, "no key")]),
        Err(AppendError::KeyRequired)
    ));

    storage.power_cut(3);
    std::mem::forget(partition);
    std::mem::forget(topic);
    std::mem::forget(altered);
    std::mem::forget(log);
    let log = sim_log(&storage);
    let topic = log.topic("t").unwrap();
    assert_eq!(topic.config(), config);
    let partition = topic.partition(0).unwrap();
    // The 4 KiB event stored under the old limit is still read and was not cut by recovery.
    assert_eq!(partition.high_watermark(), 1);
    assert_eq!(
        partition.read_records(0, 1 << 20).unwrap()[0]
            .value
            .as_ref()
            .map(Bytes::len),
        Some(4096)
    );
    // Small segments now: each 600-byte event starts a new one.
    for _ in 0..3 {
        partition.append(&[event(600)]).unwrap();
    }
    assert_eq!(partition.segment_count(), 4);
}

#[test]
fn a_refused_change_leaves_the_settings_as_they_were() {
    let storage = SimStorage::new();
    let log = sim_log(&storage);
    let topic = log.create_topic("t", TopicConfig::new(2)).unwrap();
    let before = topic.config();
    let check = |config: TopicConfig, expected: &str| {
        let error = log.alter_topic_config("t", config).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
        assert_eq!(log.topic("t").unwrap().config(), before);
    };
    check(TopicConfig::new(3), "partitions are added, not altered");
    check(
        TopicConfig::new(2).with_segment_bytes(10),
        "invalid topic setting 'segment_bytes'",
    );
    // The new topic.conf cannot be made durable: nothing changes, now or after a restart.
    storage.fail_next_syncs(1);
    check(TopicConfig::new(2).with_segment_bytes(4096), "i/o error");
    assert!(matches!(
        log.alter_topic_config("missing", TopicConfig::new(1)),
        Err(TopicError::NotFound(_))
    ));
    assert!(matches!(
        log.alter_topic_config("_keel_schemas", TopicConfig::new(1)),
        Err(TopicError::Internal(_))
    ));
    drop(topic);
    drop(log);
    assert_eq!(sim_log(&storage).topic("t").unwrap().config(), before);
}
