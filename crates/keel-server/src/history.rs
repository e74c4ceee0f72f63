//! The console's memory of the last hour: events appended and consumed per topic, and lag
//! per group and partition, sampled through the source's ports every
//! [`HistoryConfig::interval_ms`] (the owned log or a Kafka cluster alike).
//!
//! A broker keeps only the present (high watermarks, committed offsets); charts over time
//! need past samples, so the server takes them. A sample reads watermarks and committed
//! offsets and one record per lagging partition (for lag in seconds, through
//! `keel_runtime::admin::groups`, the computation `keel groups lag` uses). Every series is a ring of at most [`HISTORY_POINTS`] samples aligned on shared
//! sample times; a topic, group or partition that disappears loses its series. The number of
//! series is bounded ([`HISTORY_SERIES_MAX`]); series past it are not kept and counted in
//! `keel_console_history_series_dropped`.
//!
//! Not persisted: a restarted server starts its charts empty.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use keel_core::{AdminTransport, TransportError};
use keel_runtime::admin::groups;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use utoipa::ToSchema;

/// Samples kept per series: one hour at the default interval of 10 s.
pub(crate) const HISTORY_POINTS: usize = 360;
/// Most series (topics + groups + group partitions) kept at once.
pub(crate) const HISTORY_SERIES_MAX: usize = 20_000;
/// The default sampling interval.
pub(crate) const HISTORY_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// The shortest sampling interval accepted (tests and demos sample fast).
pub(crate) const HISTORY_INTERVAL_MS_MIN: u64 = 100;

/// How often the history is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Milliseconds between two samples.
    pub interval_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            interval_ms: HISTORY_INTERVAL_MS_DEFAULT,
        }
    }
}

/// The sampled history, shared by the sampler task and the handlers.
#[derive(Debug, Default)]
pub(crate) struct History {
    inner: Mutex<Inner>,
    /// Series not kept because [`HISTORY_SERIES_MAX`] was reached, at the last sample.
    pub(crate) dropped: Gauge,
}

#[derive(Debug, Default)]
struct Inner {
    /// Sample times (ms since the epoch), oldest first; every series ends at the last one.
    times: VecDeque<i64>,
    /// Per topic: total appended (sum of high watermarks) and consumed (sum of committed
    /// offsets over groups) at each sample.
    topics: HashMap<String, Ring<(u64, u64)>>,
    /// Per group: total lag in events and the largest lag in ms.
    groups: HashMap<String, Ring<(u64, u64)>>,
    /// Per (group, topic, partition): lag in events.
    partitions: HashMap<(String, String, u32), Ring<u64>>,
}

type Ring<T> = VecDeque<T>;

/// Events per second in and out of one topic (or all), one point per sample interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct Throughput {
    /// End of each interval, ms since the epoch.
    pub(crate) times_ms: Vec<i64>,
    /// Events appended per second.
    pub(crate) in_per_s: Vec<f64>,
    /// Events consumed (committed by any group) per second.
    pub(crate) out_per_s: Vec<f64>,
}

/// A group's lag over time, and each partition's lag in events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub(crate) struct LagHistory {
    /// Sample times, ms since the epoch.
    pub(crate) times_ms: Vec<i64>,
    /// Total lag in events at each sample.
    pub(crate) lag_events: Vec<u64>,
    /// Largest lag of a partition in ms at each sample.
    pub(crate) lag_ms: Vec<u64>,
    /// Lag in events per `topic/partition`, aligned on the last samples of `times_ms`.
    pub(crate) partitions: BTreeMap<String, Vec<u64>>,
}

impl History {
    /// Takes one sample through `admin` at `now_ms`; reads a record per lagging partition.
    /// A topic or group gone between two requests is left out of this sample.
    pub(crate) async fn sample(
        &self,
        admin: &dyn AdminTransport,
        now_ms: i64,
    ) -> Result<(), TransportError> {
        let mut topics: HashMap<String, (u64, u64)> = HashMap::new();
        for topic in admin.topics().await? {
            let appended = match admin.partition_offsets(&topic.name).await {
                Ok(ranges) => ranges.iter().map(|p| p.high_watermark).sum(),
                Err(TransportError::UnknownTopic { .. }) => continue,
                Err(error) => return Err(error),
            };
            topics.insert(topic.name, (appended, 0));
        }
        let mut group_totals = HashMap::new();
        let mut partitions = HashMap::new();
        for group in admin.groups().await? {
            // A group whose topics were deleted has no lag to show.
            let Ok(lags) = groups::group_lag(admin, &group, now_ms).await else {
                continue;
            };
            for lag in &lags {
                if let Some(totals) = topics.get_mut(&lag.topic) {
                    totals.1 += lag.committed_offset.unwrap_or(0);
                }
            }
            let events = lags.iter().map(|l| l.lag_events).sum();
            let ms = lags.iter().map(|l| l.lag_ms).max().unwrap_or(0);
            for lag in lags {
                partitions.insert((group.clone(), lag.topic, lag.partition), lag.lag_events);
            }
            group_totals.insert(group, (events, ms));
        }

        let mut inner = self.inner.lock().expect("history lock");
        inner.times.push_back(now_ms);
        if inner.times.len() > HISTORY_POINTS {
            inner.times.pop_front();
        }
        let mut budget = HISTORY_SERIES_MAX;
        let mut dropped = 0;
        push_all(&mut inner.topics, topics, &mut budget, &mut dropped);
        push_all(&mut inner.groups, group_totals, &mut budget, &mut dropped);
        push_all(&mut inner.partitions, partitions, &mut budget, &mut dropped);
        self.dropped.set(dropped);
        Ok(())
    }

