//! `keel consume --group` as a member of a Kafka consumer group, through the group
//! coordinator of a `keel serve` (found from its data directory) or of a Kafka cluster
//! (`--brokers`): members of the same group, in as many processes as run, split the topic's
//! partitions, and a member that leaves hands its partitions to the others.
//!
//! Each pass prints what the assigned partitions hold and then commits it, so a revocation
//! finds its partition committed and the next owner resumes exactly after what was printed
//! (at-least-once: an interrupted pass prints its events again). Without `--follow` the
//! member leaves once its partitions are read to their ends.
//!
//! Not here: the output format (`consume.rs`), or the group protocol (`keel-kafka-client`).

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keel_kafka_client::{CommitError, KafkaMember, KafkaPartition, MemberEvent, MemberOptions};

use crate::brokers::KafkaCluster;
use crate::consume::{ConsumeArgs, print_record};

/// Records taken from one partition per pass.
const FETCH_RECORDS_MAX: usize = 500;
/// How long a member without `--follow` waits for its first partitions.
const ASSIGNMENT_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long leaving waits for the group's last revocations.
const LEAVE_WAIT_MAX: Duration = Duration::from_secs(15);

/// One partition the group gave this member, and where its printing stands.
struct Assigned {
    partition: KafkaPartition,
    next_offset: u64,
}

/// Reads `args.topic` as a member of `group` through the Kafka listener of `cluster`.
pub(crate) fn run(
    cluster: &KafkaCluster,
    group: &str,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    if args.partition.is_some() || args.offset.is_some() || args.from_time.is_some() {
        bail!(
            "--partition, --offset and --from-time pick where one reader starts; a member of group '{group}' through a Kafka listener reads the partitions the group gives it from the group's commits (move them with `keel groups reset`)"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let config = cluster.config("keel-cli")?;
    let mut member = KafkaMember::join(&config, group, &args.topic, &MemberOptions::default())?;
    let mut assigned = BTreeMap::new();
    let read = runtime.block_on(consume(
        &mut member,
        &mut assigned,
        group,
        args,
        interrupted,
    ));
    // Leave even after an error, so the group hands the partitions on without waiting for
    // this member's session to time out.
    runtime.block_on(leave(member, assigned));
    read
}

/// Prints the assigned partitions' records until interrupted, `--max`, or (without
/// `--follow`) the partitions' ends.
async fn consume(
    member: &mut KafkaMember,
    assigned: &mut BTreeMap<u32, Assigned>,
    group: &str,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    let poll = Duration::from_millis(args.poll_ms);
    let started = Instant::now();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    let mut idle = false;
    loop {
        if interrupted.load(Ordering::SeqCst) || args.max.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        // Membership first, so a revoked partition is never read again; an idle member
        // waits here for new records' poll interval.
        let wait = if idle { poll } else { Duration::ZERO };
        if let Ok(event) = tokio::time::timeout(wait, member.next()).await {
            match event {
                Some(event) => on_member_event(event, assigned).await?,
                None => match member.refusal() {
                    Some(reason) => {
                        bail!("the cluster refused this member of group '{group}': {reason}")
                    }
                    None => bail!("group '{group}' ended this member"),
                },
            }
            idle = false;
            continue;
        }
        idle = true;
        for current in assigned.values_mut() {
            let records = current
                .partition
                .fetch(FETCH_RECORDS_MAX, Duration::ZERO)
                .await;
            let Some(last) = records.last().map(|r| r.offset) else {
                continue;
            };
            idle = false;
            for record in &records {
                if args.max.is_some_and(|max| printed >= max) {
                    break;
                }
                if !print_record(&mut out, current.partition.partition(), record)? {
                    return Ok(());
                }
                current.next_offset = record.offset + 1;
                printed += 1;
            }
            out.flush().ok();
            if current.next_offset <= last {
                // `--max` stopped inside the batch; the rest is for the next reader.
                commit(current, group).await?;
                return Ok(());
            }
            commit(current, group).await?;
        }
        if idle && !args.follow {
            if assigned.is_empty() {
                if started.elapsed() > ASSIGNMENT_WAIT_MAX {
                    bail!(
                        "group '{group}' gave this member no partition of '{}' within {} s (does the topic exist? do other members hold all its partitions?)",
                        args.topic,
                        ASSIGNMENT_WAIT_MAX.as_secs()
                    );
                }
            } else if read_to_end(assigned).await? {
                return Ok(());
            }
        }
    }
}

/// Takes a partition the group gives, starting where the group committed; lets a revoked
/// one go (its printed records are committed already).
async fn on_member_event(
    event: MemberEvent,
    assigned: &mut BTreeMap<u32, Assigned>,
) -> anyhow::Result<()> {
    match event {
        MemberEvent::Assigned(partition) => {
            let offsets = partition.offsets().await?;
            let next_offset = offsets
                .committed
                .unwrap_or(offsets.low)
                .clamp(offsets.low, offsets.high);
            assigned.insert(
                partition.partition(),
                Assigned {
                    partition,
                    next_offset,
                },
            );
        }
        MemberEvent::Revoked(revocation) => {
            assigned.remove(&revocation.partition());
            revocation.done();
        }
    }
    Ok(())
}

/// Whether every assigned partition is printed up to its current end.
async fn read_to_end(assigned: &BTreeMap<u32, Assigned>) -> anyhow::Result<bool> {
    for current in assigned.values() {
        if current.partition.offsets().await?.high > current.next_offset {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Commits what was printed of `current`. A member the group fenced keeps going: the
/// revocation that follows takes the partition away, and its new owner prints the
/// uncommitted records again.
async fn commit(current: &Assigned, group: &str) -> anyhow::Result<()> {
    match current.partition.commit(current.next_offset).await {
        Ok(()) | Err(CommitError::Fenced(_)) => Ok(()),
        Err(error) => Err(error).with_context(|| {
            format!(
                "cannot commit offset {} of group '{group}' on partition {}",
                current.next_offset,
                current.partition.partition()
            )
        }),
    }
}

/// Leaves the group and answers its last revocations, so the other members take the
/// partitions over at once; returns when the consumer closed (or after [`LEAVE_WAIT_MAX`]).
async fn leave(mut member: KafkaMember, mut assigned: BTreeMap<u32, Assigned>) {
    member.leave();
    let deadline = tokio::time::Instant::now() + LEAVE_WAIT_MAX;
    // The consumer closes only when nothing holds it: answer revocations, drop partitions.
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, member.next()).await {
        match event {
            MemberEvent::Revoked(revocation) => {
                assigned.remove(&revocation.partition());
                revocation.done();
            }
            MemberEvent::Assigned(partition) => drop(partition),
        }
    }
}
