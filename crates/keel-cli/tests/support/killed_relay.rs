//! `keel relay` SIGKILLed twice mid-run and then run to the end of its outbox: the part the
//! relay tests against the engines share. Included (`#[path]`) by those test files.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `keel relay --database-url DATABASE DESTINATION` on `data` twice, SIGKILLed after
/// 300 and then 700 ms, then once more with `--exit-when-idle`, which must succeed.
pub(crate) fn relay_killed_twice_then_to_the_end(
    database: &str,
    destination: &[&str],
    data: &Path,
) {
    let relay = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["relay", "--database-url", database])
            .args(destination)
            .args(["--batch", "5", "--progress-interval-ms", "100"])
            .args(extra)
            .env("KEEL_DATA", data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keel relay")
    };
    for pause_ms in [300, 700] {
        let mut child = relay(&[]);
        std::thread::sleep(Duration::from_millis(pause_ms));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let output = relay(&["--exit-when-idle"]).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
