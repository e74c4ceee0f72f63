//! The whole order system, end to end: with declines, poison addresses and a payment
//! outage every order ends confirmed or rejected and the self-check holds, with the services
//! in one router or split between routers that share only the topics and the data
//! directory; and the self-check does catch a broken invariant.

use std::time::Duration;

use keel_demo::{Backbone, DemoConfig, Service, Summary, Timeline, drive, run, serve};

fn config(dir: &std::path::Path, outage: Duration, decline_rate: f64) -> DemoConfig {
    DemoConfig {
        data_dir: dir.to_path_buf(),
        orders: 16,
        payment_outage: outage,
        decline_rate,
        place_interval: Duration::from_millis(5),
        poison_every: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declines_poison_and_an_outage_keep_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let (timeline, mut entries) = Timeline::channel();
    let mut rebuild_reports = 0;
    let summary = run(
        &config(dir.path(), Duration::from_millis(700), 0.3),
        timeline,
        |_| rebuild_reports += 1,
    )
    .await
    .unwrap();
    assert_eq!(summary.violations(), Vec::<String>::new(), "{summary:#?}");
    assert_eq!(summary.orders.placed, 16);
    assert!(
        summary.orders.rejected > 0 && summary.orders.confirmed > 0,
        "{summary:#?}"
    );
    assert!(
        summary.dead_letters > 0,
        "poison addresses reach the dead letters"
    );
    assert!(rebuild_reports > 0, "the rebuild reports progress");
    let mut waited = 0;
    while let Ok(entry) = entries.try_recv() {
        waited += usize::from(entry.what.contains("provider unavailable"));
    }
    assert!(waited > 0, "the outage made orders wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_outage_or_declines_every_order_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(
        &config(dir.path(), Duration::ZERO, 0.0),
        Timeline::silent(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.violations(), Vec::<String>::new(), "{summary:#?}");
    assert_eq!((summary.orders.confirmed, summary.charges), (16, 16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_behind_their_own_router_keep_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), Duration::from_millis(300), 0.3);
    let backbone = Backbone::embedded(&dir.path().join("log")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let others = {
        let (config, backbone) = (config.clone(), backbone.clone());
        let services = &Service::ALL[1..];
        tokio::spawn(async move {
            let stop = async {
                stopped.await.ok();
            };
            serve(&config, &backbone, services, Timeline::silent(), stop).await
        })
    };
    let summary = drive(
        &config,
        &backbone,
        &[Service::Orders],
        Timeline::silent(),
        |_| {},
    )
    .await
    .unwrap();
    stop.send(()).unwrap();
    others.await.unwrap().unwrap();
    assert_eq!(summary.violations(), Vec::<String>::new(), "{summary:#?}");
    assert_eq!(summary.orders.placed, 16);
}

#[test]
fn the_self_check_names_a_broken_invariant() {
    let mut summary = Summary {
        requested: 2,
        ..Summary::default()
    };
    summary.orders.placed = 2;
    summary.orders.confirmed = 1;
    summary.orders.rejected = 1;
    summary.rebuilt = summary.orders;
    summary.confirmed_aggregates = 1;
    summary.charges = 2;
    summary.shipments = 1;
    summary.emails = 1;
    summary.reservations.made = 2;
    summary.reservations.shipped = 1;
    summary.reservations.released = 1;
    summary.declines = 0;
    let violations = summary.violations();
    assert_eq!(violations, ["charges 2 != confirmed orders 1"]);
}
