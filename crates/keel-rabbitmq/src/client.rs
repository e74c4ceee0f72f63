//! [`Client`]: one AMQP connection to RabbitMQ, opened on first use and again after it
//! broke, and the few requests every part of the transport shares — a fresh channel,
//! whether a queue exists (and its consumer count), a topic's partition count, declaring
//! streams and queues, a confirmed publish — with RabbitMQ's refusals sorted into
//! "not found", "taken" and "unavailable".
//!
//! Not here: what the queues mean (`names.rs`), reading streams (`reader.rs`).

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use tokio::sync::Mutex;

use crate::limits::{CONFIRM_WAIT, DECLARE_ATTEMPTS_MAX, DECLARE_RETRY_DELAY, PARTITIONS_MAX};
use crate::names::Names;

/// Why a request to RabbitMQ failed, in the terms the transport acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClientError {
    /// The queue or stream does not exist (AMQP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Another consumer holds the queue exclusively (AMQP 403), or a queue exists with other
    /// arguments (AMQP 406).
    #[error("refused: {0}")]
    Refused(String),
    /// The message could not be routed to any queue (published as mandatory, returned).
    #[error("no queue named '{0}'")]
    Unroutable(String),
    /// The broker is unreachable, closed the connection, or answered with another error.
    #[error("{0}")]
    Unavailable(String),
}

impl From<lapin::Error> for ClientError {
    fn from(error: lapin::Error) -> ClientError {
        let text = error.to_string();
        match error.kind() {
            ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404 => ClientError::NotFound(text),
            ErrorKind::ProtocolError(amqp) if matches!(amqp.get_id(), 403 | 406) => {
                ClientError::Refused(text)
            }
            _ => ClientError::Unavailable(text),
        }
    }
}

/// One connection, reopened when it broke, and the publishing channel on it.
#[derive(Debug)]
pub(crate) struct Client {
    uri: AMQPUri,
    name: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connection: Option<Connection>,
    /// The channel publishes go through, in confirm mode.
    publishing: Option<Channel>,
}

impl Client {
    /// A client for `url` (`amqp://user:pass@host:port/vhost`), naming its connection
    /// `name` in RabbitMQ's connection list, with AMQP heartbeats every `heartbeat` (so a
    /// silent peer is noticed) when given. Connects on first use.
    pub(crate) fn new(
        url: &str,
        name: &str,
        heartbeat: Option<Duration>,
    ) -> Result<Client, ClientError> {
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e: String| ClientError::Refused(format!("invalid AMQP URL '{url}': {e}")))?;
        if let Some(heartbeat) = heartbeat {
            uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs().max(1)).unwrap_or(60));
        }
        Ok(Client {
            uri,
            name: name.to_string(),
            state: Mutex::default(),
        })
    }

    /// A new channel on the connection, connecting first when it is not open.
    pub(crate) async fn channel(&self) -> Result<Channel, ClientError> {
        let mut state = self.state.lock().await;
        Ok(connected(&mut state, &self.uri, &self.name)
            .await?
            .create_channel()
            .await?)
    }

    /// Closes the connection; the next request opens a new one.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        state.publishing = None;
        if let Some(connection) = state.connection.take() {
            let _ = connection.close(200, "bye".into()).await;
        }
    }

    /// The consumer count of `queue`, or [`ClientError::NotFound`].
    pub(crate) async fn consumer_count(&self, queue: &str) -> Result<u32, ClientError> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "done".into()).await;
        Ok(declared.consumer_count())
    }

    /// Whether `queue` (or stream) exists.
    pub(crate) async fn exists(&self, queue: &str) -> Result<bool, ClientError> {
        match self.consumer_count(queue).await {
            Ok(_) => Ok(true),
            Err(ClientError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// How many partition streams `topic` has: 0 when it does not exist. Streams are
    /// numbered from 0 without gaps, so the first missing number is the count.
    pub(crate) async fn partition_count(
        &self,
        names: &Names,
        topic: &str,
    ) -> Result<u32, ClientError> {
        for partition in 0..PARTITIONS_MAX {
            if !self.exists(&names.partition(topic, partition)).await? {
                return Ok(partition);
            }
        }
        Ok(PARTITIONS_MAX)
    }

    /// Declares the durable queue `name` with `arguments` (a stream when they say so).
    pub(crate) async fn declare(
        &self,
        name: &str,
        arguments: FieldTable,
    ) -> Result<(), ClientError> {
        let channel = self.channel().await?;
        channel
            .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
            .await?;
        let _ = channel.close(200, "done".into()).await;
        Ok(())
    }

    /// Declares the stream `name`. RabbitMQ 3.10 answers two declarations of one new
    /// stream racing each other (two routers creating `<topic>.retry`, two processes
    /// registering) with an internal error that closes the connection: a declaration that
    /// failed counts as done when the stream exists now, and is tried again otherwise.
    pub(crate) async fn declare_stream(&self, name: &str) -> Result<(), ClientError> {
        let mut attempt = 1;
        loop {
            let error = match self.declare(name, stream_arguments()).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if self.exists(name).await.unwrap_or(false) {
                return Ok(());
            }
            if attempt == DECLARE_ATTEMPTS_MAX {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(DECLARE_RETRY_DELAY).await;
        }
    }

    /// Publishes `body` to the queue `queue` through the default exchange and waits for
    /// the broker's confirm: `Ok` once RabbitMQ has stored it (a stream's confirm comes
    /// once a quorum of its replicas wrote it).
    pub(crate) async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), ClientError> {
        let channel = self.publishing_channel().await?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmed = async {
            let confirm = channel
                .basic_publish("".into(), queue.into(), options, body, properties)
                .await?;
            confirm.await
        };
        // A channel opened while the node was still starting (or one whose connection died
        // unnoticed) may never confirm: the publish fails after CONFIRM_WAIT, so the caller
        // publishes again, and the next publish opens a fresh channel.
        let Ok(confirmation) = tokio::time::timeout(CONFIRM_WAIT, confirmed).await else {
            self.state.lock().await.publishing = None;
            return Err(ClientError::Unavailable(format!(
                "no confirm from RabbitMQ for a message to '{queue}' within {CONFIRM_WAIT:?}"
            )));
        };
        match confirmation? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(ClientError::Unroutable(queue.to_string())),
            Confirmation::Nack(_) => Err(ClientError::Unavailable(format!(
                "RabbitMQ refused to store the message in '{queue}' (nack)"
            ))),
            Confirmation::NotRequested => Err(ClientError::Unavailable(
                "the publishing channel is not in confirm mode".into(),
            )),
        }
    }

    async fn publishing_channel(&self) -> Result<Channel, ClientError> {
        let mut state = self.state.lock().await;
        if let Some(channel) = state.publishing.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = connected(&mut state, &self.uri, &self.name)
            .await?
            .create_channel()
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        state.publishing = Some(channel.clone());
        Ok(channel)
    }
}

/// The arguments that make a declared queue a stream.
pub(crate) fn stream_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    arguments
}

async fn connected<'a>(
    state: &'a mut State,
    uri: &AMQPUri,
    name: &str,
) -> Result<&'a Connection, ClientError> {
    if !state
        .connection
        .as_ref()
        .is_some_and(|c| c.status().connected())
    {
        state.publishing = None;
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        state.connection = Some(Connection::connect_uri(uri.clone(), properties).await?);
    }
    Ok(state.connection.as_ref().expect("connected above"))
}
