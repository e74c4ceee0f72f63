//! `keel consume` without `--group` while a `keel serve` owns the data directory (or with
//! `--server`): the same reading as on the directory — where each partition starts, `--max`,
//! `--follow` — through the server's event API (`GET /api/topics/{topic}/events`, one
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
use crate::control::Control;

/// Records asked for per request (the API's page limit).
const PAGE_EVENTS_MAX: usize = 500;

/// Reads `args.topic` through the server `control` reaches.
pub(crate) fn run(
    control: &Control,
    args: &ConsumeArgs,
    interrupted: &AtomicBool,
) -> anyhow::Result<()> {
    if args.from_time.is_some() {
        bail!(
            "--from-time is not served through a server's event API yet: use --offset, or `keel groups reset --to-time` with --group"
        );
    }
    let mut cursors = start_offsets(control, args)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    loop {
        for (partition, next_offset) in cursors.iter_mut() {
            loop {
                if args.max.is_some_and(|max| printed >= max) {
                    break;
                }
                let mut events =
                    control.events_from(&args.topic, *partition, *next_offset, PAGE_EVENTS_MAX)?;
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
    Ok(view
        .partitions
        .iter()
        .filter(|p| args.partition.is_none_or(|index| index == p.partition))
        .map(|p| {
            let (start, end) = (p.log_start_offset, p.high_watermark);
            let next = if args.from_beginning {
                start
            } else if let Some(offset) = args.offset {
                offset.clamp(start, end)
            } else {
                end
            };
            (p.partition, next)
        })
        .collect())
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
