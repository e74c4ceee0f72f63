//! `keel consume` without `--group` while a `keel serve` owns the data directory (or with
//! `--server`): the same reading as on the directory — where each partition starts, `--max`,
//! `--follow`, `--from-time` — through the server's event API (`GET /api/topics/{topic}/events`, one
//! partition from an offset per request), printed in the same JSON lines.
//!
//! The API gives a record that is not a CloudEvent as lossy text cut at 4 KiB, so such a
//! value prints as that text. Not here: groups (`group_member.rs`), the output format
//! (`consume.rs`).

use std::io::{self, BufWriter, Write};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::consume::{ConsumeArgs, stop_after_pass, value_json, write_line};
use crate::control::{Control, EventsFrom};
use crate::time;

/// Records asked for per request (the API's page limit).
const PAGE_EVENTS_MAX: usize = 500;

/// Reads `args.topic` through the server `control` reaches.
pub(crate) fn run(
    control: &Control,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    let mut cursors = start_offsets(control, args)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    loop {
        for (partition, next_offset) in cursors.iter_mut() {
            loop {
                if args.max.is_some_and(|max| printed >= max) {
                    break;
                }
                let from = EventsFrom::Offset(*next_offset);
                let mut events =
                    control.events_from(&args.topic, *partition, from, PAGE_EVENTS_MAX)?;
                events.sort_by_key(|e| e["offset"].as_u64());
                let Some(last) = events.last().and_then(|e| e["offset"].as_u64()) else {
                    break;
                };
                for event in &events {
                    if args.max.is_some_and(|max| printed >= max) {
                        break;
                    }
                    if !write_line(&mut out, &line(event))? {
                        return Ok(());
                    }
                    *next_offset = event["offset"]
                        .as_u64()
                        .context("an event without offset")?
                        + 1;
                    printed += 1;
                }
                if *next_offset <= last {
                    break;
                }
            }
        }
        out.flush().ok();
        if stop_after_pass(args, printed, interrupted) {
            return Ok(());
        }
    }
}

/// Where each partition read starts, as `consume.rs` decides it for a data directory.
fn start_offsets(control: &Control, args: &ConsumeArgs) -> anyhow::Result<Vec<(u32, u64)>> {
    let view = control.topic(&args.topic)?;
    let count = view.partitions.len() as u32;
    if let Some(index) = args.partition.filter(|&index| index >= count) {
        bail!(
            "topic '{}' has no partition {index} (it has {count})",
            args.topic
        );
    }
    if let Some(offset) = args.offset {
        let longest = view
            .partitions
            .iter()
            .map(|p| p.high_watermark)
            .max()
            .unwrap_or(0);
        if offset > longest {
            bail!(
                "--offset {offset} is past the end of every partition read (the longest ends at {longest})"
            );
        }
    }
    let from_time = args
        .from_time
        .as_deref()
        .map(|text| time::parse_ms("--from-time", text))
        .transpose()?;
    let mut starts = Vec::new();
    for p in &view.partitions {
        if args.partition.is_some_and(|index| index != p.partition) {
            continue;
        }
        let (start, end) = (p.log_start_offset, p.high_watermark);
        let next = if args.from_beginning {
            start
        } else if let Some(offset) = args.offset {
            offset.clamp(start, end)
        } else if let Some(time_ms) = from_time {
            // The first record at or after the time; the end when there is none.
            let first =
                control.events_from(&args.topic, p.partition, EventsFrom::Time(time_ms), 1)?;
            first
                .first()
                .and_then(|e| e["offset"].as_u64())
                .unwrap_or(end)
        } else {
            end
        };
        starts.push((p.partition, next));
    }
    Ok(starts)
}

/// One event of the API as the line `keel consume` prints for the stored record.
fn line(found: &Value) -> Value {
    let mut line = json!({
        "partition": found["partition"],
        "offset": found["offset"],
        "timestamp": found["timestamp_ms"],
    });
    if !found["event"].is_null() {
        line["event"] = found["event"].clone();
    } else if let Some(error) = found["event_error"].as_str() {
        line["error"] = error.into();
    } else {
        line["key"] = found["key"].clone();
        line["value"] = found["raw_value"]
            .as_str()
            .map(|text| value_json(text.as_bytes()))
            .unwrap_or(Value::Null);
    }
    line
}
