//! Crash test: a child process appends under `fsync = always` on the real disk and is killed
//! with SIGKILL at random moments; after each kill the log is reopened and checked.
//!
//! The child is this test binary itself, re-executed with `KEEL_CRASH_CHILD_DIR` set and told
//! to run only [`crash_child_appends_until_killed`] (which returns at once when the variable is
//! unset, so it is an ordinary, passing test otherwise). Several threads append batches whose
//! keys, values and headers are functions of `(thread, seq, index)`, and print one line per
//! acknowledged append: `ack <offset> <count> <thread> <seq>`. The parent kills the child at a
//! random moment (sometimes during startup and recovery), reopens the same directory and
//! asserts that:
//!
//! - every acknowledged record is present, byte for byte (key, value, headers);
//! - offsets are dense from 0, and every record read back is one the child wrote;
//! - reads never return a byte past the high watermark, and every segment file on disk is a
//!   whole chain of CRC-valid batches (recovery cut whatever a kill left half-written);
//! - an append after recovery works; the next child then recovers from that, so recovery of
//!   recovered data is exercised too.
//!
//! What it does not test: power loss (the page cache survives SIGKILL); the model test covers
//! that on the simulated disk. Knobs: `KEEL_CRASH_KILLS` (default 50), `KEEL_CRASH_SEED`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_log::{
    FsyncPolicy, Header, Log, LogOptions, NewRecord, ReadError, TopicConfig, check_batches,
    decode_records,
};

/// Kills per run in CI; `KEEL_CRASH_KILLS` overrides it for longer local runs.
const KILLS: usize = 50;
const CHILD_DIR_VAR: &str = "KEEL_CRASH_CHILD_DIR";
const CHILD_RUN_VAR: &str = "KEEL_CRASH_RUN";
const CHILD_TEST: &str = "crash_child_appends_until_killed";
const TOPIC: &str = "crash";
/// Appending threads in the child.
const THREADS: u64 = 4;
/// Small segments, so that kills also land on segment rolls.
const SEGMENT_BYTES: u64 = 4096;
/// A child that is never killed (the parent died) stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// Longest wait for a child's first acknowledgment.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn acknowledged_appends_survive_sigkill() {
    let kills = env_number("KEEL_CRASH_KILLS").map_or(KILLS, |n| n as usize);
    let seed = env_number("KEEL_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.expect("clock after 1970").as_nanos() as u64
    });
    println!("crash test: {kills} kills, seed {seed} (replay with KEEL_CRASH_SEED={seed})");
    let mut rng = SplitMix64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    // Every acknowledged record so far, by offset: it must be there after every later kill.
    let mut known: BTreeMap<u64, NewRecord> = BTreeMap::new();
    let mut stats = Stats::default();
    for run in 0..kills as u64 {
        let acks = run_child_and_kill(dir.path(), run, &mut rng, &mut stats);
        for ack in &acks {
            for (index, record) in records_for(ack.thread, ack.seq).into_iter().enumerate() {
                let previous = known.insert(ack.offset + index as u64, record);
                assert!(
                    previous.is_none(),
                    "offset {} acknowledged twice",
                    ack.offset
                );
            }
        }
        check_and_append(dir.path(), run, &mut known, &mut stats)
            .unwrap_or_else(|error| panic!("run {run} (seed {seed}): {error}"));
    }
    println!(
        "crash test: {kills} kills in {:.1?}; {} appends acknowledged by children, {} killed \
         before their first ack, {} recoveries cut a torn tail ({} bytes), {} records at the end",
        started.elapsed(),
        stats.acks,
        stats.early_kills,
        stats.truncations,
        stats.truncated_bytes,
        known.len(),
    );
    assert!(
        stats.acks >= kills as u64,
        "children acknowledged only {} appends in {kills} runs: the test did not test much",
        stats.acks
    );
}

/// The child's entry point: appends until killed. Returns at once in a normal test run.
#[test]
fn crash_child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let run = env_number(CHILD_RUN_VAR).expect("the parent sets the run number");
    let log = Log::open(&dir).expect("child opens the log");
    let topic = match log.topic(TOPIC) {
        Some(topic) => topic,
        None => log
            .create_topic(TOPIC, config())
            .expect("child creates the topic"),
    };
    let partition = topic.partition(0).expect("partition 0").clone();
    let deadline = Instant::now() + CHILD_LIFETIME;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let partition = &partition;
            scope.spawn(move || {
                let thread = run * THREADS + t;
                let mut seq = 0;
                while Instant::now() < deadline {
                    let info = partition
                        .append(&records_for(thread, seq))
                        .expect("child append");
                    let count = info.last_offset - info.base_offset + 1;
                    // One write per line, so a kill cannot leave half a line that parses.
                    let line = format!("ack {} {count} {thread} {seq}\n", info.base_offset);
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).expect("stdout");
                    out.flush().expect("stdout");
                    seq += 1;
                }
            });
        }
    });
}

