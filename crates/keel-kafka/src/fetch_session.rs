//! Fetch sessions (KIP-227): a consumer of many partitions sends its partition list once; its
//! later fetches name only the partitions whose position changed (and those it dropped), and
//! the answers carry only the partitions with something new — records, an error, or a moved
//! high watermark or log start. Without them a consumer of 1,000 partitions sends and receives
//! 1,000 entries on every fetch, however little moved. The Java client and franz-go open one
//! whenever the broker answers with a session id.
//!
//! A session is opened by a fetch with epoch 0, continued by each next epoch (1, 2, …, past
//! `i32::MAX` back to 1), and closed by epoch -1 (which then fetches without a session, as a
//! session id of 0 with epoch -1 always does). An unknown session is answered
//! `FETCH_SESSION_ID_NOT_FOUND`, a wrong epoch `INVALID_FETCH_SESSION_EPOCH`: the client then
//! opens a new one. At most [`FETCH_SESSIONS_MAX`] are kept; opening one more closes the least
//! recently used (counted in `keel_kafka_fetch_session_evictions`), whose client gets
//! `FETCH_SESSION_ID_NOT_FOUND` once and opens a new one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Sessions kept at once: Kafka's `max.incremental.fetch.session.cache.slots` default.
pub(crate) const FETCH_SESSIONS_MAX: usize = 1_000;

/// The epoch of a fetch that opens a session (a full fetch).
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a fetch without a session, or that closes one.
const FINAL_EPOCH: i32 = -1;

/// A partition of a session by topic name and index.
type PartitionKey = (String, i32);

/// A partition of a session: where its client reads, and what it was last told.
#[derive(Debug, Clone)]
struct SessionPartition {
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// The high watermark and log start of the last answer that carried it.
    sent: Option<(i64, i64)>,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: BTreeMap<PartitionKey, SessionPartition>,
    /// When it was last used, in uses of the cache (least recently used goes first).
    last_used: u64,
}

/// How one Fetch is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionFetch {
    /// Without a session: the request as sent, answered whole, with session id 0.
    Sessionless,
    /// In session `id`, whose whole partition list the request now names; an `incremental`
    /// answer carries only the partitions with news ([`FetchSessions::answer`]).
    Session { id: i32, incremental: bool },
    /// Refused with this top-level error, answering nothing else.
    Refused(ResponseError),
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub(crate) struct FetchSessions {
    state: Mutex<State>,
    open: Gauge,
    evictions: Counter,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<i32, Session>,
    uses: u64,
    last_id: i32,
}

impl FetchSessions {
    /// No sessions yet, counting open sessions in `open` and evictions in `evictions`.
    pub(crate) fn new(open: Gauge, evictions: Counter) -> FetchSessions {
        // Ids start somewhere different in every process, so a client still holding the id
        // of a session from before a restart is unlikely to find another client's session.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |t| t.subsec_nanos() as i32);
        FetchSessions {
            state: Mutex::new(State {
                last_id: seed.abs(),
                ..State::default()
            }),
            open,
            evictions,
        }
    }

