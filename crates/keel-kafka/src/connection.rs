//! One client connection: frames in, responses out, strictly in order.
//!
//! Responses leave in request order, as Kafka requires. Consecutive Produce requests are
//! pipelined: up to [`PIPELINED_REQUESTS_MAX`] are read ahead, each one's records written
//! (in request order, which keeps an idempotent producer's batches in sequence order) before
//! the next is handled, and their durability waits overlap, so one `fdatasync` answers
//! several. Any other request waits until everything ahead of it is answered, as under a
//! broker that serves one request at a time (why: [`read_requests`]). Different connections
//! run concurrently.
//!
//! Decision table for a frame:
//!
//! | frame | answer | connection |
//! |---|---|---|
//! | a TLS listener's first bytes are not a TLS handshake (a plaintext client) | none (one line naming the peer, `security_mismatches` metric) | closed |
//! | a plaintext listener's first length prefix is a TLS record header (a TLS client) | none (one line naming the peer, `security_mismatches` metric) | closed |
//! | length prefix negative or over `request_bytes_max` | none (logged) | closed before reading the body |
//! | shorter than a request header, or cut off by EOF | none (logged) | closed |
//! | unknown or unserved api key | header + `UNSUPPORTED_VERSION` | kept |
//! | ApiVersions at an unserved version | ApiVersions v0 with `UNSUPPORTED_VERSION` and the served versions | kept |
//! | other key at an unserved version | header + `UNSUPPORTED_VERSION` | kept |
//! | header or body that does not parse | none (logged) | closed |
//! | served request | its response (none for Produce with `acks = 0`) | kept |
//! | nothing sent for `connection_idle_ms` between requests | none | closed (`idle_timeout`) |
//! | a frame not whole, or its response not taken, within `request_timeout_ms` | none | closed (`request_timeout`) |
//! | the listener needs the slot of this idle connection | none | closed (`connections_max_evicted`) |
//!
//! A frame's buffer and a fetch's response take bytes from the broker's in-flight budget
//! (`in_flight_bytes_max`) before they are allocated; when it is spent the connection waits,
//! and its socket is not read meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use keel_listener::tls::{self, Opening};
use keel_listener::{Busy, CloseReason, Connection, ConnectionGuard, SecurityMismatch};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::api::api_versions;
use crate::broker::{Answer, Broker, HandleError, Handled, Reply};
use crate::codec::{
    DecodeError, DecodedRequest, UNSUPPORTED_VERSION, decode_request, encode_response,
    unsupported_api_key_response,
};
use crate::limits::{FRAME_CHUNK_BYTES, PIPELINED_REQUESTS_MAX};
use crate::memory::{MemoryBudget, MemoryPermit};
use crate::metrics::RequestInFlight;
use crate::sasl::Session;

/// Read and write buffer of a connection. Small, because every open connection holds two
/// whether it sends anything or not; frames larger than this bypass them.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// Ciphertext read from a TLS connection's socket at a time: two whole TLS records (16 KiB of
/// plaintext each, plus header and tag). rustls alone asks its reader for 4 KiB per read, so a
/// 1 MB produce request cost some 256 `read` calls instead of 32. Allocated for every TLS
/// connection, like the two socket buffers.
const TLS_READ_BUFFER_BYTES: usize = 32 * 1024;

