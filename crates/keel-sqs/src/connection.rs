//! [`Connection`]: the SNS and SQS clients of one account and region (the AWS SDK for Rust
//! on hyper with rustls over `ring`; no aws-lc), and what Keel keeps of them: each topic's
//! ARN and partition count, each group's queue URL — and a group's queue deleted with its
//! subscription.
//!
//! A topic's partition count is the SNS topic's tag `keel-partitions`. SNS can only be asked
//! for a topic by ARN, so a topic this process did not create is found once by listing the
//! account's topics, then remembered (topics are never deleted under a running Keel).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sns::types::Tag;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use keel_core::TransportError;
use keel_runtime::limits::DLQ_SUFFIX;

use crate::config::SqsConfig;
use crate::limits::{PARTITIONS_MAX, RETENTION_S};
use crate::names::Names;

/// The tag holding a topic's partition count.
const PARTITIONS_TAG: &str = "keel-partitions";

/// The group whose queue keeps a `.dlq` topic's dead letters (14 days, SQS's longest), subscribed
/// when the topic is created, whether or not anything consumes it.
pub const DEAD_LETTER_KEEPER: &str = "keel";

/// Longest any one AWS call may take, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic as SNS knows it.
#[derive(Debug, Clone)]
pub(crate) struct TopicEntry {
    pub(crate) arn: String,
    pub(crate) partitions: u32,
}

/// One group queue: the Keel topic and group it stands for, and its URL.
#[derive(Debug, Clone)]
pub(crate) struct GroupQueue {
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) url: String,
}

/// The SNS and SQS clients and what is known of their topics and queues.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) names: Names,
    topics: Mutex<HashMap<String, TopicEntry>>,
    /// (topic, group) → the group's queue URL, once created and subscribed.
    queues: Mutex<HashMap<(String, String), String>>,
}

/// A failed AWS call as a transport error, its whole cause chain on one line.
pub(crate) fn unavailable(error: impl std::error::Error) -> TransportError {
    TransportError::Unavailable {
        reason: DisplayErrorContext(error).to_string(),
    }
}

