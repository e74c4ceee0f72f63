//! The tunable policies of the runtime — retry, timeout, consumer (concurrency, backpressure,
//! commits) — each with defaults and a `validate()`. Group membership timing
//! (`GroupPolicy`, `StartFrom`) is the ports' (`keel-core`): every transport honours it.
//!
//! Policies are plain data; the code that applies them is in `pipeline.rs` (retry, timeout)
//! and `partition_worker.rs` (consumer). Ceilings live in `limits.rs`.

use std::time::Duration;

use keel_core::{PolicyError, StartFrom};

use crate::limits::{
    ATTEMPT_TIMEOUT_DEFAULT, ATTEMPT_TIMEOUT_MAX, ATTEMPTS_DEFAULT, ATTEMPTS_MAX,
    COMMIT_INTERVAL_DEFAULT, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, FETCH_BYTES_DEFAULT,
    FETCH_BYTES_MAX, IN_FLIGHT_DEFAULT, IN_FLIGHT_MAX, INTERVAL_MAX, POLL_INTERVAL_DEFAULT,
    RETRY_DELAY_MAX_CEILING, RETRY_DELAY_MAX_DEFAULT, RETRY_DELAY_MIN_DEFAULT,
    RETRY_MULTIPLIER_DEFAULT, RETRY_MULTIPLIER_MAX,
};

/// How often and how patiently a failing handler is retried before its event is
/// dead-lettered. By default retries are *blocking*: the event's key waits (its later events
/// stay queued behind it, so per-key order holds), other keys keep flowing; a route can
/// choose retry topics instead ([`RetryMode`]).
///
/// The delay before attempt `n + 1` is drawn uniformly from `0..=min(delay_max, delay_min *
/// multiplier^(n-1))` ("full jitter"), so many consumers failing together do not retry in
/// lockstep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per event, the first included; `1` means no retry. 1..=[`ATTEMPTS_MAX`].
    pub attempts_max: u32,
    /// The bound of the first retry delay.
    pub delay_min: Duration,
    /// The cap of every retry delay; at most [`RETRY_DELAY_MAX_CEILING`].
    pub delay_max: Duration,
    /// The factor between successive delay bounds, 1..=[`RETRY_MULTIPLIER_MAX`].
    pub multiplier: u32,
    /// Seed of the jitter generator; `None` seeds from the clock. Tests set it to get the
    /// same delays every run.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts_max: ATTEMPTS_DEFAULT,
            delay_min: RETRY_DELAY_MIN_DEFAULT,
            delay_max: RETRY_DELAY_MAX_DEFAULT,
            multiplier: RETRY_MULTIPLIER_DEFAULT,
            jitter_seed: None,
        }
    }
}

impl RetryPolicy {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(
            (1..=ATTEMPTS_MAX).contains(&self.attempts_max),
            "retry.attempts_max",
            || format!("{} is not in 1..={ATTEMPTS_MAX}", self.attempts_max),
        )?;
        PolicyError::check(self.delay_min <= self.delay_max, "retry.delay_min", || {
            format!(
                "{:?} is above delay_max {:?}",
                self.delay_min, self.delay_max
            )
        })?;
        PolicyError::check(
            self.delay_max <= RETRY_DELAY_MAX_CEILING,
            "retry.delay_max",
            || format!("{:?} is above {RETRY_DELAY_MAX_CEILING:?}", self.delay_max),
        )?;
        PolicyError::check(
            (1..=RETRY_MULTIPLIER_MAX).contains(&self.multiplier),
            "retry.multiplier",
            || format!("{} is not in 1..={RETRY_MULTIPLIER_MAX}", self.multiplier),
        )
    }

    /// The upper bound of the delay after failed attempt `attempt` (1-based):
    /// `min(delay_max, delay_min * multiplier^(attempt-1))`.
    pub fn delay_bound(&self, attempt: u32) -> Duration {
        let factor = u64::from(self.multiplier).saturating_pow(attempt.saturating_sub(1));
        let nanos = (self.delay_min.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.delay_max)
    }
}

/// Where a failed attempt's event waits for its next attempt.
///
/// - [`RetryMode::Blocking`] (the default) keeps it in place: the event's key waits, its
///   later events stay queued behind it, so per-key order holds; the event occupies one of
///   the partition's in-flight slots until it finishes.
/// - [`RetryMode::Topic`] moves it to `<topic>.retry` (addressed to this group, due after the
///   backoff) and finishes it in the partition at once: the key's later events go on
///   immediately, so **order is given up for that key** — a later event of the key may be
///   handled before the retried one. The route consumes `<topic>.retry` itself and runs the
///   remaining attempts when each is due; the last failure goes to `<topic>.dlq` as usual.
///   Use it for handlers whose events are independent facts and where a slow dependency
///   must not hold a key's later events back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetryMode {
    /// Retry in place, holding the key (keeps order).
    #[default]
    Blocking,
    /// Retry through `<topic>.retry`, freeing the key (gives up order for that key).
    Topic,
}

/// How long one handler attempt may run. An attempt that runs longer is cancelled (its future
/// dropped) and counts as a transient failure, so it is retried like any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// Longest time of one attempt, above zero, at most [`ATTEMPT_TIMEOUT_MAX`].
    pub attempt_timeout: Duration,
}

impl Default for TimeoutPolicy {
    fn default() -> TimeoutPolicy {
        TimeoutPolicy {
            attempt_timeout: ATTEMPT_TIMEOUT_DEFAULT,
        }
    }
}

impl TimeoutPolicy {
    /// Checks the timeout against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(
            !self.attempt_timeout.is_zero() && self.attempt_timeout <= ATTEMPT_TIMEOUT_MAX,
            "timeout.attempt_timeout",
            || {
                format!(
                    "{:?} is not in (0, {ATTEMPT_TIMEOUT_MAX:?}]",
                    self.attempt_timeout
                )
            },
        )
    }
}

