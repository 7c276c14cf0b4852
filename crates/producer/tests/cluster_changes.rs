//! A cluster that changes under a running producer (as the Java client 4.x copes with it): partitions added to a
//! topic while records go to it, and every broker restarted at other addresses behind an unchanged bootstrap name.
//! What was written is read back with the Java reader.

// This file counts its records as it sends them (`produce_counted`), not with `produce_until`.
#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_producer::{
    partition_for_key, DeliveryFuture, Error, MetadataRecoveryStrategy, Producer, ProducerConfig,
    ProducerRecord, RecordMetadata,
};
use kafka_producer_testkit::{cluster, Cluster, OwnCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{spawn_blocking, JoinHandle};

/// How long the tests wait for something that should happen in seconds: a bound, not a measurement.
const PATIENCE: Duration = Duration::from_secs(90);

/// A topic of 2 partitions grows to 4 while a producer (metadata.max.age.ms=500) sends keyless and keyed records:
/// once its metadata shows 4, keyless records reach partitions 2 and 3 too, and keyed records go where the Java
/// client puts the same keys on 4 partitions. Every record is in the topic once, where it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_while_producing_get_keyless_and_rehashed_keyed_records() {
    let Some(cluster) = cluster() else { return };
    let t = Cluster::random_topic("grow");
    cluster.create_topic(&t, 2, 3, &[]);
    let mut c = ProducerConfig::new(cluster.bootstrap());
    c.set("linger.ms", "5").unwrap();
    c.set("metadata.max.age.ms", "500").unwrap();
    let producer = Producer::new(c).await.unwrap();

    // kafka-topics --alter, started once 200 records were sent.
    let mut alter: Option<JoinHandle<()>> = None;
    // (value, key, future, whether the producer had seen 4 partitions before this send)
    let mut sent: Vec<(String, Option<String>, DeliveryFuture, bool)> = Vec::new();
    let mut saw_four = false;
    let mut altered = false;
    // The new partitions that keyless records went to: the sticky partitioner moves on batch by batch.
    let mut keyless_on_new = HashSet::new();
    let mut keyed_after = 0usize;
    let deadline = Instant::now() + PATIENCE;
    let mut i = 0usize;
    // Until keyless records reached both new partitions and enough keyed records followed the new count.
    while keyless_on_new.len() < 2 || keyed_after < 100 {
        assert!(
            Instant::now() < deadline,
            "after {PATIENCE:?}: altered {altered}, producer saw 4 partitions {saw_four}, \
             keyless records on new partitions {keyless_on_new:?}, {keyed_after} keyed records after"
        );
        let value = format!("n{i:06}");
        let f = producer
            .send(ProducerRecord::<&str, &str>::new(&t).value(&value))
            .await
            .unwrap();
        if saw_four && f.partition() >= 2 {
            keyless_on_new.insert(f.partition());
        }
        sent.push((value, None, f, saw_four));
        if i % 3 == 0 {
            let key = format!("key-{}", i % 97);
            let value = format!("k{i:06}");
            let f = producer
                .send(
                    ProducerRecord::<&str, &str>::new(&t)
                        .key(&key)
                        .value(&value),
                )
                .await
                .unwrap();
            if saw_four {
                keyed_after += 1;
            }
            sent.push((value, Some(key), f, saw_four));
        }
        i += 1;
        if i == 200 {
            let (cluster, t) = (cluster.clone(), t.clone());
            alter = Some(spawn_blocking(move || cluster.add_partitions(&t, 4)));
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(done) = alter.take_if(|a| a.is_finished()) {
                done.await.expect("kafka-topics --alter");
                altered = true;
            }
            if altered && !saw_four {
                saw_four = producer.partition_count(&t).await.unwrap() == 4;
            }
        }
    }
    producer.flush().await.unwrap();
    let mut acked: HashMap<String, (Option<String>, RecordMetadata, bool)> = HashMap::new();
    for (value, key, f, after) in sent {
        let md = f.await.unwrap_or_else(|e| panic!("record {value}: {e}"));
        acked.insert(value, (key, md, after));
    }
    eprintln!(
        "{} records sent, {keyed_after} keyed after the change",
        acked.len()
    );

    // Keyed records sent once the producer saw 4 partitions hash over 4, as the Java client hashes them; those
    // before over 2 (or 4, if the producer's metadata was ahead of what this loop had seen).
    let mut keys: Vec<String> = Vec::new();
    for (value, (key, md, after)) in &acked {
        let Some(key) = key else { continue };
        let over = |n| partition_for_key(key.as_bytes(), n) as i32;
        if *after {
            assert_eq!(md.partition, over(4), "record {value}, key {key}");
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        } else {
            assert!(
                md.partition == over(2) || md.partition == over(4),
                "record {value}, key {key}: partition {}",
                md.partition
            );
        }
    }
    let java = {
        let (cluster, t, keys) = (cluster.clone(), t.clone(), keys.clone());
        spawn_blocking(move || cluster.java_produce_keys(&t, &keys))
            .await
            .unwrap()
    };
    for (key, partition) in &java {
        assert_eq!(
            *partition,
            partition_for_key(key.as_bytes(), 4) as i32,
            "the Java client put {key} on partition {partition}"
        );
    }

    // Read back: each of our records once, where it was acknowledged; the Java records are their keys.
    let read = {
        let (cluster, t) = (cluster.clone(), t.clone());
        spawn_blocking(move || cluster.read_topic(&t))
            .await
            .unwrap()
    };
    let java_keys: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut partitions_with_keyless = HashSet::new();
    for r in &read {
        let value = r.value_str().unwrap_or_default().to_string();
        if java_keys.contains(value.as_str()) {
            continue;
        }
        let (key, md, _) = acked
            .get(&value)
            .unwrap_or_else(|| panic!("{value:?} at {}@{} was never sent", r.partition, r.offset));
        assert_eq!(
            (md.partition, md.offset),
            (r.partition, Some(r.offset)),
            "{value}"
        );
        assert_eq!(r.key_str(), key.as_deref(), "{value}");
        assert!(seen.insert(value.clone()), "{value} is in the topic twice");
        if key.is_none() {
            partitions_with_keyless.insert(r.partition);
        }
    }
    assert_eq!(
        seen.len(),
        acked.len(),
        "records acknowledged but not read back"
    );
    assert_eq!(
        partitions_with_keyless,
        HashSet::from([0, 1, 2, 3]),
        "keyless records in the grown topic"
    );
    producer.close(PATIENCE).await.unwrap();
}

