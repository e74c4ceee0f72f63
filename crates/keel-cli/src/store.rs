//! Opening the data directory for one command, waiting briefly for another `keel` process.
//!
//! The embedded log has one owning process at a time (its lock file). Commands hold it only
//! for as long as they work, so a second command waits a little instead of failing at once;
//! `keel consume --follow` releases it between polls so producers can get in. A `keel serve`
//! holds it for as long as it runs, so a command that finds the server's address file there
//! fails at once, naming the server, instead of waiting for nothing. So does a command that
//! finds the directory held by a long-running `keel` command ([`hold_log`], for example
//! `keel consume --group`), naming that command and its process.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keel_log::{Log, OpenError, Topic};

use crate::control::server_addr_file;

/// How long a command waits for another `keel` process to release the data directory.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);
/// Pause between two attempts to take the lock.
const LOCK_RETRY_DELAY: Duration = Duration::from_millis(50);
/// File in the data directory naming the `keel` command holding the log while it runs.
const HOLDER_FILE: &str = "keel-cli.holder";

/// The log of a data directory held for a whole command, with a note in the directory that
/// names the command (removed when this is dropped) so others fail at once, naming it.
pub(crate) struct HeldLog {
    log: Log,
    note: PathBuf,
}

impl std::ops::Deref for HeldLog {
    type Target = Log;

    fn deref(&self) -> &Log {
        &self.log
    }
}

impl Drop for HeldLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.note);
    }
}

/// Opens the log in an existing `data` for as long as `command` runs, failing at once when
/// another process holds it (a second one would only wait for the end of this command).
pub(crate) fn hold_log(data: &Path, command: &str) -> anyhow::Result<HeldLog> {
    require_data_dir(data)?;
    let log = match Log::open(data) {
        Err(OpenError::Locked { .. }) => bail!("{}", locked(data)),
        result => {
            result.with_context(|| format!("cannot open data directory {}", data.display()))?
        }
    };
    let note = data.join(HOLDER_FILE);
    std::fs::write(&note, format!("`{command}` (pid {})", std::process::id()))
        .with_context(|| format!("cannot write {}", note.display()))?;
    Ok(HeldLog { log, note })
}

/// Why `data` is locked, when known for sure: its server, or a live long-running command.
fn lock_holder(data: &Path) -> Option<String> {
    if let Ok(addr) = std::fs::read_to_string(server_addr_file(data)) {
        return Some(format!(
            "is owned by the keel serve at http://{}: stop it to use the directory, or use its Kafka listener or API",
            addr.trim()
        ));
    }
    let holder = std::fs::read_to_string(data.join(HOLDER_FILE)).ok()?;
    // A note left by a killed process names nobody: where /proc tells, the pid must live.
    let pid = holder.rsplit_once("(pid ")?.1.trim_end_matches(')');
    let proc = Path::new("/proc");
    if proc.is_dir() && !proc.join(pid).exists() {
        return None;
    }
    Some(format!(
        "is held by {holder} for as long as it runs: only one process can open a data directory, so run `keel serve` on it to share it (consumer groups across processes, producers beside them)"
    ))
}

/// The error for a locked `data`: its holder when known, else that another process has it.
fn locked(data: &Path) -> String {
    match lock_holder(data) {
        Some(holder) => format!("data directory {} {holder}", data.display()),
        None => format!(
            "data directory {} is in use by another process",
            data.display()
        ),
    }
}

/// Opens the log in `data` as [`open_log`] does, but only if the directory exists: a verb
/// that reads or changes what is stored must not create an empty directory for a mistyped
/// `--data-dir` and then report nothing.
pub(crate) fn open_existing_log(data: &Path) -> anyhow::Result<Log> {
    require_data_dir(data)?;
    open_log(data)
}

/// Fails unless `data` is an existing directory, naming it and where the name came from.
pub(crate) fn require_data_dir(data: &Path) -> anyhow::Result<()> {
    if !data.is_dir() {
        anyhow::bail!(
            "data directory {} does not exist (set by --data-dir or $KEEL_DATA; `keel topics create` makes one)",
            data.display()
        );
    }
    Ok(())
}

/// Opens (recovering) the log in `data`, waiting up to [`LOCK_WAIT_MAX`] for its lock.
pub(crate) fn open_log(data: &Path) -> anyhow::Result<Log> {
    let deadline = Instant::now() + LOCK_WAIT_MAX;
    loop {
        match Log::open(data) {
            Err(OpenError::Locked { .. }) => {
                if lock_holder(data).is_some() {
                    bail!("{}", locked(data));
                }
                if Instant::now() >= deadline {
                    bail!("{} (waited {} s)", locked(data), LOCK_WAIT_MAX.as_secs());
                }
                thread::sleep(LOCK_RETRY_DELAY)
            }
            result => {
                return result
                    .with_context(|| format!("cannot open data directory {}", data.display()));
            }
        }
    }
}

/// The topic `name`, or an error that says how to create it.
pub(crate) fn existing_topic(log: &Log, name: &str) -> anyhow::Result<std::sync::Arc<Topic>> {
    log.topic(name).with_context(|| {
        format!("topic '{name}' does not exist (create it with `keel topics create {name}`)")
    })
}
