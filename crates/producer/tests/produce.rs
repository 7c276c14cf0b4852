//! The producer against the real cluster (3 nodes of the default Kafka in `scripts/test`, one node
//! of each older version it also runs these tests on); what it wrote is read back by Kafka's own
//! Java client (the testkit's reader), never by our decoder.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer::{
    partition_for_key, Acks, BlockingProducer, Error, JsonSerializer, Partitioner, Producer,
    ProducerConfig, ProducerRecord, StringSerializer, TypedProducer,
};
use kafka_producer_testkit::{cluster, dump_log_batches, dump_log_field, Cluster};

fn config(cluster: &Cluster) -> ProducerConfig {
    ProducerConfig::new(cluster.bootstrap())
}

fn topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let t = Cluster::random_topic(prefix);
    cluster.create_topic(&t, partitions, cluster.replication_factor(), &[]);
    t
}

#[tokio::test]
async fn bootstrap_from_one_address_reaches_leaders_on_the_other_brokers() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "connect", 6);
    let first = cluster.broker_addresses()[0].clone();
    let info = cluster.describe_topic(&t);
    let leaders: std::collections::BTreeSet<i32> = info.iter().map(|p| p.leader).collect();
    assert!(
        leaders.len() >= 2,
        "partitions spread over several leaders: {info:?}"
    );

    let producer = Producer::new(ProducerConfig::new(&first)).await.unwrap();
    let mut futures = Vec::new();
    for p in 0..6 {
        let v = format!("p{p}");
        futures.push(
            producer
                .send(
                    ProducerRecord::<&[u8], _>::new(&t)
                        .value(v.as_bytes())
                        .partition(p),
                )
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for (p, f) in futures.into_iter().enumerate() {
        let md = f.await.unwrap();
        assert_eq!((md.partition, md.offset), (p as i32, Some(0)));
    }
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 6);
    for r in &read {
        assert_eq!(r.value_str().unwrap(), format!("p{}", r.partition));
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn unreachable_bootstrap_servers_fail_clearly_and_soon() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let start = Instant::now();
    let err = match Producer::new(ProducerConfig::new("127.0.0.1:1,localhost:1")).await {
        Err(e) => e,
        Ok(_) => panic!("no broker listens there"),
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::Bootstrap { .. }), "{msg}");
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("localhost:1"),
        "{msg}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "bounded by the setup timeout"
    );
}

#[tokio::test]
async fn same_key_same_partition_as_java_and_in_order() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "keys", 5);
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let keys = ["seoul", "busan", "", "incheon", "jeju"];
    let mut futures = Vec::new();
    for i in 0..50 {
        let key = keys[i % keys.len()];
        let value = format!("{key}:{i}");
        futures.push(
            producer
                .send(ProducerRecord::new(&t).key(key).value(value))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for f in futures {
        f.await.unwrap();
    }
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 50);
    let mut last_seq: HashMap<String, usize> = HashMap::new();
    for r in &read {
        let key = r.key_str().unwrap().to_string();
        assert_eq!(
            r.partition as u32,
            partition_for_key(key.as_bytes(), 5),
            "key {key:?}"
        );
        let seq: usize = r
            .value_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if let Some(prev) = last_seq.insert(key.clone(), seq) {
            assert!(prev < seq, "key {key:?} out of order: {prev} then {seq}");
        }
    }
    assert_eq!(
        last_seq.len(),
        keys.len(),
        "the empty key is a key, not a null"
    );
}

#[tokio::test]
async fn a_thousand_keys_land_where_the_java_producer_puts_them() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "interop", 7);
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}-{}", i * 7919)).collect();
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let mut ours = HashMap::new();
    let mut futures = Vec::new();
    for k in &keys {
        futures.push((
            k.clone(),
            producer
                .send(ProducerRecord::new(&t).key(k).value(k))
                .await
                .unwrap(),
        ));
    }
    producer.flush().await.unwrap();
    for (k, f) in futures {
        ours.insert(k, f.await.unwrap().partition);
    }
    let java = cluster.java_produce_keys(&t, &keys);
    assert_eq!(java.len(), keys.len());
    for (k, p) in java {
        assert_eq!(ours[&k], p, "key {k}: ours {} java {p}", ours[&k]);
    }
    // And the broker holds each key twice, both copies in the same partition.
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 2000);
    for r in read {
        assert_eq!(ours[r.key_str().unwrap()], r.partition);
    }
}