fn config() -> TopicConfig {
    TopicConfig::new(1)
        .with_fsync(FsyncPolicy::Always)
        .with_segment_bytes(SEGMENT_BYTES)
}

/// One acknowledged append as the child reported it.
#[derive(Debug)]
struct Ack {
    offset: u64,
    thread: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct Stats {
    acks: u64,
    early_kills: u64,
    truncations: u64,
    truncated_bytes: u64,
}

/// Spawns a child, kills it at a random moment and returns the appends it acknowledged.
fn run_child_and_kill(dir: &Path, run: u64, rng: &mut SplitMix64, stats: &mut Stats) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_RUN_VAR, run.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let (first_ack, first_ack_seen) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || read_acks(stdout, first_ack));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // One kill in five lands early: while the child opens and recovers the log.
    if rng.below(5) == 0 {
        std::thread::sleep(Duration::from_millis(rng.below(40)));
    } else {
        let seen = first_ack_seen.recv_timeout(FIRST_ACK_TIMEOUT).is_ok();
        if !seen {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "run {run}: no acknowledgment: {}",
                stderr_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(rng.below(150)));
    }
    let exited = child.try_wait().expect("try_wait");
    assert!(exited.is_none(), "run {run}: the child exited by itself");
    // `Child::kill` sends SIGKILL on Unix: no destructor, no flush, no clean shutdown.
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let acks = reader.join().expect("stdout reader");
    let stderr = stderr_reader.join().expect("stderr reader");
    assert!(
        !stderr.contains("panicked"),
        "run {run}: child panicked:\n{stderr}"
    );
    if acks.is_empty() {
        stats.early_kills += 1;
    }
    stats.acks += acks.len() as u64;
    acks
}

/// Reads `ack` lines until the child dies; only whole lines (ending in a newline) count.
fn read_acks(stdout: impl Read, first_ack: mpsc::Sender<()>) -> Vec<Ack> {
    let mut reader = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return acks,
            Ok(_) => {}
        }
        let Some(fields) = line.strip_prefix("ack ").and_then(|l| l.strip_suffix('\n')) else {
            continue;
        };
        let numbers: Vec<u64> = fields
            .split(' ')
            .map(|field| field.parse().expect("ack field"))
            .collect();
        let [offset, count, thread, seq] = numbers[..] else {
            panic!("malformed ack line {line:?}");
        };
        assert_eq!(count, records_for(thread, seq).len() as u64, "{line:?}");
        acks.push(Ack {
            offset,
            thread,
            seq,
        });
        let _ = first_ack.send(());
    }
}

