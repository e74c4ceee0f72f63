//! Test support (feature `testing`): a PostgreSQL schema of its own per test, and the sweep
//! of the schemas earlier runs left behind.
//!
//! A test keeps its schema when it ends (a failed test's tables are what one looks at), so
//! every run used to leave one schema per test on the server: ~50 per workspace run, for
//! good, on a developer's own server. Each name now carries its creation time, and asking
//! for a schema drops the ones older than [`STALE_AFTER`] first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Schemas made by tests longer ago than this are dropped by the next test that asks for
/// one: no test runs this long, so none of them is still in use.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Where every test schema's name starts.
const PREFIX: &str = "keel_test_";

/// Creates the schema `keel_test_<test>_<pid>_<unix seconds>` on the server at `base` (a
/// PostgreSQL URL) and returns a URL whose connections use it (`search_path`), with the
/// schema's name. Test schemas older than [`STALE_AFTER`] are dropped first. `test` is a
/// short lowercase slug (letters, digits, `_`).
///
/// Panics when the server cannot be reached or the schema cannot be made: the caller's
/// environment said the server is there, so a test must fail, not skip.
pub async fn fresh_postgres_schema(base: &str, test: &str) -> (String, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let schema = format!("{PREFIX}{test}_{}_{now}", std::process::id());
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL server at {base} is unreachable: {e}"));
    tokio::spawn(connection);
    drop_stale_schemas(&client, now).await;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap_or_else(|e| panic!("creating the test schema {schema}: {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    let url =
        format!("{base}{separator}options=-c%20search_path%3D{schema}&application_name={schema}");
    (url, schema)
}

/// Drops the test schemas made before `now` − [`STALE_AFTER`]. Best effort: another test may
/// be dropping the same one at the same moment, and a schema that cannot be dropped now is
/// dropped by a later run.
async fn drop_stale_schemas(client: &tokio_postgres::Client, now: u64) {
    let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let schema: String = row.get(0);
        if made_at(&schema).is_some_and(|made| made + STALE_AFTER.as_secs() < now)
            && let Err(error) = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
        {
            eprintln!("could not drop the stale test schema {schema}: {error}");
        }
    }
}

/// The creation time in a test schema's name (its last `_`-separated part), if it has one:
/// names of older runs, without it, are left alone.
fn made_at(schema: &str) -> Option<u64> {
    let (_, seconds) = schema.rsplit_once('_')?;
    // Unix seconds of this century have ten digits; a pid or a test's number is shorter.
    (seconds.len() == 10)
        .then(|| seconds.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::made_at;

    #[test]
    fn the_creation_time_is_read_from_the_name_only_when_it_is_there() {
        assert_eq!(
            made_at("keel_test_saga_3_27248_1765123456"),
            Some(1765123456)
        );
        assert_eq!(made_at("keel_test_saga_3_27248"), None);
        assert_eq!(made_at("keel_test_es_0_27248"), None);
        assert_eq!(made_at("keel_test_x_1_176512345x"), None);
    }
}
