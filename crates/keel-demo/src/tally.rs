//! The numbers of the self-check as each service keeps them: read from the services' own
//! databases under the data directory, and the dead letters counted from the dead-letter
//! topics into `tally.db` (through an inbox, so a restarted ordering process neither loses
//! nor doubles one). Read by the process that places the orders, whichever processes the
//! services run in.

use std::path::{Path, PathBuf};

use keel::core::Event;
use keel::runtime::dead_letter::dead_letter_topic;
use keel::runtime::{HandlerError, Route};
use keel::sql::SqliteInbox;
use rusqlite::{Connection, OpenFlags};

use crate::error::DemoError;
use crate::events::{PaymentDeclined, TOPICS};
use crate::inventory::{self, ReservationCounts};
use crate::{notify, payment, shipping};

/// What the inventory, payment, shipping, email and analytics services counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) reservations: ReservationCounts,
    pub(crate) charges: u64,
    pub(crate) shipments: u64,
    pub(crate) emails: u64,
    pub(crate) declines: u64,
    pub(crate) dead_letters: u64,
}

/// Reads [`Counts`]. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Tally {
    dir: PathBuf,
    inbox: SqliteInbox,
}

impl Tally {
    /// A tally of the databases in `dir`, keeping its dead-letter count in `tally.db` there.
    pub(crate) async fn open(dir: &Path) -> Result<Tally, DemoError> {
        let inbox = SqliteInbox::open(dir.join("tally.db"))?;
        inbox
            .with_connection(|c| {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS dead_letters (event_id TEXT PRIMARY KEY)",
                )
            })
            .await
            .map_err(|e| DemoError::Setup(e.to_string()))??;
        Ok(Tally {
            dir: dir.to_path_buf(),
            inbox,
        })
    }

    /// The routes that count dead letters: every dead-letter topic of the order system, each
    /// event once however often it was dead-lettered (a fact announced again and refused
    /// again is one dead letter).
    pub(crate) fn routes(&self) -> Vec<Route> {
        TOPICS
            .into_iter()
            .map(|topic| {
                let count = self.inbox.handler_raw("count", |tx, event: Event| {
                    tx.execute(
                        "INSERT INTO dead_letters (event_id) VALUES (?1) ON CONFLICT DO NOTHING",
                        [&event.id],
                    )
                    .map_err(HandlerError::transient)?;
                    Ok(())
                });
                Route::new(dead_letter_topic(topic), "demo-tally", count)
            })
            .collect()
    }

    /// What the services counted so far.
    pub(crate) async fn read(&self) -> Result<Counts, DemoError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let open = |name: &str| open(&dir, name);
            Ok(Counts {
                reservations: inventory::reservations(&open("inventory")?)?,
                charges: payment::charges(&open("payment")?)?,
                shipments: shipping::shipments(&open("shipping")?)?,
                emails: notify::sent(&open("email")?)?,
                declines: notify::counted::<PaymentDeclined>(&open("analytics")?)?,
                dead_letters: open("tally")?.query_row(
                    "SELECT COUNT(*) FROM dead_letters",
                    [],
                    |r| r.get::<_, i64>(0).map(|n| n as u64),
                )?,
            })
        })
        .await
        .expect("tally panicked")
    }
}

/// Opens `<dir>/<name>.db` to read; a service that never ran has none.
fn open(dir: &Path, name: &str) -> Result<Connection, DemoError> {
    let path = dir.join(format!("{name}.db"));
    Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        DemoError::Service(format!(
            "{name} service: cannot read {} ({e}): has it run with this data directory?",
            path.display()
        ))
    })
}
