//! End-to-end latency at a steady rate, the same way for every peer: the producer writes its
//! send time into the record, the consumer (same process, same clock) subtracts it from the
//! time it received the record.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

/// Send times as nanoseconds since a common start, written into a record's first 8 bytes.
/// A record whose first 8 bytes are zero carries no stamp (the warm-up record).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    base: Instant,
}

impl Stamp {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// Nanoseconds since the start, never zero.
    pub fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Stamps `payload` (at least 8 bytes) with the current time.
    pub fn write(&self, payload: &mut [u8]) {
        payload[..8].copy_from_slice(&self.now().to_le_bytes());
    }

    /// The send time stamped in `payload`, if it carries one.
    pub fn read(&self, payload: &[u8]) -> Option<u64> {
        let stamp = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
        (stamp != 0).then_some(stamp)
    }
}

/// A histogram of end-to-end latencies in nanoseconds.
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            histogram: crate::histogram()?,
        })
    }

    /// Records one latency.
    pub fn record(&mut self, nanos: u64) {
        self.histogram.saturating_record(nanos.max(1));
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at quantile `q` (0.5, 0.99, 1.0 for the max) in milliseconds, to the µs.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        (self.histogram.value_at_quantile(q) as f64 / 1e3).round() / 1e3
    }

    /// One JSON object: the peer, the rate and p50/p99/p99.9/max in microseconds.
    pub fn to_json(&self, peer: &str, pacer: Pacer, size: usize) -> String {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        format!(
            concat!(
                "{{\"peer\":\"{}\",\"mode\":\"latency\",\"rate_per_s\":{},\"seconds\":{},",
                "\"size_bytes\":{},\"records\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},",
                "\"p999_us\":{:.1},\"max_us\":{:.1}}}"
            ),
            peer,
            pacer.rate,
            pacer.seconds,
            size,
            self.count(),
            us(self.histogram.value_at_quantile(0.5)),
            us(self.histogram.value_at_quantile(0.99)),
            us(self.histogram.value_at_quantile(0.999)),
            us(self.histogram.max()),
        )
    }
}

/// A steady send rate: every millisecond, the records due by then are sent (10 per tick at
/// 10,000/s); a late tick catches up, so the total rate holds even when the machine is busy.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Records per second.
    pub rate: u64,
    /// How long to send.
    pub seconds: u64,
}

impl Pacer {
    const TICK: Duration = Duration::from_millis(1);

    /// Records sent in all.
    pub fn total(&self) -> u64 {
        self.rate * self.seconds
    }

    fn due(&self, start: Instant) -> u64 {
        let due = start.elapsed().as_nanos() * u128::from(self.rate) / 1_000_000_000;
        u64::try_from(due).unwrap_or(u64::MAX).min(self.total())
    }

    /// Calls `send` at the rate, sleeping a thread between ticks.
    pub fn run_blocking(&self, mut send: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut sent = 0;
        while sent < self.total() {
            while sent < self.due(start) {
                send().with_context(|| format!("record {sent}"))?;
                sent += 1;
            }
            std::thread::sleep(Self::TICK);
        }
        Ok(())
    }

    /// Calls `send` at the rate, sleeping the task between ticks.
    pub async fn run(
        &self,
        mut send: impl AsyncFnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut sent = 0;
        while sent < self.total() {
            while sent < self.due(start) {
                send().await.with_context(|| format!("record {sent}"))?;
                sent += 1;
            }
            tokio::time::sleep(Self::TICK).await;
        }
        Ok(())
    }
}
