//! The producer's `tracing` events and spans, as an application's subscriber sees them:
//! connections, retries, splits, failures, expiries and epoch bumps, each with the topic,
//! partition and broker it concerns, inside the spans of connecting, refreshing metadata and
//! transactional calls. Against the testkit's fake broker, which makes those happen on demand.
//! No cluster needed.
//!
//! Each test runs on a current-thread runtime, so the producer's tasks run on the thread where
//! the recording subscriber is the default.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use kafka_producer::{ErrorCode, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{FakeBroker, FakeConfig, Rule};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const PATIENCE: Duration = Duration::from_secs(20);

/// One span: its name and fields (those it was created with and those recorded later).
#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

/// One event: its level, message and fields, as text, and the spans it happened in.
#[derive(Debug, Clone)]
struct Recorded {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
    /// The spans entered when it happened, outermost first, as they were then.
    spans: Vec<SpanRecord>,
}

impl Recorded {
    /// The innermost span named `name` this event happened in.
    fn span(&self, name: &str) -> Option<&SpanRecord> {
        self.spans.iter().rev().find(|s| s.name == name)
    }
}

/// A subscriber that keeps every event and every span.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recording>>);

#[derive(Default)]
struct Recording {
    events: Vec<Recorded>,
    /// Every span created, at index id - 1.
    spans: Vec<SpanRecord>,
    /// Per thread, the ids of the spans entered, innermost last.
    entered: HashMap<ThreadId, Vec<u64>>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn events(&self) -> Vec<Recorded> {
        self.lock().events.clone()
    }

    /// The events whose message starts with `message`.
    fn find(&self, message: &str) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.message.starts_with(message))
            .collect()
    }

    /// The spans named `name`, in the order they were created.
    fn spans(&self, name: &str) -> Vec<SpanRecord> {
        self.lock()
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
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

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let mut recording = self.lock();
        recording.spans.push(SpanRecord {
            name: attributes.metadata().name(),
            fields,
        });
        Id::from_u64(recording.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut recording = self.lock();
        let index = span.into_u64() as usize - 1;
        values.record(&mut Fields(&mut recording.spans[index].fields));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let mut recording = self.lock();
        let entered = recording
            .entered
            .get(&std::thread::current().id())
            .cloned()
            .unwrap_or_default();
        let spans = entered
            .iter()
            .map(|&id| recording.spans[id as usize - 1].clone())
            .collect();
        recording.events.push(Recorded {
            level: *event.metadata().level(),
            message,
            fields,
            spans,
        });
    }

    fn enter(&self, span: &Id) {
        self.lock()
            .entered
            .entry(std::thread::current().id())
            .or_default()
            .push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut recording = self.lock();
        let stack = recording
            .entered
            .entry(std::thread::current().id())
            .or_default();
        if let Some(at) = stack.iter().rposition(|&id| id == span.into_u64()) {
            stack.remove(at);
        }
    }
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
    // Inside the refresh that brought it, which names the broker it asked.
    let refresh = grown
        .span("metadata refresh")
        .unwrap_or_else(|| panic!("outside a metadata refresh span: {grown:?}"));
    assert_eq!(refresh.fields["broker"], b.addr());
    assert_eq!(refresh.fields["topics"], "1");
    p.close(PATIENCE).await.unwrap();
}

/// Every connection opens in a `connect` span with the broker's address and, once the metadata
/// named it, its node id; the connection's events, the SASL login among them, are inside it.
/// The first connection, to a bootstrap server, is made for the first metadata refresh, and so
/// inside that span too.
#[tokio::test]
async fn a_connection_and_its_login_happen_in_a_connect_span() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let b = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 1)],
        sasl_session: Some(Duration::from_secs(3600)),
        ..FakeConfig::default()
    })
    .await;
    let mut c = config(&b);
    for (k, v) in [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ] {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c).await.unwrap();
    let d = p.send(record("x")).await.unwrap();
    tokio::time::timeout(PATIENCE, d).await.unwrap().unwrap();

    let connected = recorder.find("connected to broker");
    let logins = recorder.find("SASL authenticated");
    assert_eq!(connected.len(), 2, "bootstrap, then node 1: {connected:?}");
    assert_eq!(logins.len(), 2, "one per connection: {logins:?}");
    let mut nodes = Vec::new();
    for event in connected.iter().chain(&logins) {
        let span = event
            .span("connect")
            .unwrap_or_else(|| panic!("outside a connect span: {event:?}"));
        assert_eq!(span.fields["broker"], b.addr(), "{event:?}");
        nodes.push(span.fields.get("node").cloned());
    }
    let one = Some("1".to_string());
    assert_eq!(
        nodes,
        [None, one.clone(), None, one],
        "{connected:?} {logins:?}"
    );
    let bootstrap = &connected[0];
    assert!(
        bootstrap.span("metadata refresh").is_some(),
        "the first metadata refresh opened the bootstrap connection: {bootstrap:?}"
    );
    assert_eq!(recorder.spans("connect").len(), 2);
    p.close(PATIENCE).await.unwrap();
}