#[tokio::test]
async fn headers_tombstones_timestamps_and_explicit_partitions_arrive_intact() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "fields", 3);
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let f1 = producer
        .send(
            ProducerRecord::new(&t)
                .key("k")
                .value("v")
                .header("trace", Some(b"abc"))
                .header("trace", Some(b"def"))
                .header("empty", None)
                .timestamp(1_700_000_000_123)
                .partition(2),
        )
        .await
        .unwrap();
    let f2 = producer
        .send(ProducerRecord::<_, &[u8]>::new(&t).key("gone").partition(1))
        .await
        .unwrap();
    let f3 = producer
        .send(
            ProducerRecord::<&[u8], _>::new(&t)
                .value(vec![0u8, 255, 1])
                .partition(0),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let (m1, m2, m3) = (f1.await.unwrap(), f2.await.unwrap(), f3.await.unwrap());
    assert_eq!((m1.partition, m1.timestamp), (2, 1_700_000_000_123));
    assert_eq!((m2.partition, m3.partition), (1, 0));

    let read = cluster.read_topic(&t);
    let by_partition: HashMap<i32, _> = read.iter().map(|r| (r.partition, r)).collect();
    let r = by_partition[&2];
    assert_eq!(r.timestamp, 1_700_000_000_123);
    assert_eq!(r.timestamp_type, "CreateTime");
    assert_eq!(
        r.headers,
        vec![
            ("trace".to_string(), Some(b"abc".to_vec())),
            ("trace".to_string(), Some(b"def".to_vec())),
            ("empty".to_string(), None),
        ]
    );
    let tomb = by_partition[&1];
    assert_eq!((tomb.key_str(), tomb.value.as_ref()), (Some("gone"), None));
    let raw = by_partition[&0];
    assert_eq!(
        (raw.key.as_ref(), raw.value.as_deref()),
        (None, Some(&[0u8, 255, 1][..]))
    );
    // The default timestamp is "now".
    assert!((m3.timestamp - r.timestamp).abs() < 3_600_000 * 24 * 365 * 100);
}

#[derive(serde::Serialize)]
struct Weather {
    city: String,
    temp: i32,
}

