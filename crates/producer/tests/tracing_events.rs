//! The producer's `tracing` events, as an application's subscriber sees them: connections,
//! retries, splits, failures and expiries, each with the topic, partition and broker it
//! concerns. Against the testkit's fake broker, which makes those happen on demand. No cluster
//! needed.
//!
//! Each test runs on a current-thread runtime, so the producer's tasks run on the thread where
//! the recording subscriber is the default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_producer::{ErrorCode, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{FakeBroker, FakeConfig, Rule};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const PATIENCE: Duration = Duration::from_secs(20);

/// One event: its level, message and fields, as text.
#[derive(Debug, Clone)]
struct Recorded {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
}

/// A subscriber that keeps every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    fn events(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose message starts with `message`.
    fn find(&self, message: &str) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.message.starts_with(message))
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("kafka_producer")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        self.0.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            message,
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

async fn broker() -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 1)],
        ..FakeConfig::default()
    })
    .await
}

fn config(broker: &FakeBroker) -> ProducerConfig {
    let mut c = ProducerConfig::new(&broker.addr());
    for (k, v) in [
        ("linger.ms", "0"),
        ("request.timeout.ms", "1000"),
        ("delivery.timeout.ms", "1500"),
        ("retry.backoff.ms", "10"),
        ("retry.backoff.max.ms", "50"),
    ] {
        c.set(k, v).unwrap();
    }
    c
}

fn record(value: &str) -> ProducerRecord<'_, &'static str, &str> {
    ProducerRecord::new("t").value(value).partition(0)
}

/// Asserts that `event` names topic `t`, partition 0 and, when `broker` is given, that broker.
fn names_the_batch(event: &Recorded, broker: Option<&str>) {
    assert_eq!(
        event.fields.get("topic").map(String::as_str),
        Some("t"),
        "{event:?}"
    );
    assert_eq!(
        event.fields.get("partition").map(String::as_str),
        Some("0"),
        "{event:?}"
    );
    if let Some(broker) = broker {
        assert_eq!(
            event.fields.get("broker").map(String::as_str),
            Some(broker),
            "{event:?}"
        );
    }
}

/// A recorder as this thread's subscriber, a broker that answers the first Produce with `code`,
/// and a producer on it that has sent one record.
struct FirstAnswer {
    recorder: Recorder,
    _default: tracing::subscriber::DefaultGuard,
    broker: FakeBroker,
    producer: Producer,
    outcome: kafka_producer::Result<kafka_producer::RecordMetadata>,
}

async fn first_answer(code: ErrorCode) -> FirstAnswer {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let broker = broker().await;
    broker.script(Rule::on_produce().nth(1).respond_error(code));
    let producer = Producer::new(config(&broker)).await.unwrap();
    let d = producer.send(record("first")).await.unwrap();
    let outcome = tokio::time::timeout(PATIENCE, d).await.unwrap();
    FirstAnswer {
        recorder,
        _default,
        broker,
        producer,
        outcome,
    }
}

#[tokio::test]
async fn a_retry_names_its_batch_broker_attempt_and_error() {
    let FirstAnswer {
        recorder,
        _default,
        broker: b,
        producer: p,
        outcome,
    } = first_answer(ErrorCode::NOT_LEADER_OR_FOLLOWER).await;
    outcome.unwrap();
    let retries = recorder.find("retrying batch");
    assert_eq!(retries.len(), 1, "{:?}", recorder.events());
    let retry = &retries[0];
    assert_eq!(retry.level, Level::WARN);
    names_the_batch(retry, Some(&b.addr()));
    assert_eq!(retry.fields["attempt"], "1");
    assert_eq!(retry.fields["records"], "1");
    assert!(
        retry.fields["error"].contains("NOT_LEADER_OR_FOLLOWER"),
        "{retry:?}"
    );
    let connected = recorder.find("connected to broker");
    assert!(
        connected
            .iter()
            .any(|e| e.fields.get("broker") == Some(&b.addr())),
        "{:?}",
        recorder.events()
    );
    p.close(PATIENCE).await.unwrap();
}

#[tokio::test]
async fn a_failure_and_a_split_say_which_batch_and_broker() {
    let FirstAnswer {
        recorder,
        _default,
        broker: b,
        producer: _,
        outcome,
    } = first_answer(ErrorCode::TOPIC_AUTHORIZATION_FAILED).await;
    outcome.unwrap_err();
    let failed = recorder.find("batch failed");
    assert_eq!(failed.len(), 1, "{:?}", recorder.events());
    names_the_batch(&failed[0], Some(&b.addr()));
    assert!(failed[0].fields["error"].contains("TOPIC_AUTHORIZATION_FAILED"));

    // Two records in one batch, refused as too large once: split in two.
    b.clear_script();
    b.script(
        Rule::on_produce()
            .nth(1)
            .respond_error(ErrorCode::MESSAGE_TOO_LARGE),
    );
    let mut c = config(&b);
    c.set("linger.ms", "50").unwrap();
    let p = Producer::new(c).await.unwrap();
    let first = p.send(record("x")).await.unwrap();
    let second = p.send(record("y")).await.unwrap();
    for d in [first, second] {
        tokio::time::timeout(PATIENCE, d).await.unwrap().unwrap();
    }
    let splits = recorder.find("batch too large for the broker");
    assert_eq!(splits.len(), 1, "{:?}", recorder.events());
    names_the_batch(&splits[0], Some(&b.addr()));
    assert_eq!(splits[0].fields["records"], "2");
}

#[tokio::test]
async fn an_expiry_names_its_batch() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let b = broker().await;
    b.script(Rule::on_produce().respond_error(ErrorCode::NOT_ENOUGH_REPLICAS));
    let p = Producer::new(config(&b)).await.unwrap();
    let d = p.send(record("late")).await.unwrap();
    let e = tokio::time::timeout(PATIENCE, d)
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
    let expired = recorder.find("batch expired");
    assert_eq!(expired.len(), 1, "{:?}", recorder.events());
    names_the_batch(&expired[0], None);
    assert!(expired[0].fields["error"].contains("NOT_ENOUGH_REPLICAS"));
}

#[tokio::test]
async fn a_partition_count_that_grows_is_an_event() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let b = broker().await;
    let mut c = config(&b);
    c.set("metadata.max.age.ms", "100").unwrap();
    let p = Producer::new(c).await.unwrap();
    let d = p.send(record("before")).await.unwrap();
    tokio::time::timeout(PATIENCE, d).await.unwrap().unwrap();
    b.create_topic("t", 3);
    let grown = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(e) = recorder.find("partition count changed").pop() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the refresh saw 3 partitions");
    assert_eq!(grown.level, Level::INFO);
    assert_eq!(grown.fields["topic"], "t");
    assert_eq!(grown.fields["from"], "1");
    assert_eq!(grown.fields["to"], "3");
    p.close(PATIENCE).await.unwrap();
}
