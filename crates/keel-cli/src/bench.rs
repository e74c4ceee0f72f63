//! `keel bench`: measures the embedded log on this machine — append throughput from concurrent
//! producers, end-to-end latency seen by a concurrent consumer, and sequential read throughput.
//!
//! It is a measurement, not a test: it asserts nothing and prints numbers (a table, or one JSON
//! object with `--json` for `scripts/bench`). It works in a fresh temporary directory (under
//! `--dir`, else `$TMPDIR`) that it removes afterwards; it never opens the user's data
//! directory. `BENCHMARKS.md` explains how the numbers are taken and what they mean.
//!
//! How each number is measured:
//!
//! - **append**: `P` producer threads each append `events / P` records in calls of `--batch`
//!   records (one RecordBatch per call) to partition `i mod partitions`. The clock runs from the
//!   start of the first producer to the return of the last append, so under `fsync = always`
//!   every counted event is acknowledged as durable.
//! - **end-to-end latency**: each producer writes the send instant (nanoseconds since the bench
//!   started, little-endian) into the first 8 bytes of every value just before `append`; one
//!   consumer thread per partition blocks in `Partition::wait_for`, reads and decodes the
//!   records, and records `now - send instant` for each into a histogram. It therefore includes
//!   the append, the fsync when the policy asks for one, the wake-up and the decode.
//! - **read**: after producing, every partition is read from its start to its high watermark
//!   in one thread, twice: raw CRC-checked batches (`Partition::read`, what a broker serves) and
//!   decoded records (`Partition::read_records`). The file bytes were just written, so they come
//!   from the page cache.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_log::{BatchHeader, FsyncPolicy, Log, NewRecord, Partition, Topic, TopicConfig};

/// Bytes at the start of each value that carry the send instant.
const STAMP_BYTES: usize = 8;
/// Largest value size accepted (the default largest batch is 1 MiB).
const SIZE_BYTES_MAX: u64 = 512 * 1024;
/// Most producer threads.
const PRODUCERS_MAX: u64 = 1024;
/// Most records per append call.
const BATCH_RECORDS_MAX: u64 = 100_000;
/// Bytes asked for per read call, by the consumer and the read phase.
const READ_BYTES: usize = 1024 * 1024;
/// Latencies above this are recorded as this (the histogram's upper bound).
const LATENCY_NS_MAX: u64 = 120 * 1_000_000_000;
/// How long a consumer blocks in `wait_for` before checking whether producers are done.
const CONSUMER_WAIT: Duration = Duration::from_millis(50);
/// How often the progress bar is refreshed.
const PROGRESS_TICK: Duration = Duration::from_millis(100);
/// Name of the topic the bench creates in its temporary log.
const TOPIC: &str = "keel-bench";

