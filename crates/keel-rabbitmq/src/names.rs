//! Where Keel keeps things on RabbitMQ: the name of every stream and queue the transport
//! declares, built in one place from a [`Names`] (a namespace prefix, empty by default).
//!
//! Names are only built, never parsed back: a topic's partitions are streams named
//! `<topic>.<partition>`; a group's bookkeeping lives in classic queues under `keel.`.

/// The namespace every name is built in. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (prepended as is to every stream and queue name).
    pub(crate) fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    /// The stream holding `partition` of `topic`.
    pub(crate) fn partition(&self, topic: &str, partition: u32) -> String {
        format!("{}{topic}.{partition}", self.prefix)
    }

    /// The queue a member holds `partition` of `topic` for `group` by consuming it
    /// exclusively; it never holds messages.
    pub(crate) fn lease(&self, group: &str, topic: &str, partition: u32) -> String {
        format!("{}keel.lease.{group}.{topic}.{partition}", self.prefix)
    }

    /// The queue holding `group`'s committed offset in `partition` of `topic` (at most one
    /// message: the latest commit).
    pub(crate) fn offset(&self, group: &str, topic: &str, partition: u32) -> String {
        format!("{}keel.offset.{group}.{topic}.{partition}", self.prefix)
    }

    /// The queue every member of `group` on `topic` consumes, so its consumer count is the
    /// group's size; it never holds messages.
    pub(crate) fn members(&self, group: &str, topic: &str) -> String {
        format!("{}keel.members.{group}.{topic}", self.prefix)
    }

    /// The stream listing every topic created through Keel, with its partition count.
    pub(crate) fn topic_registry(&self) -> String {
        format!("{}keel.topics", self.prefix)
    }

    /// The stream listing every group that joined through Keel.
    pub(crate) fn group_registry(&self) -> String {
        format!("{}keel.groups", self.prefix)
    }
}
