//! A pre-decode walk of every served request body that checks each array count against the
//! bytes left, before `kafka-protocol` decodes it.
//!
//! Why: `kafka-protocol` 0.18 reserves `count` elements of an array up front
//! (`Vec::with_capacity`) from the count on the wire, so a 20-byte request claiming 2^31
//! topics asks for hundreds of gigabytes and aborts the whole process — every client's broker
//! — instead of failing to decode (upstream pull requests kafka-protocol-rs#152 and #200,
//! unmerged when this was written). Every array element takes at least one byte, so a count
//! larger than the bytes left can never be valid: the walk refuses it and the request is
//! treated as malformed. The walk follows each served request's schema at its version (field
//! order as in Kafka's message definitions); it reads no values other than lengths and counts.

use kafka_protocol::messages::ApiKey;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShapeError {
    /// The body ends inside a field.
    #[error("body ends inside a field ({needed} bytes needed, {left} left)")]
    Truncated { needed: usize, left: usize },
    /// An array claims more elements than there are bytes left.
    #[error("array of {count} elements cannot fit in the {left} bytes left")]
    ArrayTooLong { count: u64, left: usize },
    /// A length or count is negative (other than null) or a varint is too long.
    #[error("invalid length or count")]
    BadLength,
}

type Shape<T = ()> = Result<T, ShapeError>;

/// Checks the body of a served request, the group keys included (the group hook decodes
/// them with the same crate). Keys whose bodies have no arrays (ApiVersions, InitProducerId,
/// AddOffsetsToTxn, EndTxn, DescribeCluster, Heartbeat) pass unchecked.
pub(crate) fn check(api_key: ApiKey, version: i16, body: &[u8]) -> Shape {
    let mut w = Walk {
        bytes: body,
        flexible: false,
    };
    match api_key {
        ApiKey::FindCoordinator => find_coordinator(&mut w, version),
        ApiKey::JoinGroup => join_group(&mut w, version),
        ApiKey::SyncGroup => sync_group(&mut w, version),
        ApiKey::LeaveGroup => leave_group(&mut w, version),
        ApiKey::OffsetCommit => offset_commit(&mut w, version),
        ApiKey::OffsetFetch => offset_fetch(&mut w, version),
        ApiKey::ListGroups => list_groups(&mut w, version),
        ApiKey::DescribeGroups => describe_groups(&mut w, version),
        ApiKey::Produce => produce(&mut w, version),
        ApiKey::Fetch => fetch(&mut w, version),
        ApiKey::ListOffsets => list_offsets(&mut w, version),
        ApiKey::Metadata => metadata(&mut w, version),
        ApiKey::CreateTopics => create_topics(&mut w, version),
        ApiKey::DeleteTopics => delete_topics(&mut w, version),
        ApiKey::DeleteRecords => delete_records(&mut w, version),
        ApiKey::DescribeConfigs => describe_configs(&mut w, version),
        ApiKey::AlterConfigs => alter_configs(&mut w, version, false),
        ApiKey::IncrementalAlterConfigs => alter_configs(&mut w, version, true),
        ApiKey::DescribeLogDirs => describe_log_dirs(&mut w, version),
        ApiKey::CreatePartitions => create_partitions(&mut w, version),
        ApiKey::DeleteGroups => delete_groups(&mut w, version),
        ApiKey::OffsetDelete => offset_delete(&mut w),
        ApiKey::CreateAcls => create_acls(&mut w, version),
        ApiKey::DescribeUserScramCredentials => describe_user_scram_credentials(&mut w),
        ApiKey::AlterUserScramCredentials => alter_user_scram_credentials(&mut w),
        ApiKey::DeleteAcls => delete_acls(&mut w, version),
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn(&mut w, version),
        ApiKey::TxnOffsetCommit => txn_offset_commit(&mut w, version),
        _ => Ok(()),
    }
}

fn produce(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 9;
    w.string()?; // transactional_id
    w.skip(2 + 4)?; // acks, timeout_ms
    w.array(|w| {
        w.string()?; // name
        w.array(|w| {
            w.skip(4)?; // index
            w.bytes()?; // records
            w.tags()
        })?;
        w.tags()
    })?;
    w.tags()
}