#[tokio::test]
async fn typed_json_producer_and_serializer_errors_harm_no_other_record() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "typed", 3);
    let producer: TypedProducer<str, Weather> =
        TypedProducer::new(config(&cluster), StringSerializer, JsonSerializer)
            .await
            .unwrap();
    let w = Weather {
        city: "seoul".into(),
        temp: 10,
    };
    let ok = producer
        .send(ProducerRecord::new(&t).key("seoul").value(&w))
        .await
        .unwrap();

    // A value serializer that refuses negative temperatures.
    let picky = TypedProducer::<str, i32>::from_producer(
        producer.producer().clone(),
        StringSerializer,
        |v: &i32| -> Result<Vec<u8>, String> {
            if *v < 0 {
                Err(format!("negative: {v}"))
            } else {
                Ok(v.to_string().into_bytes())
            }
        },
    );
    let err = picky
        .send(ProducerRecord::new(&t).key("busan").value(&-3))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Serialization { part: "value", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("negative: -3") && err.to_string().contains(&t),
        "{err}"
    );
    let ok2 = picky
        .send(ProducerRecord::new(&t).key("busan").value(&4))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    ok.await.unwrap();
    ok2.await.unwrap();
    let read = cluster.read_topic(&t);
    let values: Vec<&str> = read.iter().map(|r| r.value_str().unwrap()).collect();
    assert_eq!(read.len(), 2, "{values:?}");
    assert!(values.contains(&r#"{"city":"seoul","temp":10}"#));
    assert!(values.contains(&"4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_producer() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "tasks", 4);
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (producer, t) = (producer.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("task-{task}");
            let mut futures = Vec::new();
            for i in 0..250 {
                let v = format!("{i}");
                futures.push(
                    producer
                        .send(ProducerRecord::new(&t).key(&key).value(v))
                        .await
                        .unwrap(),
                );
            }
            for f in futures {
                f.await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 2000);
    let mut next: HashMap<String, usize> = HashMap::new();
    for r in read {
        let n = next.entry(r.key_str().unwrap().to_string()).or_default();
        assert_eq!(r.value_str().unwrap(), n.to_string(), "per-key order");
        *n += 1;
    }
}

#[tokio::test]
async fn linger_holds_a_batch_until_flush_and_a_full_batch_goes_at_once() {
    let Some(cluster) = cluster() else { return };
    // batch.max.size at batch.size: the Java client's rule, a batch goes once it reaches
    // batch.size. Above it: a batch fills past batch.size and goes once it reaches batch.max.size.
    for max in [2000usize, 8000] {
        let t = topic(&cluster, "linger", 1);
        let mut c = config(&cluster);
        c.set("linger.ms", "60000").unwrap();
        c.set("delivery.timeout.ms", "120000").unwrap();
        c.set("batch.size", "2000").unwrap();
        c.set("batch.max.size", &max.to_string()).unwrap();
        let producer = Producer::new(c).await.unwrap();
        let small = producer
            .send(ProducerRecord::<&[u8], _>::new(&t).value("small"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(producer.pending_records(), 1, "lingering, not sent");
        producer.flush().await.unwrap();
        assert_eq!(small.await.unwrap().offset, Some(0));

        let send_100 = |n: usize| {
            let (producer, t) = (&producer, &t);
            async move {
                let mut futures = Vec::new();
                for _ in 0..n {
                    futures.push(
                        producer
                            .send(ProducerRecord::<&[u8], _>::new(t).value(vec![7u8; 100]))
                            .await
                            .unwrap(),
                    );
                }
                futures
            }
        };
        // Past batch.size: with growth the batch keeps lingering.
        let mut futures = send_100(30).await;
        if max > 2000 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(producer.pending_records(), 30, "a growing batch lingers");
            // Past batch.max.size: it goes.
            futures.extend(send_100(60).await);
        }
        let first = futures.remove(0);
        let md = tokio::time::timeout(Duration::from_secs(30), first)
            .await
            .expect("a full batch is sent without waiting for linger.ms")
            .unwrap();
        assert_eq!(md.offset, Some(1), "batch.max.size {max}");
        producer.flush().await.unwrap();
        let sent = futures.len() + 2;
        for f in futures {
            f.await.unwrap();
        }
        assert_eq!(cluster.read_topic(&t).len(), sent);
        let largest = cluster
            .log_batches(&t, 0)
            .iter()
            .map(|b| b.1)
            .max()
            .unwrap();
        assert!(
            largest <= max && largest > max - 200,
            "batch.max.size {max}: largest {largest}"
        );
    }
}

/// A burst leaves in batches past `batch.size`, up to `batch.max.size` (1,000,000 by default);
/// with `batch.max.size` = `batch.size`, in batches of at most `batch.size`, as the Java client
/// sends them. Java reads every record back, in order.
#[tokio::test]
async fn a_burst_leaves_in_batches_past_batch_size_up_to_batch_max_size() {
    let Some(cluster) = cluster() else { return };
    for (max, grows) in [(None, true), (Some("16384"), false)] {
        let t = topic(&cluster, "growth", 1);
        let mut c = config(&cluster);
        // Long enough that size, not time, ends every batch but the last.
        c.set("linger.ms", "2000").unwrap();
        if let Some(max) = max {
            c.set("batch.max.size", max).unwrap();
        }
        let producer = Producer::new(c).await.unwrap();
        const N: usize = 20_000;
        let mut futures = Vec::with_capacity(N);
        for i in 0..N {
            let value = format!("{i:06}{}", "x".repeat(94));
            futures.push(
                producer
                    .send(ProducerRecord::<&[u8], _>::new(&t).value(value))
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await.unwrap();
        for (i, f) in futures.into_iter().enumerate() {
            assert_eq!(f.await.unwrap().offset, Some(i as i64), "record {i}");
        }
        let read = cluster.read_topic(&t);
        assert_eq!(read.len(), N);
        for (i, r) in read.iter().enumerate() {
            assert!(
                r.value_str().unwrap().starts_with(&format!("{i:06}")),
                "{i}"
            );
        }
        let batches = cluster.log_batches(&t, 0);
        assert_eq!(batches.iter().map(|b| b.0).sum::<usize>(), N);
        let largest = batches.iter().map(|b| b.1).max().unwrap();
        println!(
            "batch.max.size {max:?}: {} batches, largest {largest} bytes",
            batches.len()
        );
        if grows {
            assert!(
                largest > 1_000_000 - 200 && largest <= 1_000_000,
                "{batches:?}"
            );
        } else {
            assert!(largest <= 16_384, "{batches:?}");
        }
    }
}

#[tokio::test]
async fn acks_zero_one_and_all() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "acks", 1);
    for (acks, expect_offset) in [(Acks::None, false), (Acks::Leader, true), (Acks::All, true)] {
        let producer = Producer::new(config(&cluster).with_acks(acks))
            .await
            .unwrap();
        let f = producer
            .send(ProducerRecord::new(&t).key("k").value(format!("{acks:?}")))
            .await
            .unwrap();
        producer.flush().await.unwrap();
        let md = f.await.unwrap();
        assert_eq!(md.offset.is_some(), expect_offset, "{acks:?}: {md:?}");
        producer.close(Duration::from_secs(10)).await.unwrap();
    }
    // acks=0 promises nothing about when the broker appends, so only the set is checked.
    let mut values: Vec<String> = cluster
        .read_topic(&t)
        .iter()
        .map(|r| r.value_str().unwrap().to_string())
        .collect();
    values.sort();
    assert_eq!(values, ["All", "Leader", "None"]);
}

/// Idempotence (on by default) as the broker stores it: every batch carries the producer id the
/// producer got from InitProducerId, one id for all partitions, with sequence numbers that start
/// at 0 in each partition and run on from batch to batch without a gap. With
/// `enable.idempotence=false` the batches carry no producer id and no sequence. Kafka's own
/// `kafka-dump-log` reads the batches; the Java reader finds every record, in send order per key.
#[tokio::test]
async fn idempotent_batches_carry_one_producer_id_and_gapless_sequences() {
    let Some(cluster) = cluster() else { return };
    for idempotent in [true, false] {
        let t = topic(&cluster, "idempotence", 2);
        let mut c = config(&cluster);
        c.set("enable.idempotence", &idempotent.to_string())
            .unwrap();
        let producer = Producer::new(c).await.unwrap();
        // Several batches per partition: a flush after each round of sends.
        for round in 0..5 {
            let mut futures = Vec::new();
            for i in 0..20 {
                let key = format!("key-{}", i % 4);
                futures.push(
                    producer
                        .send(
                            ProducerRecord::new(&t)
                                .key(key)
                                .value(format!("{round}:{i}")),
                        )
                        .await
                        .unwrap(),
                );
            }
            producer.flush().await.unwrap();
            for f in futures {
                f.await.unwrap();
            }
        }
        producer.close(Duration::from_secs(10)).await.unwrap();

        let read = cluster.read_topic(&t);
        assert_eq!(read.len(), 100);
        let mut last: HashMap<String, (usize, usize)> = HashMap::new();
        for r in &read {
            let (round, i) = r.value_str().unwrap().split_once(':').unwrap();
            let seq = (round.parse().unwrap(), i.parse().unwrap());
            if let Some(prev) = last.insert(r.key_str().unwrap().to_string(), seq) {
                assert!(prev < seq, "{r:?} after {prev:?}");
            }
        }

        let mut producer_ids = std::collections::BTreeSet::new();
        for partition in cluster.describe_topic(&t) {
            let segment = cluster.first_segment(partition.leader, &t, partition.partition);
            let out = cluster.tool("kafka-dump-log", &["--files", &segment.to_string_lossy()]);
            assert!(
                out.status.success(),
                "kafka-dump-log: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let dump = String::from_utf8_lossy(&out.stdout);
            let batches = dump_log_batches(&dump);
            assert!(
                batches.len() >= 2,
                "partition {}: {dump}",
                partition.partition
            );
            let field = |line: &str, name: &str| -> i64 {
                dump_log_field(line, name)
                    .parse()
                    .unwrap_or_else(|_| panic!("bad {name} in {line}"))
            };
            let mut next_sequence = 0;
            for line in &batches {
                let (base, last, count) = (
                    field(line, "baseSequence"),
                    field(line, "lastSequence"),
                    field(line, "count"),
                );
                producer_ids.insert(field(line, "producerId"));
                if idempotent {
                    assert!(field(line, "producerEpoch") >= 0, "{line}");
                    assert_eq!(base, next_sequence, "{line}");
                    assert_eq!(last, base + count - 1, "{line}");
                    next_sequence = last + 1;
                } else {
                    assert_eq!((base, last), (-1, -1), "{line}");
                }
            }
            let records = read
                .iter()
                .filter(|r| r.partition == partition.partition)
                .count() as i64;
            let stored: i64 = batches.iter().map(|l| field(l, "count")).sum();
            assert_eq!(stored, records, "partition {}", partition.partition);
            if idempotent {
                assert_eq!(next_sequence, records, "one sequence number per record");
            }
        }
        let ids: Vec<i64> = producer_ids.into_iter().collect();
        if idempotent {
            assert!(ids.len() == 1 && ids[0] >= 0, "producer ids {ids:?}");
        } else {
            assert_eq!(ids, [-1], "enable.idempotence=false");
        }
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_harms_no_other_record() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "bad", 2);
    let mut c = config(&cluster);
    c.set("max.block.ms", "1500").unwrap();
    c.set("max.request.size", "10000").unwrap();
    // A batch may hold more than max.request.size, and stays open until the flush: a record too
    // large for a request must still be refused when it would fit the open batch of its partition.
    c.set("batch.size", "100000").unwrap();
    c.set("linger.ms", "60000").unwrap();
    let producer = Producer::new(c).await.unwrap();
    let good = producer
        .send(ProducerRecord::new(&t).key("a").value("before"))
        .await
        .unwrap();

    let missing = Cluster::random_topic("missing");
    let e = producer
        .send(ProducerRecord::new(&missing).key("a").value("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownTopic { .. }) && e.to_string().contains(&missing),
        "{e}"
    );

    let e = producer
        .send(ProducerRecord::new(&t).key("a").value(vec![0u8; 20000]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RecordTooLarge {
                limit_name: "max.request.size",
                ..
            }
        ),
        "{e}"
    );

    let e = producer
        .send(ProducerRecord::new(&t).key("a").value("x").partition(9))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidPartition {
                partition: 9,
                partition_count: 2,
                ..
            }
        ),
        "{e}"
    );

    let e = producer
        .send(ProducerRecord::new("bad topic!").key("a").value("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bad topic!"), "{e}");

    let good2 = producer
        .send(ProducerRecord::new(&t).key("a").value("after"))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    assert_eq!(good.await.unwrap().offset, Some(0));
    assert_eq!(good2.await.unwrap().offset, Some(1));

    producer.close(Duration::from_secs(10)).await.unwrap();
    let e = producer
        .send(ProducerRecord::new(&t).key("a").value("late"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
    assert_eq!(cluster.read_topic(&t).len(), 2);
}

struct EverythingToOne;

impl Partitioner for EverythingToOne {
    fn partition(&self, _: &str, key: Option<&[u8]>, _: Option<&[u8]>, _: u32) -> Option<u32> {
        key.map(|_| 1)
    }
}

#[tokio::test]
async fn custom_partitioner_and_sticky_keyless_records() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "custom", 3);
    let producer = Producer::with_partitioner(config(&cluster), Some(Arc::new(EverythingToOne)))
        .await
        .unwrap();
    let mut keyed = Vec::new();
    let mut keyless = Vec::new();
    for i in 0..20 {
        keyed.push(
            producer
                .send(ProducerRecord::new(&t).key(format!("{i}")).value("v"))
                .await
                .unwrap(),
        );
        keyless.push(
            producer
                .send(ProducerRecord::<&[u8], _>::new(&t).value("v"))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for f in keyed {
        assert_eq!(f.await.unwrap().partition, 1);
    }
    // 20 small keyless records stay on one sticky partition (far below batch.size).
    let partitions: std::collections::BTreeSet<i32> =
        futures_partitions(keyless).await.into_iter().collect();
    assert_eq!(partitions.len(), 1, "{partitions:?}");
}

async fn futures_partitions(futures: Vec<kafka_producer::DeliveryFuture>) -> Vec<i32> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await.unwrap().partition);
    }
    out
}

#[test]
fn blocking_producer_for_synchronous_code() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "blocking", 3);
    let producer: BlockingProducer<str, serde_json::Value> =
        BlockingProducer::new(config(&cluster), StringSerializer, JsonSerializer).unwrap();
    let value = serde_json::json!({"temp": 10});
    let d = producer
        .send(ProducerRecord::new(&t).key("seoul").value(&value))
        .unwrap();
    producer.flush().unwrap();
    let md = d.wait().unwrap();
    assert_eq!(md.partition as u32, partition_for_key(b"seoul", 3));
    // Dropping without close still delivers what was queued.
    let d2 = producer
        .send(ProducerRecord::new(&t).key("seoul").value(&value))
        .unwrap();
    drop(producer);
    assert_eq!(d2.future_offset(), Some(1));
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].value_str(), Some(r#"{"temp":10}"#));
}

trait Resolved {
    fn future_offset(self) -> Option<i64>;
}

impl Resolved for kafka_producer::BlockingDelivery {
    fn future_offset(self) -> Option<i64> {
        self.wait().unwrap().offset
    }
}

#[tokio::test]
async fn a_batch_too_large_for_the_topic_is_split_and_resent_in_order() {
    let Some(cluster) = cluster() else { return };
    let t = Cluster::random_topic("split");
    cluster.create_topic(
        &t,
        1,
        cluster.replication_factor(),
        &[("max.message.bytes", "1500")],
    );
    let mut c = config(&cluster);
    c.set("linger.ms", "200").unwrap();
    let producer = Producer::new(c).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..60 {
        let value = format!("{i:03}{}", "x".repeat(97));
        futures.push(
            producer
                .send(ProducerRecord::new(&t).key("k").value(value))
                .await
                .unwrap(),
        );
    }
    // One record alone larger than the topic allows (but under max.request.size) fails clearly.
    let huge = producer
        .send(ProducerRecord::new(&t).key("k").value("y".repeat(4000)))
        .await
        .unwrap();
    producer.flush().await.ok();
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(f.await.unwrap().offset.unwrap());
    }
    let e = huge.await.unwrap_err();
    assert_eq!(e.code().map(|c| c.name()), Some("MESSAGE_TOO_LARGE"), "{e}");
    let read = cluster.read_topic(&t);
    assert_eq!(read.len(), 60);
    for (i, r) in read.iter().enumerate() {
        assert!(
            r.value_str().unwrap().starts_with(&format!("{i:03}")),
            "order"
        );
        assert_eq!(r.offset, offsets[i], "record {i} reported at its offset");
    }
}

/// On a current-thread runtime the sender shares the thread with the caller: a loop of sends
/// that never waits must still let it run (as a loop over a tokio channel would), or nothing
/// leaves the buffer until `buffer.memory` is full, whatever `linger.ms` says.
#[tokio::test(flavor = "current_thread")]
async fn a_send_loop_that_never_waits_still_lets_the_sender_run() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "busy-loop", 3);
    let mut c = config(&cluster);
    c.set("linger.ms", "0").unwrap();
    let producer = Producer::new(c).await.unwrap();
    let record = || ProducerRecord::<&[u8], &[u8]>::new(&t).value(b"v");
    let mut first = std::pin::pin!(producer.send(record()).await.unwrap());
    // With the default 32 MiB of buffer.memory, sends only start to wait for memory after well
    // over a million of these records.
    const LIMIT: usize = 500_000;
    let mut sent = 1;
    let acknowledged = loop {
        let polled = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(first.as_mut(), cx))
        })
        .await;
        if let std::task::Poll::Ready(result) = polled {
            break result;
        }
        assert!(
            sent < LIMIT,
            "the first record was still not acknowledged after {LIMIT} sends: the sender never ran"
        );
        drop(producer.send(record()).await.unwrap());
        sent += 1;
    };
    assert_eq!(acknowledged.unwrap().offset, Some(0));
    producer.close(Duration::from_secs(30)).await.unwrap();
    assert_eq!(cluster.read_topic(&t).len(), sent);
}