/// How long a connection refused by authentication stays open after its answer (Kafka's
/// `connection.failed.authentication.delay.ms` default).
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionEnd {
    /// The client closed the connection between requests.
    #[error("closed by the client")]
    Closed,
    /// The server is shutting down.
    #[error("server shutting down")]
    Shutdown,
    /// A frame's length prefix is out of range.
    #[error("frame length {length} is outside 0..={max} (request_bytes_max)")]
    FrameSize {
        /// The length announced.
        length: i64,
        /// The limit.
        max: usize,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// A client speaking in the clear to a TLS listener: the first bytes say what it sent.
    #[error(
        "plaintext client on a TLS listener ({0}, not a TLS ClientHello): the client's security.protocol must be SSL or SASL_SSL"
    )]
    PlaintextOnTls(String),
    /// A TLS client on a plaintext listener.
    #[error(
        "TLS client on a plaintext listener (its first bytes are a TLS handshake record): the client's security.protocol must be PLAINTEXT or SASL_PLAINTEXT"
    )]
    TlsOnPlaintext,
    /// SASL authentication failed (answered, then closed; the audit log has the reason).
    #[error("SASL authentication failed")]
    AuthenticationFailed,
    /// A connection limit closed it (idle, request timeout, evicted for a newcomer).
    #[error("closed by a limit: {0:?}")]
    Limit(CloseReason),
    /// The byte stream cannot be trusted any more.
    #[error("{0}")]
    Malformed(String),
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one connection until the client leaves, a frame is malformed, a limit closes it
/// (idle for `connection_idle_ms`, a frame or response not moved within `request_timeout_ms`,
/// evicted by the listener for a newcomer), or the listener stops (the request in progress is
/// finished and answered first).
pub(crate) async fn serve(broker: Arc<Broker>, connection: Connection) -> ConnectionEnd {
    let Connection {
        stream,
        peer,
        guard,
        stopping,
    } = connection;
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = broker.tls.clone() else {
        let (reader, writer) = stream.into_split();
        return serve_stream(broker, reader, writer, peer, guard, stopping).await;
    };
    // The handshake is bounded like a request: a client that opens a connection and sends
    // nothing holds it no longer than one.
    let handshake = Duration::from_millis(broker.config.request_timeout_ms);
    let accept = async {
        match tls::opening(&stream).await? {
            Opening::Handshake => {
                let socket = BufReader::with_capacity(TLS_READ_BUFFER_BYTES, stream);
                acceptor.accept(socket).await.map(Ok)
            }
            Opening::Plaintext { bytes, len } => Ok(Err(plaintext_on_tls(&bytes[..len], &guard))),
            Opening::Closed => Ok(Err(ConnectionEnd::Closed)),
        }
    };
    match tokio::time::timeout(handshake, accept).await {
        Err(_elapsed) => {
            guard.metrics().closed_by(CloseReason::RequestTimeout);
            ConnectionEnd::Limit(CloseReason::RequestTimeout)
        }
        Ok(Err(error)) => ConnectionEnd::Tls(error.to_string()),
        Ok(Ok(Err(end))) => end,
        Ok(Ok(Ok(stream))) => {
            let (reader, writer) = tokio::io::split(stream);
            serve_stream(broker, reader, writer, peer, guard, stopping).await
        }
    }
}

/// The end of a TLS listener's connection whose first bytes are not a TLS handshake, counted;
/// names the Kafka request when the bytes hold one (a length prefix, then a known api key).
fn plaintext_on_tls(first: &[u8], guard: &ConnectionGuard) -> ConnectionEnd {
    guard
        .metrics()
        .security_mismatch(SecurityMismatch::PlaintextOnTls);
    let api_key = first
        .get(4..6)
        .and_then(|key| ApiKey::try_from(i16::from_be_bytes([key[0], key[1]])).ok());
    ConnectionEnd::PlaintextOnTls(match api_key {
        Some(key) => format!("its first bytes are a Kafka {key:?} request"),
        None => format!("its first bytes are {first:02x?}"),
    })
}

