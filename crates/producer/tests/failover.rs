//! Delivery guarantees under real faults: acks=all, idempotence on, replication factor
//! 3, min.insync.replicas=2. Every test sends numbered records over several keys while brokers die,
//! reads everything back through the Java reader and checks that every acknowledged record is
//! there exactly once, in send order per partition, and that every record got an outcome.
//! The names start with `disruptive_`: `scripts/test` runs them alone.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{check, produce_until, Tally, KEYS};
use kafka_producer::{Error, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{cluster, Cluster};

fn config(cluster: &Cluster) -> ProducerConfig {
    let mut c = ProducerConfig::new(cluster.bootstrap());
    c.set("enable.idempotence", "true").unwrap();
    c.set("acks", "all").unwrap();
    c.set("linger.ms", "2").unwrap();
    c
}

fn topic(cluster: &Cluster, prefix: &str) -> String {
    let t = Cluster::random_topic(prefix);
    cluster.create_topic(&t, KEYS as i32, 3, &[("min.insync.replicas", "2")]);
    t
}

async fn leader_dies_repeatedly(hard: bool) -> Tally {
    let cluster = cluster().expect("checked by the caller");
    let t = topic(&cluster, if hard { "kill" } else { "term" });
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(produce_until(producer.clone(), t.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for round in 0..5 {
        let leader = cluster.describe_topic(&t)[round % KEYS].leader;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || {
            let outage = c.outage(leader, hard);
            std::thread::sleep(Duration::from_secs(3));
            outage.end();
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::Release);
    let outcomes = sender.await.unwrap();
    producer.close(Duration::from_secs(30)).await.unwrap();
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || check(&c, &t, &outcomes))
        .await
        .unwrap()
}

/// The leader dies five times (SIGKILL with `hard`, else SIGTERM): every record is acknowledged,
/// none lost, duplicated or reordered.
async fn leader_dies_and_nothing_is_lost(hard: bool) {
    if cluster().is_none() {
        return;
    }
    let tally = leader_dies_repeatedly(hard).await;
    let signal = if hard { "SIGKILL" } else { "SIGTERM" };
    eprintln!("leader {signal}ed 5 times: {tally}");
    assert_eq!(
        (tally.lost, tally.duplicated, tally.reordered),
        (0, 0, 0),
        "{tally}"
    );
    assert_eq!(tally.failed, 0, "{tally}");
    assert!(tally.acked > 500, "{tally}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_leader_killed_five_times_loses_and_duplicates_nothing() {
    leader_dies_and_nothing_is_lost(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_leader_stopped_five_times_loses_and_duplicates_nothing() {
    leader_dies_and_nothing_is_lost(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_all_brokers_down_past_the_delivery_timeout_then_back() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "blackout");
    let mut c = config(&cluster);
    c.set("request.timeout.ms", "3000").unwrap();
    c.set("delivery.timeout.ms", "8000").unwrap();
    c.set("max.block.ms", "5000").unwrap();
    let producer = Producer::new(c).await.unwrap();
    let warm = producer
        .send(ProducerRecord::new(&t).key("key-0").value("0"))
        .await
        .unwrap();
    warm.await.unwrap();

    let outages: Vec<_> = (1..=3).map(|n| cluster.outage(n, true)).collect();
    let mut pending = Vec::new();
    for n in 1..=200usize {
        let key = format!("key-{}", n % KEYS);
        pending.push(
            producer
                .send(ProducerRecord::new(&t).key(key).value(n.to_string()))
                .await
                .unwrap(),
        );
    }
    let mut timed_out = 0;
    for f in pending {
        match f.await {
            Err(e @ Error::DeliveryTimeout { .. }) => {
                assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
                timed_out += 1;
            }
            other => panic!("expected a delivery timeout with every broker down: {other:?}"),
        }
    }
    // Back: the last outage to end restores the quorum and waits for every node.
    drop(outages);
    // The same producer recovers: its records after the outage are acknowledged.
    let mut after = Vec::new();
    for n in 201..=300usize {
        let key = format!("key-{}", n % KEYS);
        let f = loop {
            match producer
                .send(
                    ProducerRecord::new(&t)
                        .key(key.clone())
                        .value(n.to_string()),
                )
                .await
            {
                Ok(f) => break f,
                // Metadata may still be catching up right after the restart.
                Err(e) if e.is_retriable() => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("{e}"),
            }
        };
        after.push(f);
    }
    let mut acked = 0;
    for f in after {
        f.await.unwrap();
        acked += 1;
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let read = cluster.read_topic(&t);
    let present_after = read
        .iter()
        .filter(|r| r.value_str().unwrap().parse::<usize>().unwrap() > 200)
        .count();
    assert_eq!(
        present_after, 100,
        "every record after the outage exactly once"
    );
    eprintln!(
        "all brokers down: sent 301, acked {}, failed {timed_out} (delivery timeout), lost 0, duplicated 0",
        acked + 1
    );
}
