//! [`RedisLease`]: one partition of one group on Redis — the partition's stream read with
//! `XREADGROUP` as the group's consumer named after this member, acknowledged with `XACK`
//! up to the commit.
//!
//! A lease that starts (a new holder, or a worker restarted after a failure) first claims
//! every pending entry of the group with `XAUTOCLAIM` (minimum idle 0: the partition lease
//! says nobody else reads here), so a dead member's delivered-but-unhandled entries come
//! again at once and in order, then reads them back from its own pending list before
//! asking for new entries (`>`). A commit is a Lua script that acknowledges the entries
//! below the offset only while this member still holds the partition's lease, so a member
//! that lost it cannot acknowledge what its successor is handling. A read of new entries
//! that failed sends the lease back to its pending list too: the server may have delivered
//! entries whose reply was lost with the connection.
//!
//! Not here: who holds the partition (`member.rs`), the committed offset (`groups.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keel_core::{
    BoxFuture, CommitError, FetchError, LeaseStart, PartitionLease, Record, StartFrom,
};
use redis::Value;

use crate::connection::Connection;
use crate::groups::{self, GroupStart};
use crate::limits::{ACK_BATCH_MAX, READ_COUNT_MAX, WAIT_POLL};
use crate::record::{decode_entries, id_of, offset_of, text};