/// The request loop over a connection's two halves (a socket's, or a TLS stream's): one
/// future reads and handles requests, another writes their answers in request order, joined
/// by a queue of at most [`PIPELINED_REQUESTS_MAX`] requests. When the reading side ends
/// (the client left, a bad frame, shutdown), what was read is still answered first.
async fn serve_stream<R, W>(
    broker: Arc<Broker>,
    reader: R,
    writer: W,
    peer: SocketAddr,
    guard: ConnectionGuard,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> ConnectionEnd
where
    R: AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (queue, answers) = mpsc::channel(PIPELINED_REQUESTS_MAX);
    let reading = read_requests(&broker, reader, peer, &guard, stopping, queue);
    let writing = write_answers(&broker, writer, &guard, answers);
    tokio::pin!(reading, writing);
    tokio::select! {
        end = &mut reading => {
            // The queue's sender is gone with the reader, so the writer ends once it answered
            // (or failed to answer) what is queued; the reader's end says why the connection
            // closed.
            let _ = writing.await;
            end
        }
        written = &mut writing => match written {
            Err(end) => end,
            // The writer ends cleanly only after the reader dropped the queue.
            Ok(()) => reading.await,
        },
    }
}

/// A request read and handled (a Produce: its records written), waiting to be answered in
/// its turn; what it holds is released once its answer is written.
struct Queued<'a> {
    reply: Reply,
    /// Its frame's bytes of the in-flight budget.
    _frame_budget: MemoryPermit,
    /// Its place among the connection's [`PIPELINED_REQUESTS_MAX`].
    _slot: OwnedSemaphorePermit,
    /// The connection is not evicted while it has a request in flight.
    _busy: Busy<'a>,
    _counted: RequestInFlight,
}

/// Reads, decodes and handles the connection's requests in order, queueing each for its
/// answer, until the client leaves, a frame is malformed, a limit closes the connection or the
/// listener stops.
///
/// Consecutive Produce requests are pipelined: each is read once the one before it is
/// *written*, and its durability wait runs beside theirs, so one `fdatasync` can cover several
/// of them. Their records are written in request order, because an idempotent producer's
/// batches must be checked and appended in sequence order. Any other request first waits until
/// everything ahead of it is answered, as a broker that serves one request at a time would:
/// a Fetch or ListOffsets must see the records produced before it on the connection, and a
/// group, metadata or SASL request must not overtake what the client sent earlier. A request
/// whose response the client needs before it sends more (an authentication failure) is
/// therefore never behind a pipelined Produce.
async fn read_requests<'a, R: AsyncRead + Unpin>(
    broker: &Arc<Broker>,
    reader: R,
    peer: SocketAddr,
    guard: &'a ConnectionGuard,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    queue: mpsc::Sender<Queued<'a>>,
) -> ConnectionEnd {
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES, reader);
    let max = broker.config.request_bytes_max;
    let idle = Duration::from_millis(broker.config.connection_idle_ms);
    let request_timeout = Duration::from_millis(broker.config.request_timeout_ms);
    let limit = |reason| {
        guard.metrics().closed_by(reason);
        ConnectionEnd::Limit(reason)
    };
    let slots = Arc::new(Semaphore::new(PIPELINED_REQUESTS_MAX));
    let mut session = Session::new(broker.sasl.clone());
    // Only the first bytes on a plaintext socket can be a TLS client's ClientHello.
    let mut first_on_plaintext = broker.tls.is_none();
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slots are never closed");
        let length = tokio::select! {
            biased;
            _ = stopping.wait_for(|stop| *stop) => return ConnectionEnd::Shutdown,
            // Counted by the listener, which chose this connection.
            _ = guard.evicted() => return ConnectionEnd::Limit(CloseReason::Evicted),
            _ = tokio::time::sleep(idle) => return limit(CloseReason::Idle),
            length = reader.read_i32() => length,
        };
        let length = match length {
            Ok(length) => length,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return ConnectionEnd::Closed;
            }
            Err(error) => return error.into(),
        };
        guard.touch();
        if std::mem::take(&mut first_on_plaintext)
            && tls::is_handshake_record(&length.to_be_bytes())
        {
            guard
                .metrics()
                .security_mismatch(SecurityMismatch::TlsOnPlaintext);
            return ConnectionEnd::TlsOnPlaintext;
        }
        if length < 0 || length as usize > max {
            return ConnectionEnd::FrameSize {
                length: i64::from(length),
                max,
            };
        }
        let deadline = tokio::time::Instant::now() + request_timeout;
        let read = read_frame(&mut reader, length as usize, &broker.memory, guard);
        let (frame, frame_budget) = tokio::select! {
            _ = guard.evicted() => return ConnectionEnd::Limit(CloseReason::Evicted),
            read = tokio::time::timeout_at(deadline, read) => match read {
                Err(_elapsed) => return limit(CloseReason::RequestTimeout),
                Ok(Ok(read)) => read,
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return ConnectionEnd::Malformed(format!(
                        "frame of {length} bytes cut off by end of stream"
                    ));
                }
                Ok(Err(error)) => return error.into(),
            },
        };
        let busy = guard.busy();
        let decoded = decode_request(frame.freeze(), &|key| broker.versions(key));
        let unanswered = PIPELINED_REQUESTS_MAX - 1 - slots.available_permits();
        let produce = matches!(&decoded, Ok(request) if request.api_key == ApiKey::Produce);
        let counted = broker.metrics.request_read(produce && unanswered > 0);
        // Not a Produce: every request ahead of it answered first (see above). Holding all
        // the slots keeps them; they are given back before the next frame is read.
        let _all_answered = match produce {
            true => None,
            false => Some(
                slots
                    .acquire_many(PIPELINED_REQUESTS_MAX as u32 - 1)
                    .await
                    .expect("the slots are never closed"),
            ),
        };
        let reply = match answer(broker, decoded, peer, &mut session).await {
            Ok(reply) => reply,
            Err(end) => return end,
        };
        let close = matches!(&reply, Reply::Now(handled) if handled.close);
        let queued = Queued {
            reply,
            _frame_budget: frame_budget,
            _slot: slot,
            _busy: busy,
            _counted: counted,
        };
        if queue.send(queued).await.is_err() {
            // The writer failed; its error ends the connection.
            return ConnectionEnd::Closed;
        }
        if close {
            // As Kafka (`connection.failed.authentication.delay.ms`): close only after a
            // delay, draining what the client sends meanwhile. It slows password guessing,
            // and a client that reads the answer and the end of the stream at once may drop
            // the answer (kafka-python then reports a lost connection, not the refusal).
            let mut sink = tokio::io::sink();
            let drain = tokio::io::copy(&mut reader, &mut sink);
            let _ = tokio::time::timeout(FAILED_AUTHENTICATION_DELAY, drain).await;
            return ConnectionEnd::AuthenticationFailed;
        }
    }
}