/// A sequence gap the broker reports for the batch it expects next moves the idempotent
/// producer to its next epoch: one info event with the producer id, both epochs and the batch
/// that showed the gap. The broker then gets the batch again under the new epoch.
#[tokio::test]
async fn an_epoch_bump_is_an_info_event_naming_the_epochs_and_the_batch() {
    let FirstAnswer {
        recorder,
        _default,
        broker: b,
        producer: p,
        outcome,
    } = first_answer(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER).await;
    outcome.unwrap();
    let bumps = recorder.find("producer epoch bumped");
    assert_eq!(bumps.len(), 1, "{:?}", recorder.events());
    let bump = &bumps[0];
    assert_eq!(bump.level, Level::INFO);
    names_the_batch(bump, None);
    assert!(
        bump.fields["error"].contains("OUT_OF_ORDER_SEQUENCE_NUMBER"),
        "{bump:?}"
    );
    // What the broker saw: the batch under the old epoch, refused, then under the new one.
    let attempts = b.attempts("t", 0);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let (before, after) = (&attempts[0], &attempts[1]);
    assert_eq!(before.error, ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(after.error, ErrorCode::NONE);
    assert_eq!(after.producer_id, before.producer_id);
    assert_eq!(after.producer_epoch, before.producer_epoch + 1);
    assert_eq!(after.base_sequence, 0);
    assert_eq!(bump.fields["producer_id"], before.producer_id.to_string());
    assert_eq!(bump.fields["from_epoch"], before.producer_epoch.to_string());
    assert_eq!(bump.fields["to_epoch"], after.producer_epoch.to_string());
    p.close(PATIENCE).await.unwrap();
}

/// Each transactional call runs in a `transaction` span with its operation and the
/// `transactional_id`, and what it does is logged inside it: finding the coordinator for
/// `init_transactions`, ending the transaction for `commit_transaction`. Adding a partition
/// (transaction version 1) is background work of its own, in a span of its own.
#[tokio::test]
async fn a_transactional_call_runs_in_a_span_with_the_transactional_id() {
    const ID: &str = "txn-traced";
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let b = broker().await;
    let p = Producer::new(config(&b).with_transactional_id(ID))
        .await
        .unwrap();
    p.init_transactions(PATIENCE).await.unwrap();
    p.begin_transaction().unwrap();
    let d = p.send(record("in")).await.unwrap();
    p.commit_transaction(PATIENCE).await.unwrap();
    tokio::time::timeout(PATIENCE, d).await.unwrap().unwrap();

    let calls = recorder.spans("transaction");
    let mut operations: Vec<&str> = calls
        .iter()
        .map(|s| s.fields["operation"].as_str())
        .collect();
    operations.sort_unstable();
    assert_eq!(
        operations,
        [
            "add_partitions",
            "begin_transaction",
            "commit_transaction",
            "init_transactions"
        ],
        "{calls:?}"
    );
    for call in &calls {
        assert_eq!(call.fields["transactional_id"], ID, "{call:?}");
    }
    for (message, operation) in [
        ("coordinator found", "init_transactions"),
        ("transactions initialized", "init_transactions"),
        ("transaction begun", "begin_transaction"),
        ("transaction ended", "commit_transaction"),
    ] {
        let events = recorder.find(message);
        assert_eq!(events.len(), 1, "{message}: {:?}", recorder.events());
        let span = events[0]
            .span("transaction")
            .unwrap_or_else(|| panic!("outside a transaction span: {:?}", events[0]));
        assert_eq!(span.fields["operation"], operation, "{message}");
        assert_eq!(span.fields["transactional_id"], ID, "{message}");
    }
    p.close(PATIENCE).await.unwrap();
}
