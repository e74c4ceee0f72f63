//! Event-sourced aggregates: the [`Aggregate`] trait (fold events into state, decide commands
//! into new events) and the [`Repository`] that loads one (latest snapshot + later events),
//! decides, and appends with the loaded version, retrying on conflict when allowed.
//!
//! Not here: storage (any [`EventStore`]); projections (`keel-projection`).
//!
//! # Why decisions retry only when asked
//!
//! A conflict means the stream changed between load and append. Deciding again on the new
//! state is right for commands whose meaning does not depend on what the caller saw (reserve
//! stock, add a line), and wrong for those that do (approve *this* version of an order). So
//! [`Repository::with_conflict_retries`] is opt-in; by default a conflict is returned.

use std::marker::PhantomData;

use keel_core::Event;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AppendError, ConcurrencyConflict, ReadError, one_line};
use crate::limits::{READ_EVENTS_MAX, REPOSITORY_ATTEMPTS_MAX};
use crate::store::EventStore;
use crate::stream::{Appended, Direction, ExpectedVersion, RecordedEvent, Snapshot};

/// A consistency boundary whose state is the fold of its events.
///
/// `apply` must be a pure function of the state and the event (it runs again on every
/// load); `handle` decides from the current state and never changes it.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The events of this aggregate (usually an enum), stored as JSON.
    type Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// What callers ask of it.
    type Command: Send + Sync;
    /// Why a command is refused (a business rule, not an infrastructure failure).
    type Error: std::error::Error + Send + Sync + 'static;
    /// The stream category: instance `id` lives in stream `<CATEGORY>-<id>`. No `-` in it.
    const CATEGORY: &'static str;
    /// The shape of the serialized state; raise it when the state's fields change so older
    /// snapshots are ignored (replayed from events instead).
    const STATE_VERSION: u32 = 1;

    /// The CloudEvents `type` an event is stored with, such as `order.placed`.
    fn event_type(event: &Self::Event) -> &'static str;
    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);
    /// Decides a command: the events it causes (none: nothing to do), or why not.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
}

/// An aggregate's state and the stream version it reflects.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version folded in (0: a new aggregate).
    pub version: u64,
    /// The snapshot version the load started from, if one was used.
    pub snapshot_version: Option<u64>,
}

/// What [`Repository::execute`] did.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the new events.
    pub state: A,
    /// The events the command caused (empty: nothing was appended).
    pub events: Vec<A::Event>,
    /// Where they were appended (`None` when there were none).
    pub appended: Option<Appended>,
    /// How many times the command was decided (1 + conflicts retried).
    pub attempts: u32,
}

/// A point in an aggregate's history to load it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After the event with this version.
    Version(u64),
    /// After every event recorded at or before this time (ms since the Unix epoch).
    Time(i64),
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E: std::error::Error + 'static> {
    /// The aggregate refused the command; nothing was appended.
    #[error("command refused: {0}")]
    Rejected(#[source] E),
    /// The stream kept changing: every allowed attempt met a conflict.
    #[error("{conflict} (after {attempts} attempts)")]
    Conflict {
        /// The last conflict.
        conflict: ConcurrencyConflict,
        /// Attempts made.
        attempts: u32,
    },
    /// The append failed for another reason.
    #[error(transparent)]
    Append(AppendError),
    /// Loading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A stored event is not one of this aggregate's events.
    #[error(
        "stream '{stream}' version {version} does not decode as an event of this aggregate: {reason}"
    )]
    Decode {
        /// The stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// Why.
        reason: String,
    },
    /// A new event could not be encoded as JSON.
    #[error("cannot encode an event for stream '{stream}': {reason}")]
    Encode {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
}

/// Loads, decides and appends aggregates of type `A` in store `S`.
#[derive(Debug, Clone)]
pub struct Repository<A, S> {
    store: S,
    snapshot_every: u64,
    attempts: u32,
    aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository without snapshots and without conflict retries.
    pub fn new(store: S) -> Repository<A, S> {
        assert!(
            !A::CATEGORY.is_empty() && !A::CATEGORY.contains('-'),
            "Aggregate::CATEGORY must be non-empty and free of '-': {:?}",
            A::CATEGORY
        );
        Repository {
            store,
            snapshot_every: 0,
            attempts: 1,
            aggregate: PhantomData,
        }
    }

    /// Saves a snapshot whenever an append crosses a multiple of `events` (0: never).
    #[must_use]
    pub fn with_snapshot_every(mut self, events: u64) -> Repository<A, S> {
        self.snapshot_every = events;
        self
    }

    /// Decides again on the new state up to `retries` times after a conflict (at most
    /// [`REPOSITORY_ATTEMPTS_MAX`] attempts in all).
    #[must_use]
    pub fn with_conflict_retries(mut self, retries: u32) -> Repository<A, S> {
        self.attempts = retries.saturating_add(1).min(REPOSITORY_ATTEMPTS_MAX);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The stream of instance `id`.
    pub fn stream(&self, id: &str) -> String {
        format!("{}-{id}", A::CATEGORY)
    }

    /// The current state of instance `id`: the latest usable snapshot plus the events after
    /// it (a new aggregate when the stream is absent).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        self.load_until(&self.stream(id), u64::MAX, i64::MAX).await
    }

