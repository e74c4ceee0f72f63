//! Redis Streams as the peer of `scripts/bench-kafka acks` (issue 16, part 5): one connection
//! `XADD`s one 100-byte entry at a time at a steady rate, up to [`IN_FLIGHT_MAX`] unanswered,
//! and each entry's latency runs from the moment it was due to Redis's reply, as the protocol
//! probe measures `keel serve`'s acknowledgements (`crates/keel-kafka/examples/produce_probe.rs`):
//! no coordinated omission, and a pacing thread that sleeps to each due time, whose lateness
//! says how long the machine could not run it. Prints one JSON line in the probe's shape.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::latency::Latencies;

/// Unanswered `XADD`s at most, as librdkafka keeps 5 requests in flight per connection.
const IN_FLIGHT_MAX: usize = 5;
/// Each entry's value: 100 bytes, as the protocol probe's records.
const VALUE: [u8; 100] = [b'x'; 100];
/// A wake-up this late or later is a pause of the machine.
const PAUSE_MIN: Duration = Duration::from_millis(1);

/// What the pacing thread saw in the measured window.
#[derive(Debug, Default)]
struct Pauses {
    late_max: Duration,
    paused: Duration,
}

/// Hands out `rate` due times a second from `begin` until `end`, each when it is due; counts
/// its own lateness from `start` on.
fn pace(
    begin: Instant,
    start: Instant,
    end: Instant,
    rate: u64,
) -> (UnboundedReceiver<Instant>, std::thread::JoinHandle<Pauses>) {
    let (send, dues) = unbounded_channel();
    let thread = std::thread::spawn(move || {
        let mut pauses = Pauses::default();
        for n in 0u64.. {
            let due = begin + Duration::from_secs_f64(n as f64 / rate as f64);
            if due >= end {
                break;
            }
            let asleep = Instant::now();
            std::thread::sleep(due.saturating_duration_since(asleep));
            // A pause counts once, not again in each due time it put behind.
            let late = due.max(asleep).elapsed();
            if due >= start {
                pauses.late_max = pauses.late_max.max(late);
                if late >= PAUSE_MIN {
                    pauses.paused += late;
                }
            }
            if send.send(due).is_err() {
                break;
            }
        }
        pauses
    });
    (dues, thread)
}

/// `XADD`s to a fresh stream at `rate` for `seconds` after `warm_up` seconds of the same load
/// (not counted), then deletes the stream; returns the JSON line.
pub async fn probe(
    url: &str,
    key: &str,
    rate: u64,
    (warm_up, seconds): (f64, f64),
) -> anyhow::Result<String> {
    let connection = crate::redis_stream::connect(url).await?;
    let begin = Instant::now() + Duration::from_millis(100);
    let start = begin + Duration::from_secs_f64(warm_up);
    let end = start + Duration::from_secs_f64(seconds);
    let (mut dues, pacer) = pace(begin, start, end, rate);
    let mut waiting = VecDeque::new();
    let mut in_flight = FuturesOrdered::new();
    let mut latencies = Latencies::new()?;
    let mut acked_in_window = 0u64;
    let mut pacing_done = false;
    while !(pacing_done && waiting.is_empty() && in_flight.is_empty()) {
        while in_flight.len() < IN_FLIGHT_MAX
            && let Some(due) = waiting.pop_front()
        {
            let mut command = redis::cmd("XADD");
            command.arg(key).arg("*").arg("v").arg(&VALUE[..]);
            let mut connection = connection.clone();
            in_flight.push_back(async move {
                let reply = command.query_async::<String>(&mut connection).await;
                (due, reply)
            });
        }
        tokio::select! {
            due = dues.recv(), if !pacing_done => match due {
                Some(due) => waiting.push_back(due),
                None => pacing_done = true,
            },
            Some((due, reply)) = in_flight.next(), if !in_flight.is_empty() => {
                reply.context("XADD")?;
                if due >= start {
                    latencies.record(u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    if Instant::now() < end {
                        acked_in_window += 1;
                    }
                }
            }
        }
    }
    let pauses = pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacing thread panicked"))?;
    redis::cmd("DEL")
        .arg(key)
        .query_async::<()>(&mut connection.clone())
        .await
        .context("deleting the bench stream")?;
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    Ok(format!(
        concat!(
            "{{\"client\":\"redis XADD\",\"mode\":\"ack-latency\",\"rate_per_s\":{},",
            "\"seconds\":{},\"warm_up_seconds\":{},\"acked\":{},\"acked_per_s\":{},\"failed\":0,",
            "\"p50_ms\":{},\"p99_ms\":{},\"p999_ms\":{},\"max_ms\":{},",
            "\"pacer_late_max_ms\":{},\"machine_paused_ms\":{}}}"
        ),
        rate,
        seconds,
        warm_up,
        latencies.count(),
        (acked_in_window as f64 / seconds).round(),
        latencies.quantile_ms(0.5),
        latencies.quantile_ms(0.99),
        latencies.quantile_ms(0.999),
        latencies.quantile_ms(1.0),
        ms(pauses.late_max),
        ms(pauses.paused),
    ))
}