fn delete_records(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| {
        w.string()?; // name
        w.array(|w| {
            w.skip(4 + 8)?; // partition_index, offset
            w.tags()
        })?;
        w.tags()
    })?;
    w.skip(4)?; // timeout_ms
    w.tags()
}

fn fetch(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 12;
    // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level
    w.skip(4 + 4 + 4 + 4 + 1)?;
    if v >= 7 {
        w.skip(4 + 4)?; // session_id, session_epoch
    }
    w.array(|w| {
        w.string()?; // topic
        w.array(|w| {
            w.skip(4)?; // partition
            if v >= 9 {
                w.skip(4)?; // current_leader_epoch
            }
            w.skip(8)?; // fetch_offset
            if v >= 12 {
                w.skip(4)?; // last_fetched_epoch
            }
            if v >= 5 {
                w.skip(8)?; // log_start_offset
            }
            w.skip(4)?; // partition_max_bytes
            w.tags()
        })?;
        w.tags()
    })?;
    if v >= 7 {
        w.array(|w| {
            w.string()?; // topic
            w.array(|w| w.skip(4))?; // partitions
            w.tags()
        })?;
    }
    if v >= 11 {
        w.string()?; // rack_id
    }
    w.tags()
}

fn list_offsets(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 6;
    w.skip(4)?; // replica_id
    if v >= 2 {
        w.skip(1)?; // isolation_level
    }
    w.array(|w| {
        w.string()?; // name
        w.array(|w| {
            w.skip(4)?; // partition_index
            if v >= 4 {
                w.skip(4)?; // current_leader_epoch
            }
            w.skip(8)?; // timestamp
            w.tags()
        })?;
        w.tags()
    })?;
    if v >= 10 {
        w.skip(4)?; // timeout_ms
    }
    w.tags()
}

fn metadata(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 9;
    w.array(|w| {
        if v >= 10 {
            w.skip(16)?; // topic_id
        }
        w.string()?; // name
        w.tags()
    })?;
    if v >= 4 {
        w.skip(1)?; // allow_auto_topic_creation
    }
    if (8..=10).contains(&v) {
        w.skip(1)?; // include_cluster_authorized_operations
    }
    if v >= 8 {
        w.skip(1)?; // include_topic_authorized_operations
    }
    w.tags()
}

fn create_topics(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 5;
    w.array(|w| {
        w.string()?; // name
        w.skip(4 + 2)?; // num_partitions, replication_factor
        w.array(|w| {
            w.skip(4)?; // partition_index
            w.array(|w| w.skip(4))?; // broker_ids
            w.tags()
        })?;
        w.array(|w| {
            w.string()?; // name
            w.string()?; // value
            w.tags()
        })?;
        w.tags()
    })?;
    w.skip(4 + 1)?; // timeout_ms, validate_only
    w.tags()
}

fn delete_topics(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 4;
    w.array(|w| w.string())?; // topic_names (served versions are ≤ 5)
    w.skip(4)?; // timeout_ms
    w.tags()
}

fn describe_configs(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 4;
    w.array(|w| {
        w.skip(1)?; // resource_type
        w.string()?; // resource_name
        w.array(|w| w.string())?; // configuration_keys
        w.tags()
    })?;
    w.skip(1)?; // include_synonyms
    if v >= 3 {
        w.skip(1)?; // include_documentation
    }
    w.tags()
}

/// AlterConfigs (flexible from v2) and IncrementalAlterConfigs (from v1, with an operation
/// byte per setting): the same shape otherwise.
fn alter_configs(w: &mut Walk, v: i16, incremental: bool) -> Shape {
    w.flexible = if incremental { v >= 1 } else { v >= 2 };
    w.array(|w| {
        w.skip(1)?; // resource_type
        w.string()?; // resource_name
        w.array(|w| {
            w.string()?; // name
            if incremental {
                w.skip(1)?; // config_operation
            }
            w.string()?; // value (nullable)
            w.tags()
        })?;
        w.tags()
    })?;
    w.skip(1)?; // validate_only
    w.tags()
}

