//! The server-side assignors of the consumer protocol: from the members' subscriptions, the
//! subscribed topics' partition counts and the current target assignment, the next target.
//!
//! - `uniform`, Kafka's default: every partition goes to one subscribed member, the counts of
//!   members that could trade a partition differ by at most one, and a partition stays with
//!   its current owner unless balance needs it elsewhere, so a rebalance moves few partitions.
//! - `range`: per topic, the subscribed members (by member id) take contiguous ranges, the
//!   first ones one partition more when the count does not divide; members subscribed to the
//!   same topics get the same partition numbers of each (co-partitioned joins).
//!
//! Pure functions over ordered maps: the same input always gives the same assignment.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic name.
pub(crate) type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// The default assignor's name.
pub(crate) const UNIFORM: &str = "uniform";
/// The range assignor's name.
pub(crate) const RANGE: &str = "range";

/// What an assignor works from.
#[derive(Debug)]
pub(crate) struct AssignorInput<'a> {
    /// Each member's subscribed topics (names and regex matches), by member id.
    pub(crate) subscriptions: &'a BTreeMap<String, BTreeSet<String>>,
    /// The partition count of every subscribed topic that exists.
    pub(crate) partitions: &'a BTreeMap<String, u32>,
    /// The current target assignment, which `uniform` keeps where balance allows.
    pub(crate) current: &'a BTreeMap<String, Assignment>,
}

/// The assignor named `name`, if Keel has it (`UNSUPPORTED_ASSIGNOR` otherwise).
pub(crate) fn known(name: &str) -> Option<&'static str> {
    [UNIFORM, RANGE].into_iter().find(|known| *known == name)
}

/// The next target assignment: an entry for every member, empty when it gets nothing.
pub(crate) fn assign(assignor: &str, input: &AssignorInput) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = input
        .subscriptions
        .keys()
        .map(|member| (member.clone(), Assignment::new()))
        .collect();
    let owners = if assignor == RANGE {
        range(input)
    } else {
        uniform(input)
    };
    for ((topic, partition), member) in owners {
        let assigned = target.get_mut(&member).expect("owners are members");
        assigned.entry(topic).or_default().insert(partition);
    }
    target
}

/// A topic's partition.
type TopicPartition = (String, i32);

/// The members subscribed to `topic`, by member id.
fn subscribers(input: &AssignorInput, topic: &str) -> Vec<String> {
    input
        .subscriptions
        .iter()
        .filter(|(_, topics)| topics.contains(topic))
        .map(|(member, _)| member.clone())
        .collect()
}

/// Every partition of a subscribed topic, with the members subscribed to its topic.
fn partitions_with_candidates(input: &AssignorInput) -> Vec<(TopicPartition, Vec<String>)> {
    let mut out = Vec::new();
    for (topic, count) in input.partitions {
        let candidates = subscribers(input, topic);
        if candidates.is_empty() {
            continue;
        }
        for partition in 0..*count as i32 {
            out.push(((topic.clone(), partition), candidates.clone()));
        }
    }
    out
}

fn uniform(input: &AssignorInput) -> BTreeMap<TopicPartition, String> {
    let partitions = partitions_with_candidates(input);
    let mut load: BTreeMap<String, usize> = input
        .subscriptions
        .keys()
        .map(|member| (member.clone(), 0))
        .collect();
    let mut owners: BTreeMap<TopicPartition, String> = BTreeMap::new();
    // Stickiness: a partition stays with its current owner if that member still subscribes.
    for (partition, candidates) in &partitions {
        let current = input.current.iter().find(|(_, assigned)| {
            assigned
                .get(&partition.0)
                .is_some_and(|set| set.contains(&partition.1))
        });
        if let Some((member, _)) = current
            && candidates.contains(member)
        {
            owners.insert(partition.clone(), member.clone());
            *load.get_mut(member).expect("a candidate") += 1;
        }
    }
    // New partitions, and those whose owner left, go to the least loaded candidate.
    for (partition, candidates) in &partitions {
        if owners.contains_key(partition) {
            continue;
        }
        let member = least_loaded(candidates, &load);
        owners.insert(partition.clone(), member.clone());
        *load.get_mut(&member).expect("a candidate") += 1;
    }
    // Balance: move a partition from its owner to a candidate with two fewer until none can
    // move. Each move lowers the sum of squared loads, so the loop ends.
    loop {
        let mut moved = false;
        for (partition, candidates) in &partitions {
            let owner = owners[partition].clone();
            let lightest = least_loaded(candidates, &load);
            if load[&owner] > load[&lightest] + 1 {
                *load.get_mut(&owner).expect("a member") -= 1;
                *load.get_mut(&lightest).expect("a member") += 1;
                owners.insert(partition.clone(), lightest);
                moved = true;
            }
        }
        if !moved {
            return owners;
        }
    }
}

