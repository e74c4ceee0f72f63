//! Choosing the group's protocol from what its members offered, the way Kafka's classic
//! coordinator does: only protocols every member supports are candidates, each member votes
//! for its most preferred candidate, and the most votes win.

use super::member::Member;

/// The protocol the group runs in its next generation, or `None` for no members. Ties go to
/// the candidate the earliest member prefers, so the choice is deterministic.
pub(crate) fn select_protocol(members: &[&Member]) -> Option<String> {
    let first = members.first()?;
    let candidates: Vec<&str> = first
        .protocols
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| members.iter().all(|m| m.supports(name)))
        .collect();
    let mut best: Option<(&str, usize)> = None;
    for candidate in &candidates {
        let votes = members
            .iter()
            .filter(|m| vote(m, &candidates) == Some(*candidate))
            .count();
        if best.is_none_or(|(_, most)| votes > most) {
            best = Some((candidate, votes));
        }
    }
    best.map(|(name, _)| name.to_string())
}

/// The candidate `member` prefers most.
fn vote<'a>(member: &'a Member, candidates: &[&str]) -> Option<&'a str> {
    member
        .protocols
        .iter()
        .map(|p| p.name.as_str())
        .find(|name| candidates.contains(name))
}

/// Whether a member offering `offered` can join a group whose members are `members`: it must
/// share at least one protocol every current member supports.
pub(crate) fn compatible(members: &[&Member], offered: &[&str]) -> bool {
    offered
        .iter()
        .any(|name| members.iter().all(|m| m.supports(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member::Protocol;

    fn member(seq: u64, protocols: &[&str]) -> Member {
        Member {
            id: format!("m{seq}"),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: protocols
                .iter()
                .map(|name| Protocol {
                    name: name.to_string(),
                    metadata: Default::default(),
                })
                .collect(),
            assignment: Default::default(),
            joined_seq: seq,
            last_heard_ms: 0,
            join_waiter: None,
            sync_waiter: None,
        }
    }

    fn check(offers: &[&[&str]], expected: Option<&str>) {
        let members: Vec<Member> = offers
            .iter()
            .enumerate()
            .map(|(i, o)| member(i as u64, o))
            .collect();
        let refs: Vec<&Member> = members.iter().collect();
        assert_eq!(
            select_protocol(&refs).as_deref(),
            expected,
            "offers {offers:?}"
        );
    }

    #[test]
    fn selection_follows_votes_among_common_protocols() {
        check(&[], None);
        check(&[&["range"]], Some("range"));
        check(
            &[&["range", "roundrobin"], &["roundrobin", "range"]],
            Some("range"),
        );
        check(
            &[
                &["range", "roundrobin"],
                &["roundrobin", "range"],
                &["roundrobin"],
            ],
            Some("roundrobin"),
        );
        // `sticky` is preferred by two but not supported by the third: not a candidate.
        check(
            &[&["sticky", "range"], &["sticky", "range"], &["range"]],
            Some("range"),
        );
        check(&[&["a"], &["b"]], None);
    }

    #[test]
    fn a_joiner_must_share_a_protocol_with_every_member() {
        let members = [member(0, &["range", "roundrobin"]), member(1, &["range"])];
        let refs: Vec<&Member> = members.iter().collect();
        assert!(compatible(&refs, &["roundrobin", "range"]));
        assert!(!compatible(&refs, &["roundrobin"]));
        assert!(compatible(&[], &["anything"]));
    }
}
