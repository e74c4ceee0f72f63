//! Reading a whole stretch of a partition through the administrative port, record by
//! record: what the dead-letter tools and their audit log do to find every dead letter or
//! audit entry, on any transport.
//!
//! Not here: what a record means (the callers decide, record by record).

use keel_core::{AdminTransport, Record, TransportError};

/// Bytes asked of the transport per read while scanning a partition.
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Calls `f` with every record of `partition` of `topic` in `from..to` (clamped to what
/// is stored), in offset order, until `f` returns `Ok(false)`.
pub(crate) async fn scan<E: From<TransportError>>(
    admin: &dyn AdminTransport,
    topic: &str,
    partition: u32,
    from: u64,
    to: u64,
    mut f: impl FnMut(Record) -> Result<bool, E>,
) -> Result<(), E> {
    let stored = admin
        .partition_offsets(topic)
        .await?
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(|| TransportError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })?;
    let mut offset = from.max(stored.log_start);
    let to = to.min(stored.high_watermark);
    while offset < to {
        let records = admin
            .read(topic, partition, offset, SCAN_READ_BYTES)
            .await?;
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
            // Compaction (or a transaction's markers) can leave a stretch with no record at
            // or past `offset`.
            break;
        }
    }
    Ok(())
}
