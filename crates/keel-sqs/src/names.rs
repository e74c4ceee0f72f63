//! Physical names: a Keel topic is the SNS FIFO topic `<namespace>-<topic>.fifo`, a group on
//! it the SQS FIFO queue `<namespace>-<topic>-<group>.fifo`. AWS allows only letters,
//! digits, `-` and `_` there, so every other byte of a Keel name (`.` in `orders.dlq`) is
//! written `_XX` (hex), `_` itself included; `-` is then only the separator, and no two
//! Keel names meet.

use keel_core::{TransportError, escape_name, unescape_name};

use crate::limits::{QUEUE_NAME_BYTES_MAX, TOPIC_NAME_BYTES_MAX};

/// The names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    namespace: String,
}

impl Names {
    pub(crate) fn new(namespace: &str) -> Names {
        Names {
            namespace: namespace.to_string(),
        }
    }

    /// The SNS topic of `topic`; refused when AWS would refuse it.
    pub(crate) fn topic(&self, topic: &str) -> Result<String, TransportError> {
        let name = format!("{}-{}.fifo", self.namespace, escape(topic));
        within(name, TOPIC_NAME_BYTES_MAX, || format!("topic '{topic}'"))
    }

    /// The SQS queue of `group` on `topic`; refused when AWS would refuse it.
    pub(crate) fn queue(&self, topic: &str, group: &str) -> Result<String, TransportError> {
        let name = format!(
            "{}-{}-{}.fifo",
            self.namespace,
            escape(topic),
            escape(group)
        );
        within(name, QUEUE_NAME_BYTES_MAX, || {
            format!("group '{group}' on topic '{topic}'")
        })
    }

    /// The Keel topic an SNS topic name stands for, if it is one of this namespace's.
    pub(crate) fn topic_of(&self, physical: &str) -> Option<String> {
        let escaped = physical
            .strip_prefix(&self.namespace)?
            .strip_prefix('-')?
            .strip_suffix(".fifo")?;
        unescape(escaped)
    }

    /// What every queue name of this namespace starts with.
    pub(crate) fn queue_prefix(&self) -> String {
        format!("{}-", self.namespace)
    }

    /// The Keel topic and group an SQS queue name stands for, if it is one of this
    /// namespace's group queues.
    pub(crate) fn queue_of(&self, physical: &str) -> Option<(String, String)> {
        let (topic, group) = physical
            .strip_prefix(&self.namespace)?
            .strip_prefix('-')?
            .strip_suffix(".fifo")?
            .split_once('-')?;
        Some((unescape(topic)?, unescape(group)?))
    }
}

fn within(
    name: String,
    bytes_max: usize,
    what: impl FnOnce() -> String,
) -> Result<String, TransportError> {
    if name.len() > bytes_max {
        return Err(TransportError::Refused {
            reason: format!(
                "{} makes the AWS name '{name}', longer than {bytes_max} bytes; use shorter names",
                what()
            ),
        });
    }
    Ok(name)
}

/// SQS and SNS names allow letters, digits, `-` and `_`; `-` is the separator here, so
/// only letters and digits are kept.
fn kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn escape(name: &str) -> String {
    escape_name(name, kept)
}

fn unescape(escaped: &str) -> Option<String> {
    unescape_name(escaped, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_read_back() {
        let names = Names::new("keel");
        let check = |topic: &str, physical: &str| {
            assert_eq!(names.topic(topic).unwrap(), physical);
            assert_eq!(names.topic_of(physical).as_deref(), Some(topic));
        };
        check("orders", "keel-orders.fifo");
        check("orders.dlq", "keel-orders_2Edlq.fifo");
        check("a_b-c", "keel-a_5Fb_2Dc.fifo");
        assert_eq!(
            names.queue("orders.retry", "billing").unwrap(),
            "keel-orders_2Eretry-billing.fifo"
        );
        assert_eq!(
            names.queue_of("keel-orders_2Eretry-billing.fifo"),
            Some(("orders.retry".to_string(), "billing".to_string()))
        );
        assert_eq!(names.queue_of("keel-orders.fifo"), None, "a topic's name");
        assert_eq!(names.queue_of("other-orders-billing.fifo"), None);
        assert_eq!(names.topic_of("other-orders.fifo"), None);
        assert_eq!(names.topic_of("keel-a-b.fifo"), None, "not an escaped name");
        let refused = names.queue(&"t".repeat(40), &"g".repeat(40)).unwrap_err();
        assert!(
            refused.to_string().contains("longer than 80 bytes"),
            "{refused}"
        );
    }
}
