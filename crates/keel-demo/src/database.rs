//! A service's own SQLite database: its tables, its transactional outbox (a state change and
//! its event commit together) and the outbox's relay to the bus.
//!
//! Not here: any service's tables or rules.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::core::{Event, EventType};
use keel::runtime::EmbeddedBus;
use keel::sql::{RelayHandle, RelayOptions, SqliteOutbox};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::DemoError;

/// One service's database, outbox and relay.
#[derive(Clone)]
pub(crate) struct ServiceDb {
    connection: Arc<Mutex<Connection>>,
    outbox: SqliteOutbox,
    relay: Arc<RelayHandle>,
}

impl ServiceDb {
    /// Opens `<dir>/<name>.db`, runs `schema`, and starts the outbox relay onto `bus`.
    pub(crate) fn open(
        dir: &Path,
        name: &str,
        schema: &str,
        bus: &EmbeddedBus,
    ) -> Result<ServiceDb, DemoError> {
        let path = dir.join(format!("{name}.db"));
        let outbox = SqliteOutbox::open(&path)?;
        let connection = Connection::open(&path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.execute_batch(schema)?;
        let options = RelayOptions {
            poll_interval: Duration::from_millis(200),
            name: format!("{name}-relay"),
            ..RelayOptions::default()
        };
        let relay = outbox
            .relay(Arc::new(bus.publisher()), options)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        Ok(ServiceDb {
            connection: Arc::new(Mutex::new(connection)),
            outbox,
            relay: Arc::new(relay),
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE … COMMIT` on a blocking thread; the events `f`
    /// returns go to the outbox in the same transaction, and the relay is woken after the
    /// commit. `f`'s `Err` rolls everything back.
    pub(crate) async fn command<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<(T, Vec<(&'static str, Event)>), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<rusqlite::Error> + From<String> + Send + 'static,
    {
        let connection = self.connection.clone();
        let outbox = self.outbox.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().expect("service connection");
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (value, events) = f(&tx)?;
            if !events.is_empty() {
                outbox
                    .enqueue_batch(&tx, &events)
                    .map_err(|e| E::from(e.to_string()))?;
            }
            tx.commit()?;
            Ok::<_, E>((value, !events.is_empty()))
        })
        .await
        .expect("service command panicked")?;
        if result.1 {
            self.relay.wake();
        }
        Ok(result.0)
    }

    /// Runs a read on the service's connection.
    pub(crate) async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DemoError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || f(&connection.lock().expect("service connection")))
            .await
            .expect("service query panicked")
            .map_err(DemoError::from)
    }
}

/// A typed fact with a deterministic id (the saga command that caused it), so a command
/// re-run after a crash enqueues nothing new and a relay re-publish is recognisably the same
/// event.
pub(crate) fn fact<T: EventType>(source: &str, id: &str, key: &str, payload: &T) -> Event {
    Event::from_typed(source, payload)
        .expect("demo events serialize")
        .with_id(id)
        .with_partition_key(key)
}

/// A service command's failure, as one line; the saga treats it as transient (the database
/// was busy or failed, the command may work when tried again).
#[derive(Debug)]
pub(crate) struct CommandError(pub(crate) String);

impl From<rusqlite::Error> for CommandError {
    fn from(error: rusqlite::Error) -> CommandError {
        CommandError(error.to_string())
    }
}

impl From<String> for CommandError {
    fn from(reason: String) -> CommandError {
        CommandError(reason)
    }
}
