//! [`Client`]: one AMQP connection to RabbitMQ, opened on first use and again after it
//! broke, and the few requests every part of the transport shares — a fresh channel,
//! whether a queue exists (and its consumer count), a topic's partition count, declaring
//! and deleting streams and queues, a confirmed publish — with RabbitMQ's refusals sorted into
//! "not found", "taken" and "unavailable".
//!
//! Every request is bounded ([`REQUEST_WAIT`], [`CONFIRM_WAIT`]): RabbitMQ that does not
//! answer (a connection that died unnoticed, a node still starting after a restart) fails
//! the request instead of holding it — and, while the connection is being opened, every
//! request behind the client's lock — for ever. A request that ran out of time drops the
//! connection, so the next one connects afresh instead of waiting on the same one again.
//!
//! Not here: what the queues mean (`names.rs`), reading streams (`reader.rs`).

use std::future::Future;
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use tokio::sync::Mutex;

use crate::limits::{
    CONFIRM_WAIT, DECLARE_ATTEMPTS_MAX, DECLARE_RETRY_DELAY, PARTITIONS_MAX, REQUEST_WAIT,
};
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
            // RabbitMQ answers 404 too for a queue it knows whose replicas are down (a
            // stream without a running member: "home node … is down or inaccessible").
            // It exists and may come back, so that is no "not found".
            ErrorKind::ProtocolError(amqp)
                if amqp.get_id() == 404 && amqp.get_message().as_str().contains(DOWN) =>
            {
                ClientError::Unavailable(text)
            }
            ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404 => ClientError::NotFound(text),
            // A stream declared a moment ago may have no replica on this node yet (406 to a
            // consume): it will have one, so that is no refusal.
            ErrorKind::ProtocolError(amqp)
                if amqp.get_id() == 406
                    && amqp.get_message().as_str().contains(NO_LOCAL_REPLICA) =>
            {
                ClientError::Unavailable(text)
            }
            ErrorKind::ProtocolError(amqp) if matches!(amqp.get_id(), 403 | 406) => {
                ClientError::Refused(text)
            }
            _ => ClientError::Unavailable(text),
        }
    }
}

/// What RabbitMQ's 404 says of a queue that exists but has no running replica.
const DOWN: &str = "is down or inaccessible";

/// What RabbitMQ's 406 to a consume says of a stream without a replica on the node the
/// connection is on ("does not have a replica on the local node" in 3.10, "… a running
/// replica …" in later versions).
const NO_LOCAL_REPLICA: &str = "replica on the local node";

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
        state.open_channel(&self.uri, &self.name, false).await
    }

    /// Closes the connection; the next request opens a new one.
    pub(crate) async fn close(&self) {
        let mut state = self.state.lock().await;
        state.publishing = None;
        if let Some(connection) = state.connection.take() {
            let _ = tokio::time::timeout(REQUEST_WAIT, connection.close(200, "bye".into())).await;
        }
    }

    /// `request` (one on a channel of this client's connection), failing with
    /// [`ClientError::Unavailable`] when RabbitMQ has not answered within [`REQUEST_WAIT`] —
    /// and then dropping the connection, which no longer answers. Cancel safe: dropped
    /// before it returns, nothing changes but what `request` itself leaves.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, lapin::Error>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(REQUEST_WAIT, request).await {
            Ok(answer) => Ok(answer?),
            Err(_) => {
                self.state.lock().await.drop_connection();
                Err(no_answer(what, REQUEST_WAIT))
            }
        }
    }

    /// Closes `channel`, within [`REQUEST_WAIT`]; a failure only means it is closed already
    /// or its connection is gone.
    pub(crate) async fn close_channel(&self, channel: &Channel, why: &str) {
        let _ = self
            .bounded("a channel's closing", channel.close(200, why.into()))
            .await;
    }

    /// The consumer count of `queue`, or [`ClientError::NotFound`].
    pub(crate) async fn consumer_count(&self, queue: &str) -> Result<u32, ClientError> {
        let channel = self.channel().await?;
        let declared = self
            .bounded(
                "a passive queue declaration",
                channel.queue_declare(
                    queue.into(),
                    QueueDeclareOptions::default().passive(),
                    FieldTable::default(),
                ),
            )
            .await?;
        self.close_channel(&channel, "done").await;
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
        self.bounded(
            "a queue declaration",
            channel.queue_declare(name.into(), QueueDeclareOptions::durable(), arguments),
        )
        .await?;
        self.close_channel(&channel, "done").await;
        Ok(())
    }

    /// Deletes the queue `name`; with `if_unused`, RabbitMQ refuses while a consumer is on
    /// it ([`ClientError::Refused`], AMQP 406), so a consumer that arrived since the caller
    /// looked keeps it. A queue that does not exist is deleted already.
    pub(crate) async fn delete(&self, name: &str, if_unused: bool) -> Result<(), ClientError> {
        let channel = self.channel().await?;
        let options = QueueDeleteOptions {
            if_unused,
            ..QueueDeleteOptions::default()
        };
        let deleted = self
            .bounded(
                "a queue deletion",
                channel.queue_delete(name.into(), options),
            )
            .await;
        self.close_channel(&channel, "done").await;
        match deleted {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        }
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
        // publishes again, and the next publish connects afresh.
        let Ok(confirmation) = tokio::time::timeout(CONFIRM_WAIT, confirmed).await else {
            self.state.lock().await.drop_connection();
            return Err(no_answer(
                &format!("a message to '{queue}' with its confirm"),
                CONFIRM_WAIT,
            ));
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
        let channel = state.open_channel(&self.uri, &self.name, true).await?;
        state.publishing = Some(channel.clone());
        Ok(channel)
    }
}