/// The candidate with the fewest partitions, the smallest member id among equals.
fn least_loaded(candidates: &[String], load: &BTreeMap<String, usize>) -> String {
    candidates
        .iter()
        .min_by_key(|member| (load[*member], (*member).clone()))
        .expect("partitions without candidates are skipped")
        .clone()
}

fn range(input: &AssignorInput) -> BTreeMap<TopicPartition, String> {
    let mut owners = BTreeMap::new();
    for (topic, count) in input.partitions {
        let candidates = subscribers(input, topic);
        if candidates.is_empty() {
            continue;
        }
        let count = *count as usize;
        let (per_member, extra) = (count / candidates.len(), count % candidates.len());
        let mut next = 0;
        for (index, member) in candidates.into_iter().enumerate() {
            let take = per_member + usize::from(index < extra);
            for partition in next..next + take {
                owners.insert((topic.clone(), partition as i32), member.clone());
            }
            next += take;
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members subscribed to `topics`, and topics with partition counts.
    fn input_maps(
        members: &[(&str, &[&str])],
        topics: &[(&str, u32)],
    ) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, u32>) {
        let subscriptions = members
            .iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|t| t.to_string()).collect()))
            .collect();
        let partitions = topics.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        (subscriptions, partitions)
    }

    fn counts(target: &BTreeMap<String, Assignment>) -> Vec<usize> {
        target
            .values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect()
    }

    fn check(assignor: &str, members: &[(&str, &[&str])], topics: &[(&str, u32)], want: &[usize]) {
        let (subscriptions, partitions) = input_maps(members, topics);
        let target = assign(
            assignor,
            &AssignorInput {
                subscriptions: &subscriptions,
                partitions: &partitions,
                current: &BTreeMap::new(),
            },
        );
        assert_eq!(counts(&target), want, "{assignor} {members:?} {topics:?}");
        // Every partition of a subscribed topic once.
        let mut seen = BTreeSet::new();
        for assigned in target.values() {
            for (topic, set) in assigned {
                for p in set {
                    assert!(seen.insert((topic.clone(), *p)), "{topic}-{p} twice");
                }
            }
        }
    }

    #[test]
    fn every_partition_once_and_balanced() {
        check(
            UNIFORM,
            &[("a", &["t"]), ("b", &["t"]), ("c", &["t"])],
            &[("t", 6)],
            &[2, 2, 2],
        );
        check(
            UNIFORM,
            &[("a", &["t"]), ("b", &["t"])],
            &[("t", 5)],
            &[3, 2],
        );
        check(
            UNIFORM,
            &[("a", &["t", "u"]), ("b", &["u"])],
            &[("t", 3), ("u", 3)],
            &[3, 3],
        );
        check(
            UNIFORM,
            &[("a", &["t"]), ("b", &["t"])],
            &[("t", 1)],
            &[1, 0],
        );
        check(UNIFORM, &[("a", &["gone"])], &[], &[0]);
        check(
            RANGE,
            &[("a", &["t", "u"]), ("b", &["t", "u"])],
            &[("t", 3), ("u", 3)],
            &[4, 2],
        );
        check(
            RANGE,
            &[("a", &["t"]), ("b", &["t"]), ("c", &["t"])],
            &[("t", 7)],
            &[3, 2, 2],
        );
    }

    #[test]
    fn uniform_keeps_partitions_where_balance_allows() {
        let (subscriptions, partitions) =
            input_maps(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])], &[("t", 6)]);
        let all: Assignment = [("t".to_string(), (0..6).collect())].into();
        let current: BTreeMap<String, Assignment> = [("a".to_string(), all)].into();
        let target = assign(
            UNIFORM,
            &AssignorInput {
                subscriptions: &subscriptions,
                partitions: &partitions,
                current: &current,
            },
        );
        assert_eq!(counts(&target), [2, 2, 2]);
        // `a` gives away four and keeps two of its own: only four partitions move.
        assert_eq!(target["a"]["t"].len(), 2);
    }
}