/// How one partition is consumed: parallelism, backpressure, fetch size and commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPolicy {
    /// Handler calls one partition runs at once; only events of different keys run together.
    pub concurrency: usize,
    /// Fetched, unfinished events one partition may hold (waiting for their key, running,
    /// or retrying). When full, fetching pauses: this is the backpressure bound. A key that
    /// is retrying holds back only its own events, but those count here: when one key's
    /// waiting events fill the bound, the partition waits for that key.
    pub in_flight_max: usize,
    /// Bytes asked of the log per fetch.
    pub fetch_bytes_max: usize,
    /// How often an idle partition looks for events appended by something other than a
    /// [`Publisher`](crate::Publisher) of the same transport (those wake consumers at once
    /// where the transport can).
    pub poll_interval: Duration,
    /// How often progress is committed while events are handled; `Duration::ZERO` commits
    /// after every completion. Progress is always committed on revocation and shutdown.
    pub commit_interval: Duration,
    /// Where to start without a committed offset.
    pub start_from: StartFrom,
}

impl Default for ConsumerPolicy {
    fn default() -> ConsumerPolicy {
        ConsumerPolicy {
            concurrency: CONCURRENCY_DEFAULT,
            in_flight_max: IN_FLIGHT_DEFAULT,
            fetch_bytes_max: FETCH_BYTES_DEFAULT,
            poll_interval: POLL_INTERVAL_DEFAULT,
            commit_interval: COMMIT_INTERVAL_DEFAULT,
            start_from: StartFrom::Earliest,
        }
    }
}

impl ConsumerPolicy {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::check(
            (1..=CONCURRENCY_MAX).contains(&self.concurrency),
            "consumer.concurrency",
            || format!("{} is not in 1..={CONCURRENCY_MAX}", self.concurrency),
        )?;
        PolicyError::check(
            (self.concurrency..=IN_FLIGHT_MAX).contains(&self.in_flight_max),
            "consumer.in_flight_max",
            || {
                format!(
                    "{} is not in concurrency..={IN_FLIGHT_MAX}",
                    self.in_flight_max
                )
            },
        )?;
        PolicyError::check(
            (1..=FETCH_BYTES_MAX).contains(&self.fetch_bytes_max),
            "consumer.fetch_bytes_max",
            || format!("{} is not in 1..={FETCH_BYTES_MAX}", self.fetch_bytes_max),
        )?;
        PolicyError::check(
            !self.poll_interval.is_zero() && self.poll_interval <= INTERVAL_MAX,
            "consumer.poll_interval",
            || format!("{:?} is not in (0, {INTERVAL_MAX:?}]", self.poll_interval),
        )?;
        PolicyError::check(
            self.commit_interval <= INTERVAL_MAX,
            "consumer.commit_interval",
            || format!("{:?} is above {INTERVAL_MAX:?}", self.commit_interval),
        )
    }
}

/// A small seedable random generator (SplitMix64) for retry jitter: not cryptographic, just
/// well spread, so tests can fix the delays and production runs differ between consumers.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: Option<u64>) -> Jitter {
        let seed = seed.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32)
        });
        Jitter { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `0..=bound` (to the nanosecond).
    pub(crate) fn below(&mut self, bound: Duration) -> Duration {
        let nanos = bound.as_nanos() as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (nanos + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        RetryPolicy::default().validate().unwrap();
        TimeoutPolicy::default().validate().unwrap();
        ConsumerPolicy::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let check = |result: Result<(), PolicyError>, setting: &str| {
            assert_eq!(result.unwrap_err().setting, setting);
        };
        let retry = |f: fn(&mut RetryPolicy)| {
            let mut policy = RetryPolicy::default();
            f(&mut policy);
            policy.validate()
        };
        check(retry(|p| p.attempts_max = 0), "retry.attempts_max");
        check(
            retry(|p| p.attempts_max = ATTEMPTS_MAX + 1),
            "retry.attempts_max",
        );
        check(
            retry(|p| p.delay_min = Duration::from_secs(31)),
            "retry.delay_min",
        );
        check(retry(|p| p.multiplier = 0), "retry.multiplier");
        let consumer = |f: fn(&mut ConsumerPolicy)| {
            let mut policy = ConsumerPolicy::default();
            f(&mut policy);
            policy.validate()
        };
        check(consumer(|p| p.concurrency = 0), "consumer.concurrency");
        check(consumer(|p| p.in_flight_max = 1), "consumer.in_flight_max");
        check(
            consumer(|p| p.poll_interval = Duration::ZERO),
            "consumer.poll_interval",
        );
        let timeout = TimeoutPolicy {
            attempt_timeout: Duration::ZERO,
        };
        check(timeout.validate(), "timeout.attempt_timeout");
    }

    #[test]
    fn delay_bound_grows_and_is_capped() {
        let policy = RetryPolicy {
            delay_min: Duration::from_millis(100),
            delay_max: Duration::from_secs(1),
            multiplier: 2,
            ..RetryPolicy::default()
        };
        let bounds: Vec<u64> = (1..=6)
            .map(|a| policy.delay_bound(a).as_millis() as u64)
            .collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.delay_bound(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_seedable_and_stays_in_bounds() {
        let bound = Duration::from_millis(250);
        let draw = |seed| {
            let mut jitter = Jitter::new(Some(seed));
            (0..100).map(|_| jitter.below(bound)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7).iter().all(|d| *d <= bound));
        assert!(
            draw(7).iter().any(|d| *d < bound / 2),
            "draws spread over the range"
        );
    }
}
