//! What the `keel demo` tests on shared servers have in common: taking turns on a server
//! (the demo's topics and groups have fixed names) and the summary of the run they place.

use std::fs::File;

/// The orders the tests place: 40, every 9th a poison event.
pub(crate) const ORDERS: [&str; 6] = [
    "--orders",
    "40",
    "--poison-every",
    "9",
    "--place-interval",
    "20ms",
];

/// The payment service's flags in those runs: an outage and declines.
pub(crate) const PAYMENT: [&str; 4] = ["--payment-outage", "2s", "--decline-rate", "0.2"];

/// The self-checking summary of [`ORDERS`]: every check passed, 4 dead letters.
pub(crate) fn assert_summary(stdout: &str) {
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.contains("orders placed          40"), "{stdout}");
    assert!(stdout.contains("dead letters: 4"), "{stdout}");
}

/// Holds the demo's topics and groups on the server at `address` while the returned lock
/// lives: two demos at once on one server would share the groups and take each other's
/// events.
pub(crate) fn take_turn(address: &str) -> File {
    let name: String = address
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let lock = File::create(std::env::temp_dir().join(format!("keel-demo-{name}.lock")))
        .expect("lock file");
    lock.lock().expect("take the lock");
    lock
}
