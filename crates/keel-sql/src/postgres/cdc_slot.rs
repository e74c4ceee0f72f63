//! The CDC relay's replication slot: created with a check that no unpublished row is older
//! than it, recorded once that check passed, and created again — with the same check — when
//! it is lost.
//!
//! # A new slot
//!
//! A slot streams only what commits after it was created. It is created in a
//! repeatable-read transaction on the replication session with `SNAPSHOT 'use'`, and the
//! outbox's unpublished rows are counted in that same snapshot — exactly the rows the slot
//! will never stream. If there are any, the slot is dropped again and the start refused
//! (publish them first with the polling relay, `keel relay --exit-when-idle`), so nothing
//! committed before the slot is lost.
//!
//! # A slot whose check did not finish
//!
//! The slot exists from the moment `CREATE_REPLICATION_SLOT` returns; the count comes after.
//! A relay killed between the two (or whose session was cut) leaves a slot nobody checked,
//! and a relay that takes any existing slot for a checked one never streams the rows
//! committed before it. So a slot counts as checked only once its name is in
//! `keel_cdc_slots`, written after the count found nothing; a slot found without its row is
//! dropped and created again with the check. Nothing was streamed from it: a relay streams
//! only once the row is written. (Schema version 7 records the slots that existed when it
//! was applied: the relays before it checked each slot they created.) All of this runs under
//! a transaction-scoped advisory lock on the slot's name, so a second relay starting at once
//! waits instead of dropping the first one's fresh slot.
//!
//! # A lost slot
//!
//! A slot can disappear under a running relay — an operator dropped it, or the relay now
//! talks to a server promoted from a standby (PostgreSQL 15 does not copy slots to standbys)
//! — or be invalidated by `max_slot_wal_keep_size` (`wal_status = 'lost'`: it can no longer
//! stream). Either way the reader's session fails and cannot be opened again. The reader
//! then waits until everything it handed on is settled and runs [`ensure_slot`]: an
//! invalidated slot is dropped, a new one created and checked. Rows committed while there
//! was no usable slot are still in the table unpublished (the relay writes a row back only
//! after publishing it), so the check finds them: the relay then stops streaming —
//! `keel_outbox_cdc_slot_lost` at 1, its claims failing with the reason, `keel relay`
//! exiting — until the outbox is drained with the polling relay and the CDC relay started
//! again. With nothing committed meanwhile, the new slot streams from its creation and the
//! relay goes on by itself.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use pgwire_replication::{PgWireError, ReplicationClient, ReplicationConfig};

use super::cdc::{CdcError, CdcSlot};
use super::{PgDatabase, one_line};

/// First key of the advisory lock held while a slot is checked, created or dropped:
/// `"klc"` in ASCII.
const SLOT_LOCK_CLASS: i32 = 0x006b_6c63;

