//! `log_open_files_max` through `keel serve`'s server: a data directory with more segment
//! files than the budget opens within it, and `/metrics` reports the open files, the budget
//! and the closes.

mod support;

use keel_log::{Log, NewRecord, TopicConfig};
use keel_server::ServerConfig;
use support::{Running, http_get};

const BUDGET: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_within_its_open_file_budget_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        let topic = log.create_topic("orders", TopicConfig::new(8)).unwrap();
        for partition in topic.partitions() {
            let record = NewRecord::new(Some("key"), "value");
            partition.append(&[record]).unwrap();
        }
    }
    let mut config = ServerConfig::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.log_open_files_max = Some(BUDGET);
    let running = Running::start(config).await;
    let http = running.bound.http;
    let metrics = tokio::task::spawn_blocking(move || http_get(http, "/metrics"))
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("keel_log_open_files_max"), BUDGET as f64);
    assert!(value("keel_log_open_files") <= BUDGET as f64, "{metrics}");
    // 8 partitions of 3 files, and the internal topics', opened through a budget of 8.
    assert!(value("keel_log_file_closes_total") >= 16.0, "{metrics}");
    assert!(value("keel_log_file_reopens_total") >= 0.0, "{metrics}");
    running.stop().await;

    let mut config = ServerConfig::new(dir.path());
    config.log_open_files_max = Some(0);
    let refused = keel_server::Server::open(config).expect_err("refused");
    assert!(
        refused.to_string().contains("log_open_files_max"),
        "{refused}"
    );
}