/// Flags of `keel bench`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Produce N events of S bytes from P producer threads into a fresh embedded log \
                  (in a temporary directory, removed afterwards), consume them concurrently to \
                  measure end-to-end latency, then read everything back sequentially. Prints \
                  events/s, MB/s, fsyncs, events per fsync, latency p50/p99/p999 and read \
                  throughput."
)]
pub(crate) struct BenchArgs {
    /// Events to produce in total, split evenly across producers.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Value bytes per event (8 to 524288); the first 8 carry the send time.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(STAMP_BYTES as u64..=SIZE_BYTES_MAX))]
    size: u64,
    /// Concurrent producer threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=PRODUCERS_MAX))]
    producers: u64,
    /// Records per append call; each call writes one RecordBatch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=BATCH_RECORDS_MAX))]
    batch: u64,
    /// Partitions of the bench topic; producer i appends to partition i mod partitions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    partitions: u32,
    /// Durability of appends: always, never or interval:<ms>.
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// Directory in which the temporary log is created (default: $TMPDIR or /tmp).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Target events per second across all producers (0: as fast as possible). Latency at a
    /// load the consumer keeps up with; each value is stamped with its scheduled send time, so
    /// a producer that falls behind schedule shows up as latency.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 0)]
    rate: u64,
    /// Skip the concurrent consumer: measures appends alone, without latency.
    #[arg(long)]
    no_consumer: bool,
    /// Print one JSON object instead of the table (and no progress bar).
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark. `_data` (the user's data directory) is deliberately never touched.
pub(crate) fn run(_data: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)
        .with_context(|| format!("creating bench directory {}", base.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("keel-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a temporary directory in {}", base.display()))?;
    let filesystem = filesystem_of(scratch.path());
    let report = {
        let log = Log::open(scratch.path())
            .with_context(|| format!("opening a log in {}", scratch.path().display()))?;
        let config = TopicConfig::new(args.partitions).with_fsync(args.fsync);
        let topic = log
            .create_topic(TOPIC, config)
            .context("creating the bench topic")?;
        measure(&args, &topic)?
        // The log is dropped (and flushed) here, outside every measured interval.
    };
    let dir = scratch.path().display().to_string();
    scratch
        .close()
        .context("removing the temporary bench directory")?;
    if args.json {
        println!("{}", report.to_json(&args, filesystem.as_deref()));
    } else {
        print!("{}", report.to_table(&args, &dir, filesystem.as_deref()));
    }
    Ok(())
}

/// Everything one run measured.
#[derive(Debug)]
struct Report {
    events: u64,
    produce: Duration,
    appends: u64,
    syncs: u64,
    disk_bytes: u64,
    latency: Option<Histogram<u64>>,
    consumer_lag: Option<Duration>,
    read_raw: Duration,
    read_decoded: Duration,
}

fn measure(args: &BenchArgs, topic: &Topic) -> anyhow::Result<Report> {
    let start = Instant::now();
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let partitions: Vec<Arc<Partition>> = topic.partitions().to_vec();
    let size = usize::try_from(args.size)?;
    let batch = usize::try_from(args.batch)?;

    let consumers: Vec<_> = if args.no_consumer {
        Vec::new()
    } else {
        partitions
            .iter()
            .map(|partition| {
                let partition = partition.clone();
                let done = done.clone();
                thread::Builder::new()
                    .name("bench-consumer".into())
                    .spawn(move || consume(&partition, start, &done))
            })
            .collect::<Result<_, _>>()
            .context("starting consumer threads")?
    };

    let progress = progress_bar(args.json, args.events, "produce");
    let produce_start = Instant::now();
    let producers: Vec<_> = (0..args.producers)
        .map(|i| {
            let share = args.events / args.producers + u64::from(i < args.events % args.producers);
            let partition = partitions[(i % partitions.len() as u64) as usize].clone();
            let produced = produced.clone();
            let pace = Pace {
                start,
                first: produce_start,
                events_per_s: args.rate as f64 / args.producers as f64,
            };
            thread::Builder::new()
                .name("bench-producer".into())
                .spawn(move || produce(&partition, share, size, batch, pace, &produced))
        })
        .collect::<Result<_, _>>()
        .context("starting producer threads")?;
    while producers.iter().any(|p| !p.is_finished()) {
        progress.set_position(produced.load(Ordering::Relaxed));
        thread::sleep(PROGRESS_TICK);
    }
    // Each producer reports when its last append returned, so the polling above adds nothing.
    let mut produce_end = produce_start;
    for producer in producers {
        let end = producer
            .join()
            .map_err(|_| anyhow!("a producer thread panicked"))??;
        produce_end = produce_end.max(end);
    }
    let produce = produce_end - produce_start;
    progress.finish_and_clear();
    done.store(true, Ordering::Release);

    let mut latency: Option<Histogram<u64>> = None;
    let mut consumer_lag = None;
    for consumer in consumers {
        let (histogram, drained) = consumer
            .join()
            .map_err(|_| anyhow!("a consumer thread panicked"))??;
        match &mut latency {
            Some(total) => total
                .add(&histogram)
                .context("merging latency histograms")?,
            None => latency = Some(histogram),
        }
        let lag = drained.saturating_duration_since(produce_end);
        consumer_lag = Some(consumer_lag.map_or(lag, |l: Duration| l.max(lag)));
    }

    let (appends, syncs) = partitions.iter().fold((0, 0), |(a, s), p| {
        let stats = p.sync_stats();
        (a + stats.appends, s + stats.syncs)
    });
    let disk_bytes = partitions.iter().map(|p| p.size_bytes()).sum();

    let read_raw = read_phase(&partitions, args, "read", read_raw)?;
    let read_decoded = read_phase(&partitions, args, "read+decode", read_decoded)?;

    Ok(Report {
        events: args.events,
        produce,
        appends,
        syncs,
        disk_bytes,
        latency,
        consumer_lag,
        read_raw,
        read_decoded,
    })
}

/// When a producer sends: as fast as it can, or on a schedule.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The bench's zero: stamps are nanoseconds since this instant.
    start: Instant,
    /// When the first append of the schedule is due.
    first: Instant,
    /// This producer's rate; 0 for as fast as possible.
    events_per_s: f64,
}

impl Pace {
    /// Waits until the append carrying records `sent..` is due and returns its stamp: the
    /// scheduled instant when paced (so falling behind counts as latency), else now.
    fn stamp(&self, sent: u64) -> u64 {
        if self.events_per_s > 0.0 {
            let due = self.first + Duration::from_secs_f64(sent as f64 / self.events_per_s);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            u64::try_from((due - self.start).as_nanos()).unwrap_or(u64::MAX)
        } else {
            nanos_since(self.start)
        }
    }
}

/// Appends `events` records of `size` bytes in calls of `batch` records, stamping each value;
/// returns when the last append returned.
fn produce(
    partition: &Partition,
    events: u64,
    size: usize,
    batch: usize,
    pace: Pace,
    produced: &AtomicU64,
) -> anyhow::Result<Instant> {
    let filler = vec![b'k'; size];
    let mut records = Vec::with_capacity(batch);
    let mut left = events;
    while left > 0 {
        let count = usize::try_from(left).unwrap_or(usize::MAX).min(batch);
        let mut values = BytesMut::with_capacity(count * size);
        for _ in 0..count {
            values.extend_from_slice(&filler);
        }
        let stamp = pace.stamp(events - left).to_le_bytes();
        for chunk in values.chunks_exact_mut(size) {
            chunk[..STAMP_BYTES].copy_from_slice(&stamp);
        }
        let values = values.freeze();
        records.clear();
        records.extend((0..count).map(|i| NewRecord {
            key: None,
            value: Some(values.slice(i * size..(i + 1) * size)),
            headers: Vec::new(),
            timestamp_ms: None,
        }));
        partition.append(&records).context("append")?;
        left -= count as u64;
        produced.fetch_add(count as u64, Ordering::Relaxed);
    }
    Ok(Instant::now())
}

/// Follows a partition until producers are done and it is drained, recording for every record
/// the time from its producer's stamp to the moment the read returned it. Returns the histogram
/// and when the last record was seen.
fn consume(
    partition: &Partition,
    start: Instant,
    done: &AtomicBool,
) -> anyhow::Result<(Histogram<u64>, Instant)> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)
        .context("creating the latency histogram")?;
    let mut next = partition.log_start_offset();
    let mut last_seen = Instant::now();
    loop {
        // Read `done` before the high watermark: once producers are done and the watermark
        // is reached, nothing more can arrive.
        let finished = done.load(Ordering::Acquire);
        let high_watermark = partition.wait_for(next, CONSUMER_WAIT);
        if high_watermark <= next {
            if finished {
                return Ok((histogram, last_seen));
            }
            continue;
        }
        let records = partition
            .read_records(next, READ_BYTES)
            .context("consumer read")?;
        last_seen = Instant::now();
        let now = nanos_since(start);
        for record in &records {
            if let Some(stamp) = record
                .value
                .as_deref()
                .and_then(|v| v.get(..STAMP_BYTES))
                .and_then(|s| <[u8; STAMP_BYTES]>::try_from(s).ok())
            {
                histogram.saturating_record(now.saturating_sub(u64::from_le_bytes(stamp)).max(1));
            }
        }
        if let Some(last) = records.last() {
            next = last.offset + 1;
        }
    }
}