/// Whether the slot `name` exists (`Some`) and can still stream (`Some(true)`).
async fn usable(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<bool>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT wal_status IS DISTINCT FROM 'lost' FROM pg_replication_slots
             WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Whether `slot` is missing or can no longer stream (module docs, "A lost slot").
pub(crate) async fn is_gone(db: &PgDatabase, slot: &str) -> Result<bool, String> {
    let client = db.client().await?;
    let usable = usable(&client, slot).await.map_err(|e| one_line(&e))?;
    Ok(usable != Some(true))
}

/// Makes sure a checked, usable slot exists: keeps one recorded as checked, otherwise
/// drops what is there and creates it with the check, refusing (and dropping it again)
/// when rows committed before it would be missed (module docs).
pub(crate) async fn ensure_slot(
    db: &PgDatabase,
    slot: &CdcSlot,
    replication: &ReplicationConfig,
) -> Result<(), CdcError> {
    let mut client = db.client().await.map_err(CdcError::Database)?;
    let tx = locked(&mut client, &slot.slot).await?;
    let usable = usable(&tx, &slot.slot).await.map_err(database)?;
    let checked = tx
        .query_opt(
            "SELECT 1 FROM keel_cdc_slots WHERE slot_name = $1",
            &[&slot.slot],
        )
        .await
        .map_err(database)?
        .is_some();
    if usable == Some(true) && checked {
        return tx.commit().await.map_err(database);
    }
    if usable.is_some() {
        drop_slot_when_free(&tx, &slot.slot).await?;
    }
    let pending = create_and_count(db, slot, replication).await?;
    if pending > 0 {
        drop_slot_when_free(&tx, &slot.slot).await?;
        tx.commit().await.map_err(database)?;
        return Err(CdcError::Backlog(pending));
    }
    tx.execute(
        "INSERT INTO keel_cdc_slots (slot_name) VALUES ($1)
         ON CONFLICT (slot_name) DO UPDATE SET checked_at = clock_timestamp()",
        &[&slot.slot],
    )
    .await
    .map_err(database)?;
    tx.commit().await.map_err(database)
}

/// Drops the slot (waiting for the session that last held it), its record and its
/// publication.
pub(crate) async fn drop_slot(db: &PgDatabase, slot: &CdcSlot) -> Result<(), CdcError> {
    let mut client = db.client().await.map_err(CdcError::Database)?;
    let tx = locked(&mut client, &slot.slot).await?;
    drop_slot_when_free(&tx, &slot.slot).await?;
    tx.execute(
        "DELETE FROM keel_cdc_slots WHERE slot_name = $1",
        &[&slot.slot],
    )
    .await
    .map_err(database)?;
    tx.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", slot.publication))
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)
}

/// A transaction holding the slot's advisory lock. It takes no transaction id before it
/// writes, so creating a slot (which waits for every transaction holding one) does not wait
/// for it.
async fn locked<'a>(
    client: &'a mut deadpool_postgres::Object,
    slot: &str,
) -> Result<Transaction<'a>, CdcError> {
    let tx = client.transaction().await.map_err(database)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&SLOT_LOCK_CLASS, &slot],
    )
    .await
    .map_err(database)?;
    Ok(tx)
}

/// Creates the slot on a replication session and counts, in the snapshot it was created at,
/// the outbox's unpublished rows: those it will never stream.
async fn create_and_count(
    db: &PgDatabase,
    slot: &CdcSlot,
    replication: &ReplicationConfig,
) -> Result<i64, CdcError> {
    let session_error = |e: PgWireError| CdcError::Database(e.to_string());
    let mut session = ReplicationClient::connect_gated(replication.clone())
        .await
        .map_err(session_error)?;
    session
        .simple_query("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(session_error)?;
    session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'use')",
            slot.slot
        ))
        .await
        .map_err(session_error)?;
    let rows = session
        .simple_query(&format!(
            "SELECT count(*) FROM {}.keel_outbox WHERE published_at IS NULL",
            db.schema()
        ))
        .await
        .map_err(session_error)?;
    session
        .simple_query("COMMIT")
        .await
        .map_err(session_error)?;
    rows.first()
        .and_then(|row| row.first().cloned().flatten())
        .and_then(|count| std::str::from_utf8(&count).ok()?.parse::<i64>().ok())
        .ok_or_else(|| CdcError::Database("the outbox's rows were not counted".to_string()))
}

/// Drops the slot `name` if it exists, waiting up to 5 s for the session that last held it
/// (a relay just stopped, the session that created it) to let it go. Each attempt is a
/// savepoint, so a refused one leaves the transaction usable.
async fn drop_slot_when_free(tx: &Transaction<'_>, name: &str) -> Result<(), CdcError> {
    let mut attempts = 0;
    loop {
        tx.batch_execute("SAVEPOINT keel_drop_slot")
            .await
            .map_err(database)?;
        let dropped = tx
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = $1",
                &[&name],
            )
            .await;
        match dropped {
            Ok(_) => {
                return tx
                    .batch_execute("RELEASE SAVEPOINT keel_drop_slot")
                    .await
                    .map_err(database);
            }
            Err(error) if attempts >= 50 => return Err(database(error)),
            Err(_) => {
                attempts += 1;
                tx.batch_execute("ROLLBACK TO SAVEPOINT keel_drop_slot")
                    .await
                    .map_err(database)?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn database(error: tokio_postgres::Error) -> CdcError {
    CdcError::Database(one_line(&error))
}
