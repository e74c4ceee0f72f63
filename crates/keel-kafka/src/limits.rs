//! Every limit the Kafka listener enforces, in one place.
//!
//! A request path that grows without a limit written here is a bug. Limits an operator tunes
//! are fields of [`crate::BrokerConfig`] with their defaults here; the others are fixed.

/// Largest request frame accepted by default: Kafka's `socket.request.max.bytes` (100 MiB). A
/// larger length prefix closes the connection before any byte of the body is read.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
/// Smallest frame that can hold a request header (api key, version, correlation id).
pub const REQUEST_HEADER_BYTES_MIN: usize = 8;
/// Longest a fetch may wait for data, whatever `max_wait_ms` the client asks for.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Largest fetch response assembled, whatever `max_bytes` the client asks for.
pub const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Recent batches remembered per producer and partition for duplicate detection (Kafka keeps
/// five, matching `max.in.flight.requests.per.connection` with idempotence).
pub const PRODUCER_BATCHES_REMEMBERED: usize = 5;
/// Producers remembered per partition. Every producer session gets a new id, so without a
/// bound a partition's state would grow with every client restart; past it the tenth that
/// appended least recently is forgotten (Kafka expires ids after `producer.id.expiration.ms`
/// instead). A forgotten producer's next batch must start a new epoch or sequence 0.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
/// Requests a connection may have read and not yet answered: Produce requests behind one
/// another are served concurrently up to this many (their records written in request order,
/// their durability waits sharing `fdatasync`s), answered in request order. Kafka clients keep
/// up to 5 in flight with idempotence (`max.in.flight.requests.per.connection`), and
/// librdkafka many more without it; each holds its frame's bytes of the in-flight budget.
pub const PIPELINED_REQUESTS_MAX: usize = 8;
/// A partition's record set up to this size is written on the connection's task, larger ones
/// on a blocking thread (`broker::write_batches`), so a runtime worker is held for the
/// microseconds of a small copy into the page cache, never for a megabyte's.
pub const INLINE_WRITE_BYTES_MAX: usize = 64 * 1024;
/// Bytes read per call while rebuilding producer state from a partition's batch headers.
pub const PRODUCER_SCAN_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Most connections open at once by default (`max.connections`); at the limit the idlest is
/// evicted for a newcomer. Each is a descriptor: keep it well under `ulimit -n`.
pub const CONNECTIONS_MAX_DEFAULT: usize = 8_192;
/// A connection with no request in flight and no bytes for this long is closed (Kafka's
/// `connections.max.idle.ms` and its default, 10 minutes).
pub const CONNECTION_IDLE_MS_DEFAULT: u64 = 600_000;
/// A request frame must arrive whole, and its response be taken by the client, within this
/// once its first byte arrived (a half-sent frame or a client that stopped reading is
/// dropped after it).
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Bytes of request frames and fetch responses held at once across all connections
/// (Kafka's `queued.max.request.bytes`, unlimited there). A connection that would pass it
/// waits (its socket is not read) until others finish: back-pressure, not allocation.
pub const IN_FLIGHT_BYTES_MAX_DEFAULT: usize = 512 * 1024 * 1024;
/// A request frame's buffer starts at this size (or the frame's, if smaller) and doubles as
/// bytes arrive, so a client that announces a large frame and sends a few bytes holds a few
/// kilobytes of the in-flight budget, not the size it announced.
pub const FRAME_CHUNK_BYTES: usize = 16 * 1024;
/// A fetch gets at least this much of the in-flight budget (waiting for it if need be), and
/// at most what it asked for; its response is cut to what it got.
pub const FETCH_BUDGET_BYTES_MIN: usize = 1024 * 1024;
/// Most user topics a server holds by default; CreateTopics and auto-creation past it are
/// refused with `POLICY_VIOLATION`. Every partition is a directory and open files.
pub const TOPICS_MAX_DEFAULT: usize = 1_000;
/// Most partitions over all user topics by default; past it creation is refused.
pub const PARTITIONS_MAX_DEFAULT: usize = 4_000;
/// Longest transaction timeout a producer may ask for (`transaction.timeout.ms`): Kafka's
/// `transaction.max.timeout.ms` default, 15 minutes. Longer is refused with
/// `INVALID_TRANSACTION_TIMEOUT`.
pub const TRANSACTION_TIMEOUT_MS_MAX: u32 = 900_000;
/// How often the coordinator looks for transactions past their timeout to abort.
pub const TRANSACTION_EXPIRY_CHECK_MS: u64 = 1_000;
/// How long a transactional id with no transaction in progress and no request is kept before
/// it is forgotten by default (Kafka's `transactional.id.expiration.ms`, 7 days); a producer
/// using it afterwards starts again with a new producer id.
pub const TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Most transactional ids the coordinator keeps (each one a record in
/// `__keel_transactions` and an entry in memory); a new id past it is refused. Ids idle for
/// [`TRANSACTIONAL_ID_EXPIRATION_MS_DEFAULT`] are forgotten, as Kafka does.
pub const TRANSACTIONAL_IDS_MAX: usize = 100_000;
/// Aborted transactions remembered per partition for `read_committed` fetches (those wholly
/// before the log start are forgotten first). Past it the oldest is forgotten, and a
/// `read_committed` consumer reading that far back would be shown its records.
pub const ABORTED_TRANSACTIONS_PER_PARTITION_MAX: usize = 100_000;
/// Bytes of client metadata stored with a committed offset by default
/// (`offset.metadata.max.bytes`); transactional commits (TxnOffsetCommit) are held to it.
pub const OFFSET_METADATA_BYTES_MAX_DEFAULT: usize = 4_096;
