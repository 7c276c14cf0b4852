//! Brokers older than today's, as the fake broker stands for them by advertising fewer versions
//! (FakeConfig::max_versions): each request goes at the highest version both sides speak, what
//! an old broker lacks fails clearly, and a broker too old for this client is refused. The real
//! 2.8 and 3.9 brokers run the seed's integration tests in scripts/test; no real broker older
//! than those is at hand here. No cluster needed.

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_producer::{
    ConsumerGroupMetadata, Error, OffsetAndMetadata, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_testkit::{FakeBroker, FakeConfig};

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, what)
        .await
        .unwrap_or_else(|_| panic!("no outcome within {PATIENCE:?}"))
}

/// A broker that speaks no version above `caps`, with topic `t` of two partitions.
async fn old_broker(caps: &[(ApiKey, i16)]) -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 2)],
        max_versions: caps.to_vec(),
        ..FakeConfig::default()
    })
    .await
}

fn config(broker: &FakeBroker, settings: &[(&str, &str)]) -> ProducerConfig {
    let mut c = ProducerConfig::new(&broker.addr());
    for (k, v) in [
        ("linger.ms", "0"),
        ("request.timeout.ms", "2000"),
        ("delivery.timeout.ms", "5000"),
    ]
    .iter()
    .chain(settings)
    {
        c.set(k, v).unwrap();
    }
    c
}

/// Kafka 0.11's versions: the oldest broker this client takes.
const KAFKA_0_11: [(ApiKey, i16); 9] = [
    (ApiKey::ApiVersions, 1),
    (ApiKey::Metadata, 4),
    (ApiKey::Produce, 3),
    (ApiKey::InitProducerId, 0),
    (ApiKey::FindCoordinator, 1),
    (ApiKey::AddPartitionsToTxn, 0),
    (ApiKey::AddOffsetsToTxn, 0),
    (ApiKey::EndTxn, 0),
    (ApiKey::TxnOffsetCommit, 0),
];

#[tokio::test]
async fn a_kafka_0_11_broker_takes_idempotent_compressed_keyed_records() {
    let broker = old_broker(&KAFKA_0_11).await;
    let p = Producer::new(config(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "lz4"),
        ],
    ))
    .await
    .expect("a 0.11 broker is supported");
    let mut futures = Vec::new();
    for i in 0..20 {
        let (key, value) = (format!("k{}", i % 4), format!("v{i}"));
        let record = ProducerRecord::new("t")
            .key(key.as_str())
            .value(value.as_str())
            .header("h", Some(b"x"));
        futures.push(p.send(record).await.unwrap());
    }
    for f in futures {
        within(f).await.expect("acknowledged by the 0.11 broker");
    }
    p.close(PATIENCE).await.unwrap();
    let stored: usize = (0..2).map(|part| broker.records("t", part).len()).sum();
    assert_eq!(stored, 20, "every record stored once");
    let record = &broker.records("t", 0)[0];
    assert!(record.producer_id >= 0, "written idempotently");
    assert_eq!(record.headers.len(), 1, "headers kept (record batch v2)");
    // The fake broker refuses any version above its caps: the producer asked within them.
    assert!(broker.request_count(ApiKey::Produce) > 0);
}