fn create_partitions(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| {
        w.string()?; // name
        w.skip(4)?; // count
        w.array(|w| {
            w.array(|w| w.skip(4))?; // broker_ids
            w.tags()
        })?; // assignments (nullable)
        w.tags()
    })?;
    w.skip(4 + 1)?; // timeout_ms, validate_only
    w.tags()
}

fn create_acls(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| {
        w.skip(1)?; // resource_type
        w.string()?; // resource_name
        w.skip(1)?; // resource_pattern_type (v1+, the oldest served)
        w.string()?; // principal
        w.string()?; // host
        w.skip(1 + 1)?; // operation, permission_type
        w.tags()
    })?;
    w.tags()
}

fn delete_acls(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| {
        w.skip(1)?; // resource_type_filter
        w.string()?; // resource_name_filter (nullable)
        w.skip(1)?; // pattern_type_filter (v1+, the oldest served)
        w.string()?; // principal_filter (nullable)
        w.string()?; // host_filter (nullable)
        w.skip(1 + 1)?; // operation, permission_type
        w.tags()
    })?;
    w.tags()
}

fn describe_user_scram_credentials(w: &mut Walk) -> Shape {
    w.flexible = true;
    w.array(|w| {
        w.string()?; // name
        w.tags()
    })?; // users (nullable)
    w.tags()
}

fn alter_user_scram_credentials(w: &mut Walk) -> Shape {
    w.flexible = true;
    w.array(|w| {
        w.string()?; // name
        w.skip(1)?; // mechanism
        w.tags()
    })?; // deletions
    w.array(|w| {
        w.string()?; // name
        w.skip(1 + 4)?; // mechanism, iterations
        w.bytes()?; // salt
        w.bytes()?; // salted_password
        w.tags()
    })?; // upsertions
    w.tags()
}

fn describe_log_dirs(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| {
        w.string()?; // topic
        w.array(|w| w.skip(4))?; // partitions
        w.tags()
    })?; // topics (null: every topic)
    w.tags()
}

fn delete_groups(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 2;
    w.array(|w| w.string())?; // groups_names
    w.tags()
}

/// OffsetDelete has one version, 0, which is not flexible.
fn offset_delete(w: &mut Walk) -> Shape {
    w.string()?; // group_id
    w.array(|w| {
        w.string()?; // name
        w.array(|w| w.skip(4)) // partitions: partition_index
    })
}

fn find_coordinator(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 3;
    if v <= 3 {
        w.string()?; // key
    }
    if v >= 1 {
        w.skip(1)?; // key_type
    }
    if v >= 4 {
        w.array(|w| w.string())?; // coordinator_keys
    }
    w.tags()
}

fn join_group(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 6;
    w.string()?; // group_id
    w.skip(4)?; // session_timeout_ms
    if v >= 1 {
        w.skip(4)?; // rebalance_timeout_ms
    }
    w.string()?; // member_id
    if v >= 5 {
        w.string()?; // group_instance_id
    }
    w.string()?; // protocol_type
    w.array(|w| {
        w.string()?; // name
        w.bytes()?; // metadata
        w.tags()
    })?;
    if v >= 8 {
        w.string()?; // reason
    }
    w.tags()
}

fn sync_group(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 4;
    w.string()?; // group_id
    w.skip(4)?; // generation_id
    w.string()?; // member_id
    if v >= 3 {
        w.string()?; // group_instance_id
    }
    if v >= 5 {
        w.string()?; // protocol_type
        w.string()?; // protocol_name
    }
    w.array(|w| {
        w.string()?; // member_id
        w.bytes()?; // assignment
        w.tags()
    })?;
    w.tags()
}

fn leave_group(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 4;
    w.string()?; // group_id
    if v <= 2 {
        w.string()?; // member_id
    } else {
        w.array(|w| {
            w.string()?; // member_id
            w.string()?; // group_instance_id
            if v >= 5 {
                w.string()?; // reason
            }
            w.tags()
        })?;
    }
    w.tags()
}

fn offset_commit(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 8;
    w.string()?; // group_id
    w.skip(4)?; // generation_id_or_member_epoch
    w.string()?; // member_id
    if v >= 7 {
        w.string()?; // group_instance_id
    }
    if v <= 4 {
        w.skip(8)?; // retention_time_ms
    }
    committed_topics(w, v >= 6)?;
    w.tags()
}

