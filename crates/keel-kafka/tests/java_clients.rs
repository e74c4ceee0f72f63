//! Kafka's own Java client against the broker and against the real Apache Kafka broker, with
//! the same assertions: the JUnit suite in `compat/java` (codecs, idempotence, classic and
//! KIP-848 groups, commits, seeks, the AdminClient, transactions, a Kafka Streams application
//! with exactly-once processing) runs once per broker through Maven.
//!
//! Apache Kafka is the reference, so every test must pass there. On this broker, the tests
//! that fail must be exactly those listed in `compat/java/known-differences.txt` (each with
//! why): a new failure fails, and so does a listed test that now passes, so the list stays the
//! truth about what differs. Each run also records the API versions the client found usable on
//! each broker (its `NetworkClient` debug line), which `docs/kafka-compatibility.md` tabulates.
//!
//! `SecurityTest` (the AdminClient creating, listing and deleting ACLs and SCRAM users) runs
//! only against a broker with SASL/SCRAM-SHA-512 and a super user, which the plain runs skip.
//!
//! Needs Maven and Java 17 (required when `KEEL_TEST_KAFKA_CLIENTS=1` or in CI). The Apache
//! Kafka run reads `KEEL_TEST_KAFKA_BROKERS` (`scripts/services env`): unset, it says it did
//! not run.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TestBroker, client_available};

const BROKERS_VAR: &str = "KEEL_TEST_KAFKA_BROKERS";

/// What one run of the suite found: every test by `Class.method`, with its failure if any,
/// and the client's usable version of each API key (by name) on that broker.
struct Outcome {
    tests: BTreeMap<String, Option<String>>,
    usable: BTreeMap<String, String>,
}

impl Outcome {
    fn failed(&self) -> BTreeMap<&str, &str> {
        self.tests
            .iter()
            .filter_map(|(name, failure)| failure.as_deref().map(|f| (name.as_str(), f)))
            .collect()
    }
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/java")
}

/// Runs the suite against `bootstrap`, building into a directory of its own, and reads its
/// Surefire reports.
fn run_suite(bootstrap: &str, broker: &str) -> Outcome {
    let outcome = run_tests(bootstrap, broker, &[]);
    assert!(
        outcome.tests.len() >= 25,
        "the suite ran {} tests against {broker}",
        outcome.tests.len()
    );
    save(broker, &outcome);
    outcome
}

/// Runs the suite's tests with Maven's extra `arguments` (a test filter, SASL credentials).
fn run_tests(bootstrap: &str, broker: &str, arguments: &[&str]) -> Outcome {
    let build = tempfile::tempdir().unwrap();
    let output = Command::new("mvn")
        .current_dir(project())
        .args(["-B", "-q", "test"])
        .arg(format!("-Dkafka.bootstrap={bootstrap}"))
        .arg(format!("-Dbuild.dir={}", build.path().display()))
        .args(arguments)
        .output()
        .expect("run mvn");
    assert!(
        output.status.success(),
        "the Java suite did not build or run against {broker}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let reports = build.path().join("surefire-reports");
    let mut outcome = Outcome {
        tests: BTreeMap::new(),
        usable: BTreeMap::new(),
    };
    for entry in std::fs::read_dir(&reports).expect("surefire reports") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("TEST-") && name.ends_with(".xml") {
            read_report(&text, &mut outcome.tests);
        } else if name.ends_with("-output.txt") {
            read_versions(&text, &mut outcome.usable);
        }
    }
    outcome
}

/// The test cases of one Surefire XML report that ran: `Class.method` → the failure's
/// message.
fn read_report(xml: &str, tests: &mut BTreeMap<String, Option<String>>) {
    for case in xml.split("<testcase ").skip(1) {
        let attribute = |key: &str| {
            let start = case.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
            case[start..][..case[start..].find('"').unwrap()].to_owned()
        };
        let class = attribute("classname");
        let class = class.rsplit('.').next().unwrap();
        let body = case.split("</testcase>").next().unwrap();
        // Skipped by an assumption (SecurityTest without SASL credentials): not run at all.
        if body.contains("<skipped") {
            continue;
        }
        let failure = ["<failure", "<error"]
            .iter()
            .find_map(|tag| body.find(tag).map(|at| &body[at..]))
            .map(|failed| {
                let message = failed
                    .find("message=\"")
                    .map(|at| &failed[at + 9..])
                    .map(|m| &m[..m.find('"').unwrap_or(m.len())])
                    .unwrap_or("(no message)");
                message.chars().take(300).collect()
            });
        tests.insert(format!("{class}.{}", attribute("name")), failure);
    }
}

