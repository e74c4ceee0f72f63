//! Every SQL statement of the PostgreSQL outbox, inbox, saga store and projection
//! checkpoints, as named constants, and the versioned migrations that create their tables.
//!
//! Not here: when statements run and in which transaction (`outbox.rs`, `inbox.rs`,
//! `saga.rs`, `projection.rs`), and the event store's tables (`event_store.rs`, its own
//! history).
//! Application tables are the application's and are never touched here. Table names are
//! unqualified: they live in the connection's `search_path` (its first schema), so one
//! database can hold several Keel schemas (the tests use one each).
//!
//! # Version history
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `keel_outbox` + its indexes + the `NOTIFY keel_outbox` trigger |
//! | 2 | `keel_outbox_dead`: rows moved aside, with their reason |
//! | 3 | `keel_inbox`: one row per (consumer, event id) processed, and its retention index |
//! | 4 | `keel_outbox_keyless_pending`: the claim of rows without a key no longer walks every pending row |
//! | 5 | `keel_sagas`: one row per saga instance, updated by compare-and-set on `version` |
//! | 6 | `keel_projection_checkpoints`: per (projection, source partition), the position after the last event applied |
//! | 7 | `keel_cdc_slots`: the CDC relay's slots whose creation check passed (`cdc_slot.rs`) |
//!
//! Every component's tables are in this one history (unlike SQLite's track per component),
//! so connecting a [`PgDatabase`](super::PgDatabase) — and so `keel migrate` — brings all of
//! them to the version this code writes.
//!
//! A schema is only ever moved forward, every missing step in one transaction together
//! with its row in `keel_schema_migrations`, under a transaction-scoped advisory lock on
//! the schema's name, so two processes starting at once apply each step once. A schema
//! newer than this code is refused rather than written.

use deadpool_postgres::Object;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// The migrations, in order; `version` is dense from 1.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "outbox table",
        sql: CREATE_OUTBOX,
    },
    Migration {
        version: 2,
        name: "outbox dead rows",
        sql: CREATE_OUTBOX_DEAD,
    },
    Migration {
        version: 3,
        name: "inbox table",
        sql: CREATE_INBOX,
    },
    Migration {
        version: 4,
        name: "outbox keyless claim index",
        sql: CREATE_OUTBOX_KEYLESS_INDEX,
    },
    Migration {
        version: 5,
        name: "saga instances",
        sql: CREATE_SAGAS,
    },
    Migration {
        version: 6,
        name: "projection checkpoints",
        sql: CREATE_PROJECTION_CHECKPOINTS,
    },
    Migration {
        version: 7,
        name: "cdc slots checked",
        sql: CREATE_CDC_SLOTS,
    },
];

/// The schema version this code writes.
pub const PG_SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The `LISTEN`/`NOTIFY` channel; the payload is the schema of the table written, so a relay
/// ignores other schemas' notifications.
pub(crate) const NOTIFY_CHANNEL: &str = "keel_outbox";

/// First key of the advisory locks that serialise enqueues of one partition key (see
/// `outbox.rs`): `"kle"` in ASCII.
pub(crate) const ENQUEUE_LOCK_CLASS: i32 = 0x006b_6c65;
/// First key of the advisory locks a relay holds on the partition keys it is publishing:
/// `"klr"` in ASCII.
pub(crate) const RELAY_LOCK_CLASS: i32 = 0x006b_6c72;

const CREATE_MIGRATIONS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS keel_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

const LOCK_MIGRATIONS: &str =
    "SELECT pg_advisory_xact_lock(hashtext('keel_migrate:' || current_schema()))";
const SELECT_SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM keel_schema_migrations";
const INSERT_MIGRATION: &str = "INSERT INTO keel_schema_migrations (version, name) VALUES ($1, $2)";

// `keel_outbox_pending` is the claim's access path (ids in order, unpublished only: it
// stays small however many published rows are kept). `keel_outbox_key_pending` reads a
// locked key's rows in order (`CLAIM_KEYED_ROWS`). The trigger wakes relays when rows
// commit: a NOTIFY inside a transaction is delivered at its commit, and one per statement is
// enough.
const CREATE_OUTBOX: &str = "
CREATE TABLE keel_outbox (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic            text        NOT NULL,
    partition_key    text,
    event_id         text        NOT NULL,
    envelope         bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    first_failure_at timestamptz,
    retry_at         timestamptz,
    published_at     timestamptz
);
CREATE INDEX keel_outbox_pending ON keel_outbox (id) WHERE published_at IS NULL;
CREATE INDEX keel_outbox_key_pending ON keel_outbox (partition_key, id)
    WHERE published_at IS NULL;
