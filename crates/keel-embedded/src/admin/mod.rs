//! Operator tools over the embedded log: topics at a glance ([`topics`]), consumer-group lag
//! and offset resets ([`groups`], the engine-neutral `keel_runtime::admin::groups` run on the
//! log through [`LogAdmin`]), and dead-letter inspection, replay and purge with an audit log
//! ([`dead_letters`], [`audit`]). The `keel groups` and `keel dlq` verbs are thin wrappers
//! over these functions; a service can call them too. `port.rs` is the administrative half
//! of the transport port (`keel_core::AdminTransport`) on the same log.
//!
//! Everything here is synchronous and works on a [`keel_log::Log`] the caller opened. Time
//! comes in as `now_ms` arguments, so tests are exact.
//!
//! # One owner per data directory
//!
//! The embedded log is owned by one process at a time (`Log::open` takes an exclusive lock).
//! So while the `keel` binary runs one of these tools, no consumer of another process can
//! run on the same data directory, and an offset reset can never race a running consumer
//! there. Inside one process the log is shared: a service that calls [`groups::apply_reset`]
//! must first stop its own routes of that group, or the next commit of a running member
//! overwrites the reset. The library cannot see those routes (they live in the
//! `EmbeddedBus`), so this is the caller's duty.
//!
//! The same rule shapes the replay canary ([`dead_letters::canary_outcome`]): the consumer
//! that must handle the canary has to run while the outcome is observed. In one process (a
//! service replaying its own dead letters) the caller polls `canary_outcome` while its router
//! runs. From the `keel` binary the canary is a two-step protocol: `keel dlq replay --canary`
//! replays one event and exits; the operator runs the consumers; `keel dlq canary <id>` or
//! `keel dlq replay --after-canary <id>` reads the outcome from the log.
//!
//! Not here: printing, argument parsing, reading the clock or environment.

pub mod audit;
pub mod dead_letters;
pub mod groups;
mod port;
pub mod topics;

pub use port::{LogAdmin, at_once};

use keel_log::{Partition, ReadError, Record};

/// Bytes asked of the log per read while scanning a partition.
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Calls `f` with every record of `partition` in `from..to` (clamped to what is stored), in
/// offset order, until `f` returns `Ok(false)`.
fn scan<E: From<ReadError>>(
    partition: &Partition,
    from: u64,
    to: u64,
    mut f: impl FnMut(Record) -> Result<bool, E>,
) -> Result<(), E> {
    let mut offset = from.max(partition.log_start_offset());
    let to = to.min(partition.high_watermark());
    while offset < to {
        let records = partition.read_records(offset, SCAN_READ_BYTES)?;
        let mut advanced = false;
        for record in records {
            if record.offset < offset {
                continue;
            }
            if record.offset >= to {
                return Ok(());
            }
            offset = record.offset + 1;
            advanced = true;
            if !f(record)? {
                return Ok(());
            }
        }
        if !advanced {
            // Compaction can leave a batch whose records all lie below `offset`.
            break;
        }
    }
    Ok(())
}
