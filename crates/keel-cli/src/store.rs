//! Opening the data directory for one command, waiting briefly for another `keel` process.
//!
//! The embedded log has one owning process at a time (its lock file). Commands hold it only
//! for as long as they work, so a second command waits a little instead of failing at once;
//! `keel consume --follow` releases it between polls so producers can get in. A `keel serve`
//! holds it for as long as it runs, so a command that finds the server's address file there
//! fails at once, naming the server, instead of waiting for nothing.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keel_log::{Log, OpenError, Topic};

use crate::control::server_addr_file;

/// How long a command waits for another `keel` process to release the data directory.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);
/// Pause between two attempts to take the lock.
const LOCK_RETRY_DELAY: Duration = Duration::from_millis(50);

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
                if let Ok(addr) = std::fs::read_to_string(server_addr_file(data)) {
                    bail!(
                        "data directory {} is owned by the keel serve at http://{}: stop it to use the directory, or use its Kafka listener or API",
                        data.display(),
                        addr.trim()
                    );
                }
                if Instant::now() >= deadline {
                    bail!(
                        "data directory {} is in use by another process (waited {} s)",
                        data.display(),
                        LOCK_WAIT_MAX.as_secs()
                    );
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
