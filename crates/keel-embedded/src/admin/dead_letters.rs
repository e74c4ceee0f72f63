//! Dead letters on the embedded log, synchronously: the engine-neutral logic of
//! `keel_runtime::admin::dead_letters` and `keel_runtime::admin::replay` (list, show,
//! replay with canary and once-only, purge) run on the log through [`LogAdmin`], whose
//! answers and appends are ready at once. The types are those modules'; their docs say
//! what makes a replay safe.

use keel_core::TopicInfo;
use keel_log::Log;
pub use keel_runtime::admin::dead_letters::{
    CauseCount, DeadLetterError, DeadLetterFilter, DeadLetterStatus, DeadLetterSummary,
    LIST_LIMIT_MAX, PurgeReport, REPLAY_ID_HEADER, REPLAY_OF_HEADER, StoredDeadLetter,
};
pub use keel_runtime::admin::replay::{CanaryOutcome, RefusedDeadLetter, ReplayPlan, ReplayReport};

use super::{LogAdmin, at_once};
use keel_runtime::admin::{dead_letters as neutral, replay as neutral_replay};

/// The dead-letter topic called `name`, or the dead-letter topic of the topic `name`.
pub fn resolve_topic(log: &Log, name: &str) -> Result<TopicInfo, DeadLetterError> {
    at_once(neutral::resolve_topic(&LogAdmin::new(log, 0), name))
}

/// Every dead-letter topic with its counts, oldest pending age and causes.
pub fn summaries(log: &Log, now_ms: i64) -> Result<Vec<DeadLetterSummary>, DeadLetterError> {
    at_once(neutral::summaries(&LogAdmin::new(log, now_ms), now_ms))
}

/// The dead letters of `topic` (a dead-letter topic or its source) matching `filter`, in
/// partition and offset order, at most `limit` (capped at [`LIST_LIMIT_MAX`]).
pub fn dead_letters(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<StoredDeadLetter>, DeadLetterError> {
    at_once(neutral::dead_letters(
        &LogAdmin::new(log, 0),
        topic,
        filter,
        limit,
    ))
}

/// Plans a replay of the dead letters of `topic` matching `filter`, bounded by the
/// dead-letter partitions' current high watermarks.
pub fn plan_replay(
    log: &Log,
    topic: &str,
    filter: DeadLetterFilter,
    force: bool,
    canary: bool,
    command: impl Into<String>,
) -> Result<ReplayPlan, DeadLetterError> {
    at_once(neutral_replay::plan_replay(
        &LogAdmin::new(log, 0),
        topic,
        filter,
        force,
        canary,
        command,
    ))
}

/// Runs a planned replay (see `keel_runtime::admin::replay::replay`).
pub fn replay(log: &Log, plan: &ReplayPlan, now_ms: i64) -> Result<ReplayReport, DeadLetterError> {
    let port = LogAdmin::new(log, now_ms);
    at_once(neutral_replay::replay(&port, &port, plan, now_ms))
}

/// Marks the dead letters of `topic` matching `filter` as purged in the audit log; without
/// `confirmed` nothing is written (see `keel_runtime::admin::dead_letters::purge`).
pub fn purge(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
    confirmed: bool,
    command: impl Into<String>,
    now_ms: i64,
) -> Result<PurgeReport, DeadLetterError> {
    let port = LogAdmin::new(log, now_ms);
    at_once(neutral::purge(
        &port, &port, topic, filter, confirmed, command, now_ms,
    ))
}

/// What [`purge`] would mark purged; nothing is written.
pub fn plan_purge(
    log: &Log,
    topic: &str,
    filter: &DeadLetterFilter,
) -> Result<PurgeReport, DeadLetterError> {
    at_once(neutral::plan_purge(&LogAdmin::new(log, 0), topic, filter))
}

/// Where the canary replay `id` stands. The group must be running (in this process, or in
/// the owner of the log) for the answer to change.
pub fn canary_outcome(log: &Log, id: &str) -> Result<CanaryOutcome, DeadLetterError> {
    at_once(neutral_replay::canary_outcome(&LogAdmin::new(log, 0), id))
}