    /// Throughput of `topic`, or of every topic together when `None`.
    pub(crate) fn throughput(&self, topic: Option<&str>) -> Throughput {
        let inner = self.inner.lock().expect("history lock");
        let series: Vec<&Ring<(u64, u64)>> = match topic {
            Some(name) => inner.topics.get(name).into_iter().collect(),
            None => inner.topics.values().collect(),
        };
        let times: Vec<i64> = inner.times.iter().copied().collect();
        let mut out = Throughput::default();
        if series.is_empty() {
            return out;
        }
        for i in 1..times.len() {
            let seconds = (times[i] - times[i - 1]).max(1) as f64 / 1000.0;
            let back = times.len() - i;
            let (mut appended, mut consumed) = (0u64, 0u64);
            for ring in &series {
                if ring.len() > back {
                    let (now, before) = (ring[ring.len() - back], ring[ring.len() - back - 1]);
                    appended += now.0.saturating_sub(before.0);
                    consumed += now.1.saturating_sub(before.1);
                }
            }
            out.times_ms.push(times[i]);
            out.in_per_s.push(appended as f64 / seconds);
            out.out_per_s.push(consumed as f64 / seconds);
        }
        out
    }

    /// Every topic's events in and out per second over the last sample interval.
    pub(crate) fn latest_rates(&self) -> HashMap<String, (f64, f64)> {
        let inner = self.inner.lock().expect("history lock");
        let n = inner.times.len();
        if n < 2 {
            return HashMap::new();
        }
        let seconds = (inner.times[n - 1] - inner.times[n - 2]).max(1) as f64 / 1000.0;
        inner
            .topics
            .iter()
            .filter(|(_, ring)| ring.len() >= 2)
            .map(|(name, ring)| {
                let (now, before) = (ring[ring.len() - 1], ring[ring.len() - 2]);
                let rates = (
                    now.0.saturating_sub(before.0) as f64 / seconds,
                    now.1.saturating_sub(before.1) as f64 / seconds,
                );
                (name.clone(), rates)
            })
            .collect()
    }

    /// The lag history of `group`.
    pub(crate) fn lag(&self, group: &str) -> LagHistory {
        let inner = self.inner.lock().expect("history lock");
        let Some(ring) = inner.groups.get(group) else {
            return LagHistory::default();
        };
        let skip = inner.times.len() - ring.len();
        LagHistory {
            times_ms: inner.times.iter().skip(skip).copied().collect(),
            lag_events: ring.iter().map(|s| s.0).collect(),
            lag_ms: ring.iter().map(|s| s.1).collect(),
            partitions: inner
                .partitions
                .iter()
                .filter(|((g, _, _), _)| g == group)
                .map(|((_, topic, partition), ring)| {
                    (
                        format!("{topic}/{partition}"),
                        ring.iter().copied().collect(),
                    )
                })
                .collect(),
        }
    }
}

/// Appends each present key's value to its ring (creating rings while `budget` lasts) and
/// drops the rings of keys no longer present.
fn push_all<K: std::hash::Hash + Eq + Clone, T>(
    rings: &mut HashMap<K, Ring<T>>,
    present: HashMap<K, T>,
    budget: &mut usize,
    dropped: &mut i64,
) {
    rings.retain(|key, _| present.contains_key(key));
    for (key, value) in present {
        let ring = match rings.get_mut(&key) {
            Some(ring) => ring,
            None if *budget > 0 => rings.entry(key).or_default(),
            None => {
                *dropped += 1;
                continue;
            }
        };
        *budget = budget.saturating_sub(1);
        ring.push_back(value);
        if ring.len() > HISTORY_POINTS {
            ring.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_embedded::admin::{LogAdmin, at_once};
    use keel_log::{Log, OffsetCommit, TopicConfig};

    use super::*;

    /// One sample of `log` through its port, as the server takes it.
    fn sample(history: &History, log: &Log, now_ms: i64) {
        at_once(history.sample(&LogAdmin::new(log, now_ms), now_ms)).unwrap();
    }

    fn append(log: &Log, topic: &str, count: usize) {
        let record = keel_runtime::event_record(&keel_core::Event::new("/test", "test.happened"));
        log.topic(topic).unwrap().partitions()[0]
            .append(&vec![record; count])
            .unwrap();
    }

    #[test]
    fn throughput_is_the_difference_between_samples_per_second() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", TopicConfig::new(1)).unwrap();
        let history = History::default();
        sample(&history, &log, 10_000);
        append(&log, "orders", 20);
        let commit = OffsetCommit {
            topic: "orders".into(),
            partition: 0,
            offset: 5,
            metadata: String::new(),
        };
        log.group_offsets().commit("billing", &[commit], 0).unwrap();
        sample(&history, &log, 20_000);

        let throughput = history.throughput(Some("orders"));
        assert_eq!(throughput.times_ms, vec![20_000]);
        assert_eq!(throughput.in_per_s, vec![2.0]);
        assert_eq!(throughput.out_per_s, vec![0.5]);
        assert_eq!(history.throughput(None), throughput);
        let lag = history.lag("billing");
        assert_eq!(
            lag.lag_events,
            vec![15],
            "one sample since the group appeared"
        );
        assert_eq!(lag.partitions["orders/0"], vec![15]);
    }

    #[test]
    fn series_are_bounded_in_length_and_dropped_with_their_topic() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", TopicConfig::new(1)).unwrap();
        let history = History::default();
        for i in 0..(HISTORY_POINTS as i64 + 10) {
            sample(&history, &log, i * 1000);
        }
        assert_eq!(
            history.throughput(Some("orders")).times_ms.len(),
            HISTORY_POINTS - 1
        );
        log.delete_topic("orders").unwrap();
        sample(&history, &log, 1_000_000);
        assert!(history.throughput(Some("orders")).in_per_s.is_empty());
    }
}