/// The port offset of the cluster that [`disruptive_brokers_restarted_on_new_ports_behind_the_bootstrap_name`]
/// starts for itself (`KPROD_OWN_CLUSTER_PORT_OFFSET`, default 450: ports N9542.., apart from the shared cluster's
/// N9092..), and how far its broker ports move: 100, to N9642, which keeps node 3's port in 39000-39999, the range
/// scripts/test reserves against Linux's ephemeral ports (32768-60999), and nodes 1 and 2 below that range. (A
/// shift of 1000 once put node 3 on 40542, which an outgoing connection had taken: the node could not bind.)
fn own_cluster_ports() -> (u32, u32) {
    let offset = std::env::var("KPROD_OWN_CLUSTER_PORT_OFFSET")
        .ok()
        .map(|v| {
            v.parse()
                .expect("KPROD_OWN_CLUSTER_PORT_OFFSET is a number")
        })
        .unwrap_or(450);
    (offset, 100)
}

/// Kafka's API key of Produce and Metadata requests.
const PRODUCE: i16 = 0;
const METADATA: i16 = 3;

/// A stable bootstrap address standing for a load balancer or a DNS name: a loopback port that forwards each
/// connection to the address it points at when the connection comes (by name: resolved then). It reads the Kafka
/// requests that pass and notes their API keys, so a test can tell which traffic went through it.
struct BootstrapName {
    addr: SocketAddr,
    upstream: Arc<Mutex<String>>,
    /// The API key of every request forwarded, in order, with the upstream it went to.
    requests: Arc<Mutex<Vec<(String, i16)>>>,
    accept: JoinHandle<()>,
}

impl BootstrapName {
    async fn start(upstream: &str) -> BootstrapName {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream.to_string()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (upstream, requests) = (upstream.clone(), requests.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let to = upstream.lock().unwrap().clone();
                    tokio::spawn(forward(client, to, requests.clone()));
                }
            }
        });
        BootstrapName {
            addr,
            upstream,
            requests,
            accept,
        }
    }

    fn point_at(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = upstream.to_string();
    }

    /// The API keys of the requests forwarded to `upstream`.
    fn requests_to(&self, upstream: &str) -> Vec<i16> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|(to, _)| to == upstream)
            .map(|(_, key)| *key)
            .collect()
    }

    fn all_requests(&self) -> Vec<i16> {
        self.requests.lock().unwrap().iter().map(|r| r.1).collect()
    }
}

