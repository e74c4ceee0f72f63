//! A group's live membership as an operator sees it ([`GroupView`]): state, protocol, and
//! each member with the partitions its consumer assignment gives it — for the web console
//! and for refusing an offset reset while members run (as Kafka does).
//!
//! The assignment bytes come from the group leader, a client: they are decoded here by hand
//! (Kafka's `ConsumerProtocolAssignment`, versions 0–3, whose leading fields are the same),
//! every count checked against the bytes left, because `kafka-protocol`'s decoder reserves a
//! claimed count up front. Bytes that do not decode give a member without partitions.
//!
//! A consumer-protocol group (KIP-848) is shown from the coordinator's own assignment.
//!
//! Not here: the DescribeGroups answer (`admin.rs`), any change to a group.

use super::consumer::state::ConsumerGroup;
use super::coordinator::Shared;
use super::state::{Group, GroupState};

/// The consumer protocol type, whose assignments name topics and partitions.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// One group's live membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Kafka's name of the state: `Empty`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Stable` for a classic group; `Empty`, `Reconciling`, `Stable` for a consumer-protocol
    /// one.
    pub state: &'static str,
    /// The protocol type (`consumer` for consumers).
    pub protocol_type: String,
    /// The chosen assignor (`range`, `roundrobin`, …), once the group is stable.
    pub protocol: String,
    /// Its members, in join order.
    pub members: Vec<MemberView>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The client id it sent.
    pub client_id: String,
    /// Where it connects from.
    pub client_host: String,
    /// Its assigned partitions by topic (empty until the group is stable, or when the
    /// assignment is not a consumer assignment).
    pub partitions: Vec<(String, Vec<i32>)>,
}

/// The live membership of `group`, `None` when no member of it is known (a group that only
/// has committed offsets has no live membership).
pub(crate) fn group_view(shared: &Shared, group: &str) -> Option<GroupView> {
    let groups = shared.groups();
    if let Some(found) = groups.consumer.get(group) {
        return Some(consumer_group_view(found));
    }
    let found: &Group = groups.map.get(group)?;
    let stable = found.state() == GroupState::Stable;
    let protocol_type = found.protocol_type().unwrap_or("").to_string();
    let members = found
        .members()
        .into_iter()
        .map(|m| MemberView {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            partitions: if stable && protocol_type == CONSUMER_PROTOCOL_TYPE {
                consumer_assignment(&m.assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect();
    Some(GroupView {
        state: found.state().name(),
        protocol: if stable {
            found.protocol().unwrap_or("").to_string()
        } else {
            String::new()
        },
        protocol_type,
        members,
    })
}

/// A consumer-protocol group (KIP-848): the coordinator assigned the partitions itself, so
/// each member's are known without decoding; the protocol is the server-side assignor.
fn consumer_group_view(group: &ConsumerGroup) -> GroupView {
    let members = group
        .members()
        .map(|m| MemberView {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            partitions: m
                .assigned
                .iter()
                .map(|(topic, partitions)| (topic.clone(), partitions.iter().copied().collect()))
                .collect(),
        })
        .collect();
    GroupView {
        state: group.state(),
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
        protocol: group.assignor().to_string(),
        members,
    }
}

/// Decodes a `ConsumerProtocolAssignment`'s topics and partitions: version (i16), then an
/// array (i32 count) of topic (i16-length string) and partitions (i32 count of i32).
/// Everything after them (user data) is ignored. `None` when the bytes are malformed.
fn consumer_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let topics = reader.count(6)?;
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let length = usize::try_from(reader.i16()?).ok()?;
        let topic = String::from_utf8(reader.take(length)?.to_vec()).ok()?;
        let partitions = reader.count(4)?;
        let mut assigned = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            assigned.push(reader.i32()?);
        }
        out.push((topic, assigned));
    }
    Some(out)
}

/// A cursor over untrusted bytes; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// An array count whose elements take at least `element_bytes` each: refused when the
    /// bytes left cannot hold that many.
    fn count(&mut self, element_bytes: usize) -> Option<usize> {
        let count = usize::try_from(self.i32()?).ok()?;
        (count.checked_mul(element_bytes)? <= self.0.len()).then_some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes()); // null user data
        bytes
    }

    #[test]
    fn assignments_decode_and_lies_are_refused() {
        let bytes = assignment(&[("orders", &[0, 2]), ("payments", &[1])]);
        assert_eq!(
            consumer_assignment(&bytes),
            Some(vec![
                ("orders".to_string(), vec![0, 2]),
                ("payments".to_string(), vec![1])
            ])
        );
        // A count of two billion topics in a few bytes, a cut string, a newer version.
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert_eq!(consumer_assignment(&huge), None);
        assert_eq!(consumer_assignment(&bytes[..9]), None);
        let mut newer = bytes.clone();
        newer[..2].copy_from_slice(&4i16.to_be_bytes());
        assert_eq!(consumer_assignment(&newer), None);
        assert_eq!(consumer_assignment(&[]), None);
    }
}