    /// The state of instance `id` at a point in its history. A snapshot is used only when
    /// it is not past a requested version; a time is answered by replay from the start.
    pub async fn load_as_of(
        &self,
        id: &str,
        as_of: AsOf,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = self.stream(id);
        match as_of {
            AsOf::Version(version) => self.load_until(&stream, version, i64::MAX).await,
            AsOf::Time(time_ms) => self.replay(&stream, fresh(), time_ms, u64::MAX).await,
        }
    }

    /// Loads instance `id`, decides `command`, appends the events with the loaded version as
    /// the expected one, and on a conflict decides again (as allowed).
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let stream = self.stream(id);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Loaded {
                mut state, version, ..
            } = self.load_until(&stream, u64::MAX, i64::MAX).await?;
            let events = state.handle(command).map_err(RepositoryError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    state,
                    events,
                    appended: None,
                    attempts,
                });
            }
            let envelopes = events
                .iter()
                .map(|event| envelope::<A>(&stream, event))
                .collect::<Result<Vec<_>, _>>()?;
            match self
                .store
                .append(&stream, ExpectedVersion::Exact(version), envelopes)
                .await
            {
                Ok(appended) => {
                    events.iter().for_each(|event| state.apply(event));
                    self.maybe_snapshot(&stream, version, &appended, &state)
                        .await;
                    return Ok(Executed {
                        state,
                        events,
                        appended: Some(appended),
                        attempts,
                    });
                }
                Err(AppendError::Conflict(conflict)) if attempts >= self.attempts => {
                    return Err(RepositoryError::Conflict { conflict, attempts });
                }
                Err(AppendError::Conflict(_)) => continue,
                Err(error) => return Err(RepositoryError::Append(error)),
            }
        }
    }

    async fn load_until(
        &self,
        stream: &str,
        version_max: u64,
        time_ms_max: i64,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let start = match self.store.load_snapshot(stream).await? {
            Some(snapshot)
                if snapshot.state_version == A::STATE_VERSION
                    && snapshot.version <= version_max =>
            {
                match serde_json::from_slice::<A>(&snapshot.state) {
                    Ok(state) => Loaded {
                        state,
                        version: snapshot.version,
                        snapshot_version: Some(snapshot.version),
                    },
                    Err(error) => {
                        tracing::warn!(stream, %error, "ignoring a snapshot that does not decode; replaying");
                        fresh()
                    }
                }
            }
            _ => fresh(),
        };
        self.replay(stream, start, time_ms_max, version_max).await
    }

    /// Folds the events after `loaded.version` into it, up to a version and a time.
    async fn replay(
        &self,
        stream: &str,
        mut loaded: Loaded<A>,
        time_ms_max: i64,
        version_max: u64,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        loop {
            let page = self
                .store
                .read_stream(
                    stream,
                    loaded.version + 1,
                    Direction::Forward,
                    READ_EVENTS_MAX,
                )
                .await?;
            let full = page.len() == READ_EVENTS_MAX;
            for recorded in &page {
                if recorded.version > version_max || recorded.recorded_at_ms > time_ms_max {
                    return Ok(loaded);
                }
                loaded.state.apply(&decode::<A>(recorded)?);
                loaded.version = recorded.version;
            }
            if !full {
                return Ok(loaded);
            }
        }
    }

    async fn maybe_snapshot(&self, stream: &str, before: u64, appended: &Appended, state: &A) {
        let every = self.snapshot_every;
        if every == 0 || appended.version / every == before / every {
            return;
        }
        let snapshot = match serde_json::to_vec(state) {
            Ok(bytes) => Snapshot {
                stream: stream.to_owned(),
                version: appended.version,
                state_version: A::STATE_VERSION,
                state: bytes,
            },
            Err(error) => {
                tracing::warn!(stream, %error, "aggregate state does not serialize; no snapshot");
                return;
            }
        };
        // The events are committed; a lost snapshot only costs a longer replay next time.
        if let Err(error) = self.store.save_snapshot(snapshot).await {
            tracing::warn!(stream, %error, "snapshot not saved");
        }
    }
}

fn fresh<A: Default>() -> Loaded<A> {
    Loaded {
        state: A::default(),
        version: 0,
        snapshot_version: None,
    }
}

/// The CloudEvent an aggregate event is stored as: JSON data, the aggregate's type name, the
/// stream as subject and partition key (so a relay to a topic keeps per-aggregate order).
fn envelope<A: Aggregate>(
    stream: &str,
    event: &A::Event,
) -> Result<Event, RepositoryError<A::Error>> {
    let data = serde_json::to_vec(event).map_err(|e| RepositoryError::Encode {
        stream: stream.to_owned(),
        reason: one_line(e),
    })?;
    Ok(
        Event::new(format!("/{}", A::CATEGORY), A::event_type(event))
            .with_subject(stream)
            .with_partition_key(stream)
            .with_data("application/json", data),
    )
}

/// The aggregate event a recorded event holds.
pub fn decode<A: Aggregate>(
    recorded: &RecordedEvent,
) -> Result<A::Event, RepositoryError<A::Error>> {
    let data = recorded.event.data.as_deref().unwrap_or_default();
    serde_json::from_slice(data).map_err(|e| RepositoryError::Decode {
        stream: recorded.stream.clone(),
        version: recorded.version,
        reason: one_line(e),
    })
}
