//! The numbers of the self-check as each service keeps them: read from the services' own
//! databases under the data directory, and the dead letters counted from the dead-letter
//! topics. Read by the process that places the orders, whichever processes the services
//! run in.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keel::core::Event;
use keel::runtime::dead_letter::dead_letter_topic;
use keel::runtime::{Handler, Route};
use rusqlite::{Connection, OpenFlags};

use crate::error::DemoError;
use crate::events::{PaymentDeclined, TOPICS};
use crate::inventory::{self, ReservationCounts};
use crate::{notify, payment, shipping};

/// Distinct dead-lettered events one run remembers; more means something is badly wrong,
/// and the count stops there (the self-check then fails).
const DEAD_LETTERS_MAX: usize = 1_000_000;

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
    dead_letters: Arc<Mutex<HashSet<String>>>,
}

impl Tally {
    /// A tally of the databases in `dir`.
    pub(crate) fn new(dir: &Path) -> Tally {
        Tally {
            dir: dir.to_path_buf(),
            dead_letters: Arc::default(),
        }
    }

    /// The routes that count dead letters: every dead-letter topic of the order system, each
    /// event once however often it was dead-lettered (a fact announced again and refused
    /// again is one dead letter).
    pub(crate) fn routes(&self) -> Vec<Route> {
        TOPICS
            .into_iter()
            .map(|topic| {
                let seen = self.dead_letters.clone();
                let count = Handler::raw("count", move |event: Event, _| {
                    let mut seen = seen.lock().expect("dead letters");
                    if seen.len() < DEAD_LETTERS_MAX {
                        seen.insert(event.id);
                    }
                    std::future::ready(Ok(()))
                });
                Route::new(dead_letter_topic(topic), "demo-tally", count)
            })
            .collect()
    }

    /// What the services counted so far.
    pub(crate) async fn read(&self) -> Result<Counts, DemoError> {
        let dir = self.dir.clone();
        let dead_letters = self.dead_letters.lock().expect("dead letters").len() as u64;
        tokio::task::spawn_blocking(move || {
            let open = |name: &str| open(&dir, name);
            Ok(Counts {
                reservations: inventory::reservations(&open("inventory")?)?,
                charges: payment::charges(&open("payment")?)?,
                shipments: shipping::shipments(&open("shipping")?)?,
                emails: notify::sent(&open("email")?)?,
                declines: notify::counted::<PaymentDeclined>(&open("analytics")?)?,
                dead_letters,
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