impl Drop for BootstrapName {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Forwards one connection: the client's requests frame by frame (noting each API key), the answers as they come.
async fn forward(client: TcpStream, to: String, requests: Arc<Mutex<Vec<(String, i16)>>>) {
    let Ok(server) = TcpStream::connect(&to).await else {
        return; // The client sees the connection close, as with a load balancer that has no backend.
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut frame = Vec::new();
    loop {
        let mut size = [0u8; 4];
        if client_read.read_exact(&mut size).await.is_err() {
            break;
        }
        let len = i32::from_be_bytes(size).max(0) as usize;
        frame.resize(len, 0);
        if client_read.read_exact(&mut frame).await.is_err() {
            break;
        }
        if len >= 2 {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            requests.lock().unwrap().push((to.clone(), key));
        }
        if server_write.write_all(&size).await.is_err()
            || server_write.write_all(&frame).await.is_err()
        {
            break;
        }
    }
    answers.abort();
}

/// Sends numbered records (value = number, key = number mod [`common::KEYS`]) until `stop`; returns every outcome,
/// by number. `count` follows how many were sent.
async fn produce_counted(
    producer: Producer,
    topic: String,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> Vec<Result<RecordMetadata, Error>> {
    let mut futures = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let n = futures.len();
        let key = format!("key-{}", n % common::KEYS);
        futures.push(
            producer
                .send(ProducerRecord::new(&topic).key(key).value(n.to_string()))
                .await,
        );
        count.store(n + 1, Ordering::Release);
        if (n + 1) % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut outcomes = Vec::with_capacity(futures.len());
    for f in futures {
        outcomes.push(match f {
            Ok(f) => f.await,
            Err(e) => Err(e),
        });
    }
    outcomes
}

/// Every broker of a cluster of the test's own is stopped and started again listening on, and advertising, other
/// ports; the bootstrap name the producers were given (a forwarder the test owns) moves to the new ports meanwhile.
///
/// An idempotent acks=all producer with the default `metadata.recovery.strategy=rebootstrap` sends throughout:
/// once no broker it knows of answers, it goes back to the bootstrap name, learns the new addresses, and every
/// record sent before, during and after is in the topic once. Its records never went through the forwarder (only
/// its metadata did): it produced to the brokers' new addresses itself.
///
/// A second producer with `metadata.recovery.strategy=none` (and delivery.timeout.ms=10000) keeps to the old
/// addresses: the records it sends once the cluster serves again at the new ones fail with a delivery timeout and
/// are not in its topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_brokers_restarted_on_new_ports_behind_the_bootstrap_name() {
    // Needs no shared cluster, but skips (or fails with KPROD_REQUIRE_KAFKA=1) as the other cluster tests do.
    let Some(_) = cluster() else { return };
    let began = Instant::now();
    let (offset, shift) = own_cluster_ports();
    let state: PathBuf = [env!("CARGO_TARGET_TMPDIR"), "cluster-changes-kafka"]
        .iter()
        .collect();
    let mut own = spawn_blocking(move || OwnCluster::start(&state, offset, 3))
        .await
        .unwrap();
    let started = began.elapsed();
    let (t, t_none) = (
        Cluster::random_topic("moved"),
        Cluster::random_topic("moved-none"),
    );
    own.create_topic(&t, 3, 3, &[]);
    own.create_topic(&t_none, 3, 3, &[]);
    let old_first = own.broker_addresses()[0].clone();
    let name = BootstrapName::start(&old_first).await;

    let mut c = ProducerConfig::new(&name.addr.to_string());
    for (k, v) in [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("delivery.timeout.ms", "240000"),
    ] {
        c.set(k, v).unwrap();
    }
    let producer = Producer::new(c).await.unwrap();
    let mut c = ProducerConfig::new(&name.addr.to_string())
        .with_metadata_recovery_strategy(MetadataRecoveryStrategy::None);
    for (k, v) in [
        ("linger.ms", "5"),
        ("request.timeout.ms", "5000"),
        ("delivery.timeout.ms", "10000"),
    ] {
        c.set(k, v).unwrap();
    }
    let stays = Producer::new(c).await.unwrap();
    let mut stays_sent = Vec::new();
    for i in 0..20 {
        let record = ProducerRecord::<&str, String>::new(&t_none).value(format!("before-{i}"));
        stays_sent.push(stays.send(record).await.unwrap());
    }
    stays.flush().await.unwrap();
    for f in stays_sent {
        f.await.unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let sending = tokio::spawn(produce_counted(
        producer.clone(),
        t.clone(),
        stop.clone(),
        count.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = count.load(Ordering::Acquire);
    assert!(before > 0, "nothing sent in 2 s");

    // All brokers go (SIGKILL); they come back on other ports, and the bootstrap name moves with them.
    let own = spawn_blocking(move || {
        for node in 1..=3 {
            own.stop_node(node, true);
        }
        own.move_broker_ports(shift);
        own
    })
    .await
    .unwrap();
    let stopped = count.load(Ordering::Acquire);
    let new_first = own.broker_addresses()[0].clone();
    assert_ne!(old_first, new_first);
    name.point_at(&new_first);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let own = spawn_blocking(move || {
        for node in 1..=3 {
            own.start_node(node);
        }
        own
    })
    .await
    .unwrap();
    let back = count.load(Ordering::Acquire);

    // Records keep going a while after the cluster serves again, then every one must be acknowledged.
    let deadline = Instant::now() + PATIENCE;
    while count.load(Ordering::Acquire) < back + 500 {
        assert!(
            Instant::now() < deadline,
            "the sending loop stalled after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(PATIENCE, producer.flush())
        .await
        .expect("flushed within the test's patience")
        .unwrap();
    let moved_at = Instant::now();

    // The producer that keeps to the old addresses: its records fail although the cluster serves again.
    let mut stays_sent = Vec::new();
    for i in 0..20 {
        let record = ProducerRecord::<&str, String>::new(&t_none).value(format!("after-{i}"));
        stays_sent.push(stays.send(record).await);
    }
    stop.store(true, Ordering::Release);
    let outcomes = sending.await.unwrap();
    for (i, sent) in stays_sent.into_iter().enumerate() {
        let e = match sent {
            Ok(f) => f
                .await
                .expect_err("strategy none must not reach the moved brokers"),
            Err(e) => e,
        };
        assert!(
            matches!(e, Error::DeliveryTimeout { .. }),
            "record after-{i}: {e}"
        );
        eprintln!("strategy none, record after-{i}: {e}");
    }
    let none_failed = moved_at.elapsed();

    let (tally, sent) = {
        let (cluster, t) = (Cluster::clone(&own), t.clone());
        spawn_blocking(move || (common::check(&cluster, &t, &outcomes), outcomes.len()))
            .await
            .unwrap()
    };
    eprintln!(
        "sent {sent}: {stopped} before every broker was stopped, {} while none ran, {} after; {tally}",
        back - stopped,
        sent - back
    );
    assert!(stopped > before && back > stopped && sent >= back + 500);
    assert_eq!(
        (
            tally.failed,
            tally.lost,
            tally.duplicated,
            tally.reordered,
            tally.misplaced
        ),
        (0, 0, 0, 0, 0),
        "{tally}"
    );
    let stays_read = own.read_topic(&t_none);
    let mut values: Vec<&str> = stays_read
        .iter()
        .map(|r| r.value_str().unwrap_or_default())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("before-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected, "strategy none's topic");

    // Only bootstrap traffic went through the name: metadata at the new ports too, never a record.
    let all = name.all_requests();
    assert!(
        !all.contains(&PRODUCE),
        "records went through the bootstrap name: {all:?}"
    );
    let after_move = name.requests_to(&new_first);
    assert!(
        after_move.contains(&METADATA),
        "no metadata asked through the moved bootstrap name: {after_move:?}"
    );
    eprintln!(
        "bootstrap name forwarded {} requests ({} after the move), API keys {:?}; own cluster up in {:.1}s, \
         whole test {:.1}s, strategy none's records had failed {:.1}s after they were sent",
        all.len(),
        after_move.len(),
        all.iter().collect::<HashSet<_>>(),
        started.as_secs_f64(),
        began.elapsed().as_secs_f64(),
        none_failed.as_secs_f64()
    );
    producer.close(PATIENCE).await.unwrap();
    stays.close(Duration::from_secs(1)).await.ok();
}
