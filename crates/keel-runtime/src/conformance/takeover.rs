//! The conformance check of a member killed without leaving: it joined, fetched its
//! partitions' records, committed part of them and died, as a process does under SIGKILL —
//! no leave, no more heartbeats, its leases never given back. The next member must get the
//! partitions once the group presumes the dead one gone and handle every event after the
//! dead member's commits once, in order per key.
//!
//! Where the broker lives outside the test process ([`Harness::broker_for_child`]), the
//! dead member runs in a child process — the test binary run again for this one check with
//! [`MEMBER_VAR`] set — and is killed with SIGKILL. The embedded log lives in the test
//! process, so there the member is abandoned in place: its membership and leases are
//! forgotten, never dropped, so nothing leaves the group or releases a claim.
//!
//! Not here: the other checks (`conformance.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use keel_core::{Membership, MembershipEvent, PartitionLease, Record, StartFrom};

use super::{
    Harness, Seen, WAIT, assert_in_order, create_topic, distinct, event, keys_per_partition, name,
    publish, recording, route, start,
};
use crate::router::Router;

/// Set in the child process that plays the dead member.
pub const MEMBER_VAR: &str = "KEEL_CONFORMANCE_MEMBER";
/// What [`Harness::broker_for_child`] said, for the factory in the child process
/// ([`inherited_broker`]).
pub const BROKER_VAR: &str = "KEEL_CONFORMANCE_BROKER";

/// Partitions of the check's topic.
const PARTITIONS: u32 = 2;
/// Events per partition published before the dead member joins.
const BEFORE_PER_PARTITION: u32 = 5;
/// Of those, how many the dead member commits in each partition.
const COMMITTED_PER_PARTITION: usize = 3;
/// Events published after the member died.
const AFTER: u32 = 10;
/// The line the dead member's process prints once it committed.
pub(super) const READY: &str = "keel-conformance-member-ready";

/// In a child process started by the check, what the harness's factory reads to reach the
/// parent's broker under the parent's names (see [`Harness::broker_for_child`]).
pub fn inherited_broker() -> Option<String> {
    std::env::var(BROKER_VAR).ok()
}

/// Takeover: a member that held every partition dies without leaving after committing
/// part of what it fetched; the next member gets the partitions and handles each event
/// after those commits exactly once, in per-key order, and none before them.
pub async fn a_killed_members_partitions_are_taken_over<H: Harness>(harness: &H) {
    if std::env::var_os(MEMBER_VAR).is_some() {
        // The child process: die holding the partitions (the parent kills us).
        let dead = member_that_dies(harness).await;
        // Straight to the pipe, whatever libtest captures.
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{READY}")
            .and_then(|()| stdout.flush())
            .expect("tell the parent");
        dead.live_until_killed().await;
    }
    create_topic(harness, "orders", PARTITIONS).await;
    let keys = keys_per_partition(PARTITIONS, "key");
    let keyed = |seqs: std::ops::Range<u32>| {
        seqs.map(|n| event(&keys[(n % PARTITIONS) as usize], n))
            .collect::<Vec<_>>()
    };
    let before = BEFORE_PER_PARTITION * PARTITIONS;
    publish(harness, "orders", keyed(0..before)).await;
    match harness.broker_for_child() {
        Some(broker) => kill(spawn_member(harness, &broker).await).await,
        // Forgotten, never dropped: no leave, no heartbeat, no claim released.
        None => std::mem::forget(member_that_dies(harness).await),
    }
    publish(harness, "orders", keyed(before..before + AFTER)).await;
    let seen: Seen = Arc::default();
    let handler = recording("next", &seen, |_, _, _| None);
    let handle =
        start(Router::new(harness.transport()).route(route(harness, "orders", "billing", handler)));
    // Offsets from the dead member's commit on: the seqs past the first committed ones.
    let committed = COMMITTED_PER_PARTITION as u32 * PARTITIONS;
    let expected: Vec<u32> = (committed..before + AFTER).collect();
    super::until(
        "the next member to handle the dead member's partitions",
        || distinct(&seen, "next").len() >= expected.len(),
    )
    .await;
    handle.shutdown().await;
    let seen = seen.lock().unwrap();
    let mut handled: Vec<u32> = seen.iter().map(|s| s.2).collect();
    handled.sort_unstable();
    assert_eq!(
        handled, expected,
        "each event after the dead member's commits handled once, none before them"
    );
    for key in &keys {
        let published: Vec<u32> = expected
            .iter()
            .copied()
            .filter(|n| &keys[(n % PARTITIONS) as usize] == key)
            .collect();
        let by_key: Vec<u32> = seen.iter().filter(|s| &s.1 == key).map(|s| s.2).collect();
        assert_in_order(key, &published, &by_key);
    }
}

