//! A consumer group on one partition's stream, as Keel reads it: the committed offset is
//! the oldest pending entry (delivered, not acknowledged) when there is one, otherwise the
//! entry after the group's last delivered id — entries are acknowledged (`XACK`) only up
//! to the commit, so everything below the oldest pending entry is handled.

use redis::Value;
use redis::aio::ConnectionManager;

use crate::record::{offset_of, text};

/// The group's committed offset on `stream`; `None` when the group does not exist there or
/// never had an entry delivered.
pub(crate) async fn committed(
    redis: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> redis::RedisResult<Option<u64>> {
    let Some(last_delivered) = last_delivered(redis, stream, group).await? else {
        return Ok(None);
    };
    // XPENDING's summary: [count, smallest id, greatest id, consumers].
    let summary: Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(redis)
        .await?;
    if let Value::Array(parts) = &summary
        && let Some(oldest) = parts.get(1).and_then(text)
        && let Some(offset) = offset_of(&oldest)
    {
        return Ok(Some(offset));
    }
    Ok(Some(last_delivered))
}

/// The offset after the group's last delivered entry; `None` when the stream or the group
/// does not exist, or the group never had an entry delivered (its id is `0-0`): like a
/// Kafka group that never committed there, it has no committed offset.
async fn last_delivered(
    redis: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> redis::RedisResult<Option<u64>> {
    let groups: Value = match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(redis)
        .await
    {
        Ok(groups) => groups,
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(group_infos(&groups)
        .into_iter()
        .find(|(name, _)| name == group)
        .and_then(|(_, last)| offset_of(&last).map(|offset| offset + 1)))
}

/// The groups of an `XINFO GROUPS` reply: (name, last delivered id).
pub(crate) fn group_infos(reply: &Value) -> Vec<(String, String)> {
    let Value::Array(groups) = reply else {
        return Vec::new();
    };
    groups
        .iter()
        .filter_map(|group| {
            let fields = match group {
                Value::Array(fields) => fields.chunks_exact(2).collect::<Vec<_>>(),
                Value::Map(pairs) => return map_info(pairs),
                _ => return None,
            };
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|pair| text(&pair[0]).as_deref() == Some(name))
                    .and_then(|pair| text(&pair[1]))
            };
            Some((field("name")?, field("last-delivered-id")?))
        })
        .collect()
}

fn map_info(pairs: &[(Value, Value)]) -> Option<(String, String)> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| text(key).as_deref() == Some(name))
            .and_then(|(_, value)| text(value))
    };
    Some((field("name")?, field("last-delivered-id")?))
}

/// Creates `group` on `stream` (and the stream) starting after `offset` entries; an
/// existing group is left as it is.
pub(crate) async fn create(
    redis: &mut ConnectionManager,
    stream: &str,
    group: &str,
    start: GroupStart,
) -> redis::RedisResult<()> {
    let id = match start {
        GroupStart::Offset(0) => "0".to_string(),
        GroupStart::Offset(offset) => format!("0-{offset}"),
        GroupStart::End => "$".to_string(),
    };
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg(id)
        .arg("MKSTREAM")
        .query_async(redis)
        .await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupStart {
    /// At this offset (0: the first entry).
    Offset(u64),
    /// After the stream's last entry.
    End,
}
