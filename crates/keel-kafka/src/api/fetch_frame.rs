//! A Fetch response frame whose record sets are not copied into it.
//!
//! A Fetch answer is mostly record bytes read from the log (up to `max.partition.fetch.bytes`
//! per partition, 1 MiB by default). Encoded as other responses are, every byte was copied
//! once more into the frame before the socket took it. Here the frame is encoded with a short
//! marker in place of each large record set, the markers are found in the (small) encoded
//! frame, and the frame is cut there: the pieces between markers, each record set's length
//! prefix, and the record sets themselves as they were read, written one after another.
//! kafka-protocol still encodes every field; only the record sets' bytes and length prefixes
//! are put in by hand, at the places its encoder chose.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};

use crate::codec::encode_response;

/// Record sets shorter than this are copied into the frame as usual: a piece of its own costs
/// more than the copy.
const SPLICED_RECORDS_BYTES_MIN: usize = 16 * 1024;

/// Bytes of a marker: a random prefix per frame, then the record set's index.
const MARKER_BYTES: usize = 16;

/// From this version on a record set is a compact (unsigned varint length + 1) byte string,
/// before it an `INT32`-length one.
const FLEXIBLE_FROM: i16 = 12;

/// An encoded Fetch response: its first piece (length prefix, header, fields up to the first
/// spliced record set) and the pieces that follow it, in order.
#[derive(Debug)]
pub(crate) struct FetchFrame {
    pub(crate) head: BytesMut,
    pub(crate) rest: Vec<Bytes>,
}

/// Encodes `response` for `version`, its record sets of [`SPLICED_RECORDS_BYTES_MIN`] or more
/// left out of the frame's buffer and written from their own.
pub(crate) fn encode(
    version: i16,
    correlation_id: i32,
    mut response: FetchResponse,
) -> anyhow::Result<FetchFrame> {
    // Most answers (a long poll's empty one, a few small batches) have nothing to splice:
    // encode them as any response, without drawing a marker.
    let splices = response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .any(|partition| {
            partition
                .records
                .as_ref()
                .is_some_and(|records| records.len() >= SPLICED_RECORDS_BYTES_MIN)
        });
    if !splices {
        return Ok(FetchFrame {
            head: encode_response(ApiKey::Fetch, version, correlation_id, &response)?,
            rest: Vec::new(),
        });
    }
    let prefix: [u8; MARKER_BYTES - 4] = uuid::Uuid::new_v4().as_bytes()[..MARKER_BYTES - 4]
        .try_into()
        .expect("a UUID has 16 bytes");
    let mut spliced = Vec::new();
    for partition in response
        .responses
        .iter_mut()
        .flat_map(|topic| topic.partitions.iter_mut())
    {
        let Some(records) = &mut partition.records else {
            continue;
        };
        if records.len() < SPLICED_RECORDS_BYTES_MIN {
            continue;
        }
        let index = u32::try_from(spliced.len()).expect("fewer than 2^32 partitions");
        let marker = Bytes::from([&prefix[..], &index.to_be_bytes()].concat());
        spliced.push(std::mem::replace(records, marker));
    }
    let mut frame = encode_response(ApiKey::Fetch, version, correlation_id, &response)?;
    let marker_prefix = length_prefix(version, MARKER_BYTES);
    let grown: usize = spliced
        .iter()
        .map(|records| length_prefix(version, records.len()).len() + records.len())
        .sum::<usize>()
        - spliced.len() * (marker_prefix.len() + MARKER_BYTES);
    let length = i32::try_from(frame.len() - 4 + grown)
        .map_err(|_| anyhow::anyhow!("a Fetch response over 2 GiB"))?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    let mut rest = Vec::with_capacity(spliced.len() * 3);
    let mut head = None;
    let mut tail = frame;
    for (index, records) in (0u32..).zip(spliced) {
        let marker = [&prefix[..], &index.to_be_bytes()].concat();
        let at = tail
            .windows(MARKER_BYTES)
            .position(|window| window == marker)
            .filter(|&at| {
                at >= marker_prefix.len() && tail[at - marker_prefix.len()..at] == marker_prefix
            })
            .ok_or_else(|| {
                anyhow::anyhow!("record set {index} not found in the encoded Fetch response")
            })?;
        let before = tail.split_to(at - marker_prefix.len());
        let _ = tail.split_to(marker_prefix.len() + MARKER_BYTES);
        match head {
            None => head = Some(before),
            Some(_) => rest.push(before.freeze()),
        }
        rest.push(Bytes::from(length_prefix(version, records.len())));
        rest.push(records);
    }
    rest.push(tail.freeze());
    Ok(FetchFrame {
        head: head.expect("at least one record set was spliced"),
        rest,
    })
}

/// The length prefix kafka-protocol writes before a record set of `len` bytes: an unsigned
/// varint of `len + 1` (protobuf's varint, the same LEB128) from [`FLEXIBLE_FROM`], an
/// `INT32` before.
fn length_prefix(version: i16, len: usize) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(5);
    if version >= FLEXIBLE_FROM {
        prost::encoding::encode_varint(len as u64 + 1, &mut prefix);
    } else {
        prefix.put_i32(len as i32);
    }
    prefix
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    /// A response of three partitions: a large record set, a small one, another large one.
    fn response() -> FetchResponse {
        let records = |len: usize, fill: u8| Some(Bytes::from(vec![fill; len]));
        let partitions = vec![
            PartitionData::default()
                .with_partition_index(0)
                .with_records(records(70_000, 1)),
            PartitionData::default()
                .with_partition_index(1)
                .with_records(records(100, 2)),
            PartitionData::default()
                .with_partition_index(2)
                .with_records(records(300_000, 3)),
            PartitionData::default()
                .with_partition_index(3)
                .with_records(None),
        ];
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(partitions),
        ])
    }

    #[test]
    fn pieces_join_to_the_frame_encoded_whole_at_every_version() {
        for version in [4, 11, 12, 13, 16] {
            let whole = encode_response(ApiKey::Fetch, version, 7, &response()).unwrap();
            let frame = encode(version, 7, response()).unwrap();
            // Each spliced set's length prefix and bytes, the fields between the two sets,
            // the fields after the last.
            assert_eq!(
                frame.rest.len(),
                2 * 2 + 2,
                "v{version}: two spliced record sets"
            );
            let mut joined = frame.head.to_vec();
            frame
                .rest
                .iter()
                .for_each(|piece| joined.extend_from_slice(piece));
            assert_eq!(joined, whole.to_vec(), "v{version}");
        }
    }

    #[test]
    fn a_response_without_large_record_sets_is_one_piece() {
        let small = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![
                PartitionData::default().with_records(Some(Bytes::from_static(b"tiny"))),
            ]),
        ]);
        let whole = encode_response(ApiKey::Fetch, 12, 1, &small).unwrap();
        let frame = encode(12, 1, small).unwrap();
        assert!(frame.rest.is_empty());
        assert_eq!(frame.head, whole);
    }
}