/// The topics of an OffsetCommit or a TxnOffsetCommit: each partition's offset, its leader
/// epoch when the version carries one, and its metadata.
fn committed_topics(w: &mut Walk, leader_epoch: bool) -> Shape {
    w.array(|w| {
        w.string()?; // name
        w.array(|w| {
            w.skip(4 + 8)?; // partition_index, committed_offset
            if leader_epoch {
                w.skip(4)?; // committed_leader_epoch
            }
            w.string()?; // committed_metadata
            w.tags()
        })?;
        w.tags()
    })
}

/// v0–3, the client versions served.
fn add_partitions_to_txn(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 3;
    w.string()?; // transactional_id
    w.skip(8 + 2)?; // producer_id, producer_epoch
    w.array(|w| {
        w.string()?; // name
        w.array(|w| w.skip(4))?; // partitions
        w.tags()
    })?;
    w.tags()
}

fn txn_offset_commit(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 3;
    w.string()?; // transactional_id
    w.string()?; // group_id
    w.skip(8 + 2)?; // producer_id, producer_epoch
    if v >= 3 {
        w.skip(4)?; // generation_id
        w.string()?; // member_id
        w.string()?; // group_instance_id
    }
    committed_topics(w, v >= 2)?;
    w.tags()
}

fn offset_fetch(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 6;
    let topics = |w: &mut Walk| {
        w.array(|w| {
            w.string()?; // name
            w.array(|w| w.skip(4))?; // partition_indexes
            w.tags()
        })
    };
    if v <= 7 {
        w.string()?; // group_id
        topics(w)?;
    } else {
        w.array(|w| {
            w.string()?; // group_id
            if v >= 9 {
                w.string()?; // member_id
                w.skip(4)?; // member_epoch
            }
            topics(w)?;
            w.tags()
        })?;
    }
    if v >= 7 {
        w.skip(1)?; // require_stable
    }
    w.tags()
}

fn list_groups(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 3;
    if v >= 4 {
        w.array(|w| w.string())?; // states_filter
    }
    if v >= 5 {
        w.array(|w| w.string())?; // types_filter
    }
    w.tags()
}

fn describe_groups(w: &mut Walk, v: i16) -> Shape {
    w.flexible = v >= 5;
    w.array(|w| w.string())?; // groups
    if v >= 3 {
        w.skip(1)?; // include_authorized_operations
    }
    w.tags()
}

/// A cursor over a body; `flexible` selects compact lengths and tagged fields (KIP-482).
struct Walk<'a> {
    bytes: &'a [u8],
    flexible: bool,
}

