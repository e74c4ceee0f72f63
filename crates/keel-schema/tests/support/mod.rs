//! What the compatibility case tables share: running every case of a table, and comparing
//! the incompatibilities one level found with the differences a case expects. Not a test
//! binary of its own.

use keel_schema::{CompatibilityLevel, Incompatibility};

/// Compatible: nothing breaks.
pub(crate) const NOTHING: &[&str] = &[];

/// Runs `check` on every case, which adds a line to the list for each mismatch, and names
/// all the cases that fail in one panic.
pub(crate) fn check_each<C>(cases: &[C], check: impl Fn(&mut Vec<String>, &C)) {
    let mut failed = Vec::new();
    for case in cases {
        check(&mut failed, case);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// Why `found` (what `level` reported for `change`) is not exactly `expected` (`path: KIND`,
/// in any order), or says too little about a difference: one line each, none when it is.
pub(crate) fn mismatches(
    change: &str,
    level: CompatibilityLevel,
    found: &[Incompatibility],
    expected: &[&str],
) -> Vec<String> {
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    let mut differences: Vec<String> = found
        .iter()
        .map(|i| format!("{}: {}", i.difference.path, i.difference.kind))
        .collect();
    differences.sort_unstable();
    let mut failed = Vec::new();
    if differences != expected {
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        failed.push(format!(
            "{change}: {level} expected {expected:?}, found {found:#?}"
        ));
    }
    if let Some(vague) = found.iter().find(|i| i.difference.detail.len() < 10) {
        failed.push(format!("{change}: {level} says too little: {vague}"));
    }
    failed
}