CREATE INDEX keel_outbox_published ON keel_outbox (published_at) WHERE published_at IS NOT NULL;
CREATE FUNCTION keel_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keel_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;
CREATE TRIGGER keel_outbox_notify AFTER INSERT ON keel_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION keel_outbox_notify();
";

const CREATE_OUTBOX_DEAD: &str = "
CREATE TABLE keel_outbox_dead (
    id               bigint      PRIMARY KEY,
    topic            text        NOT NULL,
    partition_key    text,
    event_id         text        NOT NULL,
    envelope         bytea       NOT NULL,
    created_at       timestamptz NOT NULL,
    attempts         integer     NOT NULL,
    error            text        NOT NULL,
    first_failure_at timestamptz NOT NULL,
    dead_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    dead_lettered_at timestamptz
);
CREATE INDEX keel_outbox_dead_to_copy ON keel_outbox_dead (id) WHERE dead_lettered_at IS NULL;
";

// Without it, the keyless claim walked `keel_outbox_pending` through every keyed row to
// find none (most outboxes have no keyless rows at all).
const CREATE_OUTBOX_KEYLESS_INDEX: &str = "
CREATE INDEX keel_outbox_keyless_pending ON keel_outbox (id)
    WHERE published_at IS NULL AND partition_key IS NULL;
";