    /// Decides how `request` (v7+) is served and, for a fetch in a session, rewrites its
    /// partition list into the session's whole list (its forgotten partitions dropped), so
    /// the fetch reads every partition of the session.
    pub(crate) fn begin(&self, request: &mut FetchRequest) -> SessionFetch {
        let mut state = self.state.lock().expect("fetch sessions lock");
        state.uses += 1;
        let now = state.uses;
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if id != 0 && state.sessions.remove(&id).is_some() {
                self.open.dec();
            }
            if epoch == FINAL_EPOCH {
                return SessionFetch::Sessionless;
            }
            let mut partitions = BTreeMap::new();
            update(&mut partitions, request);
            let id = self.open_session(&mut state, partitions, now);
            return SessionFetch::Session {
                id,
                incremental: false,
            };
        }
        let Some(session) = state.sessions.get_mut(&id) else {
            return SessionFetch::Refused(ResponseError::FetchSessionIdNotFound);
        };
        if session.next_epoch != epoch {
            return SessionFetch::Refused(ResponseError::InvalidFetchSessionEpoch);
        }
        session.next_epoch = epoch.checked_add(1).unwrap_or(1);
        session.last_used = now;
        for forgotten in std::mem::take(&mut request.forgotten_topics_data) {
            for index in forgotten.partitions {
                session
                    .partitions
                    .remove(&(forgotten.topic.to_string(), index));
            }
        }
        update(&mut session.partitions, request);
        request.topics = whole_list(&session.partitions);
        SessionFetch::Session {
            id,
            incremental: true,
        }
    }

    /// Records what the answer of a fetch in session `id` tells its client, and for an
    /// incremental fetch keeps only the partitions with news: records, an error, or a high
    /// watermark or log start that moved since the client was last told.
    pub(crate) fn answer(
        &self,
        id: i32,
        incremental: bool,
        mut responses: Vec<FetchableTopicResponse>,
    ) -> Vec<FetchableTopicResponse> {
        let mut state = self.state.lock().expect("fetch sessions lock");
        let Some(session) = state.sessions.get_mut(&id) else {
            // Closed while this fetch waited: its client learns at its next fetch.
            return responses;
        };
        for topic in &mut responses {
            let name = topic.topic.to_string();
            topic.partitions.retain(|data| {
                let Some(cached) = session
                    .partitions
                    .get_mut(&(name.clone(), data.partition_index))
                else {
                    return true;
                };
                let now = (data.high_watermark, data.log_start_offset);
                let news = !incremental
                    || data.error_code != 0
                    || data.records.as_ref().is_some_and(|r| !r.is_empty())
                    || cached.sent != Some(now);
                if news {
                    cached.sent = Some(now);
                }
                news
            });
        }
        responses.retain(|topic| !topic.partitions.is_empty());
        responses
    }

    /// Keeps a new session of `partitions`, closing the least recently used one when the
    /// cache is full; returns its id (never 0, which means "no session").
    fn open_session(
        &self,
        state: &mut State,
        partitions: BTreeMap<PartitionKey, SessionPartition>,
        now: u64,
    ) -> i32 {
        if state.sessions.len() >= FETCH_SESSIONS_MAX {
            let oldest = state
                .sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(&id, _)| id);
            if let Some(oldest) = oldest {
                state.sessions.remove(&oldest);
                self.open.dec();
                self.evictions.inc();
            }
        }
        let mut id = state.last_id;
        loop {
            id = id.checked_add(1).unwrap_or(1);
            if !state.sessions.contains_key(&id) {
                break;
            }
        }
        state.last_id = id;
        state.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: now,
            },
        );
        self.open.inc();
        id
    }
}

/// Adds the partitions `request` names to `partitions`, or updates where their client reads.
fn update(partitions: &mut BTreeMap<PartitionKey, SessionPartition>, request: &FetchRequest) {
    for topic in &request.topics {
        for wanted in &topic.partitions {
            let key = (topic.topic.to_string(), wanted.partition);
            let sent = partitions.get(&key).and_then(|p| p.sent);
            partitions.insert(
                key,
                SessionPartition {
                    fetch_offset: wanted.fetch_offset,
                    partition_max_bytes: wanted.partition_max_bytes,
                    sent,
                },
            );
        }
    }
}

/// The fetch list of a session's every partition, by topic.
fn whole_list(partitions: &BTreeMap<PartitionKey, SessionPartition>) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((name, index), partition) in partitions {
        let wanted = FetchPartition::default()
            .with_partition(*index)
            .with_fetch_offset(partition.fetch_offset)
            .with_partition_max_bytes(partition.partition_max_bytes);
        match topics.last_mut() {
            Some(topic) if &**topic.topic == name.as_str() => topic.partitions.push(wanted),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(vec![wanted]),
            ),
        }
    }
    topics
}