/// Writes the answers of queued requests in the order they were read, each once it is ready
/// (a Produce's once its records are durable); `Ok` once the reader dropped the queue and
/// everything queued is written.
///
/// Answers that are ready one after another share a write: the buffer is flushed only before
/// waiting, for an answer not ready yet or for the next request.
async fn write_answers<W: tokio::io::AsyncWrite + Unpin>(
    broker: &Broker,
    writer: W,
    guard: &ConnectionGuard,
    mut answers: mpsc::Receiver<Queued<'_>>,
) -> Result<(), ConnectionEnd> {
    let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES, writer);
    let request_timeout = Duration::from_millis(broker.config.request_timeout_ms);
    let limit = |reason| {
        guard.metrics().closed_by(reason);
        ConnectionEnd::Limit(reason)
    };
    // Bounded like every write: a client that stopped reading is dropped.
    let timed = |result: Result<std::io::Result<()>, _>| match result {
        Err(_elapsed) => Err(limit(CloseReason::RequestTimeout)),
        Ok(Err(error)) => Err(ConnectionEnd::from(error)),
        Ok(Ok(())) => {
            guard.touch();
            Ok(())
        }
    };
    loop {
        let queued = match answers.try_recv() {
            Ok(queued) => queued,
            Err(_empty_or_closed) => {
                timed(tokio::time::timeout(request_timeout, writer.flush()).await)?;
                match answers.recv().await {
                    Some(queued) => queued,
                    None => return Ok(()),
                }
            }
        };
        let handled = match queued.reply {
            Reply::Now(handled) => handled,
            Reply::Durable(mut answer) => {
                let answered = match poll_once(&mut answer).await {
                    Poll::Ready(answered) => answered,
                    // What is buffered leaves before the wait for a sync.
                    Poll::Pending => {
                        timed(tokio::time::timeout(request_timeout, writer.flush()).await)?;
                        answer.await
                    }
                };
                answered.map_err(|error| ConnectionEnd::Malformed(error.to_string()))?
            }
        };
        if let Some(response) = &handled.frame {
            timed(tokio::time::timeout(request_timeout, writer.write_all(response)).await)?;
            for piece in &handled.rest {
                timed(tokio::time::timeout(request_timeout, writer.write_all(piece)).await)?;
            }
            if handled.close {
                timed(tokio::time::timeout(request_timeout, writer.flush()).await)?;
            }
        }
    }
}

