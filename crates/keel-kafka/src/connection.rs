//! One client connection: frames in, responses out, strictly in order.
//!
//! Requests of a connection are handled one at a time, as a Kafka broker does (it stops
//! reading a connection while a request is in flight), which is what keeps an idempotent
//! producer's pipelined batches in sequence order. Different connections run concurrently.
//!
//! Decision table for a frame:
//!
//! | frame | answer | connection |
//! |---|---|---|
//! | length prefix negative or over `request_bytes_max` | none (logged) | closed before reading the body |
//! | shorter than a request header, or cut off by EOF | none (logged) | closed |
//! | unknown or unserved api key | header + `UNSUPPORTED_VERSION` | kept |
//! | ApiVersions at an unserved version | ApiVersions v0 with `UNSUPPORTED_VERSION` and the served versions | kept |
//! | other key at an unserved version | header + `UNSUPPORTED_VERSION` | kept |
//! | header or body that does not parse | none (logged) | closed |
//! | served request | its response (none for Produce with `acks = 0`) | kept |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::api::api_versions;
use crate::broker::Broker;
use crate::codec::{
    DecodeError, UNSUPPORTED_VERSION, decode_request, encode_response, unsupported_api_key_response,
};

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
    /// The byte stream cannot be trusted any more.
    #[error("{0}")]
    Malformed(String),
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one connection until the client leaves, a frame is malformed, or `shutdown` turns
/// true (the request in progress is finished and answered first).
pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> ConnectionEnd {
    let _open = broker.metrics.open_connection();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let max = broker.config.request_bytes_max;
    loop {
        let length = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return ConnectionEnd::Shutdown,
            length = reader.read_i32() => length,
        };
        let length = match length {
            Ok(length) => length,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return ConnectionEnd::Closed;
            }
            Err(error) => return error.into(),
        };
        if length < 0 || length as usize > max {
            return ConnectionEnd::FrameSize {
                length: i64::from(length),
                max,
            };
        }
        let frame = match read_frame(&mut reader, length as usize).await {
            Ok(frame) => frame,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return ConnectionEnd::Malformed(format!(
                    "frame of {length} bytes cut off by end of stream"
                ));
            }
            Err(error) => return error.into(),
        };
        let response = match answer(&broker, frame.freeze(), peer).await {
            Ok(response) => response,
            Err(end) => return end,
        };
        if let Some(response) = response {
            if let Err(error) = writer.write_all(&response).await {
                return error.into();
            }
            // Flush once the client has nothing more queued: pipelined requests share writes.
            if reader.buffer().is_empty()
                && let Err(error) = writer.flush().await
            {
                return error.into();
            }
        }
    }
}

/// Reads the `length` bytes of one frame into a fresh buffer. The buffer is filled straight
/// from the socket, not zeroed first: under a producer sending 1 MB requests, zeroing every
/// frame before overwriting it was 30% of the broker's instructions (callgrind, BENCHMARKS.md).
/// `length` was checked against `request_bytes_max` before this allocates it.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: usize,
) -> std::io::Result<BytesMut> {
    let mut frame = BytesMut::with_capacity(length);
    let mut body = reader.take(length as u64);
    while frame.len() < length {
        if body.read_buf(&mut frame).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(frame)
}

/// The response frame to one request frame, if any; an error ends the connection.
async fn answer(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<BytesMut>, ConnectionEnd> {
    let versions = |key| broker.versions(key);
    match decode_request(frame, &versions) {
        Ok(request) => {
            tracing::trace!(%peer, api_key = ?request.api_key, version = request.version, client_id = ?request.header.client_id, "request");
            let (api_key, started) = (request.api_key, Instant::now());
            let response = broker
                .handle(request, peer)
                .await
                .map_err(|error| ConnectionEnd::Malformed(error.to_string()))?;
            broker.metrics.request(api_key, started.elapsed());
            Ok(response)
        }
        Err(DecodeError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            version,
            correlation_id,
        }) => {
            tracing::debug!(%peer, version, "ApiVersions at an unserved version; answering v0");
            let body = api_versions::response(broker, UNSUPPORTED_VERSION);
            encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)
                .map(Some)
                .map_err(|error| ConnectionEnd::Malformed(format!("{error:#}")))
        }
        Err(
            error @ (DecodeError::UnsupportedApiKey { correlation_id, .. }
            | DecodeError::UnsupportedVersion { correlation_id, .. }),
        ) => {
            tracing::warn!(%peer, %error, "request refused with UNSUPPORTED_VERSION");
            Ok(Some(unsupported_api_key_response(correlation_id)))
        }
        Err(error) => Err(ConnectionEnd::Malformed(error.to_string())),
    }
}
