//! The TOML config file (`--config` / `$KEEL_CONFIG`): reading it with a one-line error, and
//! the entries `keel groups`, `keel dlq` and `keel demo` take from it (`brokers` and
//! `[kafka_properties]`, see `brokers.rs`). `keel serve`'s keys are its own
//! (`serve.rs`); one file holds both, so a deployment names its cluster once.
//!
//! Not here: precedence beyond "flag, then environment, then file" (clap gives the first
//! two), or any default.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Reads the file at `path` as `T`; a broken file is one line naming the file, the line and
/// key at fault, and the first line of the parser's complaint.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|error| {
        // toml's message spans several lines (it quotes the source); keep the first.
        let first = error
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        let place = error
            .span()
            .map(|span| place(&text, span.start))
            .unwrap_or_default();
        anyhow::anyhow!("invalid config file {}{place}: {first}", path.display())
    })
}

/// ", line N, key `K`" for the byte `at` of `text` (the key of the `key = value` line it
/// falls on; toml's type errors point at the value and do not say whose it is).
fn place(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let number = before.matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or_default();
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            format!(", line {number}, key `{}`", key.trim())
        }
        _ => format!(", line {number}"),
    }
}

/// What the operator verbs read of the file; `keel serve`'s keys are ignored here.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OperatorEntries {
    /// The Kafka cluster `--brokers` names when neither the flag nor `KEEL_BROKERS` does.
    pub(crate) brokers: Option<String>,
    /// librdkafka client properties for that cluster (`[kafka_properties]`), which
    /// `--kafka-property` adds to.
    #[serde(default)]
    pub(crate) kafka_properties: BTreeMap<String, String>,
}