/// Acknowledges the entries `0-<from>` to `0-<to>` while `ARGV[1]` holds the lease.
/// KEYS: lease, stream. ARGV: owner, group, from, to, batch. Returns 1, or 0 when fenced.
const COMMIT_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local batch = tonumber(ARGV[5])
local ids = {}
for seq = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  ids[#ids + 1] = '0-' .. seq
  if #ids == batch then
    redis.call('XACK', KEYS[2], ARGV[2], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then redis.call('XACK', KEYS[2], ARGV[2], unpack(ids)) end
return 1
";

/// One assigned partition of one member.
pub(crate) struct RedisLease {
    pub(crate) connection: Arc<Connection>,
    pub(crate) stream: String,
    pub(crate) lease_key: String,
    pub(crate) group: String,
    pub(crate) partition: u32,
    /// This member's id: the group's consumer name and the lease's value.
    pub(crate) owner: String,
    pub(crate) start_from: StartFrom,
    /// Set by the member once the partition's lease is lost: commits are refused.
    pub(crate) fenced: Arc<AtomicBool>,
    /// Offsets below this one are acknowledged.
    pub(crate) acked: AtomicU64,
    /// One past the last offset seen in the stream.
    pub(crate) end: AtomicU64,
    /// Whether this member's pending list may still hold entries to read again.
    pub(crate) replaying: AtomicBool,
}

impl RedisLease {
    async fn begin(&self) -> Result<LeaseStart, FetchError> {
        let mut redis = self.connection.redis();
        let start = match self.start_from {
            StartFrom::Earliest => GroupStart::Offset(0),
            StartFrom::Latest => GroupStart::End,
        };
        groups::create(&mut redis, &self.stream, &self.group, start)
            .await
            .map_err(unavailable)?;
        self.claim_pending().await?;
        let committed = groups::committed(&mut redis, &self.stream, &self.group)
            .await
            .map_err(unavailable)?
            .unwrap_or(0);
        self.acked.store(committed, Ordering::SeqCst);
        self.replaying.store(true, Ordering::SeqCst);
        self.end.store(committed, Ordering::SeqCst);
        self.look().await?;
        Ok(LeaseStart {
            offset: committed,
            committed: Some(committed),
        })
    }

    /// Takes every pending entry of the group over as this member's, and removes the other
    /// consumers (now without pending entries) from the group.
    async fn claim_pending(&self) -> Result<(), FetchError> {
        let mut redis = self.connection.redis();
        let mut cursor = "0-0".to_string();
        loop {
            // XAUTOCLAIM's reply: [next cursor, [claimed ids], [deleted ids]].
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&self.owner)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(ACK_BATCH_MAX)
                .arg("JUSTID")
                .query_async(&mut redis)
                .await
                .map_err(unavailable)?;
            let next = match &reply {
                Value::Array(parts) => parts.first().and_then(text),
                _ => None,
            };
            match next {
                Some(next) if next != "0-0" => cursor = next,
                _ => break,
            }
        }
        let consumers: Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.stream)
            .arg(&self.group)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        for name in consumer_names(&consumers) {
            if name != self.owner {
                let _: redis::RedisResult<i64> = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg(&name)
                    .query_async(&mut redis)
                    .await;
            }
        }
        Ok(())
    }

    /// Learns the stream's end (its last entry).
    async fn look(&self) -> Result<(), FetchError> {
        let last: Value = redis::cmd("XREVRANGE")
            .arg(&self.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection.redis())
            .await
            .map_err(unavailable)?;
        if let Value::Array(entries) = &last
            && let Some(Value::Array(entry)) = entries.first()
            && let Some(offset) = entry.first().and_then(text).and_then(|id| offset_of(&id))
        {
            self.end.fetch_max(offset + 1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// `XREADGROUP` from `from`: this member's pending entries after it, or new entries
    /// (`>`).
    async fn read_group(&self, from: &str) -> Result<Vec<Record>, FetchError> {
        let mut reader = self
            .connection
            .reader(self.partition)
            .await
            .map_err(unavailable)?;
        // The reply: [[stream, [entries]]], or nil when nothing came.
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.owner)
            .arg("COUNT")
            .arg(READ_COUNT_MAX)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(from)
            .query_async(&mut reader)
            .await
            .map_err(unavailable)?;
        let entries = match reply {
            Value::Array(streams) => match streams.into_iter().next() {
                Some(Value::Array(stream)) => stream.into_iter().nth(1),
                _ => None,
            },
            Value::Map(streams) => streams.into_iter().next().map(|(_, entries)| entries),
            _ => None,
        };
        Ok(entries.map(decode_entries).unwrap_or_default())
    }

    async fn read(&self, offset: u64) -> Result<Vec<Record>, FetchError> {
        if self.replaying.load(Ordering::SeqCst) {
            // Entries with ids after the one before `offset`.
            let after = if offset == 0 {
                "0-0".to_string()
            } else {
                id_of(offset - 1)
            };
            let records = self.read_group(&after).await?;
            if !records.is_empty() {
                self.note(&records);
                return Ok(records);
            }
            self.replaying.store(false, Ordering::SeqCst);
        }
        let records = match self.read_group(">").await {
            Ok(records) => records,
            Err(error) => {
                // The server may have delivered entries whose reply never came (the
                // connection broke: a restart): they are in this consumer's pending list,
                // which `>` never returns, so the next read starts there.
                self.replaying.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        self.note(&records);
        Ok(records)
    }

    fn note(&self, records: &[Record]) {
        if let Some(last) = records.last() {
            self.end.fetch_max(last.offset + 1, Ordering::SeqCst);
        }
    }

    async fn ack(&self, offset: u64) -> Result<(), CommitError> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(CommitError::Fenced);
        }
        let acked = self.acked.load(Ordering::SeqCst);
        if offset <= acked {
            return Ok(());
        }
        // Offsets acked..offset are the ids 0-(acked+1) to 0-offset.
        let held: i64 = redis::Script::new(COMMIT_SCRIPT)
            .key(&self.lease_key)
            .key(&self.stream)
            .arg(&self.owner)
            .arg(&self.group)
            .arg(acked + 1)
            .arg(offset)
            .arg(ACK_BATCH_MAX)
            .invoke_async(&mut self.connection.redis())
            .await
            .map_err(|e| CommitError::Unavailable {
                reason: e.to_string(),
            })?;
        if held == 0 {
            self.fenced.store(true, Ordering::SeqCst);
            return Err(CommitError::Fenced);
        }
        self.acked.fetch_max(offset, Ordering::SeqCst);
        Ok(())
    }
}

/// The consumer names of an `XINFO CONSUMERS` reply.
fn consumer_names(reply: &Value) -> Vec<String> {
    let Value::Array(consumers) = reply else {
        return Vec::new();
    };
    consumers
        .iter()
        .filter_map(|consumer| match consumer {
            Value::Array(fields) => fields
                .chunks_exact(2)
                .find(|pair| text(&pair[0]).as_deref() == Some("name"))
                .and_then(|pair| text(&pair[1])),
            Value::Map(pairs) => pairs
                .iter()
                .find(|(key, _)| text(key).as_deref() == Some("name"))
                .and_then(|(_, value)| text(value)),
            _ => None,
        })
        .collect()
}

impl PartitionLease for RedisLease {
    fn partition(&self) -> u32 {
        self.partition
    }

    fn start(&self) -> BoxFuture<'_, Result<LeaseStart, FetchError>> {
        Box::pin(self.begin())
    }

    fn has_data(&self, next_offset: u64) -> bool {
        self.end.load(Ordering::SeqCst) > next_offset
    }

    fn wait_for_data(&self, next_offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            while !self.has_data(next_offset) {
                if self.look().await.is_err() || !self.has_data(next_offset) {
                    tokio::time::sleep(WAIT_POLL).await;
                }
            }
        })
    }

    fn fetch(
        &self,
        offset: u64,
        _bytes_max: usize,
    ) -> BoxFuture<'_, Result<Vec<Record>, FetchError>> {
        Box::pin(self.read(offset))
    }

    fn commit(&self, offset: u64) -> BoxFuture<'_, Result<(), CommitError>> {
        Box::pin(self.ack(offset))
    }
}

fn unavailable(error: impl std::fmt::Display) -> FetchError {
    FetchError::Unavailable {
        reason: error.to_string(),
    }
}
