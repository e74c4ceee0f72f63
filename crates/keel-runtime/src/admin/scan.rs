//! Reading a whole stretch of a partition through the administrative port, record by
//! record: what the dead-letter tools and their audit log do to find every dead letter or
//! audit entry, and the console's event browser to search, on any transport.
//!
//! Not here: what a record means (the callers decide, record by record).

use keel_core::{AdminTransport, PartitionOffsets, Record, TransportError};

/// Bytes asked of the transport per read while scanning a partition.
const SCAN_READ_BYTES: usize = 1024 * 1024;

/// Calls `f` with every record of `stored.partition` of `topic` in `from..to` (clamped to
/// the stored range, as `AdminTransport::partition_offsets` gave it), in offset order, until
/// `f` returns `Ok(false)`.
pub async fn scan<E: From<TransportError>>(
    admin: &dyn AdminTransport,
    topic: &str,
    stored: &PartitionOffsets,
    from: u64,
    to: u64,
    mut f: impl FnMut(Record) -> Result<bool, E>,
) -> Result<(), E> {
    let partition = stored.partition;
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
