//! Why a cluster cannot be reached: the broker's own words. librdkafka reports a refused
//! login, a TLS failure or a refused connection only as error events on a client's main
//! queue, which its admin client never polls; a failed request then says just "Broker
//! transport failure". [`diagnose`] connects a throw-away producer with the same settings,
//! polls that queue for a short while and returns the most telling error it saw.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use crate::KafkaConfig;

/// How long [`diagnose`] waits for the cluster to say something.
const DIAGNOSIS_WAIT: Duration = Duration::from_secs(5);

/// How long [`diagnose`] waits for a telling error after a vague one.
const SETTLE: Duration = Duration::from_secs(1);

/// Remembers the error events its client reports.
#[derive(Default)]
struct ErrorRecorder {
    seen: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for ErrorRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        let mut seen = self.seen.lock().expect("error recorder lock");
        if seen.len() < 64 {
            seen.push((error.rdkafka_error_code(), reason.to_string()));
        }
    }
}

/// Nothing is produced: the delivery report is never asked for.
impl ProducerContext for ErrorRecorder {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// How telling an error is about why nothing works: a refused login or TLS handshake names
/// the cause; "all brokers down" only repeats the symptom.
fn rank(code: Option<RDKafkaErrorCode>) -> u8 {
    match code {
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => 0,
        Some(RDKafkaErrorCode::SSL | RDKafkaErrorCode::ClusterAuthorizationFailed) => 1,
        Some(RDKafkaErrorCode::AllBrokersDown) => 3,
        _ => 2,
    }
}

/// The most telling error the cluster of `config` reports to a new client within a few
/// seconds, in librdkafka's words; `None` if it connects cleanly (the failure was about
/// something else) or says nothing.
pub fn diagnose(config: &KafkaConfig) -> Option<String> {
    let producer: BaseProducer<ErrorRecorder> = config
        .admin()
        .create_with_context(ErrorRecorder::default())
        .ok()?;
    let started = Instant::now();
    while started.elapsed() < DIAGNOSIS_WAIT {
        // A metadata request makes the client connect; its failure is not the point, the
        // error events it causes are.
        let connected = producer
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok();
        producer.poll(Duration::from_millis(100));
        let seen = producer.context().seen.lock().expect("error recorder lock");
        if connected && seen.is_empty() {
            return None;
        }
        // A refused login or handshake is the answer; anything else (a refused
        // connection) gets a moment for a more telling error to follow.
        let best = seen.iter().map(|(code, _)| rank(*code)).min();
        if matches!(best, Some(0 | 1)) || (best == Some(2) && started.elapsed() >= SETTLE) {
            break;
        }
    }
    let seen = producer.context().seen.lock().expect("error recorder lock");
    seen.iter()
        .min_by_key(|(code, _)| rank(*code))
        .map(|(_, reason)| reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_named_with_the_refused_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let reason = diagnose(&KafkaConfig::new(address.to_string())).expect("a reason");
        assert!(reason.contains("Connection refused"), "{reason}");
    }
}
