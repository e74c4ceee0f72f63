//! The console's memory of the last hour: events appended and consumed per topic, and lag
//! per group and partition, sampled through the source's ports every
//! [`HistoryConfig::interval_ms`] (the owned log or a Kafka cluster alike) — and what the
//! group list and the overview show instead of measuring it per request: every group's lag
//! at its last measure, the topics' totals and the dead-letter counts of the last sample.
//!
//! The topic list on a cluster also comes from the last sample ([`History::topics`]): a
//! sample reads every topic's partition offsets anyway (for throughput), and asking a
//! cluster of 1,650 topics per request took ~28 s. It reads them
//! [`SAMPLE_TOPICS_CONCURRENCY`] topics at once.
//!
//! A broker keeps only the present (high watermarks, committed offsets); charts over time
//! need past samples, so the server takes them. A sample reads watermarks and committed
//! offsets and one record per lagging partition (for lag in seconds, through
//! `keel_runtime::admin::groups`, the computation `keel groups lag` uses). On a cluster that
//! costs about 0.1 s a group, so a sample measures at most [`SAMPLE_GROUPS_CONCURRENCY`]
//! groups at once and at most [`HistoryConfig::groups_max`] groups in all: those never
//! measured first — among them those the previous sample did not list, so a group that
//! appears while the console runs shows at the next sample even among thousands never
//! measured yet — then the least recently measured; a group not measured keeps its last
//! measure, and how many were left out is `keel_console_sample_groups_skipped`. Every
//! series is a ring of at most [`HISTORY_POINTS`] samples aligned on shared sample times; a
//! topic, group or partition that disappears loses its series. The number of series is
//! bounded ([`HISTORY_SERIES_MAX`]); series past it are not kept and counted in
//! `keel_console_history_series_dropped`.
//!
//! Not persisted: a restarted server starts its charts empty.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::{StreamExt, stream};
use keel_core::{AdminTransport, PartitionOffsets, TransportError};
use keel_runtime::admin::dead_letters::{self, DeadLetterSummary};
use keel_runtime::admin::groups::{self, GroupSummary, GroupsError, PartitionLag};
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
/// Groups one sample measures by default: at ~0.1 s a group on a cluster and
/// [`SAMPLE_GROUPS_CONCURRENCY`] at once, about 6 s of a 10-s interval.
pub(crate) const SAMPLE_GROUPS_MAX_DEFAULT: usize = 500;
/// Groups whose lag a sample measures at the same time (each holds a blocking thread and,
/// on a cluster, a client acting as the group).
pub(crate) const SAMPLE_GROUPS_CONCURRENCY: usize = 8;

/// Topics whose partition offsets a sample reads at the same time.
pub(crate) const SAMPLE_TOPICS_CONCURRENCY: usize = 8;

/// How often the history is sampled, and how many groups one sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// Most groups whose lag one sample measures (new groups first, then the least recently
    /// measured); the others keep their last measure for the next samples.
    pub groups_max: usize,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            interval_ms: HISTORY_INTERVAL_MS_DEFAULT,
            groups_max: SAMPLE_GROUPS_MAX_DEFAULT,
        }
    }
}

/// The sampled history, shared by the sampler task and the handlers.
#[derive(Debug, Default)]
pub(crate) struct History {
    inner: Mutex<Inner>,
    /// Series not kept because [`HISTORY_SERIES_MAX`] was reached, at the last sample.
    pub(crate) dropped: Gauge,
    /// Groups listed but not measured by the last sample ([`HistoryConfig::groups_max`]).
    pub(crate) groups_skipped: Gauge,
    /// How long the last sample took.
    duration_ms: Gauge,
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
    /// Every listed group's lag at its last measure, by name.
    measures: BTreeMap<String, Measure>,
    /// The groups the last sample listed; empty before the first.
    listed: HashSet<String>,
    /// The topics' totals at the last sample; `None` before the first.
    stored: Option<Stored>,
    /// Every topic's partitions as the last sample read them; `None` before the first.
    topics_offsets: Option<SampledTopics>,
    /// Every dead-letter topic's counts at the last sample that could read them.
    dead_letters: Vec<DeadLetterSummary>,
}

/// What the topics a sample listed hold, together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Topics (internal `__` ones left out).
    pub(crate) topics: usize,
    /// Their partitions.
    pub(crate) partitions: usize,
    /// Events stored in them.
    pub(crate) events: u64,
}