/// Reopens the log after a kill, checks everything, and appends one batch of its own.
fn check_and_append(
    dir: &Path,
    run: u64,
    known: &mut BTreeMap<u64, NewRecord>,
    stats: &mut Stats,
) -> Result<(), String> {
    let options = LogOptions {
        background: false,
        ..LogOptions::default()
    };
    let log = Log::open_with(dir, options).map_err(|e| format!("reopen: {e}"))?;
    for (topic, _, repaired) in &log.recovery_report().repaired {
        if topic == TOPIC && repaired.truncated_bytes > 0 {
            stats.truncations += 1;
            stats.truncated_bytes += repaired.truncated_bytes;
        }
    }
    let Some(topic) = log.topic(TOPIC) else {
        // Killed before the topic was created: nothing can have been acknowledged.
        return match known.is_empty() {
            true => Ok(()),
            false => Err("the topic vanished".into()),
        };
    };
    let partition = topic.partition(0).expect("partition 0").clone();
    let high_watermark = partition.high_watermark();
    let needed = known.last_key_value().map_or(0, |(offset, _)| offset + 1);
    if high_watermark < needed {
        return Err(format!(
            "high watermark {high_watermark} below acknowledged offset {}",
            needed - 1
        ));
    }

    // Read everything back, batch by batch, checking the reads' own promises on the way.
    let mut offset = 0;
    while offset < high_watermark {
        let read = partition
            .read(offset, 64 * 1024)
            .map_err(|e| format!("read at {offset}: {e}"))?;
        if read.high_watermark != high_watermark {
            return Err(format!(
                "read reports high watermark {}",
                read.high_watermark
            ));
        }
        let headers = check_batches(&read.bytes, u32::MAX)
            .map_err(|e| format!("read at {offset} returned an invalid batch: {e}"))?;
        if headers.is_empty() {
            return Err(format!(
                "read at {offset} returned nothing below {high_watermark}"
            ));
        }
        let mut start = 0;
        for header in &headers {
            if header.base_offset != offset {
                return Err(format!(
                    "batch at {} where {offset} was due",
                    header.base_offset
                ));
            }
            if header.next_offset() > high_watermark {
                return Err(format!(
                    "read returned offset {} past the watermark",
                    header.last_offset()
                ));
            }
            let batch = read.bytes.slice(start..start + header.size());
            let records = decode_records(batch).map_err(|e| format!("decode at {offset}: {e}"))?;
            for record in records {
                if record.offset != offset {
                    return Err(format!("record {} where {offset} was due", record.offset));
                }
                let expected = match known.get(&offset) {
                    Some(expected) => expected.clone(),
                    // Written but not (yet) reported: it must still be a record a child wrote.
                    None => written_record(&record)
                        .ok_or_else(|| format!("unknown record at {offset}: {record:?}"))?,
                };
                if !same(&record, &expected) {
                    return Err(format!("offset {offset}: {record:?} != {expected:?}"));
                }
                offset += 1;
            }
            start += header.size();
        }
    }
    let empty = partition
        .read(high_watermark, 1 << 20)
        .map_err(|e| e.to_string())?;
    if !empty.bytes.is_empty() {
        return Err("a read at the high watermark returned bytes".into());
    }
    if !matches!(
        partition.read(high_watermark + 1, 1 << 20),
        Err(ReadError::OffsetOutOfRange { .. })
    ) {
        return Err("a read past the high watermark did not fail".into());
    }
    // On disk, nothing is left after the last valid batch of any segment.
    for path in partition.segment_paths() {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        check_batches(&bytes, u32::MAX)
            .map_err(|e| format!("{} after recovery: {e}", path.display()))?;
    }

    // The recovered partition takes appends at the high watermark.
    let mine = parent_record(run);
    let info = partition
        .append(std::slice::from_ref(&mine))
        .map_err(|e| format!("append after recovery: {e}"))?;
    if info.base_offset != high_watermark {
        return Err(format!(
            "append after recovery got offset {}",
            info.base_offset
        ));
    }
    known.insert(info.base_offset, mine);
    Ok(())
}

/// The records a child thread appends as its `seq`th batch: one to three records, with keys,
/// values and headers that name where they came from.
fn records_for(thread: u64, seq: u64) -> Vec<NewRecord> {
    (0..1 + seq % 3)
        .map(|index| child_record(thread, seq, index))
        .collect()
}

fn child_record(thread: u64, seq: u64, index: u64) -> NewRecord {
    let length = ((thread * 31 + seq * 7 + index * 13) % 300) as usize;
    let value: Vec<u8> = (0..length)
        .map(|i| (thread as usize * 17 + seq as usize * 3 + index as usize + i) as u8)
        .collect();
    let mut headers = vec![Header {
        key: "origin".into(),
        value: Some(Bytes::from(format!("{thread}/{seq}/{index}"))),
    }];
    if seq.is_multiple_of(2) {
        headers.push(Header {
            key: "null".into(),
            value: None,
        });
    }
    NewRecord {
        key: Some(Bytes::from(format!("k{thread}-{seq}-{index}"))),
        value: Some(Bytes::from(value)),
        headers,
        timestamp_ms: None,
    }
}

fn parent_record(run: u64) -> NewRecord {
    NewRecord::new(
        Some(format!("parent-{run}")),
        format!("appended after recovery {run}"),
    )
}

/// The record a child would have written under the key `record` carries.
fn written_record(record: &keel_log::Record) -> Option<NewRecord> {
    let key = std::str::from_utf8(record.key.as_deref()?).ok()?;
    let mut parts = key
        .strip_prefix('k')?
        .split('-')
        .map(|p| p.parse::<u64>().ok());
    let (thread, seq, index) = (parts.next()??, parts.next()??, parts.next()??);
    (index < 1 + seq % 3).then(|| child_record(thread, seq, index))
}

fn same(record: &keel_log::Record, expected: &NewRecord) -> bool {
    record.key == expected.key
        && record.value == expected.value
        && record.headers == expected.headers
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// A tiny seeded generator (SplitMix64), so a printed seed replays the same kill schedule.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