impl State {
    /// A new channel, in confirm mode when `confirm`, connecting first when the connection
    /// is not open — all within [`REQUEST_WAIT`], past which the connection is dropped. The
    /// caller holds the client's lock, so this bound is also the longest any other request
    /// waits behind it.
    async fn open_channel(
        &mut self,
        uri: &AMQPUri,
        name: &str,
        confirm: bool,
    ) -> Result<Channel, ClientError> {
        let opened = tokio::time::timeout(REQUEST_WAIT, async {
            let channel = self.connected(uri, name).await?.create_channel().await?;
            if confirm {
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
            }
            Ok(channel)
        })
        .await;
        opened.unwrap_or_else(|_| {
            self.drop_connection();
            Err(no_answer("a channel's opening", REQUEST_WAIT))
        })
    }

    /// The open connection, opened first when there is none or it broke.
    async fn connected(&mut self, uri: &AMQPUri, name: &str) -> Result<&Connection, ClientError> {
        if !self
            .connection
            .as_ref()
            .is_some_and(|c| c.status().connected())
        {
            self.publishing = None;
            let properties = ConnectionProperties::default().with_connection_name(name.into());
            self.connection = Some(Connection::connect_uri(uri.clone(), properties).await?);
        }
        Ok(self.connection.as_ref().expect("connected above"))
    }

    /// Forgets the connection (and its publishing channel) after a request on it ran out
    /// of time, closing it in the background — within [`REQUEST_WAIT`] too, since it may
    /// not answer that either — so its channels and consumers end and their users open
    /// new ones on the next connection.
    fn drop_connection(&mut self) {
        self.publishing = None;
        if let Some(connection) = self.connection.take() {
            tracing::warn!("RabbitMQ stopped answering on a connection; connecting afresh");
            tokio::spawn(async move {
                let close = connection.close(200, "no answer in time".into());
                let _ = tokio::time::timeout(REQUEST_WAIT, close).await;
            });
        }
    }
}

/// The error of a request RabbitMQ did not answer within `wait`.
fn no_answer(what: &str, wait: Duration) -> ClientError {
    ClientError::Unavailable(format!(
        "RabbitMQ did not answer {what} within {wait:?}; the connection was dropped"
    ))
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

#[cfg(test)]
mod tests {
    use lapin::ErrorKind;
    use lapin::protocol::AMQPError;

    use super::ClientError;

    /// Checks the kind RabbitMQ's answer `id` with `message` is sorted into.
    fn check(id: u16, message: &str, expected: fn(String) -> ClientError) {
        let amqp = AMQPError::from_id(id, message.to_string().into()).expect("an AMQP error code");
        let error = lapin::Error::from(ErrorKind::ProtocolError(amqp));
        let text = error.to_string();
        assert_eq!(ClientError::from(error), expected(text), "{id} {message}");
    }

    #[test]
    fn refusals_are_sorted_by_code_and_message() {
        check(
            404,
            "NOT_FOUND - no queue 'orders.0' in vhost '/'",
            ClientError::NotFound,
        );
        check(
            404,
            "NOT_FOUND - home node 'rabbit@a' of durable queue 'orders.0' in vhost '/' is down or inaccessible",
            ClientError::Unavailable,
        );
        check(
            403,
            "ACCESS_REFUSED - queue 'g.orders.lease.0' in vhost '/' in exclusive use",
            ClientError::Refused,
        );
        check(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'orders.0' in vhost '/'",
            ClientError::Refused,
        );
        check(
            406,
            "PRECONDITION_FAILED - queue 'g.orders.members' in vhost '/' in use",
            ClientError::Refused,
        );
        check(
            406,
            "PRECONDITION_FAILED - queue 'queue 'g.keel.groups' in vhost '/'' does not have a replica on the local node",
            ClientError::Unavailable,
        );
        check(
            406,
            "PRECONDITION_FAILED - stream queue 'orders.0' in vhost '/' does not have a running replica on the local node",
            ClientError::Unavailable,
        );
    }
}
