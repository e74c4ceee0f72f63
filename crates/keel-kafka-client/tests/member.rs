//! Kafka group membership against `keel serve`'s group coordinator: members of one group
//! share the partitions and hand them over on join and leave without losing or repeating a
//! record (a revocation completes only after the drain and commit), every group sees every
//! record, and a member killed mid-stream is resumed from its last commit.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::Event;
use keel_kafka_client::{KafkaConfig, KafkaMember, KafkaPublisher, MemberEvent, MemberOptions};
use support::Serve;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

/// What every consumer saw: (member, partition, offset).
type Seen = Arc<Mutex<Vec<(&'static str, u32, u64)>>>;

/// The partitions each consumer holds now.
type Owned = Arc<Mutex<BTreeMap<&'static str, BTreeSet<u32>>>>;

/// A consumer like the runtime's: one task per assigned partition, a commit after every
/// `commit_every` records, and on revocation: stop, commit, acknowledge.
struct Consumer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Consumer {
    fn start(
        serve: &Serve,
        group: &str,
        name: &'static str,
        seen: Seen,
        owned: Owned,
        commit_every: u64,
    ) -> Consumer {
        let options = MemberOptions {
            session_timeout: Duration::from_secs(6),
            ..MemberOptions::default()
        };
        let config = KafkaConfig::new(serve.bootstrap()).with_client_id(name);
        let mut member = KafkaMember::join(&config, group, "orders", &options).unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut partitions: HashMap<u32, (watch::Sender<bool>, JoinHandle<()>)> =
                HashMap::new();
            loop {
                let event = tokio::select! {
                    event = member.next() => event,
                    _ = stopped.changed() => { member.leave(); continue; }
                };
                match event {
                    None => return,
                    Some(MemberEvent::Assigned(partition)) => {
                        let (drain, mut draining) = watch::channel(false);
                        let seen = seen.clone();
                        let number = partition.partition();
                        let worker = tokio::spawn(async move {
                            let mut next = None;
                            let mut uncommitted = 0;
                            loop {
                                let records = tokio::select! {
                                    records = partition.fetch(50, Duration::from_millis(50)) => records,
                                    _ = draining.wait_for(|d| *d) => Vec::new(),
                                };
                                for record in &records {
                                    seen.lock().unwrap().push((name, number, record.offset));
                                    next = Some(record.offset + 1);
                                    uncommitted += 1;
                                    if uncommitted >= commit_every {
                                        partition.commit(record.offset + 1).await.unwrap();
                                        uncommitted = 0;
                                    }
                                }
                                if *draining.borrow() {
                                    if let Some(next) = next.filter(|_| uncommitted > 0) {
                                        partition.commit(next).await.unwrap();
                                    }
                                    return;
                                }
                            }
                        });
                        partitions.insert(number, (drain, worker));
                        owned
                            .lock()
                            .unwrap()
                            .entry(name)
                            .or_default()
                            .insert(number);
                    }
                    Some(MemberEvent::Revoked(revocation)) => {
                        if let Some((drain, worker)) = partitions.remove(&revocation.partition()) {
                            drain.send_replace(true);
                            worker.await.unwrap();
                        }
                        let number = revocation.partition();
                        owned
                            .lock()
                            .unwrap()
                            .entry(name)
                            .or_default()
                            .remove(&number);
                        revocation.done();
                    }
                }
            }
        });
        Consumer { stop, task }
    }

    /// Leaves gracefully: drain, commit, leave the group.
    async fn leave(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
    }

    /// Dies: nothing drained, nothing more committed (the member's session lapses, or
    /// librdkafka's close leaves the group without the runtime's last commit).
    fn kill(self) {
        self.task.abort();
    }
}

/// Publishes events `from..to` to "orders". They carry one time: a time's text varies in
/// length with its fractional digits, so events of one data length are of one size.
async fn publish(serve: &Serve, from: u32, to: u32) {
    let publisher = KafkaPublisher::new(&KafkaConfig::new(serve.bootstrap()))
        .unwrap()
        .publisher();
    let time = "2026-12-07T18:00:00.123Z".parse().unwrap();
    for n in from..to {
        let mut event = Event::new("/tests", "order.placed")
            .with_partition_key(format!("order-{}", n % 13))
            .with_data_json(&serde_json::json!({ "n": n }));
        event.time = Some(time);
        publisher.publish("orders", event).await.unwrap();
    }
}

fn stored(serve: &Serve) -> Vec<(u32, u64)> {
    let topic = serve.log.topic("orders").unwrap();
    (0..topic.config().partitions)
        .flat_map(|p| (0..topic.partition(p).unwrap().high_watermark()).map(move |o| (p, o)))
        .collect()
}

