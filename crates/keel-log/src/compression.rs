//! Decompression of stored batches written by other clients (gzip, snappy, lz4, zstd).
//!
//! keel-log writes uncompressed batches but must read whatever a Kafka producer sent. Snappy
//! (with the xerial framing Java clients use) comes from `kafka-protocol`'s codec; gzip from
//! `flate2`, lz4 (the LZ4 frame format Kafka uses) from `lz4_flex` and zstd from `ruzstd`, all
//! pure Rust, so no C library is built, and all but snappy capped in output size. Compression on write is not offered.

use std::io::Read;

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Snappy};
use kafka_protocol::records::Compression;

use crate::limits::DECOMPRESSED_BATCH_BYTES_MAX;

/// Decompresses the records section of a batch. Output is capped at
/// [`DECOMPRESSED_BATCH_BYTES_MAX`] so a small hostile batch cannot exhaust memory.
pub(crate) fn decompress(
    compressed: &mut Bytes,
    compression: Compression,
) -> anyhow::Result<Bytes> {
    let limited = |reader: &mut dyn Read| -> anyhow::Result<Bytes> {
        let mut out = Vec::new();
        reader
            .take(DECOMPRESSED_BATCH_BYTES_MAX as u64 + 1)
            .read_to_end(&mut out)?;
        anyhow::ensure!(
            out.len() <= DECOMPRESSED_BATCH_BYTES_MAX,
            "decompressed batch exceeds {DECOMPRESSED_BATCH_BYTES_MAX} bytes"
        );
        Ok(out.into())
    };
    match compression {
        Compression::None => Ok(compressed.clone()),
        Compression::Gzip => limited(&mut flate2::read::MultiGzDecoder::new(&compressed[..])),
        Compression::Snappy => Snappy::decompress(compressed, |buf: &mut Bytes| Ok(buf.clone())),
        Compression::Lz4 => limited(&mut lz4_flex::frame::FrameDecoder::new(&compressed[..])),
        Compression::Zstd => {
            let mut decoder = ruzstd::decoding::StreamingDecoder::new(&compressed[..])
                .map_err(|error| anyhow::anyhow!("zstd: {error}"))?;
            limited(&mut decoder)
        }
    }
}
