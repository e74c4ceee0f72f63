//! Decompression of stored batches written by other clients (gzip, snappy, lz4, zstd), with
//! the output of every codec capped before it is allocated.
//!
//! keel-log writes uncompressed batches but must read whatever a Kafka producer sent. gzip comes
//! from `flate2`, lz4 (the LZ4 frame format Kafka uses) from `lz4_flex`, zstd from `ruzstd` and
//! snappy from `snap`, all pure Rust, so no C library is built. Compression on write is not
//! offered.
//!
//! The streaming codecs (gzip, lz4, zstd) grow their output only as they really produce bytes,
//! stopped at [`DECOMPRESSED_BATCH_BYTES_MAX`]. Snappy announces each block's decompressed
//! length up front and a decoder allocates it before decoding, so a 100-byte batch could ask for
//! 4 GiB: [`snappy_claims`] checks every announced length against that cap and against the
//! most a snappy block can expand ([`SNAPPY_EXPANSION_MAX`]) before anything is allocated. The
//! produce path runs the same check ([`check_compressed`]) so such a batch is refused before it
//! is stored.

use std::io::Read;

use bytes::Bytes;
use kafka_protocol::records::Compression;

use crate::batch::BatchError;
use crate::limits::{DECOMPRESSED_BATCH_BYTES_MAX, SNAPPY_EXPANSION_MAX};

/// The stream header snappy-java (and so the Java client) writes before its blocks; raw
/// snappy without it is accepted too, as Kafka does.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Decompresses the records section of a batch. Output is capped at
/// [`DECOMPRESSED_BATCH_BYTES_MAX`] so a small hostile batch cannot exhaust memory.
pub(crate) fn decompress(compressed: &Bytes, compression: Compression) -> anyhow::Result<Bytes> {
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
        Compression::Snappy => snappy(compressed),
        Compression::Lz4 => limited(&mut lz4_flex::frame::FrameDecoder::new(&compressed[..])),
        Compression::Zstd => {
            let mut decoder = ruzstd::decoding::StreamingDecoder::new(&compressed[..])
                .map_err(|error| anyhow::anyhow!("zstd: {error}"))?;
            limited(&mut decoder)
        }
    }
}

/// Checks what can be checked of a compressed records section without decompressing it: for
/// snappy, every block's announced length ([`snappy_claims`]). The other codecs announce
/// nothing a decoder trusts, and their output is capped as it is produced.
pub(crate) fn check_compressed(records: &[u8], compression_id: u8) -> Result<(), BatchError> {
    if compression_id == 2 {
        snappy_claims(records).map_err(BatchError::Compression)?;
    }
    Ok(())
}

/// The blocks of a snappy records section (xerial-framed or raw) with their announced
/// decompressed lengths, each checked against [`SNAPPY_EXPANSION_MAX`] times its own size and
/// all together against [`DECOMPRESSED_BATCH_BYTES_MAX`].
fn snappy_claims(records: &[u8]) -> Result<Vec<(&[u8], usize)>, String> {
    let mut blocks = Vec::new();
    match records.strip_prefix(&XERIAL_MAGIC[..]) {
        None => blocks.push(records),
        Some(mut framed) => {
            while !framed.is_empty() {
                let (length, rest) = framed
                    .split_first_chunk::<4>()
                    .ok_or("snappy block length truncated")?;
                let length = u32::from_be_bytes(*length) as usize;
                if length > rest.len() {
                    return Err(format!(
                        "snappy block of {length} bytes, {} present",
                        rest.len()
                    ));
                }
                let (block, rest) = rest.split_at(length);
                blocks.push(block);
                framed = rest;
            }
        }
    }
    let mut total = 0usize;
    let mut claims = Vec::with_capacity(blocks.len());
    for block in blocks {
        let claimed = snap::raw::decompress_len(block)
            .map_err(|error| format!("snappy block header: {error}"))?;
        if claimed > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(format!(
                "snappy block of {} bytes claims {claimed} bytes decompressed, more than \
                 snappy can expand ({SNAPPY_EXPANSION_MAX}x)",
                block.len()
            ));
        }
        total = total.saturating_add(claimed);
        if total > DECOMPRESSED_BATCH_BYTES_MAX {
            return Err(format!(
                "snappy batch claims more than {DECOMPRESSED_BATCH_BYTES_MAX} bytes decompressed"
            ));
        }
        claims.push((block, claimed));
    }
    Ok(claims)
}

/// Decompresses snappy after [`snappy_claims`] bounded what it may allocate.
fn snappy(compressed: &[u8]) -> anyhow::Result<Bytes> {
    let claims = snappy_claims(compressed).map_err(anyhow::Error::msg)?;
    let mut out = vec![0u8; claims.iter().map(|(_, claimed)| claimed).sum()];
    let mut at = 0;
    let mut decoder = snap::raw::Decoder::new();
    for (block, claimed) in claims {
        let written = decoder.decompress(block, &mut out[at..at + claimed])?;
        anyhow::ensure!(
            written == claimed,
            "snappy block decompressed to {written} bytes, announced {claimed}"
        );
        at += claimed;
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xerial(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        for block in blocks {
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(block);
        }
        out
    }

    /// A raw snappy block that announces `claimed` bytes and holds one literal byte.
    fn lying_block(claimed: u64) -> Vec<u8> {
        let mut block = Vec::new();
        let mut n = claimed;
        while n >= 0x80 {
            block.push((n as u8) | 0x80);
            n >>= 7;
        }
        block.push(n as u8);
        block.extend_from_slice(&[0x00, b'x']);
        block
    }

    #[test]
    fn raw_and_xerial_snappy_round_trip() {
        let data = b"keel keel keel keel keel keel keel keel".repeat(100);
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let framed = xerial(&[block.clone(), block.clone()]);
        assert_eq!(&snappy(&block).unwrap()[..], &data[..]);
        assert_eq!(snappy(&framed).unwrap().len(), 2 * data.len());
    }

    #[test]
    fn a_snappy_bomb_is_refused_before_anything_is_allocated() {
        let cases: &[(&str, Vec<u8>, &str)] = &[
            (
                "4 GiB raw",
                lying_block(u32::MAX as u64),
                "more than snappy can expand",
            ),
            (
                "4 GiB framed",
                xerial(&[lying_block(u32::MAX as u64)]),
                "more than snappy can expand",
            ),
            (
                "many plausible blocks",
                xerial(&vec![lying_block(60); 2 << 20]),
                "more than",
            ),
            (
                "truncated frame",
                XERIAL_MAGIC[..]
                    .iter()
                    .chain(&[0, 0, 0, 9, 1])
                    .copied()
                    .collect(),
                "present",
            ),
        ];
        for (what, bytes, reason) in cases {
            let error = snappy_claims(bytes).unwrap_err();
            assert!(error.contains(reason), "{what}: {error}");
            assert!(check_compressed(bytes, 2).is_err(), "{what}");
            assert!(decompress(&Bytes::from(bytes.clone()), Compression::Snappy).is_err());
        }
    }

    #[test]
    fn a_block_that_lies_within_the_expansion_bound_fails_to_decode() {
        let error = snappy(&lying_block(40)).unwrap_err().to_string();
        assert!(!error.is_empty());
    }
}
