//! A group's deletion on SQS (`AdminTransport::delete_group`) removes what the group owns —
//! its queue on each topic it reads, `.retry` included, and that queue's SNS subscription —
//! and nothing shared: the SNS topics stay, and another group on the same topic keeps its
//! queue and goes on receiving. Refused while a member is at work on the group's messages
//! (received, not deleted), and for the group that keeps the dead letters. On the server at
//! `KEEL_TEST_SQS_URL` (moto; unset: not run, unreachable: fails), in a namespace of its
//! own, deleted at the end. (The conformance suite's deletion check needs committed
//! offsets, which SQS has not.)

use aws_sdk_sqs::types::QueueAttributeName;
use keel_core::{AdminTransport, TransportError};
use keel_runtime::conformance::event;
use keel_runtime::dead_letter::dead_letter_topic;
use keel_sqs::{DEAD_LETTER_KEEPER, SqsConfig, SqsTransport};

#[allow(dead_code)]
mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_groups_queues_and_subscriptions_go_and_the_topics_and_other_groups_stay() {
    let Ok(url) = std::env::var(support::URL_VAR) else {
        eprintln!("sqs group deletion: not run, {} is unset", support::URL_VAR);
        return;
    };
    let namespace = support::namespace();
    let config = SqsConfig::local(url)
        .with_namespace(&namespace)
        .expect("namespace");
    let sqs = SqsTransport::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("{} is set but unreachable: {e}", support::URL_VAR));
    sqs.ensure_topic("orders", 2).await.expect("topic");
    for group in ["billing", "shipping"] {
        sqs.ensure_group("orders", group).await.expect("group");
    }
    let billing = sqs.queue_url("orders", "billing").await.expect("queue");
    let shipping = sqs.queue_url("orders", "shipping").await.expect("queue");
    let publisher = sqs.publisher();
    for n in 0..2 {
        publisher
            .publish("orders", event(&format!("k{n}"), n))
            .await
            .expect("publish");
    }
    let client = sqs.sqs_client();

    // A member at work: a message received and not deleted.
    let received = client
        .receive_message()
        .queue_url(&billing)
        .visibility_timeout(30)
        .send()
        .await
        .expect("receive");
    let handle = received.messages()[0]
        .receipt_handle()
        .expect("a receipt handle")
        .to_string();
    assert_eq!(
        sqs.delete_group("billing").await,
        Err(TransportError::GroupActive {
            group: "billing".into()
        })
    );
    assert_eq!(queues(&sqs, &namespace).await.len(), 4, "nothing deleted");
    // The member gave its message back.
    client
        .change_message_visibility()
        .queue_url(&billing)
        .receipt_handle(handle)
        .visibility_timeout(0)
        .send()
        .await
        .expect("visibility");
    sqs.delete_group("billing").await.expect("delete");

    let left = queues(&sqs, &namespace).await;
    assert_eq!(
        left,
        [
            format!("{namespace}-orders-shipping.fifo"),
            format!("{namespace}-orders_2Eretry-shipping.fifo"),
        ],
        "billing's queues on orders and orders.retry are gone, shipping's stay"
    );
    let topics: Vec<String> = sqs
        .topics()
        .await
        .expect("topics")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(topics, ["orders", "orders.retry"]);
    assert_eq!(
        subscribed(&sqs, &namespace, "orders").await,
        1,
        "only shipping's queue is subscribed to orders"
    );
    publisher
        .publish("orders", event("k2", 2))
        .await
        .expect("publish");
    assert_eq!(
        waiting(&sqs, &shipping).await,
        3,
        "shipping goes on receiving"
    );
    sqs.delete_group("billing")
        .await
        .expect("a group that is gone is deleted already");

    // The dead letters' keeper is not a group to delete.
    sqs.ensure_topic(&dead_letter_topic("orders"), 2)
        .await
        .expect("dead-letter topic");
    match sqs.delete_group(DEAD_LETTER_KEEPER).await {
        Err(TransportError::Refused { reason }) => {
            assert!(reason.contains("dead letters"), "{reason}")
        }
        other => panic!("deleting the keeper answered {other:?}"),
    }

    delete_namespace(&sqs, &namespace).await;
}

/// The names of every queue of `namespace`, sorted.
async fn queues(sqs: &SqsTransport, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = queue_urls(sqs, namespace)
        .await
        .iter()
        .filter_map(|url| url.rsplit('/').next().map(String::from))
        .collect();
    names.sort();
    names
}

/// The URLs of every queue of `namespace`.
async fn queue_urls(sqs: &SqsTransport, namespace: &str) -> Vec<String> {
    let listed = sqs
        .sqs_client()
        .list_queues()
        .queue_name_prefix(format!("{namespace}-"))
        .send()
        .await
        .expect("list queues");
    listed.queue_urls().to_vec()
}

/// The SNS topic ARNs of `namespace`, all pages (the shared server holds other runs').
async fn topic_arns(sqs: &SqsTransport, namespace: &str) -> Vec<String> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let page = sqs
            .sns_client()
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .expect("topics");
        arns.extend(
            page.topics()
                .iter()
                .filter_map(|t| t.topic_arn())
                .filter(|arn| arn.contains(&format!(":{namespace}-")))
                .map(String::from),
        );
        token = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(String::from);
        if token.is_none() {
            return arns;
        }
    }
}

/// How many subscriptions the SNS topic of `topic` has.
async fn subscribed(sqs: &SqsTransport, namespace: &str, topic: &str) -> usize {
    let suffix = format!(":{namespace}-{topic}.fifo");
    let arn = topic_arns(sqs, namespace)
        .await
        .into_iter()
        .find(|arn| arn.ends_with(&suffix))
        .expect("the topic's ARN");
    sqs.sns_client()
        .list_subscriptions_by_topic()
        .topic_arn(arn)
        .send()
        .await
        .expect("subscriptions")
        .subscriptions()
        .len()
}

/// The messages waiting in the queue at `url`.
async fn waiting(sqs: &SqsTransport, url: &str) -> u64 {
    let attribute = QueueAttributeName::ApproximateNumberOfMessages;
    let answer = sqs
        .sqs_client()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(attribute.clone())
        .send()
        .await
        .expect("attributes");
    answer
        .attributes()
        .and_then(|a| a.get(&attribute))
        .and_then(|count| count.parse().ok())
        .expect("a count")
}

/// Deletes every queue and SNS topic of `namespace`.
async fn delete_namespace(sqs: &SqsTransport, namespace: &str) {
    for url in queue_urls(sqs, namespace).await {
        sqs.sqs_client()
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .expect("delete queue");
    }
    for arn in topic_arns(sqs, namespace).await {
        sqs.sns_client()
            .delete_topic()
            .topic_arn(arn)
            .send()
            .await
            .expect("delete topic");
    }
}
