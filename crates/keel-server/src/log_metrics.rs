//! The log's open files in `/metrics`, read from `Log::open_files` at each scrape: how many
//! segment and index files are open against the budget, and how often the budget closed and
//! reopened them (a reopen rate that keeps climbing means the budget is below the working set).

use std::fmt;
use std::sync::Arc;

use keel_log::Log;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The collector; registered once by the server.
#[derive(Debug)]
pub(crate) struct LogFiles(pub(crate) Arc<Log>);

impl Collector for LogFiles {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let files = self.0.open_files();
        let gauges = [
            (
                "keel_log_open_files",
                "Segment and index files the log holds open.",
                files.open,
            ),
            (
                "keel_log_open_files_max",
                "The log's open-file budget: above it the least recently used files close.",
                files.max,
            ),
        ];
        for (name, help, value) in gauges {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters = [
            (
                "keel_log_file_closes",
                "Log files closed to stay within the open-file budget.",
                files.closes,
            ),
            (
                "keel_log_file_reopens",
                "Log files opened again on their next use after such a close.",
                files.reopens,
            ),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}