/// Times `read` over every partition, with a progress bar counting records.
fn read_phase(
    partitions: &[Arc<Partition>],
    args: &BenchArgs,
    name: &str,
    read: fn(&Partition, &ProgressBar) -> anyhow::Result<u64>,
) -> anyhow::Result<Duration> {
    let progress = progress_bar(args.json, args.events, name);
    let start = Instant::now();
    let mut records = 0;
    for partition in partitions {
        records += read(partition, &progress)?;
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    ensure!(
        records == args.events,
        "{name} found {records} records, {} were produced",
        args.events
    );
    Ok(elapsed)
}

/// Reads whole CRC-checked batches and counts records from their headers.
fn read_raw(partition: &Partition, progress: &ProgressBar) -> anyhow::Result<u64> {
    let mut offset = partition.log_start_offset();
    let end = partition.high_watermark();
    let mut records = 0;
    while offset < end {
        let batches = partition.read(offset, READ_BYTES).context("read")?;
        let mut at = 0;
        while at < batches.bytes.len() {
            let header = BatchHeader::parse(&batches.bytes[at..], u32::MAX)
                .context("parsing a batch header that was read")?;
            records += u64::from(header.record_count);
            offset = header.next_offset();
            at += header.size();
        }
        progress.set_position(records);
    }
    Ok(records)
}

/// Reads and decodes records, touching every value so the decode cannot be skipped.
fn read_decoded(partition: &Partition, progress: &ProgressBar) -> anyhow::Result<u64> {
    let mut offset = partition.log_start_offset();
    let end = partition.high_watermark();
    let (mut records, mut value_bytes) = (0u64, 0usize);
    while offset < end {
        let batch = partition
            .read_records(offset, READ_BYTES)
            .context("read_records")?;
        let last = batch
            .last()
            .context("read_records returned nothing below the high watermark")?;
        offset = last.offset + 1;
        records += batch.len() as u64;
        value_bytes += batch
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>();
        progress.set_position(records);
    }
    std::hint::black_box(value_bytes);
    Ok(records)
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A progress bar on stderr, hidden for `--json` or when stderr is not a terminal.
fn progress_bar(hidden: bool, total: u64, phase: &str) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
    )
    .expect("the progress template is valid");
    bar.set_style(style);
    bar.set_prefix(phase.to_string());
    bar
}

