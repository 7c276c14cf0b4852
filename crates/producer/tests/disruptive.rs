//! Tests that stop brokers. `scripts/test` runs them alone, after everything else (names start
//! with `disruptive_`); each node comes back when its outage guard drops, also on failure.

use std::collections::HashMap;
use std::time::Duration;

use kafka_producer::{Acks, Error, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{cluster, Cluster};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn disruptive_acks_all_with_two_brokers_down_never_acknowledges_falsely() {
    let Some(cluster) = cluster() else { return };
    let t = Cluster::random_topic("isr");
    cluster.create_topic(&t, 3, 3, &[("min.insync.replicas", "2")]);
    let mut c = ProducerConfig::new(cluster.bootstrap()).with_acks(Acks::All);
    for (k, v) in [
        ("retries", "5"),
        ("request.timeout.ms", "5000"),
        ("delivery.timeout.ms", "30000"),
        ("linger.ms", "0"),
    ] {
        c.set(k, v).unwrap();
    }
    let producer = Producer::new(c).await.unwrap();
    // Sends record `i` and waits for its outcome.
    let send = |i: usize| {
        let (producer, t) = (producer.clone(), t.clone());
        async move {
            let key = format!("k{}", i % 3);
            let delivery = producer
                .send(ProducerRecord::new(&t).key(key).value(format!("{i}")))
                .await
                .unwrap();
            delivery.await
        }
    };
    for i in 0..10 {
        send(i).await.unwrap();
    }

    // Graceful stops: the controller takes the stopped brokers out of the ISR at once.
    let two = cluster.outage(2, false);
    let three = cluster.outage(3, false);
    let (mut acked, mut failed) = (0, 0);
    for i in 10..20 {
        match send(i).await {
            Ok(md) => panic!("record {i} acknowledged with one replica in sync: {md:?}"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("NOT_ENOUGH_REPLICAS")
                        || matches!(e, Error::DeliveryTimeout { .. }),
                    "record {i}: {text}"
                );
                failed += 1;
            }
        }
    }
    three.end();
    two.end();
    for i in 20..30 {
        send(i).await.unwrap();
        acked += 1;
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    let read = cluster.read_topic(&t);
    let values: Vec<usize> = read
        .iter()
        .map(|r| r.value_str().unwrap().parse().unwrap())
        .collect();
    for i in (0..10).chain(20..30) {
        assert_eq!(
            values.iter().filter(|&&v| v == i).count(),
            1,
            "acked record {i} once: {values:?}"
        );
    }
    eprintln!(
        "two brokers down: sent 30, acked {}, failed {failed}, lost 0, present after failure {}",
        acked + 10,
        values.iter().filter(|&&v| (10..20).contains(&v)).count()
    );
}

#[tokio::test]
async fn disruptive_all_brokers_down_memory_stays_bounded_and_every_record_gets_an_outcome() {
    let Some(cluster) = cluster() else { return };
    let t = Cluster::random_topic("down");
    cluster.create_topic(&t, 3, 3, &[]);
    let mut c = ProducerConfig::new(cluster.bootstrap());
    for (k, v) in [
        ("buffer.memory", "1048576"),
        ("max.block.ms", "1000"),
        ("request.timeout.ms", "3000"),
        ("delivery.timeout.ms", "600000"),
        ("linger.ms", "0"),
    ] {
        c.set(k, v).unwrap();
    }
    let producer = Producer::new(c).await.unwrap();
    producer
        .send(ProducerRecord::new(&t).key("warm").value("up"))
        .await
        .unwrap()
        .await
        .unwrap();

    // A lone node of three cannot form a quorum, so they come back together (`scripts/kafka up`).
    let outage = WholeClusterOutage::new(&cluster);
    let before = rss_kib();
    let value = vec![b'x'; 1000];
    let mut futures = Vec::new();
    let err = loop {
        match producer
            .send(ProducerRecord::<&[u8], _>::new(&t).value(&value))
            .await
        {
            Ok(f) => futures.push(f),
            Err(e) => break e,
        }
        assert!(
            futures.len() < 100_000,
            "buffer.memory of 1 MiB never filled"
        );
    };
    let grown_kib = rss_kib().saturating_sub(before);
    assert!(matches!(err, Error::BufferExhausted { .. }), "{err}");
    assert!(err.to_string().contains("buffer.memory"), "{err}");
    assert!(
        grown_kib < 16 * 1024,
        "memory grew by {grown_kib} KiB with a 1 MiB buffer"
    );
    let queued = futures.len();

    // Close with a short timeout: every pending record fails, and says why.
    let close = producer.close(Duration::from_secs(2)).await;
    assert!(close.is_err(), "records were pending");
    let mut closed = 0;
    for f in futures {
        match f.await {
            Err(Error::Closed { .. }) => closed += 1,
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_eq!(closed, queued);
    drop(outage);
    eprintln!(
        "all brokers down: queued {queued} records of 1000 B in a 1 MiB buffer, then {err}; RSS grew {grown_kib} KiB; \
         close failed all {closed}"
    );

    // After the brokers return, a new producer works. (`scripts/kafka up` formats afresh a
    // cluster with no node running, so the topic is made again.)
    cluster.create_topic(&t, 3, 3, &[]);
    let producer = Producer::new(ProducerConfig::new(cluster.bootstrap()))
        .await
        .unwrap();
    let md = producer
        .send(ProducerRecord::new(&t).key("back").value("again"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(md.offset.is_some());
}

#[tokio::test]
async fn disruptive_leader_stopped_mid_stream_metadata_follows_and_nothing_is_lost() {
    let Some(cluster) = cluster() else { return };
    let t = Cluster::random_topic("failover");
    cluster.create_topic(&t, 1, 3, &[]);
    let leader = cluster.describe_topic(&t)[0].leader;
    let mut c = ProducerConfig::new(cluster.bootstrap());
    c.set("max.in.flight.requests.per.connection", "1").unwrap();
    c.set("linger.ms", "1").unwrap();
    let producer = Producer::new(c).await.unwrap();
    let mut futures = Vec::new();
    let mut outage = None;
    for i in 0..600 {
        futures.push(
            producer
                .send(ProducerRecord::new(&t).key("k").value(format!("{i}")))
                .await
                .unwrap(),
        );
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i == 200 {
            outage = Some(cluster.outage(leader, false));
        }
    }
    producer.flush().await.unwrap();
    let mut offsets = HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        offsets.insert(i, f.await.unwrap().offset.unwrap());
    }
    drop(outage);
    let new_leader = cluster.describe_topic(&t)[0].leader;
    let read = cluster.read_topic(&t);
    let values: Vec<usize> = read
        .iter()
        .map(|r| r.value_str().unwrap().parse().unwrap())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<usize> = values.iter().copied().filter(|v| seen.insert(*v)).collect();
    assert_eq!(
        firsts,
        (0..600).collect::<Vec<_>>(),
        "every record, in send order"
    );
    for r in &read {
        let v: usize = r.value_str().unwrap().parse().unwrap();
        if offsets[&v] == r.offset {
            continue;
        }
        assert!(
            values.iter().filter(|&&x| x == v).count() > 1,
            "record {v} at an unreported offset"
        );
    }
    eprintln!(
        "leader {leader} stopped mid-stream (now {new_leader}): sent 600, acked 600, lost 0, duplicated {}",
        values.len() - 600
    );
}

/// All three nodes killed; on drop, `scripts/kafka up` starts them together and waits.
struct WholeClusterOutage;

impl WholeClusterOutage {
    fn new(cluster: &Cluster) -> Self {
        for node in 1..=3 {
            cluster.stop_node(node, true);
        }
        WholeClusterOutage
    }
}

impl Drop for WholeClusterOutage {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka");
        let status = std::process::Command::new(script).arg("up").status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("scripts/kafka up after the outage failed: {status:?}");
        }
    }
}
