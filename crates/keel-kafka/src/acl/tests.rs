//! The authorizer's decision table and the store's durability, driven by one-line cases.

use std::sync::Arc;

use keel_log::Log;

use super::*;
use crate::sasl::Principal;

fn binding(
    resource: (ResourceType, &str, PatternType),
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: resource.0,
        resource_name: resource.1.into(),
        pattern_type: resource.2,
        principal: principal.into(),
        host: WILDCARD.into(),
        operation,
        permission,
    }
}

fn caller(user: &str) -> Caller {
    Caller {
        principal: Principal::User(user.into()),
        peer: "10.0.0.7:5000".parse().unwrap(),
    }
}

fn open(dir: &std::path::Path) -> (Arc<Log>, Arc<Acls>) {
    let log = Arc::new(Log::open(dir).unwrap());
    let acls = Arc::new(Acls::open(&log).unwrap());
    (log, acls)
}

const TOPIC: ResourceType = ResourceType::Topic;
const LITERAL: PatternType = PatternType::Literal;
const PREFIXED: PatternType = PatternType::Prefixed;

#[test]
fn the_decision_follows_kafkas_order() {
    use Operation as O;
    use Permission::{Allow, Deny};
    let dir = tempfile::tempdir().unwrap();
    let (_log, acls) = open(dir.path());
    for b in [
        binding((TOPIC, "orders", LITERAL), "User:alice", O::Write, Allow),
        binding((TOPIC, "orders", LITERAL), "User:alice", O::Read, Allow),
        binding((TOPIC, "pay.", PREFIXED), "User:*", O::All, Allow),
        binding((TOPIC, "pay.secret", LITERAL), "User:bob", O::Read, Deny),
        binding((TOPIC, "*", LITERAL), "User:carol", O::AlterConfigs, Allow),
        binding(
            (ResourceType::Group, "g", LITERAL),
            "User:alice",
            O::Read,
            Allow,
        ),
    ] {
        acls.add(b).unwrap();
    }
    let closed = Authorizer::new(acls.clone(), ["User:root".to_string()], false);
    let open_default = Authorizer::new(acls.clone(), [], true);
    let check = |authorizer: &Authorizer,
                 user: &str,
                 op: O,
                 rt: ResourceType,
                 name: &str,
                 expected: bool| {
        assert_eq!(
            authorizer.allows(&caller(user), op, rt, name),
            expected,
            "{user} {op:?} {rt:?} {name}"
        );
    };
    check(&closed, "alice", O::Write, TOPIC, "orders", true);
    check(&closed, "alice", O::Describe, TOPIC, "orders", true); // implied by Read/Write
    check(&closed, "alice", O::Delete, TOPIC, "orders", false);
    check(&closed, "bob", O::Read, TOPIC, "orders", false);
    check(&closed, "bob", O::Write, TOPIC, "pay.in", true); // prefixed, User:*
    check(&closed, "bob", O::Read, TOPIC, "pay.secret", false); // deny wins over the prefix
    check(&closed, "alice", O::Read, TOPIC, "pay.secret", true);
    check(
        &closed,
        "carol",
        O::DescribeConfigs,
        TOPIC,
        "anything",
        true,
    ); // implied, wildcard
    check(&closed, "carol", O::Read, TOPIC, "anything", false);
    check(&closed, "alice", O::Read, ResourceType::Group, "g", true);
    check(&closed, "alice", O::Read, ResourceType::Group, "h", false); // nothing covers h
    check(&closed, "root", O::Delete, TOPIC, "pay.secret", true); // super user
    check(
        &open_default,
        "bob",
        O::Read,
        ResourceType::Group,
        "h",
        true,
    ); // nothing covers h
    check(&open_default, "bob", O::Read, TOPIC, "orders", false); // covered: ACLs decide
    check(
        &Authorizer::default(),
        "bob",
        O::Delete,
        TOPIC,
        "orders",
        true,
    ); // off
}

#[test]
fn bindings_survive_a_restart_and_filters_delete_what_they_match() {
    use Operation as O;
    use Permission::Allow;
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, acls) = open(dir.path());
        acls.add(binding((TOPIC, "a", LITERAL), "User:x", O::Read, Allow))
            .unwrap();
        acls.add(binding((TOPIC, "a", LITERAL), "User:y", O::Read, Allow))
            .unwrap();
        acls.add(binding((TOPIC, "b", PREFIXED), "User:x", O::Write, Allow))
            .unwrap();
        let removed = acls
            .remove(&AclFilter {
                principal: Some("User:y".into()),
                ..AclFilter::ANY
            })
            .unwrap();
        assert_eq!(removed.len(), 1);
    }
    let (_log, acls) = open(dir.path());
    let names = |filter: &AclFilter| -> Vec<String> {
        acls.matching(filter)
            .into_iter()
            .map(|b| format!("{}:{}", b.resource_name, b.principal))
            .collect()
    };
    assert_eq!(names(&AclFilter::ANY), ["a:User:x", "b:User:x"]);
    let matching_bx = AclFilter {
        resource_type: TOPIC,
        resource_name: Some("bx".into()),
        pattern_type: PatternType::Match,
        ..AclFilter::ANY
    };
    assert_eq!(names(&matching_bx), ["b:User:x"]);
}

#[test]
fn bindings_kafka_could_not_store_are_refused_with_a_reason() {
    use Operation as O;
    use Permission::Allow;
    let check = |b: AclBinding, expected: Option<&str>| {
        let got = b.validate().err().map(|e| e.0);
        match (got, expected) {
            (None, None) => {}
            (Some(got), Some(part)) => assert!(got.contains(part), "{got}"),
            (got, expected) => panic!("{got:?} != {expected:?}"),
        }
    };
    check(
        binding((TOPIC, "t", LITERAL), "User:a", O::Read, Allow),
        None,
    );
    check(
        binding((TOPIC, "t", LITERAL), "alice", O::Read, Allow),
        Some("User:<name>"),
    );
    check(
        binding((TOPIC, "t", PatternType::Match), "User:a", O::Read, Allow),
        Some("LITERAL"),
    );
    check(
        binding((TOPIC, "t", LITERAL), "User:a", O::Any, Allow),
        Some("filters"),
    );
    check(
        binding(
            (ResourceType::Cluster, "c", LITERAL),
            "User:a",
            O::Alter,
            Allow,
        ),
        Some("kafka-cluster"),
    );
    check(
        binding((TOPIC, "", LITERAL), "User:a", O::Read, Allow),
        Some("empty"),
    );
}
