//! A service's own SQLite database: its tables, the inbox its routes handle events through,
//! the transactional outbox (a state change and its event commit together) and the outbox's
//! relay to whatever transport the service publishes on.
//!
//! Not here: any service's tables or rules.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::core::{Event, EventType};
use keel::runtime::{HandlerError, Publisher};
use keel::sql::{RelayHandle, RelayOptions, SqliteInbox, SqliteOutbox, SqliteTx};
use rusqlite::Connection;

use crate::error::DemoError;

/// How often a relay looks for facts to publish. Facts are enqueued inside the inbox's
/// transaction, which commits on the inbox's own thread where nothing can wake the relay
/// after the commit; the poll is what bounds the delay of a reply to the order saga.
const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One service's database and inbox (its outbox is written through the inbox's transactions).
#[derive(Clone)]
pub(crate) struct ServiceDb {
    connection: Arc<Mutex<Connection>>,
    pub(crate) inbox: SqliteInbox,
}

impl ServiceDb {
    /// Opens `<dir>/<name>.db`, runs `schema`, and starts the outbox relay onto `publisher`
    /// (registered in `relays`).
    pub(crate) fn open(
        dir: &Path,
        name: &str,
        schema: &str,
        publisher: &Publisher,
        relays: &Relays,
    ) -> Result<ServiceDb, DemoError> {
        let path = dir.join(format!("{name}.db"));
        let outbox = SqliteOutbox::open(&path)?;
        let inbox = SqliteInbox::open(&path)?;
        let connection = Connection::open(&path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.execute_batch(schema)?;
        let options = RelayOptions {
            poll_interval: RELAY_POLL_INTERVAL,
            name: format!("{name}-relay"),
            ..RelayOptions::default()
        };
        let relay = outbox
            .relay(Arc::new(publisher.clone()), options)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        relays.0.lock().expect("relays").push(relay);
        Ok(ServiceDb {
            connection: Arc::new(Mutex::new(connection)),
            inbox,
        })
    }

    /// Runs `f` on the service's connection, on a blocking thread.
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

/// The outbox relays of the services one process runs, stopped together between two
/// batches when the process stops (left to the end of the runtime, a relay would see its
/// database calls cancelled and retry them until it is gone). Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Relays(Arc<Mutex<Vec<RelayHandle>>>);

impl Relays {
    /// Stops every relay after its current batch and waits for it.
    pub(crate) async fn shutdown(&self) {
        let relays = std::mem::take(&mut *self.0.lock().expect("relays"));
        for relay in relays {
            relay.shutdown().await;
        }
    }
}

/// A typed fact with a deterministic id (the saga command that caused it), so a command
/// handled again finds the same event and a relay re-publish is recognisably the same event.
pub(crate) fn fact<T: EventType>(source: &str, id: &str, key: &str, payload: &T) -> Event {
    Event::from_typed(source, payload)
        .expect("demo events serialize")
        .with_id(id)
        .with_partition_key(key)
}

/// Announces `event` on `topic` through the outbox, in the handled command's transaction:
/// the fact is published if and only if the outcome it announces committed. The outbox
/// marks it as caused by the command, which is how the saga finds its reply.
pub(crate) fn announce(tx: &SqliteTx<'_>, topic: &str, event: Event) -> Result<(), HandlerError> {
    tx.enqueue(topic, event).map_err(HandlerError::transient)
}

/// The command `T` in `event`; a command that does not decode is poison (dead letters).
pub(crate) fn command<T: EventType>(event: &Event) -> Result<T, HandlerError> {
    event.decode().map_err(HandlerError::permanent)
}