impl Walk<'_> {
    fn skip(&mut self, n: usize) -> Shape {
        if n > self.bytes.len() {
            return Err(ShapeError::Truncated {
                needed: n,
                left: self.bytes.len(),
            });
        }
        self.bytes = &self.bytes[n..];
        Ok(())
    }

    fn int(&mut self, n: usize) -> Shape<i64> {
        let start = self.bytes;
        self.skip(n)?;
        Ok(start[..n]
            .iter()
            .fold(0i64, |acc, &b| (acc << 8) | i64::from(b))
            // Sign-extend from n bytes.
            .wrapping_shl(64 - 8 * n as u32)
            >> (64 - 8 * n as u32))
    }

    fn unsigned_varint(&mut self) -> Shape<u64> {
        let mut value = 0u64;
        for i in 0..5 {
            let (&byte, rest) = self
                .bytes
                .split_first()
                .ok_or(ShapeError::Truncated { needed: 1, left: 0 })?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ShapeError::BadLength)
    }

    /// A length: compact (varint of length + 1, 0 = null) or fixed-width signed (-1 = null).
    /// Returns `None` for null.
    fn length(&mut self, width: usize) -> Shape<Option<u64>> {
        if self.flexible {
            return Ok(self.unsigned_varint()?.checked_sub(1));
        }
        match self.int(width)? {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as u64)),
            _ => Err(ShapeError::BadLength),
        }
    }

    fn string(&mut self) -> Shape {
        let length = self.length(2)?.unwrap_or(0);
        self.skip(usize::try_from(length).map_err(|_| ShapeError::BadLength)?)
    }

    fn bytes(&mut self) -> Shape {
        let length = self.length(4)?.unwrap_or(0);
        self.skip(usize::try_from(length).map_err(|_| ShapeError::BadLength)?)
    }

    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Shape) -> Shape {
        let Some(count) = self.length(4)? else {
            return Ok(());
        };
        if count > self.bytes.len() as u64 {
            return Err(ShapeError::ArrayTooLong {
                count,
                left: self.bytes.len(),
            });
        }
        for _ in 0..count {
            element(self)?;
        }
        Ok(())
    }

    fn tags(&mut self) -> Shape {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint()?;
        if count > self.bytes.len() as u64 {
            return Err(ShapeError::ArrayTooLong {
                count,
                left: self.bytes.len(),
            });
        }
        for _ in 0..count {
            self.unsigned_varint()?; // tag
            let size = self.unsigned_varint()?;
            self.skip(usize::try_from(size).map_err(|_| ShapeError::BadLength)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_case(api_key: ApiKey, version: i16, body: &[u8], expected: Shape) {
        assert_eq!(
            check(api_key, version, body),
            expected,
            "{api_key:?} v{version} {body:?}"
        );
    }

    #[test]
    fn counts_larger_than_the_bytes_left_are_refused() {
        let huge = ShapeError::ArrayTooLong {
            count: i32::MAX as u64,
            left: 0,
        };
        check_case(
            ApiKey::Metadata,
            1,
            &[0x7f, 0xff, 0xff, 0xff],
            Err(huge.clone()),
        );
        check_case(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xff], Ok(()));
        check_case(ApiKey::Metadata, 1, &[0, 0, 0, 1, 0, 1, b'a'], Ok(()));
        check_case(
            ApiKey::Metadata,
            1,
            &[0, 0, 0, 2, 0, 1, b'a'],
            Err(ShapeError::Truncated { needed: 2, left: 0 }),
        );
        // Compact: varint 0xffffffff = count 2^32 - 2.
        check_case(
            ApiKey::Metadata,
            9,
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            Err(ShapeError::ArrayTooLong {
                count: (1 << 32) - 2,
                left: 0,
            }),
        );
        check_case(ApiKey::Metadata, 9, &[0x00, 1, 0, 0, 0], Ok(()));
        // Produce v3: null transactional id, acks, timeout, then a huge topic array.
        let mut produce = vec![0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30];
        produce.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        check_case(ApiKey::Produce, 3, &produce, Err(huge));
        // JoinGroup v0: group "g", session timeout, member "", protocol type "c", then a
        // protocols array claiming 2^31 - 1 entries.
        let mut join = vec![0, 1, b'g', 0, 0, 0x75, 0x30, 0, 0, 0, 1, b'c'];
        join.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        check_case(
            ApiKey::JoinGroup,
            0,
            &join,
            Err(ShapeError::ArrayTooLong {
                count: i32::MAX as u64,
                left: 0,
            }),
        );
        // OffsetFetch v8: a compact groups array claiming 2^28 - 2 entries.
        check_case(
            ApiKey::OffsetFetch,
            8,
            &[0xff, 0xff, 0xff, 0x7f],
            Err(ShapeError::ArrayTooLong {
                count: (1 << 28) - 2,
                left: 0,
            }),
        );
        // IncrementalAlterConfigs v0: one topic "t" whose settings array claims 2^31 - 1.
        let mut alter = vec![0, 0, 0, 1, 2, 0, 1, b't'];
        alter.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        check_case(
            ApiKey::IncrementalAlterConfigs,
            0,
            &alter,
            Err(ShapeError::ArrayTooLong {
                count: i32::MAX as u64,
                left: 0,
            }),
        );
        check_case(ApiKey::Heartbeat, 0, &[0xff; 3], Ok(()));
        check_case(ApiKey::ApiVersions, 3, &[0xff; 3], Ok(()));
        check_case(
            ApiKey::Metadata,
            1,
            &[0xff, 0xff, 0xff, 0xfe],
            Err(ShapeError::BadLength),
        );
    }
}
