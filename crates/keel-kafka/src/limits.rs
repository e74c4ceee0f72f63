//! Every limit the Kafka listener enforces, in one place.
//!
//! A request path that grows without a limit written here is a bug.

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
/// Bytes read per call while rebuilding producer state from a partition's batch headers.
pub const PRODUCER_SCAN_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Most connections served at once; further connections wait in the accept backlog.
pub const CONNECTIONS_MAX: usize = 4096;