/// How often each stored record was seen by the consumers whose names are in `members`.
fn counts(seen: &Seen, members: &[&str]) -> BTreeMap<(u32, u64), usize> {
    let mut counts = BTreeMap::new();
    for (member, partition, offset) in seen.lock().unwrap().iter() {
        if members.contains(member) {
            *counts.entry((*partition, *offset)).or_insert(0) += 1;
        }
    }
    counts
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_and_hand_them_over_without_loss_or_repeats() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 4);
    let seen: Seen = Arc::default();
    let owned: Owned = Arc::default();
    let holds = |name: &'static str, count: usize| {
        let owned = owned.clone();
        move || owned.lock().unwrap().get(name).map_or(0, BTreeSet::len) == count
    };
    let a = Consumer::start(&serve, "billing", "a", seen.clone(), owned.clone(), 1);
    let other = Consumer::start(
        &serve,
        "audit",
        "other-group",
        seen.clone(),
        owned.clone(),
        1,
    );
    publish(&serve, 0, 100).await;
    until("a saw the first 100", || counts(&seen, &["a"]).len() == 100).await;
    let b = Consumer::start(&serve, "billing", "b", seen.clone(), owned.clone(), 1);
    // Records flow while the group rebalances.
    publish(&serve, 100, 150).await;
    until("b holds half the partitions", holds("b", 2)).await;
    until("a holds the other half", holds("a", 2)).await;
    publish(&serve, 150, 200).await;
    until("the group saw 200", || {
        counts(&seen, &["a", "b"]).len() == 200
    })
    .await;
    assert!(!counts(&seen, &["b"]).is_empty(), "b consumed its share");
    a.leave().await;
    until("b holds every partition", holds("b", 4)).await;
    publish(&serve, 200, 300).await;
    until("the group saw 300", || {
        counts(&seen, &["a", "b"]).len() == 300
    })
    .await;
    until("the other group saw 300", || {
        counts(&seen, &["other-group"]).len() == 300
    })
    .await;
    let group = counts(&seen, &["a", "b"]);
    let all: Vec<(u32, u64)> = stored(&serve);
    assert_eq!(
        group.keys().copied().collect::<Vec<_>>(),
        all,
        "every record"
    );
    let repeated: Vec<_> = group.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "handed over after the commit, never seen twice: {repeated:?}"
    );
    assert!(counts(&seen, &["other-group"]).values().all(|n| *n == 1));
    b.leave().await;
    other.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_resumed_from_its_last_commit() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 1);
    let seen: Seen = Arc::default();
    publish(&serve, 0, 95).await;
    let dying = Consumer::start(&serve, "billing", "dying", seen.clone(), Arc::default(), 10);
    until("the member saw every record", || {
        counts(&seen, &["dying"]).len() == 95
    })
    .await;
    dying.kill();
    let heir = Consumer::start(&serve, "billing", "heir", seen.clone(), Arc::default(), 10);
    // 90 were committed (every 10th record); the 5 after the last commit come again.
    until("the heir saw the uncommitted tail", || {
        counts(&seen, &["heir"]).len() == 5
    })
    .await;
    let heir_offsets: Vec<u64> = counts(&seen, &["heir"]).keys().map(|(_, o)| *o).collect();
    assert_eq!(heir_offsets, (90..95).collect::<Vec<_>>());
    heir.leave().await;
}

/// A take stops once its records reach about the bytes asked for, takes one record when
/// asked for none, and leaves the rest in order for the next take: the lease's fetch reads
/// librdkafka's queue in batches sized from the records already taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_stops_near_its_byte_limit_and_the_next_goes_on_in_order() {
    let serve = Serve::start().await;
    serve.create_topic("orders", 1);
    // Ten events of one size (`{"n":0}` to `{"n":9}`), all in the partition before the
    // member joins, so they arrive in one fetch response.
    publish(&serve, 0, 10).await;
    let config = KafkaConfig::new(serve.bootstrap());
    let mut member =
        KafkaMember::join(&config, "billing", "orders", &MemberOptions::default()).unwrap();
    let Some(MemberEvent::Assigned(partition)) = member.next().await else {
        panic!("no assignment");
    };
    let first = partition.fetch(1, WAIT).await;
    assert_eq!(first.len(), 1, "the first record within {WAIT:?}");
    let size = first[0].size_bytes();

    let mut records = Vec::new();
    partition.take_bytes(3 * size, &mut records);
    assert_eq!(
        records.len(),
        3,
        "three records of {size} bytes fill {} bytes",
        3 * size
    );
    partition.take_bytes(0, &mut records);
    assert_eq!(
        records.len(),
        4,
        "a take of no bytes still takes one record"
    );
    partition.take_bytes(usize::MAX, &mut records);
    let offsets: Vec<u64> = first.iter().chain(&records).map(|r| r.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
}