const CREATE_INBOX: &str = "
CREATE TABLE keel_inbox (
    consumer   text        NOT NULL,
    event_id   text        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX keel_inbox_handled_at ON keel_inbox (handled_at);
";

/// Serialises enqueues per partition key until the enqueuing transaction ends (see
/// `outbox.rs` for why); in hash order, so two transactions locking the same keys in one
/// call cannot deadlock.
pub(crate) const LOCK_KEYS_FOR_ENQUEUE: &str = "
SELECT pg_advisory_xact_lock($1, h) FROM (
    SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY 1
) AS keys";

/// Rows keep the order of the arrays (`WITH ORDINALITY`), so ids follow the caller's order.
pub(crate) const INSERT_OUTBOX_ROWS: &str = "
INSERT INTO keel_outbox (topic, partition_key, event_id, envelope)
SELECT topic, partition_key, event_id, envelope
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
    WITH ORDINALITY AS r (topic, partition_key, event_id, envelope, n)
ORDER BY n";

/// Claim, step 1: take the relay locks of up to `$1` partition keys whose oldest
/// unpublished row (the key's *head*) is due, looking at the oldest `$3` unpublished rows
/// (the window), and return the window's lowest and highest ids as the bounds of step 2.
/// `pg_try_advisory_xact_lock` skips a key another relay holds instead of waiting for it.
/// The head test runs on this statement's snapshot and may be stale (a head published a
/// moment ago still looks unpublished); that only makes a key look busier, and step 2
/// reads afresh.
///
/// A key's head is its lowest id *in the window*: the window is every unpublished keyed row
/// below its highest id, so a key's unpublished row older than one in the window is in the
/// window too. One sort of the window finds every head; probing `keel_outbox_key_pending`
/// for an older row of each window row's key cost 4,000 index probes for 1,000 heads (22.9
/// of the statement's 24.1 ms at 100,000 pending rows over 1,000 keys; after: 9–26 ms
/// against 40–90 ms for the probing statement, same session, load 7: `EXPLAIN ANALYZE`).
///
/// The sort groups keys bytewise (`COLLATE "C"`): the groups are the same as under the
/// database's collation (a default collation is deterministic, so equal means equal bytes),
/// and it skips the collation's comparison, which was most of the statement (the sort of a
/// 4,000-row window 12.5 of 17 ms, `EXPLAIN ANALYZE` under `C.UTF-8`); claims per second
/// of one `pgbench` client, alternated five times at load 6: 49–166 before, 61–194 after.
///
/// The heads are materialised in id order, and the lock is tried on them one by one under
/// the `LIMIT`, so a claim locks only the keys it returns. With the lock in the same `WHERE`
/// as the head test, the planner tried it on every row of the window before the head test
/// and the sort (`EXPLAIN` on this machine): a claim of 30 keys held the locks of all 100
/// keys in a 120-row window, and a second relay, or the relay's own claim ahead, found
/// nothing to claim.
pub(crate) const CLAIM_KEYS: &str = "
WITH w AS (
    SELECT id, partition_key, retry_at FROM keel_outbox
    WHERE published_at IS NULL AND partition_key IS NOT NULL
    ORDER BY id LIMIT $3),
heads AS MATERIALIZED (
    SELECT id, partition_key FROM (
        SELECT DISTINCT ON (partition_key COLLATE \"C\") id, partition_key, retry_at FROM w
        ORDER BY partition_key COLLATE \"C\", id) AS firsts
    WHERE retry_at IS NULL OR retry_at <= clock_timestamp()
    ORDER BY id)
SELECT h.partition_key, (SELECT min(id) FROM w), (SELECT max(id) FROM w)
FROM heads AS h
WHERE pg_try_advisory_xact_lock($2, hashtext(h.partition_key))
LIMIT $1";

/// Claim, step 2: the unpublished rows of the keys locked in step 1, oldest first. A new
/// statement, so a new snapshot, taken *after* the locks were granted: every relay that
/// held one of these keys before has committed, and its published rows look published.
/// No row locks: the key locks already keep every other relay off these rows, and nothing
/// else changes an unpublished row (cleanup deletes published ones only); locking 1,000
/// rows per claim cost a heap write and WAL each. The bound `id <= $3` keeps the read to the
/// window: without it the statement read every row of the locked keys and sorted them
/// (127 ms for 100,000 pending rows, against 2 ms with it: `EXPLAIN ANALYZE` on this
/// machine). Rows of a key up to a bound are a prefix of the key's rows, so order holds.
///
/// The lower bound `id >= $4` (the window's lowest id) changes no result: a locked key's
/// unpublished rows are all in the window or above it (an older one would be in the
/// window, and rule 1 of `outbox.rs` lets no older row of the key commit later). It keeps
/// the read off the rows published and deleted below the window, which stay in the indexes
/// until vacuum. Without it the cached generic plan, a bitmap scan of
/// `keel_outbox_key_pending` (a bitmap scan cannot skip index entries known dead), read
/// 294,000 index entries and 17,700 heap pages per claim of 1,000 rows: 90–200 ms
/// (`auto_explain` during `outbox_relay polling`), where the relay otherwise claims in a few.
pub(crate) const CLAIM_KEYED_ROWS: &str = "
SELECT id, topic, partition_key, envelope, attempts FROM keel_outbox
WHERE published_at IS NULL AND partition_key = ANY($1) AND id >= $4 AND id <= $3
ORDER BY id LIMIT $2";

/// Claim, keyless rows: no order to keep, so row locks alone share them between relays.
pub(crate) const CLAIM_KEYLESS_ROWS: &str = "
SELECT id, topic, partition_key, envelope, attempts FROM keel_outbox
WHERE published_at IS NULL AND partition_key IS NULL
  AND (retry_at IS NULL OR retry_at <= clock_timestamp())
ORDER BY id LIMIT $1
FOR UPDATE SKIP LOCKED";

pub(crate) const MARK_PUBLISHED: &str =
    "UPDATE keel_outbox SET published_at = clock_timestamp() WHERE id = ANY($1)";
pub(crate) const DELETE_PUBLISHED: &str = "DELETE FROM keel_outbox WHERE id = ANY($1)";
/// As [`MARK_PUBLISHED`] and [`DELETE_PUBLISHED`], returning the ids found (the CDC relay's
/// write-back, which may run before a row's commit is visible).
#[cfg(feature = "cdc")]
pub(crate) const MARK_PUBLISHED_RETURNING: &str =
    "UPDATE keel_outbox SET published_at = clock_timestamp() WHERE id = ANY($1) RETURNING id";
#[cfg(feature = "cdc")]
pub(crate) const DELETE_PUBLISHED_RETURNING: &str =
    "DELETE FROM keel_outbox WHERE id = ANY($1) RETURNING id";

pub(crate) const RECORD_FAILURE: &str = "
UPDATE keel_outbox
SET attempts = attempts + 1,
    last_error = $2,
    first_failure_at = COALESCE(first_failure_at, clock_timestamp()),
    retry_at = clock_timestamp() + $3::bigint * interval '1 millisecond'
WHERE id = $1";

/// Moves a row aside in one statement: delete it from the outbox, insert it with its reason
/// into `keel_outbox_dead`.
pub(crate) const MOVE_TO_DEAD: &str = "
WITH moved AS (DELETE FROM keel_outbox WHERE id = $1 RETURNING *)
INSERT INTO keel_outbox_dead
    (id, topic, partition_key, event_id, envelope, created_at, attempts, error, first_failure_at)
SELECT id, topic, partition_key, event_id, envelope, created_at, attempts + 1, $2,
       COALESCE(first_failure_at, clock_timestamp())
FROM moved";

pub(crate) const SELECT_DEAD_TO_COPY: &str = "
SELECT id, topic, event_id, envelope, attempts, error,
       (extract(epoch FROM first_failure_at) * 1000)::bigint,
       (extract(epoch FROM dead_at) * 1000)::bigint
FROM keel_outbox_dead WHERE dead_lettered_at IS NULL ORDER BY id LIMIT $1";

pub(crate) const MARK_DEAD_COPIED: &str =
    "UPDATE keel_outbox_dead SET dead_lettered_at = clock_timestamp() WHERE id = $1";

pub(crate) const SELECT_BACKLOG: &str = "
SELECT count(*),
       COALESCE((extract(epoch FROM clock_timestamp() - min(created_at)) * 1000)::bigint, 0),
       (SELECT count(*) FROM keel_outbox_dead)
FROM keel_outbox WHERE published_at IS NULL";

/// At most `$2` rows published more than `$1` ms ago, oldest first, along
/// `keel_outbox_published`.
pub(crate) const DELETE_PUBLISHED_BEFORE: &str = "
DELETE FROM keel_outbox WHERE id IN (
    SELECT id FROM keel_outbox
    WHERE published_at < clock_timestamp() - $1::bigint * interval '1 millisecond'
    ORDER BY published_at LIMIT $2)";

/// The inbox mark; zero rows changed means the event was processed before (or is being
/// processed by a transaction that will commit first: the insert waits for it).
pub(crate) const INSERT_MARK: &str =
    "INSERT INTO keel_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
pub(crate) const SELECT_MARK: &str =
    "SELECT 1 FROM keel_inbox WHERE consumer = $1 AND event_id = $2";
pub(crate) const COUNT_MARKS: &str = "SELECT count(*) FROM keel_inbox";
pub(crate) const DELETE_MARKS_BEFORE: &str = "
DELETE FROM keel_inbox WHERE (consumer, event_id) IN (
    SELECT consumer, event_id FROM keel_inbox
    WHERE handled_at < to_timestamp($1::double precision / 1000)
    ORDER BY handled_at LIMIT $2)";

// `keel_sagas_unfinished` holds only instances still to drive, so resuming after a restart
// reads them in id order without walking every finished saga.
const CREATE_SAGAS: &str = "
CREATE TABLE keel_sagas (
    id          text        PRIMARY KEY,
    saga        text        NOT NULL,
    status      text        NOT NULL,
    step        bigint      NOT NULL,
    attempt     bigint      NOT NULL,
    deadline_ms bigint,
    data        text        NOT NULL,
    error       text,
    version     bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX keel_sagas_unfinished ON keel_sagas (saga, id)
    WHERE status IN ('running', 'compensating');
";

pub(crate) const INSERT_SAGA: &str = "
INSERT INTO keel_sagas (id, saga, status, step, attempt, deadline_ms, data, error, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING";
/// Compare-and-set: changes one row only if nobody stored a transition since it was read.
pub(crate) const UPDATE_SAGA: &str = "
UPDATE keel_sagas SET status = $3, step = $4, attempt = $5, deadline_ms = $6, data = $7,
    error = $8, version = $9, updated_at = clock_timestamp()
WHERE id = $1 AND saga = $2 AND version = $9::bigint - 1";
/// Both readers return the columns in this order (see `saga.rs`).
pub(crate) const SELECT_SAGA: &str = "
SELECT id, saga, status, step, attempt, deadline_ms, data, error, version
FROM keel_sagas WHERE id = $1";
/// Along `keel_sagas_unfinished` (its predicate is the query's).
pub(crate) const SELECT_UNFINISHED_SAGAS: &str = "
SELECT id, saga, status, step, attempt, deadline_ms, data, error, version
FROM keel_sagas WHERE saga = $1 AND status IN ('running', 'compensating')
ORDER BY id LIMIT $2";

const CREATE_PROJECTION_CHECKPOINTS: &str = "
CREATE TABLE keel_projection_checkpoints (
    projection       text        NOT NULL,
    source_partition integer     NOT NULL,
    next_position    bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (projection, source_partition)
);
";

// A slot counts as checked only once its row is here (`cdc_slot.rs`). Slots that already
// exist were created by relays that checked them before they streamed (and kept no record):
// they are recorded as checked, so upgrading leaves them as they were.
const CREATE_CDC_SLOTS: &str = "
CREATE TABLE keel_cdc_slots (
    slot_name  text        PRIMARY KEY,
    checked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO keel_cdc_slots (slot_name)
SELECT slot_name FROM pg_replication_slots
WHERE slot_type = 'logical' AND plugin = 'pgoutput' AND database = current_database();
";

pub(crate) const SELECT_PROJECTION_CHECKPOINTS: &str = "
SELECT source_partition, next_position FROM keel_projection_checkpoints
WHERE projection = $1 ORDER BY source_partition";
/// Locks the partition's checkpoint row for the batch's transaction, so a second projector
/// of the same model waits here and then sees the first one's checkpoint.
pub(crate) const LOCK_PROJECTION_CHECKPOINT: &str = "
SELECT next_position FROM keel_projection_checkpoints
WHERE projection = $1 AND source_partition = $2 FOR UPDATE";
/// Sets the checkpoint unless another projector moved it past the batch's first position
/// `$4` meanwhile (the first batch has no row to lock: two inserts race, and the loser's
/// `DO UPDATE` sees the winner's row and changes nothing).
pub(crate) const UPSERT_PROJECTION_CHECKPOINT: &str = "
INSERT INTO keel_projection_checkpoints (projection, source_partition, next_position)
VALUES ($1, $2, $3)
ON CONFLICT (projection, source_partition) DO UPDATE
SET next_position = excluded.next_position, updated_at = clock_timestamp()
WHERE keel_projection_checkpoints.next_position <= $4";
pub(crate) const DELETE_PROJECTION_CHECKPOINTS: &str =
    "DELETE FROM keel_projection_checkpoints WHERE projection = $1";

/// Why migrating failed.
#[derive(Debug)]
pub(crate) enum MigrateError {
    Sql {
        version: i32,
        source: tokio_postgres::Error,
    },
    Newer {
        found: i32,
    },
}

/// Brings the schema of `client`'s `search_path` to [`PG_SCHEMA_VERSION`]; returns the
/// version found before.
pub(crate) async fn migrate(client: &mut Object) -> Result<i32, MigrateError> {
    let sql = |version| move |source| MigrateError::Sql { version, source };
    let tx = client.transaction().await.map_err(sql(0))?;
    tx.batch_execute(LOCK_MIGRATIONS).await.map_err(sql(0))?;
    tx.batch_execute(CREATE_MIGRATIONS_TABLE)
        .await
        .map_err(sql(0))?;
    let found: i32 = tx
        .query_one(SELECT_SCHEMA_VERSION, &[])
        .await
        .map_err(sql(0))?
        .get(0);
    if found > PG_SCHEMA_VERSION {
        return Err(MigrateError::Newer { found });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.batch_execute(migration.sql)
            .await
            .map_err(sql(migration.version))?;
        tx.execute(INSERT_MIGRATION, &[&migration.version, &migration.name])
            .await
            .map_err(sql(migration.version))?;
    }
    tx.commit().await.map_err(sql(PG_SCHEMA_VERSION))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
    }
}