/// A member's state kept from being dropped, so it never leaves nor gives a partition back.
struct DeadMember {
    membership: Box<dyn Membership>,
    _leases: Vec<Arc<dyn PartitionLease>>,
}

impl DeadMember {
    /// Goes on answering the membership, as a live process's router does (the port wants a
    /// call to [`Membership::next`] always pending: librdkafka's commits wait for it), until
    /// the process is killed.
    async fn live_until_killed(mut self) -> ! {
        while self.membership.next().await.is_some() {}
        std::future::pending().await
    }
}

/// Joins the group alone, takes every partition, fetches what was published before and
/// commits the first [`COMMITTED_PER_PARTITION`] records of each partition.
async fn member_that_dies<H: Harness>(harness: &H) -> DeadMember {
    let transport = harness.transport();
    let (topic, group, policy) = (
        name(harness, "orders"),
        name(harness, "billing"),
        harness.group_policy(),
    );
    let mut membership = transport
        .consume()
        .join(&group, &topic, &policy, StartFrom::Earliest)
        .await
        .expect("the member joins");
    let mut leases = Vec::new();
    while leases.len() < PARTITIONS as usize {
        let change = tokio::time::timeout(WAIT, membership.next())
            .await
            .expect("every partition assigned in time");
        match change {
            Some(MembershipEvent::Assigned(lease)) => leases.push(lease),
            other => panic!("a lone member got {other:?} before its partitions"),
        }
    }
    {
        let work = fetch_and_commit(&leases);
        tokio::pin!(work);
        tokio::select! {
            () = &mut work => {}
            change = membership.next() => panic!("a lone member got {change:?} while it worked"),
        }
    }
    DeadMember {
        membership,
        _leases: leases,
    }
}

/// Fetches each lease's first [`BEFORE_PER_PARTITION`] records and commits the first
/// [`COMMITTED_PER_PARTITION`] of them.
async fn fetch_and_commit(leases: &[Arc<dyn PartitionLease>]) {
    for lease in leases {
        let start = lease.start().await.expect("lease start");
        let deadline = Instant::now() + WAIT;
        let mut fetched: Vec<Record> = Vec::new();
        while fetched.len() < BEFORE_PER_PARTITION as usize {
            assert!(Instant::now() < deadline, "the member to fetch its records");
            let next = fetched.last().map_or(start.offset, |r| r.offset + 1);
            lease.wait_for_data(next).await;
            let records = lease.fetch(next, 1 << 20).await.expect("fetch");
            fetched.extend(records.into_iter().filter(|r| r.offset >= next));
        }
        // The next record to handle: offsets need not be dense (NATS's stream sequences).
        lease
            .commit(fetched[COMMITTED_PER_PARTITION].offset)
            .await
            .expect("the member commits");
    }
}

/// Runs this check's test again in a child process as the dead member, and waits until it
/// committed.
pub(super) async fn spawn_member<H: Harness>(harness: &H, broker: &str) -> Child {
    let test = std::thread::current()
        .name()
        .expect("the check runs on its test's thread, named after the test")
        .to_string();
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([&test, "--exact", "--nocapture", "--test-threads=1"])
        .env(MEMBER_VAR, name(harness, "billing"))
        .env(BROKER_VAR, broker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the member's process");
    let stdout = child.stdout.take().expect("piped stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest's "test NAME ... " may come first on the line.
            .any(|line| line.ends_with(READY))
    });
    match tokio::time::timeout(WAIT, ready).await {
        Ok(Ok(true)) => child,
        outcome => {
            let _ = child.kill();
            panic!("the member's process ({test}) did not commit: {outcome:?}");
        }
    }
}

/// SIGKILLs the member's process and reaps it.
pub(super) async fn kill(mut child: Child) {
    child.kill().expect("SIGKILL the member");
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("reaper")
        .expect("the member's exit");
}
