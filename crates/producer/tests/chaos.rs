//! Delivery guarantees while the network misbehaves: every connection between the producer and the
//! brokers goes through a TCP fault proxy ([`FaultProxy`]) that cuts them all at random every 0.5 to 1.5 s. The
//! producer (acks=all, idempotence on, as by default) sends numbered records over several keys meanwhile; the topic
//! is read back with the Java reader and every acknowledged record must be there exactly once, in send order per
//! partition. The name starts with `disruptive_`: `scripts/test` runs it alone, since it takes a minute and its
//! timing suffers from tests running beside it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, produce_until, KEYS};
use kafka_producer::{Producer, ProducerConfig};
use kafka_producer_testkit::{cluster, Cluster, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_connections_cut_at_random_for_a_minute() {
    let Some(cluster) = cluster() else { return };
    let Some(proxy_bootstrap) = cluster.proxy_bootstrap() else {
        return;
    };
    let proxy = FaultProxy::for_cluster(&proxy_bootstrap)
        .await
        .unwrap_or_else(|e| panic!("fault proxy on {proxy_bootstrap}: {e}"));
    let topic = Cluster::random_topic("chaos");
    cluster.create_topic(&topic, KEYS as i32, 3, &[("min.insync.replicas", "2")]);

    let mut config = ProducerConfig::new(&proxy_bootstrap);
    // enable.idempotence stays at its default, on.
    config.set("acks", "all").unwrap();
    config.set("linger.ms", "2").unwrap();
    let producer = Producer::new(config).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(produce_until(producer.clone(), topic.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let ms = Duration::from_millis;
    let cuts = proxy
        .cut_at_random(Duration::from_secs(60), ms(500)..=ms(1500))
        .await;
    let chaos_time = started.elapsed();
    stop.store(true, Ordering::Release);
    let outcomes = sender.await.unwrap();
    producer.close(Duration::from_secs(60)).await.unwrap();

    let connections_cut: usize = cuts.iter().map(|c| c.connections).sum();
    let idle_cuts = cuts.iter().filter(|c| c.connections == 0).count();
    eprintln!(
        "{} cuts in {chaos_time:.1?} closed {connections_cut} connections ({idle_cuts} cuts found none open); the \
         proxy accepted {} connections",
        cuts.len(),
        proxy.connections_accepted()
    );
    let c = cluster.clone();
    let tally = tokio::task::spawn_blocking(move || check(&c, &topic, &outcomes))
        .await
        .unwrap();
    eprintln!("connections cut {} times: {tally}", cuts.len());

    // The producer's connections really went through the proxy: a producer that bypassed it (say, because the
    // brokers advertised their own ports) would leave nothing to cut after bootstrapping.
    assert!(
        cuts.len() >= 30 && connections_cut >= cuts.len() / 2,
        "{} cuts closed {connections_cut} connections",
        cuts.len()
    );
    assert_eq!(
        (tally.lost, tally.duplicated, tally.reordered),
        (0, 0, 0),
        "{tally}"
    );
    assert_eq!(
        (tally.misplaced, tally.failed_but_written),
        (0, 0),
        "acknowledged at the wrong place, or failed as not written yet written: {tally:?}"
    );
    assert!(tally.acked > 1000, "{tally}");
}