/// Every topic's partition offsets at the last sample: what the topic list of a cluster
/// shows. Shared, so a request takes it without copying 1,000s of topics.
#[derive(Debug, Clone)]
pub(crate) struct SampledTopics {
    /// When the sample that read them was taken, ms since the epoch.
    pub(crate) sampled_at_ms: i64,
    /// Each topic's partitions with their stored offsets, by name.
    pub(crate) topics: Arc<BTreeMap<String, Vec<PartitionOffsets>>>,
}

/// One group's lag per partition as a sample measured it.
#[derive(Debug)]
struct Measure {
    lags: Vec<PartitionLag>,
    at_ms: i64,
}

/// Every group's totals at its last measure: what the group list and the overview show.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub(crate) struct SampledGroups {
    /// When the last sample ended, ms since the epoch; `null` before the first.
    pub(crate) sampled_at_ms: Option<i64>,
    /// When the least recently measured group was measured; `null` without groups.
    pub(crate) oldest_measure_ms: Option<i64>,
    /// Groups the last sample left for the next ones (`console_sample_groups_max`).
    pub(crate) skipped: usize,
    /// The groups, by name.
    pub(crate) groups: Vec<GroupSummary>,
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
    /// Takes one sample through `admin` at `now_ms`, measuring at most `groups_max` groups
    /// (new ones first, then the least recently measured); reads a record per lagging
    /// partition. A topic or group gone
    /// between two requests is left out of this sample; a group whose measure failed keeps
    /// its last one.
    pub(crate) async fn sample(
        &self,
        admin: &dyn AdminTransport,
        now_ms: i64,
        groups_max: usize,
    ) -> Result<(), TransportError> {
        let started = Instant::now();
        let mut topics: HashMap<String, (u64, u64)> = HashMap::new();
        let mut stored = Stored::default();
        let names = admin.topics().await?.into_iter().map(|t| t.name);
        let offsets = offsets_of(admin, names).await?;
        for (name, ranges) in &offsets {
            stored.topics += 1;
            stored.partitions += ranges.len();
            stored.events += ranges
                .iter()
                .map(|p| p.high_watermark - p.log_start)
                .sum::<u64>();
            let appended = ranges.iter().map(|p| p.high_watermark).sum();
            topics.insert(name.clone(), (appended, 0));
        }
        // The topic list shows them now, not after the groups' pass (minutes on a cluster).
        self.inner.lock().expect("history lock").topics_offsets = Some(SampledTopics {
            sampled_at_ms: now_ms,
            topics: Arc::new(offsets),
        });
        let dead_letters = dead_letters::summaries(admin, now_ms).await;
        let mut listed = admin.groups().await?;
        listed.sort_unstable();
        listed.dedup();
        let chosen = {
            let inner = self.inner.lock().expect("history lock");
            least_recently_measured(&listed, &inner.measures, &inner.listed, groups_max)
        };
        let measured: Vec<(String, Result<Vec<PartitionLag>, GroupsError>)> =
            stream::iter(chosen.iter().cloned())
                .map(|group| async move {
                    let lags = groups::group_lag(admin, &group, now_ms).await;
                    (group, lags)
                })
                .buffer_unordered(SAMPLE_GROUPS_CONCURRENCY)
                .collect()
                .await;

        let mut inner = self.inner.lock().expect("history lock");
        let present: HashSet<&String> = listed.iter().collect();
        inner.measures.retain(|group, _| present.contains(group));
        inner.listed = listed.iter().cloned().collect();
        let mut failed = 0;
        for (group, lags) in measured {
            match lags {
                Ok(lags) => {
                    inner.measures.insert(
                        group,
                        Measure {
                            lags,
                            at_ms: now_ms,
                        },
                    );
                }
                // Listed but with no committed offset (Kafka lists such groups).
                Err(GroupsError::GroupNotFound(_)) => {
                    inner.measures.remove(&group);
                }
                Err(error) => {
                    failed += 1;
                    tracing::debug!(%group, %error, "console sample: a group's lag not measured");
                }
            }
        }
        if failed > 0 {
            tracing::warn!(failed, "console sample: groups keep their last measure");
        }
        inner.stored = Some(stored);
        match dead_letters {
            Ok(dead_letters) => inner.dead_letters = dead_letters,
            Err(error) => {
                tracing::warn!(%error, "console sample: dead letters keep their last count");
            }
        }
        self.groups_skipped
            .set((listed.len() - chosen.len()) as i64);
        let mut group_totals = HashMap::new();
        let mut partitions = HashMap::new();
        for (group, measure) in &inner.measures {
            for lag in &measure.lags {
                if let Some(totals) = topics.get_mut(&lag.topic) {
                    totals.1 += lag.committed_offset.unwrap_or(0);
                }
                partitions.insert(
                    (group.clone(), lag.topic.clone(), lag.partition),
                    lag.lag_events,
                );
            }
            let summary = GroupSummary::of(group.clone(), &measure.lags);
            group_totals.insert(group.clone(), (summary.lag_events, summary.lag_ms));
        }

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
        self.duration_ms
            .set(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Registers the history's gauges.
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "keel_console_history_series_dropped",
            "Series the console's charts do not keep because their limit is reached",
            self.dropped.clone(),
        );
        registry.register(
            "keel_console_sample_groups_skipped",
            "Groups the console's last sample did not measure because of console_sample_groups_max (they keep their last measure)",
            self.groups_skipped.clone(),
        );
        registry.register(
            "keel_console_sample_duration_ms",
            "How long the console's last sample of topics, groups and dead letters took",
            self.duration_ms.clone(),
        );
    }

    /// The topics' totals at the last sample; `None` before the first.
    pub(crate) fn stored(&self) -> Option<Stored> {
        self.inner.lock().expect("history lock").stored
    }

    /// Every topic's partition offsets at the last sample; `None` before the first.
    pub(crate) fn topics(&self) -> Option<SampledTopics> {
        self.inner
            .lock()
            .expect("history lock")
            .topics_offsets
            .clone()
    }

    /// The groups with commits in `topic` at their last measure: (group, lag in events,
    /// largest lag in ms), by name. Measuring every group per request took minutes on a
    /// cluster of 1,452 groups.
    pub(crate) fn readers_of(&self, topic: &str) -> Vec<(String, u64, u64)> {
        let inner = self.inner.lock().expect("history lock");
        inner
            .measures
            .iter()
            .filter_map(|(group, measure)| {
                let lags: Vec<_> = measure.lags.iter().filter(|l| l.topic == topic).collect();
                (!lags.is_empty()).then(|| {
                    let events = lags.iter().map(|l| l.lag_events).sum();
                    let ms = lags.iter().map(|l| l.lag_ms).max().unwrap_or(0);
                    (group.clone(), events, ms)
                })
            })
            .collect()
    }

    /// Adds `topic` (just created) to the last sample's topics, so the list shows it before
    /// the next sample; nothing before the first sample.
    pub(crate) fn note_topic(&self, topic: &str, ranges: &[PartitionOffsets]) {
        let mut inner = self.inner.lock().expect("history lock");
        if let Some(sampled) = inner.topics_offsets.as_mut() {
            Arc::make_mut(&mut sampled.topics).insert(topic.to_string(), ranges.to_vec());
        }
    }

    /// Drops `topic` (just deleted) from the last sample's topics, so the list stops showing
    /// it before the next sample.
    pub(crate) fn forget_topic(&self, topic: &str) {
        let mut inner = self.inner.lock().expect("history lock");
        if let Some(sampled) = inner.topics_offsets.as_mut() {
            Arc::make_mut(&mut sampled.topics).remove(topic);
        }
    }

    /// When the last sample was taken and every dead-letter topic's counts as of the last
    /// one that could read them; `None` before the first sample ends.
    pub(crate) fn sampled_dead_letters(&self) -> Option<(i64, Vec<DeadLetterSummary>)> {
        let inner = self.inner.lock().expect("history lock");
        let sampled_at_ms = *inner.times.back()?;
        Some((sampled_at_ms, inner.dead_letters.clone()))
    }

    /// Every dead-letter topic's counts at the last sample that could read them.
    pub(crate) fn dead_letters(&self) -> Vec<DeadLetterSummary> {
        self.inner
            .lock()
            .expect("history lock")
            .dead_letters
            .clone()
    }

    /// Every group's totals at its last measure, and how old the measures are.
    pub(crate) fn groups(&self) -> SampledGroups {
        let inner = self.inner.lock().expect("history lock");
        SampledGroups {
            sampled_at_ms: inner.times.back().copied(),
            oldest_measure_ms: inner.measures.values().map(|m| m.at_ms).min(),
            skipped: self.groups_skipped.get() as usize,
            groups: inner
                .measures
                .iter()
                .map(|(group, measure)| GroupSummary::of(group.clone(), &measure.lags))
                .collect(),
        }
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

/// The partitions' stored ranges of the topics `names`, [`SAMPLE_TOPICS_CONCURRENCY`]
/// topics at once, by name; a topic gone since it was listed is left out.
pub(crate) async fn offsets_of(
    admin: &dyn AdminTransport,
    names: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, Vec<PartitionOffsets>>, TransportError> {
    let read: Vec<(String, Result<Vec<PartitionOffsets>, TransportError>)> = stream::iter(names)
        .map(|name| async move {
            let ranges = admin.partition_offsets(&name).await;
            (name, ranges)
        })
        .buffer_unordered(SAMPLE_TOPICS_CONCURRENCY)
        .collect()
        .await;
    let mut offsets = BTreeMap::new();
    for (name, ranges) in read {
        match ranges {
            Ok(ranges) => {
                offsets.insert(name, ranges);
            }
            Err(TransportError::UnknownTopic { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(offsets)
}

/// At most `max` of the `listed` groups: those never measured first (a new group shows up
/// at the next sample) — of them first those `previous` (the last sample's listing) lacks,
/// unless it is the first listing — then the least recently measured, by name among equals.
fn least_recently_measured(
    listed: &[String],
    measures: &BTreeMap<String, Measure>,
    previous: &HashSet<String>,
    max: usize,
) -> Vec<String> {
    let mut order: Vec<(Option<i64>, bool, &String)> = listed
        .iter()
        .map(|group| {
            let appeared = !previous.is_empty() && !previous.contains(group);
            (measures.get(group).map(|m| m.at_ms), !appeared, group)
        })
        .collect();
    order.sort_unstable();
    order
        .into_iter()
        .take(max)
        .map(|(_, _, group)| group.clone())
        .collect()
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
        at_once(history.sample(&LogAdmin::new(log, now_ms), now_ms, 2)).unwrap();
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
        let topics = history.topics().expect("sampled");
        assert_eq!(topics.sampled_at_ms, 20_000);
        assert_eq!(
            topics.topics["orders"],
            [PartitionOffsets {
                partition: 0,
                log_start: 0,
                high_watermark: 20
            }]
        );
        let lag = history.lag("billing");
        assert_eq!(
            lag.lag_events,
            vec![15],
            "one sample since the group appeared"
        );
        assert_eq!(lag.partitions["orders/0"], vec![15]);
        assert_eq!(history.readers_of("orders"), [("billing".into(), 15, 0)]);
        assert!(history.readers_of("payments").is_empty());
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

    #[test]
    fn a_group_that_appears_is_measured_before_those_listed_never_measured_since() {
        let names =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
        let listed = names(&["a", "b", "z"]);
        let previous: HashSet<String> = names(&["a", "b"]).into_iter().collect();
        let none = BTreeMap::new();
        assert_eq!(least_recently_measured(&listed, &none, &previous, 1), ["z"]);
        assert_eq!(
            least_recently_measured(&listed, &none, &HashSet::new(), 1),
            ["a"],
            "in the first listing every group is new: by name"
        );
    }

    #[test]
    fn a_sample_measures_at_most_groups_max_groups_the_least_recently_measured_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", TopicConfig::new(1)).unwrap();
        append(&log, "orders", 10);
        let commit = |group: &str, offset: u64| {
            let commit = OffsetCommit {
                topic: "orders".into(),
                partition: 0,
                offset,
                metadata: String::new(),
            };
            log.group_offsets().commit(group, &[commit], 0).unwrap();
        };
        for group in ["a", "b"] {
            commit(group, 1);
        }
        let history = History::default();
        let lags = |history: &History| -> Vec<(String, u64)> {
            let sampled = history.groups();
            sampled
                .groups
                .into_iter()
                .map(|g| (g.group, g.lag_events))
                .collect()
        };
        assert!(
            history.groups().sampled_at_ms.is_none(),
            "before any sample"
        );
        sample(&history, &log, 1_000);
        assert_eq!(lags(&history), [("a".into(), 9), ("b".into(), 9)]);
        assert_eq!(history.groups_skipped.get(), 0);
        commit("c", 1);
        commit("a", 5);
        sample(&history, &log, 2_000);
        // c, never measured, then a by name: b keeps its first measure.
        assert_eq!(
            lags(&history),
            [("a".into(), 5), ("b".into(), 9), ("c".into(), 9)]
        );
        assert_eq!(history.groups_skipped.get(), 1);
        let sampled = history.groups();
        assert_eq!(
            (sampled.sampled_at_ms, sampled.oldest_measure_ms),
            (Some(2_000), Some(1_000))
        );
        commit("b", 10);
        sample(&history, &log, 3_000);
        // b, the least recently measured, then a by name (c was measured with it).
        assert_eq!(
            lags(&history),
            [("a".into(), 5), ("b".into(), 0), ("c".into(), 9)]
        );
    }
}