/// Polls `answer` once: its output if it is ready, without waiting.
async fn poll_once(answer: &mut Answer) -> Poll<Result<Handled, HandleError>> {
    std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await
}

/// Reads the `length` bytes of one frame into a fresh buffer, taking its bytes from the
/// in-flight budget as the buffer grows: it starts at [`FRAME_CHUNK_BYTES`] and doubles when
/// full, so a client that announces a large frame and stalls holds only what it sent. The
/// buffer is filled straight from the socket, not zeroed first: under a producer sending
/// 1 MB requests, zeroing every frame before overwriting it was 30% of the broker's
/// instructions (callgrind, BENCHMARKS.md). `length` was checked against
/// `request_bytes_max`, and the budget is at least that large.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: usize,
    budget: &MemoryBudget,
    guard: &ConnectionGuard,
) -> std::io::Result<(BytesMut, MemoryPermit)> {
    let first = length.min(FRAME_CHUNK_BYTES);
    let mut permit = budget.take(first).await;
    let mut frame = BytesMut::with_capacity(first);
    let mut body = reader.take(length as u64);
    while frame.len() < length {
        if frame.len() == frame.capacity() {
            let more = frame.capacity().min(length - frame.len());
            budget.grow(&mut permit, more).await;
            frame.reserve(more);
        }
        if body.read_buf(&mut frame).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        guard.touch();
    }
    Ok((frame, permit))
}

/// The reply to one decoded request frame; an error ends the connection.
async fn answer(
    broker: &Arc<Broker>,
    decoded: Result<DecodedRequest, DecodeError>,
    peer: SocketAddr,
    session: &mut Session,
) -> Result<Reply, ConnectionEnd> {
    let now = |handled| Ok(Reply::Now(handled));
    match decoded {
        Ok(request) => {
            tracing::trace!(%peer, api_key = ?request.api_key, version = request.version, client_id = ?request.header.client_id, "request");
            let (api_key, started) = (request.api_key, Instant::now());
            let reply = broker
                .handle(request, peer, session)
                .await
                .map_err(|error| ConnectionEnd::Malformed(error.to_string()))?;
            // A Produce is counted by its answer, once durable.
            if let Reply::Now(_) = reply {
                broker.metrics.request(api_key, started.elapsed());
            }
            Ok(reply)
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            version,
            correlation_id,
        }) => {
            tracing::debug!(%peer, version, "ApiVersions at an unserved version; answering v0");
            let body = api_versions::response(broker, UNSUPPORTED_VERSION);
            encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
                .map(|frame| Reply::Now(Handled::frame(frame)))
                .map_err(|error| ConnectionEnd::Malformed(format!("{error:#}")))
        }
        Err(
            error @ (DecodeError::UnsupportedApiKey { correlation_id, .. }
            | DecodeError::UnsupportedVersion { correlation_id, .. }),
        ) => {
            tracing::warn!(%peer, %error, "request refused with UNSUPPORTED_VERSION");
            now(Handled::frame(unsupported_api_key_response(correlation_id)))
        }
        Err(error) => Err(ConnectionEnd::Malformed(error.to_string())),
    }
}
