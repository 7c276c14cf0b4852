//! What `send` knows of a topic, against the testkit's fake broker (no cluster needed): each
//! thread keeps the topic it last sent to (`with_topic` in producer/enqueue.rs), and that must never
//! send a record through another producer or with partitions the topic no longer has.

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_producer::{partition_for_key, Error, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{FakeBroker, FakeConfig};

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("resolved within the test's patience")
}

async fn broker(partitions: u32) -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), partitions)],
        ..FakeConfig::default()
    })
    .await
}

fn values(broker: &FakeBroker, partitions: i32) -> Vec<String> {
    let mut values: Vec<String> = (0..partitions)
        .flat_map(|p| broker.records("t", p))
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    values.sort();
    values
}

/// Two producers, one topic name, one thread (the test's runtime has one): sends alternate
/// between them, keyless (the sticky partitioner), keyed and to a given partition. Each broker
/// gets exactly its own producer's records.
#[tokio::test]
async fn two_producers_on_one_thread_keep_their_records_apart() {
    let (a, b) = (broker(3).await, broker(3).await);
    let mut producers = Vec::new();
    for broker in [&a, &b] {
        let mut c = ProducerConfig::new(&broker.addr());
        c.set("linger.ms", "1").unwrap();
        producers.push(within(Producer::new(c)).await.unwrap());
    }
    let mut futures = Vec::new();
    for i in 0..300 {
        let (name, p) = [("a", &producers[0]), ("b", &producers[1])][i % 2];
        let value = format!("{name}{i:03}");
        let record = ProducerRecord::<&str, &str>::new("t").value(&value);
        let record = match i % 3 {
            0 => record,
            1 => record.key("k"),
            _ => record.partition((i % 3) as i32),
        };
        futures.push(p.send(record).await.unwrap());
    }
    for p in &producers {
        within(p.flush()).await.unwrap();
    }
    for f in futures {
        within(f).await.unwrap();
    }
    let expected = |name: &str| -> Vec<String> {
        (0..300)
            .map(|i| format!("{}{i:03}", ["a", "b"][i % 2]))
            .filter(|v| v.starts_with(name))
            .collect()
    };
    assert_eq!(values(&a, 3), expected("a"));
    assert_eq!(values(&b, 3), expected("b"));
    for p in &producers {
        within(p.close(PATIENCE)).await.unwrap();
    }
}

/// A topic grows from 1 to 3 partitions after the producer has been sending to it: once the
/// producer's metadata shows the new partitions (`metadata.max.age.ms` here is short), records
/// go to them, from the same thread that sent before.
#[tokio::test]
async fn partitions_added_to_a_topic_are_used_once_metadata_shows_them() {
    let b = broker(1).await;
    let mut c = ProducerConfig::new(&b.addr());
    c.set("linger.ms", "0").unwrap();
    c.set("metadata.max.age.ms", "100").unwrap();
    let p = within(Producer::new(c)).await.unwrap();
    let to = |partition: i32| {
        ProducerRecord::<&str, &str>::new("t")
            .value("v")
            .partition(partition)
    };
    within(p.send(to(0)).await.unwrap()).await.unwrap();
    match p.send(to(2)).await {
        Err(Error::InvalidPartition {
            partition_count: 1, ..
        }) => {}
        other => panic!("a topic of 1 partition has no partition 2: {other:?}"),
    }
    b.create_topic("t", 3);
    let deadline = Instant::now() + PATIENCE;
    let delivery = loop {
        match p.send(to(2)).await {
            Ok(delivery) => break delivery,
            Err(Error::InvalidPartition { .. }) => {
                assert!(Instant::now() < deadline, "partition 2 never became known");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("sending to the grown topic: {e}"),
        }
    };
    assert_eq!(within(delivery).await.unwrap().partition, 2);
    // Keyed records are hashed over three partitions now, as the Java client would.
    for i in 0..50 {
        let key = format!("k{i}");
        let f = p
            .send(ProducerRecord::<&str, &str>::new("t").key(&key).value("w"))
            .await
            .unwrap();
        assert_eq!(f.partition() as u32, partition_for_key(key.as_bytes(), 3));
    }
    within(p.flush()).await.unwrap();
    assert!((0..3).all(|partition| !b.records("t", partition).is_empty()));
    within(p.close(PATIENCE)).await.unwrap();
}
