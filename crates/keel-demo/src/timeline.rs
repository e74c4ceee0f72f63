//! The live timeline: what happened to which order, reported by the services as it happens,
//! for `keel demo` to print. A channel, so a slow terminal never slows a service.

use tokio::sync::mpsc;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The order it is about.
    pub order_id: String,
    /// The service that reports it.
    pub service: &'static str,
    /// What happened.
    pub what: String,
}

/// Where services report. Cheap to clone; reporting never blocks or fails (a timeline
/// nobody reads is dropped).
#[derive(Debug, Clone)]
pub struct Timeline {
    sender: Option<mpsc::UnboundedSender<Entry>>,
}

impl Timeline {
    /// A timeline and the receiver its entries arrive at.
    pub fn channel() -> (Timeline, mpsc::UnboundedReceiver<Entry>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            Timeline {
                sender: Some(sender),
            },
            receiver,
        )
    }

    /// A timeline that reports nowhere.
    pub fn silent() -> Timeline {
        Timeline { sender: None }
    }

    /// Reports `what` about `order_id` from `service`.
    pub fn note(&self, order_id: &str, service: &'static str, what: impl Into<String>) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Entry {
                order_id: order_id.to_owned(),
                service,
                what: what.into(),
            });
        }
    }
}