/// The client's usable version of each API key from its "API versions: (Produce(0): 3 to 12
/// [usable: 12], Foo(70): UNSUPPORTED, ...)." debug lines; the highest seen wins.
fn read_versions(log: &str, usable: &mut BTreeMap<String, String>) {
    for line in log.lines() {
        let Some(list) = line.split("API versions: (").nth(1) else {
            continue;
        };
        // The list closes with ")." after the last key.
        for item in list.trim_end_matches('.').trim_end_matches(')').split(", ") {
            let Some((api, rest)) = item.split_once(": ") else {
                continue;
            };
            let version = match rest.split_once("[usable: ") {
                Some((_, v)) => v.trim_end_matches(']').to_owned(),
                None if rest.starts_with("UNSUPPORTED") => "-".to_owned(),
                None => continue,
            };
            let entry = usable
                .entry(api.to_owned())
                .or_insert_with(|| version.clone());
            if version.parse::<i32>().unwrap_or(-1) > entry.parse::<i32>().unwrap_or(-1) {
                *entry = version;
            }
        }
    }
}

/// Writes what a run found beside the build (`compat-results/java-<broker>.json`), for
/// `scripts/kafka-compat-matrix`.
fn save(broker: &str, outcome: &Outcome) {
    support::save_compat_results(
        "java",
        broker,
        &serde_json::json!(outcome.tests),
        &serde_json::json!(outcome.usable),
    );
}

/// `compat/java/known-differences.txt`: `Class.method  why`, `#` comments.
fn known_differences() -> BTreeMap<String, String> {
    std::fs::read_to_string(project().join("known-differences.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, why) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            (name.to_owned(), why.trim().to_owned())
        })
        .collect()
}

fn maven() -> bool {
    client_available("Maven (the Java client suite)", "mvn", &["-v"])
}

/// The AdminClient manages ACLs and SCRAM users over SASL/SCRAM-SHA-512 as a super user
/// (`SecurityTest`, which the plain runs skip). Apache Kafka is not run here: the services'
/// broker has no SASL listener, and giving it one means a second broker configuration.
#[test]
fn java_admin_client_manages_acls_and_scram_users_over_sasl() {
    if !maven() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_secured(dir.path(), None);
    let outcome = run_tests(
        &broker.bootstrap(),
        "keel-sasl",
        &[
            "-Dtest=SecurityTest",
            "-Dkafka.sasl.username=admin",
            "-Dkafka.sasl.password=admin-secret",
        ],
    );
    assert_eq!(outcome.tests.len(), 2, "{:?}", outcome.tests);
    assert!(
        outcome.failed().is_empty(),
        "the Java AdminClient failed: {:?}",
        outcome.failed()
    );
}

#[test]
fn java_client_suite_against_keel() {
    if !maven() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path());
    let outcome = run_suite(&broker.bootstrap(), "keel");
    let known = known_differences();
    let failed = outcome.failed();
    let unexpected: Vec<String> = failed
        .iter()
        .filter(|(name, _)| !known.contains_key(**name))
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    let now_passing: Vec<&String> = known
        .keys()
        .filter(|name| !failed.contains_key(name.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "the Java client fails on keel where it passes on Apache Kafka:\n{}",
        unexpected.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "listed in compat/java/known-differences.txt but passing (or gone): {now_passing:?}"
    );
}

#[test]
fn java_client_suite_against_apache_kafka() {
    let Ok(brokers) = std::env::var(BROKERS_VAR) else {
        eprintln!("java client suite on apache kafka: not run, {BROKERS_VAR} is unset");
        return;
    };
    if !maven() {
        return;
    }
    let outcome = run_suite(&brokers, "kafka");
    let failed = outcome.failed();
    assert!(
        failed.is_empty(),
        "the Java suite fails on Apache Kafka, its reference: {failed:#?}"
    );
    let names: BTreeSet<&String> = outcome.tests.keys().collect();
    let known = known_differences();
    let stale: Vec<&String> = known.keys().filter(|k| !names.contains(k)).collect();
    assert!(
        stale.is_empty(),
        "known-differences.txt names tests the suite does not have: {stale:?}"
    );
}
