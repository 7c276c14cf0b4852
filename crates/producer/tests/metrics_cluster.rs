//! The producer's metrics against a real cluster whose connections the testkit's TCP fault proxy
//! ([`FaultProxy`]) cuts while records are in flight: the batches the cuts caught are retried
//! and count so, every record is acknowledged and written exactly once (idempotence), and the
//! totals add up.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, produce_until, KEYS};
use kafka_producer::{Producer, ProducerConfig};
use kafka_producer_testkit::{cluster, Cluster, FaultProxy};

/// Bounds every wait of the test.
const PATIENCE: Duration = Duration::from_secs(30);
/// Cuts at most this many times, waiting for one that catches a request in flight.
const MAX_CUTS: usize = 5;
/// Records sent before the first cut, and after each.
const RECORDS_BETWEEN: usize = 1000;

/// A producer-wide metric of `producer`, which must exist.
fn metric(producer: &Producer, name: &str) -> f64 {
    producer
        .metrics()
        .producer(name)
        .unwrap_or_else(|| panic!("no producer metric {name}"))
}

/// Waits (polling) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_run_show_as_retries_and_reconnections() {
    let Some(cluster) = cluster() else { return };
    let Some(proxy_bootstrap) = cluster.proxy_bootstrap() else {
        return;
    };
    let proxy = FaultProxy::for_cluster(&proxy_bootstrap)
        .await
        .unwrap_or_else(|e| panic!("fault proxy on {proxy_bootstrap}: {e}"));
    let topic = Cluster::random_topic("metrics-cut");
    cluster.create_topic(&topic, KEYS as i32, 3, &[("min.insync.replicas", "2")]);

    let mut config = ProducerConfig::new(&proxy_bootstrap);
    // enable.idempotence stays at its default, on: a retried batch is written once.
    for (k, v) in [
        ("acks", "all"),
        ("linger.ms", "5"),
        ("retry.backoff.ms", "50"),
        ("delivery.timeout.ms", "60000"),
    ] {
        config.set(k, v).unwrap();
    }
    let producer = Producer::new(config).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(produce_until(producer.clone(), topic.clone(), stop.clone()));

    // Some traffic first, then a cut of every connection while a request is in flight, until
    // a cut catches a Produce request (one answered between the look and the cut, or a Metadata
    // request, leaves nothing to retry); then more traffic on the new connections.
    until("the first records sent", || {
        metric(&producer, "record-send-total") >= RECORDS_BETWEEN as f64
    })
    .await;
    let mut cuts = Vec::new();
    while metric(&producer, "record-retry-total") == 0.0 && cuts.len() < MAX_CUTS {
        until("a request in flight", || {
            metric(&producer, "requests-in-flight") > 0.0
        })
        .await;
        cuts.push(proxy.cut_all());
        let sent = metric(&producer, "record-send-total");
        until("records sent after the cut", || {
            metric(&producer, "record-send-total") >= sent + RECORDS_BETWEEN as f64
        })
        .await;
    }
    stop.store(true, Ordering::Release);
    let outcomes = tokio::time::timeout(PATIENCE, sender)
        .await
        .expect("every outcome within the test's patience")
        .unwrap();
    tokio::time::timeout(PATIENCE, producer.flush())
        .await
        .unwrap()
        .unwrap();
    let m = producer.metrics();
    producer.close(PATIENCE).await.unwrap();
    eprintln!(
        "{} records, {} retried; cuts closed {cuts:?} connections; the proxy accepted {}",
        outcomes.len(),
        m.producer("record-retry-total").unwrap_or_default(),
        proxy.connections_accepted()
    );

    let c = cluster.clone();
    let read_topic = topic.clone();
    let tally = tokio::task::spawn_blocking(move || check(&c, &read_topic, &outcomes))
        .await
        .unwrap();
    assert_eq!(
        tally.acked, tally.sent,
        "every record acknowledged: {tally}"
    );
    assert_eq!(
        (tally.lost, tally.duplicated, tally.misplaced),
        (0, 0, 0),
        "each record written once, where acknowledged: {tally}"
    );

    let total = |name: &str| {
        m.producer(name)
            .unwrap_or_else(|| panic!("no producer metric {name}:\n{m}"))
    };
    let n = tally.sent as f64;
    let retried = total("record-retry-total");
    assert!(
        retried > 0.0,
        "{} cuts caught no request in flight:\n{m}",
        cuts.len()
    );
    assert_eq!(
        total("record-send-total"),
        n + retried,
        "each record sent once, and again for each retry:\n{m}"
    );
    assert_eq!(m.topic(&topic, "record-send-total"), Some(n + retried));
    assert_eq!(m.topic(&topic, "record-retry-total"), Some(retried));
    assert_eq!(total("record-error-total"), 0.0, "{m}");
    assert_eq!(m.topic(&topic, "record-error-total"), Some(0.0));
    assert!(total("connection-close-total") >= 1.0, "{m}");
    assert!(total("connection-creation-total") >= 2.0, "{m}");
    assert_eq!(total("batch-split-total"), 0.0);
}