impl Connection {
    /// Clients for `config`'s endpoint, checked with one `ListTopics` call so an
    /// unreachable server fails here.
    pub(crate) async fn connect(config: &SqsConfig) -> Result<Connection, TransportError> {
        let http: SharedHttpClient = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let (key, secret) = config.credentials();
        let credentials = Credentials::new(key, secret, None, None, "keel");
        let region = Region::new(config.region().to_string());
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(credentials.clone())
            .timeout_config(timeouts.clone())
            .http_client(http.clone());
        let mut sns = aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(credentials)
            .timeout_config(timeouts)
            .http_client(http);
        if let Some(url) = config.endpoint_url() {
            sqs = sqs.endpoint_url(url);
            sns = sns.endpoint_url(url);
        }
        let connection = Connection {
            sns: aws_sdk_sns::Client::from_conf(sns.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            names: Names::new(config.namespace()),
            topics: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
        };
        connection
            .sns
            .list_topics()
            .send()
            .await
            .map_err(unavailable)?;
        Ok(connection)
    }

    /// Every topic of this namespace, by name.
    pub(crate) async fn topics(&self) -> Result<Vec<(String, TopicEntry)>, TransportError> {
        let mut found = Vec::new();
        for arn in self.topic_arns().await? {
            let Some(topic) = arn
                .rsplit(':')
                .next()
                .and_then(|name| self.names.topic_of(name))
            else {
                continue;
            };
            let entry = self.entry(&topic, arn).await?;
            found.push((topic, entry));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// `topic` as SNS knows it, or `None` when it does not exist.
    pub(crate) async fn topic(&self, topic: &str) -> Result<Option<TopicEntry>, TransportError> {
        if let Some(entry) = self.topics.lock().expect("topics").get(topic) {
            return Ok(Some(entry.clone()));
        }
        let suffix = format!(":{}", self.names.topic(topic)?);
        let arns = self.topic_arns().await?;
        match arns.into_iter().find(|arn| arn.ends_with(&suffix)) {
            Some(arn) => Ok(Some(self.entry(topic, arn).await?)),
            None => Ok(None),
        }
    }

    /// The partition count of `topic`, created as an SNS FIFO topic with `partitions` when
    /// missing.
    pub(crate) async fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
    ) -> Result<u32, TransportError> {
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(TransportError::Refused {
                reason: format!("a topic has 1 to {PARTITIONS_MAX} partitions, not {partitions}"),
            });
        }
        if let Some(entry) = self.topic(topic).await? {
            return Ok(entry.partitions);
        }
        let tag = Tag::builder()
            .key(PARTITIONS_TAG)
            .value(partitions.to_string())
            .build()
            .expect("key and value set");
        let created = self
            .sns
            .create_topic()
            .name(self.names.topic(topic)?)
            .attributes("FifoTopic", "true")
            .tags(tag)
            .send()
            .await
            .map_err(unavailable)?;
        let arn = created.topic_arn().unwrap_or_default().to_string();
        let entry = TopicEntry { arn, partitions };
        self.topics
            .lock()
            .expect("topics")
            .insert(topic.to_string(), entry);
        if topic.ends_with(DLQ_SUFFIX) {
            // SNS keeps nothing: without a subscribed queue a dead letter would be gone.
            self.group_queue(topic, DEAD_LETTER_KEEPER).await?;
        }
        Ok(partitions)
    }

    /// The URL of `group`'s queue on `topic`: an SQS FIFO queue subscribed to the topic
    /// (raw delivery), created and subscribed when missing. From then on the queue holds
    /// every event published to the topic until a member deletes it.
    pub(crate) async fn group_queue(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<String, TransportError> {
        let id = (topic.to_string(), group.to_string());
        if let Some(url) = self.queues.lock().expect("queues").get(&id) {
            return Ok(url.clone());
        }
        let entry = self
            .topic(topic)
            .await?
            .ok_or_else(|| TransportError::UnknownTopic {
                topic: topic.to_string(),
            })?;
        let name = self.names.queue(topic, group)?;
        let created = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                RETENTION_S.to_string(),
            )
            .send()
            .await
            .map_err(unavailable)?;
        let url = created.queue_url().unwrap_or_default().to_string();
        let queue_arn = self.queue_arn(&url).await?;
        // On AWS a topic may send to a queue only when the queue's policy lets it.
        self.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(
                QueueAttributeName::Policy,
                send_policy(&queue_arn, &entry.arn),
            )
            .send()
            .await
            .map_err(unavailable)?;
        // Subscribing again with the same endpoint returns the existing subscription.
        self.sns
            .subscribe()
            .topic_arn(&entry.arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(unavailable)?;
        self.queues.lock().expect("queues").insert(id, url.clone());
        Ok(url)
    }

    /// Unsubscribes `queue` from its topic, deletes it and forgets its URL: SNS sends it
    /// nothing more, and a member joining later makes a new one (on AWS not within 60
    /// seconds: SQS refuses a deleted queue's name that long).
    pub(crate) async fn delete_group_queue(
        &self,
        queue: &GroupQueue,
    ) -> Result<(), TransportError> {
        if let Some(topic) = self.topic(&queue.topic).await? {
            let queue_arn = self.queue_arn(&queue.url).await?;
            for subscription in self.subscriptions(&topic.arn, &queue_arn).await? {
                self.sns
                    .unsubscribe()
                    .subscription_arn(subscription)
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.sqs
            .delete_queue()
            .queue_url(&queue.url)
            .send()
            .await
            .map_err(unavailable)?;
        self.queues
            .lock()
            .expect("queues")
            .remove(&(queue.topic.clone(), queue.group.clone()));
        Ok(())
    }

    /// How many messages of the queue at `url` a member received and has not deleted:
    /// while there are some, a member is at work on them.
    pub(crate) async fn in_flight(&self, url: &str) -> Result<u64, TransportError> {
        let attribute = QueueAttributeName::ApproximateNumberOfMessagesNotVisible;
        let answer = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(attribute.clone())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(answer
            .attributes()
            .and_then(|a| a.get(&attribute))
            .and_then(|count| count.parse().ok())
            .unwrap_or(0))
    }

    /// The ARN of the queue at `url`.
    async fn queue_arn(&self, url: &str) -> Result<String, TransportError> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(unavailable)?;
        attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| TransportError::Unavailable {
                reason: format!("queue '{url}' has no ARN"),
            })
    }

    /// The subscriptions of the topic `topic_arn` that deliver to the queue `queue_arn`,
    /// all pages.
    async fn subscriptions(
        &self,
        topic_arn: &str,
        queue_arn: &str,
    ) -> Result<Vec<String>, TransportError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(unavailable)?;
            found.extend(
                page.subscriptions()
                    .iter()
                    .filter(|s| s.endpoint() == Some(queue_arn))
                    .filter_map(|s| s.subscription_arn().map(String::from)),
            );
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Every group queue of the namespace, all pages.
    pub(crate) async fn group_queues(&self) -> Result<Vec<GroupQueue>, TransportError> {
        let mut queues = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .sqs
                .list_queues()
                .queue_name_prefix(self.names.queue_prefix())
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .map_err(unavailable)?;
            for url in page.queue_urls() {
                let name = url.rsplit('/').next().unwrap_or_default();
                if let Some((topic, group)) = self.names.queue_of(name) {
                    queues.push(GroupQueue {
                        topic,
                        group,
                        url: url.clone(),
                    });
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(queues);
            }
        }
    }

    /// Every topic ARN of the account, all pages.
    async fn topic_arns(&self) -> Result<Vec<String>, TransportError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .sns
                .list_topics()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(unavailable)?;
            arns.extend(
                page.topics()
                    .iter()
                    .filter_map(|t| t.topic_arn().map(String::from)),
            );
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(arns),
            }
        }
    }

    /// `topic`'s entry read from its tags, remembered.
    async fn entry(&self, topic: &str, arn: String) -> Result<TopicEntry, TransportError> {
        if let Some(entry) = self.topics.lock().expect("topics").get(topic) {
            return Ok(entry.clone());
        }
        let tags = self
            .sns
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(unavailable)?;
        let partitions = tags
            .tags()
            .iter()
            .find(|t| t.key() == PARTITIONS_TAG)
            .and_then(|t| t.value().parse().ok())
            .ok_or_else(|| TransportError::Refused {
                reason: format!(
                    "SNS topic '{arn}' has no '{PARTITIONS_TAG}' tag: it was not created by Keel"
                ),
            })?;
        let entry = TopicEntry { arn, partitions };
        self.topics
            .lock()
            .expect("topics")
            .insert(topic.to_string(), entry.clone());
        Ok(entry)
    }
}

/// The queue policy that lets the SNS topic `topic_arn` send to the queue `queue_arn`.
fn send_policy(queue_arn: &str, topic_arn: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    })
    .to_string()
}
