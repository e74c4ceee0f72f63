//! `keel consume --group` as a real consumer group across processes: two `--follow`
//! members against one `keel serve` split the topic's partitions (through its Kafka
//! listener's group coordinator) and print each event once between them, a member that
//! exits hands its partitions to the other, and the commits let a later member resume.
//! On a bare data directory a second `--group` reader fails at once, naming the first.
//! Needs the `kafka` feature (`cargo nextest run -p keel-cli --features kafka`).
#![cfg(feature = "kafka")]

#[path = "support/serve.rs"]
mod serve;
mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_core::NewRecord;
use keel_kafka_client::{KafkaConfig, KafkaPublisher};
use serde_json::Value;
use support::Keel;

/// How long any one step may take before the test fails.
const STEP_WAIT_MAX: Duration = Duration::from_secs(60);

/// A `keel consume --group --follow` process and the `(partition, n)` of what it printed.
struct Member {
    child: Child,
    printed: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Member {
    fn start(keel: &Keel, group: &str) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args([
                "consume",
                "t",
                "--group",
                group,
                "--follow",
                "--poll-ms",
                "50",
            ])
            .env("KEEL_DATA", keel.dir.path())
            .env_remove("KEEL_BROKERS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn keel consume");
        let printed = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let sink = printed.clone();
        thread::spawn(move || {
            for line in lines.lines() {
                let line: Value = serde_json::from_str(&line.unwrap()).expect("a JSON line");
                let n = line["value"]["n"].as_u64().expect("value.n");
                let partition = line["partition"].as_u64().expect("partition");
                sink.lock().unwrap().push((partition, n));
            }
        });
        Member { child, printed }
    }

    fn printed(&self) -> Vec<(u64, u64)> {
        self.printed.lock().unwrap().clone()
    }

    /// The partitions of what it printed of events `from..`.
    fn partitions_since(&self, from: u64) -> Vec<u64> {
        let mut partitions: Vec<u64> = self
            .printed()
            .iter()
            .filter(|(_, n)| *n >= from)
            .map(|(p, _)| *p)
            .collect();
        partitions.sort();
        partitions.dedup();
        partitions
    }

    /// Interrupts it as Ctrl-C does and expects a clean exit.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().expect("wait for keel consume");
        assert!(status.success(), "keel consume exited with {status}");
    }
}

/// Waits until `done` holds, failing the test after [`STEP_WAIT_MAX`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_WAIT_MAX;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes events `range` alternately to partitions 0 and 1, `{"n": n}` as the value.
async fn publish(publisher: &KafkaPublisher, range: std::ops::Range<u64>) {
    for n in range {
        let record = NewRecord::new(Some(format!("k{n}")), Bytes::from(format!("{{\"n\":{n}}}")));
        publisher
            .send("t", &record, Some((n % 2) as u32))
            .await
            .expect("publish");
    }
}

/// How often each event was printed, across `members`.
fn counts(members: &[&Member]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for member in members {
        for (_, n) in member.printed() {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

fn once_each(range: std::ops::Range<u64>) -> BTreeMap<u64, usize> {
    range.map(|n| (n, 1)).collect()
}

#[test]
fn a_second_group_reader_of_a_bare_directory_fails_at_once_naming_the_first() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "t", "--partitions", "2"], "");
    let first = Member::start(&keel, "g");
    wait_for("the first reader to hold the directory", || {
        keel.dir.path().join("keel-cli.holder").exists()
    });
    let started = Instant::now();
    keel.fails(
        &["consume", "t", "--group", "g", "--follow"],
        "",
        "is held by `keel consume t --group g` (pid",
    );
    let stderr = String::from_utf8(keel.run(&["consume", "t", "--group", "g"], "").stderr).unwrap();
    assert!(stderr.contains("run `keel serve` on it"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it waited for the lock"
    );
    first.interrupt();
    assert!(!keel.dir.path().join("keel-cli.holder").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consume_group_processes_split_the_partitions_through_keel_serve() {
    let keel = Keel::new();
    keel.ok(&["topics", "create", "t", "--partitions", "2"], "");
    let (mut server, line) = keel.start_server(&[]);
    let kafka = serve::address(&line, "kafka").to_string();
    let publisher = KafkaPublisher::new(&KafkaConfig::new(kafka)).expect("producer");

    // One member takes both partitions.
    let a = Member::start(&keel, "g");
    publish(&publisher, 0..10).await;
    wait_for("the first member to print 0..10", || {
        a.printed().len() == 10
    });
    assert_eq!(a.partitions_since(0), [0, 1]);

    // A second member joins: the group rebalances and gives each one partition. Events go
    // on arriving on both partitions until the second member prints one of them.
    let b = Member::start(&keel, "g");
    let mut next = 10;
    let deadline = Instant::now() + STEP_WAIT_MAX;
    while b.printed().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the second member never got a partition"
        );
        publish(&publisher, next..next + 2).await;
        next += 2;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let joined = next;
    publish(&publisher, next..next + 20).await;
    next += 20;
    wait_for("both members to print every event", || {
        counts(&[&a, &b]).values().sum::<usize>() >= next as usize
    });
    assert_eq!(
        counts(&[&a, &b]),
        once_each(0..next),
        "each event printed once"
    );
    let (pa, pb) = (a.partitions_since(joined), b.partitions_since(joined));
    assert_eq!(pa.len(), 1, "the first member kept one partition: {pa:?}");
    assert_eq!(pb.len(), 1, "the second member got one partition: {pb:?}");
    assert_ne!(pa, pb);

    // The second member exits: its partition goes back to the first.
    b.interrupt();
    let handed = next;
    publish(&publisher, next..next + 10).await;
    next += 10;
    wait_for("the first member to print what the second left", || {
        a.printed().iter().filter(|(_, n)| *n >= handed).count() == 10
    });
    assert_eq!(a.partitions_since(handed), [0, 1]);
    a.interrupt();

    // The commits hold: a later member prints only what came after them.
    let resumed = keel.ok(&["consume", "t", "--group", "g"], "");
    assert_eq!(resumed, "", "nothing after the commits yet");
    publish(&publisher, next..next + 3).await;
    let resumed = keel.ok(&["consume", "t", "--group", "g"], "");
    let ns: Vec<u64> = resumed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut sorted = ns.clone();
    sorted.sort();
    assert_eq!(sorted, (next..next + 3).collect::<Vec<_>>());
    assert!(serve::terminate(&mut server));
}
