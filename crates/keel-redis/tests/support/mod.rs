//! A key namespace of its own per check, and the sweep of the ones earlier runs left.
//!
//! A check leaves its namespace's streams on the server when it ends (a failed check's
//! entries are what one looks at), so every run left ~150 keys on the shared server for
//! good. A namespace's name starts with its UUIDv7's creation time, and asking for one
//! deletes the keys of namespaces older than [`STALE_AFTER`] first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Namespaces made longer ago than this are deleted by the next check that makes one: no
/// check runs this long, so none of them is still in use.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// A new namespace (`t` and the 31 first hex digits of a UUIDv7) on the server at `url`,
/// after deleting the keys of stale ones. Best effort: a key that cannot be deleted now is
/// deleted by a later run.
pub(crate) async fn fresh_namespace(url: &str) -> String {
    if let Err(error) = delete_stale_namespaces(url).await {
        eprintln!("could not delete stale test namespaces at {url}: {error}");
    }
    format!("t{}", uuid::Uuid::now_v7().simple())[..32].to_string()
}

async fn delete_stale_namespaces(url: &str) -> redis::RedisResult<()> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = {
        let mut scan =
            redis::AsyncCommands::scan_match::<_, String>(&mut connection, "t*:*").await?;
        let mut keys = Vec::new();
        while let Some(key) = scan.next_item().await {
            keys.push(key?);
        }
        keys
    };
    let stale: Vec<String> = keys
        .into_iter()
        .filter(|key| {
            made_at_ms(key).is_some_and(|made| made + (STALE_AFTER.as_millis() as u64) < now_ms)
        })
        .collect();
    for chunk in stale.chunks(500) {
        redis::cmd("UNLINK")
            .arg(chunk)
            .query_async::<()>(&mut connection)
            .await?;
    }
    Ok(())
}

/// The creation time of a key's namespace, in Unix milliseconds, when the key is in a
/// namespace these checks make (`t`, 31 or 32 hex digits, `:`): a UUIDv7 starts with it.
fn made_at_ms(key: &str) -> Option<u64> {
    let (namespace, _) = key.split_once(':')?;
    let hex = namespace.strip_prefix('t')?;
    if !(31..=32).contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex[..12], 16).ok()
}