#[tokio::test]
async fn a_transaction_commits_on_kafka_0_11_versions() {
    let broker = old_broker(&KAFKA_0_11).await;
    let p = Producer::new(config(&broker, &[]).with_transactional_id("old-broker-txn"))
        .await
        .unwrap();
    within(p.init_transactions(PATIENCE)).await.unwrap();
    p.begin_transaction().unwrap();
    let mut futures = Vec::new();
    for i in 0..4 {
        let value = format!("v{i}");
        let record = ProducerRecord::<&str, &str>::new("t")
            .value(value.as_str())
            .partition(i % 2);
        futures.push(p.send(record).await.unwrap());
    }
    // The group's generation and member go only from TxnOffsetCommit v3 (Kafka 2.5, KIP-447).
    let group = ConsumerGroupMetadata::new("old-group").with_member(7, "member-1");
    let offsets = vec![(TopicPartition::new("in", 0), OffsetAndMetadata::new(42))];
    within(p.send_offsets_to_transaction(offsets, &group, PATIENCE))
        .await
        .unwrap();
    within(p.commit_transaction(PATIENCE)).await.unwrap();
    for f in futures {
        f.await.expect("acknowledged");
    }
    p.close(PATIENCE).await.unwrap();
    let versions: BTreeSet<(String, i16)> = broker
        .transaction_log()
        .iter()
        .map(|r| (format!("{:?}", r.api), r.version))
        .collect();
    for (api, version) in [
        ("FindCoordinator", 1),
        ("InitProducerId", 0),
        ("AddPartitionsToTxn", 0),
        ("AddOffsetsToTxn", 0),
        ("TxnOffsetCommit", 0),
        ("EndTxn", 0),
    ] {
        assert!(
            versions.contains(&(api.to_string(), version)),
            "{api} v{version} in {versions:?}"
        );
    }
    let stored: usize = (0..2).map(|part| broker.records("t", part).len()).sum();
    assert_eq!(stored, 4);
    let committed = broker.committed_offsets("old-group");
    assert_eq!(committed.get(&("in".to_string(), 0)), Some(&42));
}

#[tokio::test]
async fn a_broker_older_than_0_11_is_refused_clearly() {
    // Kafka 0.10.2: ApiVersions, but Produce only up to v2 (message sets, no record batch v2).
    let broker = old_broker(&[(ApiKey::Produce, 2), (ApiKey::Metadata, 2)]).await;
    let e = within(Producer::new(config(&broker, &[])))
        .await
        .map(drop)
        .expect_err("a 0.10 broker is refused");
    assert!(matches!(e, Error::UnsupportedVersion { .. }), "{e:?}");
    let text = e.to_string();
    for says in [
        "too old for this client",
        "Kafka 0.11 or later",
        "Produce v3+",
        "only up to v2",
        &broker.addr(),
    ] {
        assert!(text.contains(says), "`{says}` in: {text}");
    }
    assert_eq!(
        broker.request_count(ApiKey::Metadata),
        0,
        "refused at the handshake"
    );
}

#[tokio::test]
async fn zstd_on_a_broker_older_than_2_1_fails_clearly_and_harms_no_other_producer() {
    // Kafka 2.0: Produce up to v6; zstd came with v7.
    let broker = old_broker(&[(ApiKey::Produce, 6), (ApiKey::Metadata, 6)]).await;
    let zstd = Producer::new(config(&broker, &[("compression.type", "zstd")]))
        .await
        .unwrap();
    let first = zstd
        .send(ProducerRecord::<&str, &str>::new("t").value("a"))
        .await
        .unwrap();
    let second = zstd
        .send(ProducerRecord::<&str, &str>::new("t").value("b"))
        .await
        .unwrap();
    for outcome in [within(first).await, within(second).await] {
        let e = outcome.expect_err("zstd cannot go to a 2.0 broker");
        assert!(matches!(e, Error::UnsupportedVersion { .. }), "{e:?}");
        assert!(!e.is_retriable());
        let text = e.to_string();
        for says in [
            "zstd",
            "Kafka 2.1 or later",
            "Produce v7+",
            "only up to v6",
            &broker.addr(),
        ] {
            assert!(text.contains(says), "`{says}` in: {text}");
        }
    }
    assert_eq!(
        broker.request_count(ApiKey::Produce),
        0,
        "no zstd batch was sent"
    );
    // The producer stays usable (flush reports the failed batches) and another codec works.
    zstd.close(PATIENCE).await.ok();
    let gzip = Producer::new(config(&broker, &[("compression.type", "gzip")]))
        .await
        .unwrap();
    let f = gzip
        .send(ProducerRecord::<&str, &str>::new("t").value("c"))
        .await
        .unwrap();
    within(f).await.expect("gzip goes to a 2.0 broker");
    gzip.close(PATIENCE).await.unwrap();
}
