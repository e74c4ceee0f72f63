//! The memory of one comparison: which pairs of schema nodes are being compared further up
//! the stack (a second visit is assumed compatible, which ends recursion through recursive
//! schemas, as Avro Java and Confluent do) and the differences of every pair already
//! compared, so a pair reached again by another route costs one lookup. Both the JSON Schema
//! and the Avro comparison keep one.
//!
//! Not here: what a pair is (each comparison picks its key) or the budget (`budget.rs`).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::difference::Difference;
use crate::limits::DIFFERENCES_PER_PAIR_MAX;

/// Pairs under comparison and pairs compared, by a key of the comparison's choosing.
#[derive(Debug)]
pub(crate) struct Memo<K> {
    visiting: HashSet<K>,
    known: HashMap<K, Vec<Difference>>,
}

impl<K> Default for Memo<K> {
    fn default() -> Memo<K> {
        Memo {
            visiting: HashSet::new(),
            known: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Memo<K> {
    /// Before comparing the pair `key` at `path`: false when it is answered already (its
    /// remembered differences are added to `out`, or it is being compared further up).
    pub(crate) fn enter(&mut self, key: &K, path: &str, out: &mut Vec<Difference>) -> bool {
        if let Some(known) = self.known.get(key) {
            out.extend(known.iter().map(|d| d.under(path)));
            return false;
        }
        self.visiting.insert(key.clone())
    }

    /// After comparing the pair `key` at `path`, whose differences are `out[start..]`: keeps
    /// at most [`DIFFERENCES_PER_PAIR_MAX`] of them, and remembers them unless the budget ran
    /// out (what was found is then incomplete).
    pub(crate) fn leave(
        &mut self,
        key: K,
        path: &str,
        out: &mut Vec<Difference>,
        start: usize,
        complete: bool,
    ) {
        out.truncate(start + DIFFERENCES_PER_PAIR_MAX);
        self.visiting.remove(&key);
        if complete {
            let found = out[start..].iter().map(|d| d.relative_to(path)).collect();
            self.known.insert(key, found);
        }
    }
}
