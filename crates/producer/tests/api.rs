//! The three producer handles offer the same operations: each is called here on each handle,
//! against the testkit's fake broker (no cluster needed).

use std::future::Future;
use std::time::Duration;

use kafka_producer::{
    BlockingProducer, ClusterDescription, DeliveryFuture, Error, ErrorCode, Metrics, NotQueued,
    PartitionInfo, Producer, ProducerConfig, ProducerRecord, StringSerializer, TrySendError,
    TypedProducer,
};
use kafka_producer_testkit::{FakeBroker, FakeConfig};

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("resolved within the test's patience")
}

async fn broker() -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 3)],
        ..FakeConfig::default()
    })
    .await
}

/// Records linger until `flush`, so `pending_records` counts them whatever the runtime does.
fn config(broker: &FakeBroker) -> ProducerConfig {
    ProducerConfig::new(&broker.addr())
        .with_client_id("api-test")
        .with_linger(PATIENCE)
}

/// What `partitions` must say of the fake broker's topic: three partitions, each with a leader.
fn check_partitions(partitions: &[PartitionInfo]) {
    let ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
    assert_eq!(ids, [0, 1, 2]);
    assert!(
        partitions.iter().all(|p| p.leader.is_some()),
        "{partitions:?}"
    );
}

/// What `describe_cluster(Some(&["t", "missing"]))` must say of the fake broker: node 1 at its
/// address, `t` with three partitions led by it, and `missing` unknown (not created).
fn check_description(d: &ClusterDescription, broker: &FakeBroker) {
    let brokers: Vec<String> = d
        .brokers
        .iter()
        .map(|b| format!("{}@{}:{}", b.node, b.host, b.port))
        .collect();
    assert_eq!(brokers, [format!("1@{}", broker.addr())]);
    let names: Vec<(&str, ErrorCode)> = d.topics.iter().map(|t| (&*t.name, t.error)).collect();
    assert_eq!(
        names,
        [
            ("missing", ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
            ("t", ErrorCode::NONE)
        ]
    );
    let leaders: Vec<Option<i32>> = d.topics[1].partitions.iter().map(|p| p.leader).collect();
    assert_eq!(leaders, [Some(1); 3]);
}

/// The metrics after the two records each test sends to `t` were acknowledged, and `errors`
/// sends that failed.
fn check_metrics(m: &Metrics, errors: f64) {
    assert_eq!(m.client_id(), "api-test");
    assert_eq!(m.producer("record-send-total"), Some(2.0), "{m}");
    assert_eq!(m.topic("t", "record-send-total"), Some(2.0), "{m}");
    assert_eq!(m.producer("record-error-total"), Some(errors), "{m}");
    assert!(m.node(1, "request-total").is_some_and(|n| n >= 2.0), "{m}");
}

/// A producer's `Debug` names its servers and client id and the records pending, and a
/// record's shows no contents.
fn check_debug(producer: &dyn std::fmt::Debug, broker: &FakeBroker) {
    let debug = format!("{producer:?}");
    for part in [&broker.addr(), "api-test", "pending_records: 0"] {
        assert!(debug.contains(part), "{part} not in {debug}");
    }
    let record = ProducerRecord::<&str, &str>::new("t").value("secret");
    assert!(!format!("{record:?}").contains("secret"), "{record:?}");
}

/// The error of a `try_send` that failed, checked to hand back the record it was given.
fn failure<R, T>(result: Result<T, TrySendError<R>>, same: impl Fn(&R) -> bool) -> Error {
    let Err(e) = result else { panic!("queued") };
    assert!(same(&e.record), "another record came back");
    match e.reason {
        NotQueued::Failed(error) => error,
        other => panic!("would wait: {other}"),
    }
}

/// Checks that a `try_send` of a record with the value "late" to a closed producer failed with
/// [`Error::Closed`] and handed the record back.
fn closed<T>(result: Result<T, TrySendError<ProducerRecord<'_, &str, &str>>>) {
    let late = failure(result, |r| r.value == Some("late"));
    assert!(matches!(late, Error::Closed { .. }), "{late}");
}

#[tokio::test]
async fn producer_offers_every_operation() {
    let b = broker().await;
    let p = within(Producer::new(config(&b))).await.unwrap();
    assert_eq!(within(p.partition_count("t")).await.unwrap(), 3);
    check_partitions(&within(p.partitions("t")).await.unwrap());

    let record = ProducerRecord::<&str, &str>::new("t").partition(1);
    let tried = p.try_send(record.clone().value("tried")).unwrap();
    let sent = within(p.send(record.clone().value("sent"))).await.unwrap();
    assert_eq!(p.pending_records(), 2);
    within(p.flush()).await.unwrap();
    assert_eq!(p.pending_records(), 0);
    check_debug(&p, &b);
    for f in [tried, sent] {
        assert_eq!(within(f).await.unwrap().partition, 1);
    }
    let topics = Some(&["t", "missing"][..]);
    check_description(&within(p.describe_cluster(topics)).await.unwrap(), &b);
    check_metrics(&p.metrics(), 0.0);

    within(p.close(PATIENCE)).await.unwrap();
    closed(p.try_send(record.clone().value("late")));
    assert!(within(p.send(record.value("late"))).await.is_err());
}

#[tokio::test]
async fn typed_producer_offers_every_operation() {
    let b = broker().await;
    let refuse_bad = |v: &str| match v {
        "bad" => Err("refused"),
        v => Ok(v.as_bytes().to_vec()),
    };
    let p: TypedProducer<str, str> =
        within(TypedProducer::new(config(&b), StringSerializer, refuse_bad))
            .await
            .unwrap();
    assert_eq!(within(p.partition_count("t")).await.unwrap(), 3);
    check_partitions(&within(p.partitions("t")).await.unwrap());

    let record = ProducerRecord::<&str, &str>::new("t").key("k");
    let tried: DeliveryFuture = p.try_send(record.clone().value("tried")).unwrap();
    let sent = within(p.send(record.clone().value("sent"))).await.unwrap();
    assert_eq!(p.pending_records(), 2);
    within(p.flush()).await.unwrap();
    assert_eq!(p.pending_records(), 0);
    check_debug(&p, &b);
    for f in [tried, sent] {
        within(f).await.unwrap();
    }
    // A serializer's error fails `try_send` and hands the record back.
    let refused = failure(p.try_send(record.clone().value("bad")), |r| {
        r.value == Some("bad")
    });
    assert!(matches!(refused, Error::Serialization { .. }), "{refused}");
    // That refusal is a record error, as in the Java client.
    check_metrics(&p.metrics(), 1.0);
    let topics = Some(&["t", "missing"][..]);
    check_description(&within(p.describe_cluster(topics)).await.unwrap(), &b);

    within(p.close(PATIENCE)).await.unwrap();
    closed(p.try_send(record.clone().value("late")));
    assert!(within(p.send(record.value("late"))).await.is_err());
}

/// Blocking calls, so a plain test: the fake broker runs on a runtime of its own.
#[test]
fn blocking_producer_offers_every_operation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let b = runtime.block_on(broker());
    let p: BlockingProducer<str, str> =
        BlockingProducer::new(config(&b), StringSerializer, StringSerializer).unwrap();
    assert_eq!(p.partition_count("t").unwrap(), 3);
    check_partitions(&p.partitions("t").unwrap());

    let record = ProducerRecord::<&str, &str>::new("t");
    let tried = p.try_send(record.clone().value("tried")).unwrap();
    let sent = p.send(record.clone().value("sent")).unwrap();
    assert_eq!(p.pending_records(), 2);
    p.flush().unwrap();
    // The count drops just after the outcomes are known, on the producer's own thread.
    let deadline = std::time::Instant::now() + PATIENCE;
    while p.pending_records() != 0 {
        assert!(std::time::Instant::now() < deadline, "records stay pending");
        std::thread::sleep(Duration::from_millis(1));
    }
    check_debug(&p, &b);
    for delivery in [tried, sent] {
        delivery.wait().unwrap();
    }
    check_metrics(&p.metrics(), 0.0);
    check_description(&p.describe_cluster(Some(&["t", "missing"])).unwrap(), &b);

    p.close(PATIENCE).unwrap();
    closed(p.try_send(record.clone().value("late")));
    assert!(p.send(record.value("late")).is_err());
    drop(p);
}

/// Every public type can be printed with `{:?}`, so users' structs holding them can derive Debug.
#[test]
fn every_public_type_is_debug() {
    fn debug<T: std::fmt::Debug + ?Sized>() {}
    debug::<Producer>();
    debug::<TypedProducer<str, [u8]>>();
    debug::<BlockingProducer<str, [u8]>>();
    debug::<kafka_producer::BlockingDelivery>();
    debug::<DeliveryFuture>();
    debug::<ProducerRecord<'_, &str, &[u8]>>();
    debug::<kafka_producer::RecordMetadata>();
    debug::<kafka_producer::Header>();
    debug::<PartitionInfo>();
    debug::<TrySendError<ProducerRecord<'_, &str, &[u8]>>>();
    debug::<NotQueued>();
    debug::<kafka_producer::WouldWait>();
    debug::<Error>();
    debug::<kafka_producer::ErrorCode>();
    debug::<ProducerConfig>();
    debug::<kafka_producer::Acks>();
    debug::<kafka_producer::CompressionType>();
    debug::<StringSerializer>();
    debug::<kafka_producer::BytesSerializer>();
}
