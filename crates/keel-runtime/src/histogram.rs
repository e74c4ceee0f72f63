//! [`DurationHistogram`]: a Prometheus histogram of durations updated with atomic adds, for
//! the handler-duration family that every handled event touches.
//!
//! `prometheus-client`'s own `Histogram` takes a mutex per observation; with a no-op handler
//! that mutex, shared by every partition of a route, was an eighth of the runtime's CPU.
//! Here an observation is three relaxed atomic adds. The buckets are fixed (1 ms doubling),
//! durations are summed in whole nanoseconds, and `count` is the sum of the bucket counts
//! read at scrape time, so a scrape racing an observation is still self-consistent (the
//! `+Inf` bucket always equals `count`).
//!
//! Not here: which families exist and their labels (`metrics.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Finite buckets: upper bounds 1 ms, 2 ms, … 2^15 ms (about 33 s, past the default attempt
/// timeout); one more bucket holds everything above.
const FINITE_BUCKETS: usize = 16;
/// The first upper bound, in nanoseconds.
const FIRST_BOUND_NS: u64 = 1_000_000;

/// A histogram of durations in seconds with fixed exponential buckets. Cheap to clone; clones
/// share their counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; FINITE_BUCKETS + 1],
    /// Sum of all observations, in nanoseconds (u64 nanoseconds last 584 years).
    sum_ns: AtomicU64,
}

impl DurationHistogram {
    /// Records one duration.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.inner.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The index of the bucket holding `nanos`: the first whose upper bound is at least it.
fn bucket_of(nanos: u64) -> usize {
    if nanos <= FIRST_BOUND_NS {
        return 0;
    }
    // Bound i is FIRST_BOUND_NS << i; the bucket is ceil(log2(nanos / FIRST_BOUND_NS)).
    let ratio = nanos.div_ceil(FIRST_BOUND_NS);
    let index = (u64::BITS - (ratio - 1).leading_zeros()) as usize;
    index.min(FINITE_BUCKETS)
}

/// The upper bound of finite bucket `index`, in seconds.
fn bound_s(index: usize) -> f64 {
    (FIRST_BOUND_NS << index) as f64 / 1e9
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = self
            .inner
            .buckets
            .iter()
            .enumerate()
            .map(|(index, count)| {
                let bound = if index < FINITE_BUCKETS {
                    bound_s(index)
                } else {
                    f64::INFINITY
                };
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_holds_them() {
        let ms = |m: u64| m * 1_000_000;
        let cases = [
            (0, 0),
            (ms(1), 0),
            (ms(1) + 1, 1),
            (ms(2), 1),
            (ms(3), 2),
            (ms(4), 2),
            (ms(1 << 15), 15),
            (ms(1 << 15) + 1, 16),
            (u64::MAX, 16),
        ];
        for (nanos, bucket) in cases {
            assert_eq!(bucket_of(nanos), bucket, "{nanos} ns");
            if bucket < FINITE_BUCKETS {
                assert!(
                    nanos as f64 / 1e9 <= bound_s(bucket),
                    "{nanos} ns within its bound"
                );
            }
            if bucket > 0 {
                assert!(
                    nanos as f64 / 1e9 > bound_s(bucket - 1),
                    "{nanos} ns above the last"
                );
            }
        }
    }
}
