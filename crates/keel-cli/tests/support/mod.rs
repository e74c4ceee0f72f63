//! The test harness shared by the `keel` binary's test files: [`Keel`], a fresh data
//! directory and a way to run the binary against it as a user would. Each test file adds the
//! helpers only it needs in its own `impl Keel` block.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A data directory and a way to run `keel` against it.
pub(crate) struct Keel {
    /// The data directory, removed when the test ends.
    pub(crate) dir: tempfile::TempDir,
}

impl Keel {
    pub(crate) fn new() -> Keel {
        Keel {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs `keel ARGS` with `stdin`, the data directory given by `$KEEL_DATA`.
    pub(crate) fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(args)
            .env("KEEL_DATA", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keel");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("keel output")
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "keel {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }

    /// Runs and expects failure with an error report containing `needle`: one line, or for
    /// a long chain of causes the top line and each cause on its own indented line (and
    /// nothing else on stderr); returns stdout.
    pub(crate) fn fails(&self, args: &[&str], stdin: &str, needle: &str) -> String {
        let output = self.run(args, stdin);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "keel {args:?} should fail");
        let mut lines = stderr.trim_end().lines();
        let first = lines.next().unwrap_or_default();
        assert!(first.starts_with("keel: error: "), "the report: {stderr}");
        let causes: Vec<&str> = lines.collect();
        assert!(
            causes.is_empty() || causes.len() >= 2,
            "two messages share one line: {stderr}"
        );
        assert!(
            causes.iter().all(|line| line.starts_with("  caused by: ")),
            "the report: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }
}
