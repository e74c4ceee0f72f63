//! Confluent's wire format for a record value serialized against a registered schema: a
//! magic byte `0`, the schema id as a 4-byte big-endian integer, then — for Protobuf only —
//! the message indexes (which message of the `.proto` file, as zigzag varints: a count, then
//! the path; the single byte `0` for the first message), then the payload. Every Confluent
//! serializer (Java, Python, Go, .NET) writes this; so does [`SchemaCodec`](crate::SchemaCodec).
//!
//! Not here: encoding the payload itself (`avro.rs`, `protobuf.rs`, JSON).

/// The first byte of every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// Most message indexes a framed Protobuf value may carry (nesting of the message in its
/// file); a longer list is refused rather than allocated.
pub const MESSAGE_INDEXES_MAX: usize = 64;

/// A framed value taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The schema id.
    pub id: u32,
    /// The payload after the header.
    pub payload: &'a [u8],
}

/// Why bytes are not a framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer than the five header bytes.
    #[error("{0} bytes, shorter than the 5-byte header (magic byte and schema id)")]
    TooShort(usize),
    /// The first byte is not [`MAGIC_BYTE`].
    #[error("unknown magic byte {0}: not Confluent's wire format")]
    UnknownMagicByte(u8),
    /// The Protobuf message indexes are malformed or too many.
    #[error("malformed message indexes: {0}")]
    MessageIndexes(String),
}

/// Frames `payload` with `id`.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Takes a framed value apart.
pub fn unframe(bytes: &[u8]) -> Result<Framed<'_>, WireError> {
    let Some((header, payload)) = bytes.split_first_chunk::<5>() else {
        return Err(WireError::TooShort(bytes.len()));
    };
    if header[0] != MAGIC_BYTE {
        return Err(WireError::UnknownMagicByte(header[0]));
    }
    let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Ok(Framed { id, payload })
}

/// Appends Protobuf message indexes: `[0]` as the single byte `0`, as Confluent does,
/// else the count and each index as zigzag varints.
pub fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(i64::try_from(indexes.len()).unwrap_or(i64::MAX), out);
    for index in indexes {
        write_zigzag(i64::from(*index), out);
    }
}

/// Reads Protobuf message indexes from the front of `payload`; the indexes (`[0]` for the
/// single byte `0`) and the rest.
pub fn read_message_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8]), WireError> {
    let (count, mut rest) = read_zigzag(payload)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|count| *count <= MESSAGE_INDEXES_MAX)
        .ok_or_else(|| {
            WireError::MessageIndexes(format!(
                "{count} indexes, expected 1 to {MESSAGE_INDEXES_MAX}"
            ))
        })?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let (index, after) = read_zigzag(rest)?;
        let index = i32::try_from(index)
            .ok()
            .filter(|index| *index >= 0)
            .ok_or_else(|| WireError::MessageIndexes(format!("index {index} out of range")))?;
        indexes.push(index);
        rest = after;
    }
    Ok((indexes, rest))
}

fn write_zigzag(value: i64, out: &mut Vec<u8>) {
    let mut bits = ((value << 1) ^ (value >> 63)) as u64;
    while bits >= 0x80 {
        out.push((bits as u8) | 0x80);
        bits >>= 7;
    }
    out.push(bits as u8);
}

fn read_zigzag(bytes: &[u8]) -> Result<(i64, &[u8]), WireError> {
    let mut bits: u64 = 0;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        bits |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let value = ((bits >> 1) as i64) ^ -((bits & 1) as i64);
            return Ok((value, &bytes[index + 1..]));
        }
    }
    Err(WireError::MessageIndexes("truncated varint".into()))
}
