//! [`GroupClients`]: the admin side's clients acting as consumer groups (to read and set a
//! group's committed offsets), kept for the next call instead of made and closed per call.
//!
//! Each costs a connection and a coordinator lookup when made and about 100 ms to close
//! (librdkafka joins its threads), more than the OffsetFetch it is made for; `keel groups
//! list` asks every group in turn. So the most recently used ones are kept, at most
//! [`GROUP_CLIENTS_MAX`], and the ones given up are closed on a thread of their own.
//!
//! Not here: what the clients ask (`admin.rs`) or their settings (`config.rs`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::BaseConsumer;

use crate::config::KafkaConfig;
use crate::limits::GROUP_CLIENTS_MAX;

/// The kept clients, by group, the least recently used first.
#[derive(Default)]
pub(crate) struct GroupClients {
    clients: Mutex<VecDeque<(String, Arc<BaseConsumer>)>>,
}

impl GroupClients {
    /// A client acting as `group` (never joining it): a kept one, or a new one kept from
    /// now on.
    pub(crate) fn get(
        &self,
        config: &KafkaConfig,
        group: &str,
    ) -> Result<Arc<BaseConsumer>, rdkafka::error::KafkaError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = clients.iter().position(|(name, _)| name == group) {
            let kept = clients.remove(at).expect("the position just found");
            let client = kept.1.clone();
            clients.push_back(kept);
            return Ok(client);
        }
        let client: Arc<BaseConsumer> = Arc::new(config.group_client(group).create()?);
        clients.push_back((group.to_string(), client.clone()));
        if clients.len() > GROUP_CLIENTS_MAX {
            let given_up: Vec<_> = clients.pop_front().into_iter().collect();
            close_in_background(given_up);
        }
        Ok(client)
    }
}

impl Drop for GroupClients {
    fn drop(&mut self) {
        let clients = self.clients.get_mut().unwrap_or_else(|p| p.into_inner());
        close_in_background(clients.drain(..).collect());
    }
}

/// Closes `clients` on a thread of their own, so no caller waits for librdkafka to join
/// their threads; a process ending meanwhile just ends (they never joined a group, so
/// nothing is left to hand over). Where no thread can be started, the unstarted closure is
/// dropped here and closes them on the caller's thread.
fn close_in_background(clients: Vec<(String, Arc<BaseConsumer>)>) {
    if clients.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("keel-kafka-admin-close".to_string())
        .spawn(move || drop(clients));
}