/// The filesystem type and device holding `path`, from `/proc/self/mounts` (Linux only).
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), format!("{kind} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, description)| description)
}

impl Report {
    fn payload_bytes(&self, args: &BenchArgs) -> u64 {
        self.events * args.size
    }

    fn per_second(count: u64, elapsed: Duration) -> f64 {
        count as f64 / elapsed.as_secs_f64().max(1e-9)
    }

    fn events_per_sync(&self) -> Option<f64> {
        (self.syncs > 0).then(|| self.events as f64 / self.syncs as f64)
    }

    fn quantile_us(&self, quantile: f64) -> Option<f64> {
        self.latency
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn to_table(&self, args: &BenchArgs, dir: &str, filesystem: Option<&str>) -> String {
        let payload = self.payload_bytes(args);
        let mut out = format!(
            "keel bench: {} events x {} B, {} producer(s), batch {}, {} partition(s), fsync={}{}\n",
            group(self.events),
            args.size,
            args.producers,
            args.batch,
            args.partitions,
            args.fsync,
            if args.rate > 0 {
                format!(", paced at {} events/s", group(args.rate))
            } else {
                String::new()
            }
        );
        out += &format!(
            "  log in {dir} ({}), removed\n\n",
            filesystem.unwrap_or("filesystem unknown")
        );
        out += &format!(
            "  {:<14}{:>14} events/s {:>9.1} MB/s   {:.3} s, {} appends, {:.1} MiB on disk\n",
            "append",
            group(Self::per_second(self.events, self.produce) as u64),
            Self::per_second(payload, self.produce) / 1e6,
            self.produce.as_secs_f64(),
            group(self.appends),
            self.disk_bytes as f64 / (1024.0 * 1024.0),
        );
        out += &format!("  {:<14}{:>14}", "fsyncs", group(self.syncs));
        match self.events_per_sync() {
            Some(per) => {
                out += &format!(
                    "          {per:.1} events per fsync, {:.1} appends per fsync\n",
                    self.appends as f64 / self.syncs as f64
                )
            }
            None => out += "          (none during the run)\n",
        }
        match (
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
        ) {
            (Some(p50), Some(p99), Some(p999)) => {
                let max = self.latency.as_ref().map_or(0, |h| h.max()) as f64 / 1000.0;
                out += &format!(
                    "  {:<14}p50 {} | p99 {} | p999 {} | max {}   end-to-end, {} samples\n",
                    "latency",
                    micros(p50),
                    micros(p99),
                    micros(p999),
                    micros(max),
                    group(self.latency.as_ref().map_or(0, |h| h.len())),
                );
                if let Some(lag) = self.consumer_lag {
                    out += &format!(
                        "  {:<14}consumer drained {:.3} s after the last append\n",
                        "",
                        lag.as_secs_f64()
                    );
                }
            }
            _ => out += &format!("  {:<14}not measured (--no-consumer)\n", "latency"),
        }
        for (name, elapsed, what) in [
            ("read", self.read_raw, "raw batches, CRC-checked"),
            ("read+decode", self.read_decoded, "decoded records"),
        ] {
            out += &format!(
                "  {:<14}{:>14} events/s {:>9.1} MB/s   {:.3} s, {what}\n",
                name,
                group(Self::per_second(self.events, elapsed) as u64),
                Self::per_second(payload, elapsed) / 1e6,
                elapsed.as_secs_f64(),
            );
        }
        out
    }

    fn to_json(&self, args: &BenchArgs, filesystem: Option<&str>) -> serde_json::Value {
        let payload = self.payload_bytes(args);
        serde_json::json!({
            "events": self.events,
            "size_bytes": args.size,
            "producers": args.producers,
            "batch_records": args.batch,
            "partitions": args.partitions,
            "fsync": args.fsync.to_string(),
            "rate_events_per_s": args.rate,
            "filesystem": filesystem,
            "produce_s": self.produce.as_secs_f64(),
            "append_events_per_s": Self::per_second(self.events, self.produce),
            "append_mb_per_s": Self::per_second(payload, self.produce) / 1e6,
            "appends": self.appends,
            "fsyncs": self.syncs,
            "events_per_fsync": self.events_per_sync(),
            "disk_bytes": self.disk_bytes,
            "latency_p50_us": self.quantile_us(0.5),
            "latency_p99_us": self.quantile_us(0.99),
            "latency_p999_us": self.quantile_us(0.999),
            "latency_max_us": self.latency.as_ref().map(|h| h.max() as f64 / 1000.0),
            "consumer_lag_s": self.consumer_lag.map(|d| d.as_secs_f64()),
            "read_events_per_s": Self::per_second(self.events, self.read_raw),
            "read_mb_per_s": Self::per_second(payload, self.read_raw) / 1e6,
            "read_decoded_events_per_s": Self::per_second(self.events, self.read_decoded),
            "read_decoded_mb_per_s": Self::per_second(payload, self.read_decoded) / 1e6,
        })
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Microseconds for humans: `850 µs`, `12.3 ms`, `1.20 s`.
fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{group, micros};

    #[test]
    fn formats_numbers_for_humans() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(group(n), text);
        }
        for (us, text) in [
            (850.0, "850 µs"),
            (12_300.0, "12.30 ms"),
            (1_200_000.0, "1.20 s"),
        ] {
            assert_eq!(micros(us), text);
        }
    }
}
