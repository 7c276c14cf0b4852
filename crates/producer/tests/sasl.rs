//! SASL against the testkit's fake broker, which requires PLAIN and ends each session after a
//! set lifetime, as a Kafka listener with `connections.max.reauth.ms` does (KIP-368). No cluster
//! needed; the real mechanisms against Kafka are in `secure.rs`.

use std::time::{Duration, Instant};

use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_testkit::{FakeBroker, FakeConfig};

/// A stream of records over sessions of 1.5 s for 5 s: the producer must authenticate afresh
/// before each session ends, so that no request ever reaches the broker on an ended session
/// (which would close the connection under the requests in flight), and lose or repeat nothing.
#[tokio::test]
async fn sessions_are_renewed_before_they_end_and_nothing_is_lost() {
    let session = Duration::from_millis(1500);
    let broker = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 1)],
        sasl_session: Some(session),
        ..FakeConfig::default()
    })
    .await;
    let mut config = ProducerConfig::new(&broker.addr());
    for (k, v) in [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
        ("linger.ms", "0"),
    ] {
        config.set(k, v).unwrap();
    }
    let producer = Producer::new(config).await.unwrap();
    let started = Instant::now();
    let mut deliveries = Vec::new();
    while started.elapsed() < session * 10 / 3 {
        let value = deliveries.len().to_string();
        let record = ProducerRecord::new("t").key("k").value(value).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("flushed in time")
        .unwrap();
    let sent = deliveries.len();
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, Some(i as i64));
    }
    let stored: Vec<String> = broker
        .records("t", 0)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    let expected: Vec<String> = (0..sent).map(|i| i.to_string()).collect();
    assert_eq!(stored, expected, "every record once, in order");
    assert_eq!(
        broker.expired_session_requests(),
        0,
        "a request went out on an ended session"
    );
    let authentications = broker.request_count(ApiKey::SaslAuthenticate);
    assert!(
        authentications >= 3,
        "{authentications} authentications in 5 s of 1.5 s sessions"
    );
    producer.close(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test]
async fn a_mechanism_the_broker_does_not_enable_is_named() {
    let broker = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 1)],
        sasl_session: Some(Duration::from_secs(60)),
        ..FakeConfig::default()
    })
    .await;
    let mut config = ProducerConfig::new(&broker.addr());
    for (k, v) in [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ] {
        config.set(k, v).unwrap();
    }
    let e = tokio::time::timeout(Duration::from_secs(10), Producer::new(config))
        .await
        .expect("refused in time")
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not enable SCRAM-SHA-256") && e.contains("it enables: PLAIN"),
        "{e}"
    );
    assert!(!e.contains("alice-secret"), "{e}");
}
