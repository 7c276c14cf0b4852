//! The producer's metrics against known traffic on the testkit's fake broker: records and bytes
//! sent per topic, failures, retries and splits the broker is scripted to cause, a full
//! `buffer.memory`, and the same totals as the `metrics` facade's recorder receives them. Each
//! check is exact where the traffic makes the number exact. No cluster needed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_producer::{
    DeliveryFuture, Error, ErrorCode, Metrics, Producer, ProducerConfig, ProducerRecord,
};
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_testkit::{FakeBroker, FakeConfig, Rule};

/// Long enough for every scenario here; each test bounds its own waits with it.
const PATIENCE: Duration = Duration::from_secs(20);
const CLIENT_ID: &str = "metrics-test";
const BUFFER_MEMORY: usize = 1_000_000;
/// The traffic of most tests: records per topic-partition. One batch each (see [`config`]).
const TRAFFIC: [(&str, i32, usize); 3] = [("a", 0, 10), ("a", 1, 7), ("b", 0, 5)];
/// Every record of [`TRAFFIC`].
const N: usize = 22;
/// Records of topic `a` in [`TRAFFIC`].
const N_A: usize = 17;

async fn broker() -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("a".into(), 2), ("b".into(), 1)],
        ..FakeConfig::default()
    })
    .await
}

/// Batches stay open (`linger.ms` of a minute) until `flush`, so each partition's records go
/// as one batch, all in one request; small backoffs, so that retries cost little time.
fn config(broker: &FakeBroker, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut c = ProducerConfig::new(&broker.addr());
    let buffer_memory = BUFFER_MEMORY.to_string();
    for (k, v) in [
        ("client.id", CLIENT_ID),
        ("linger.ms", "60000"),
        ("delivery.timeout.ms", "120000"),
        ("request.timeout.ms", "10000"),
        ("retry.backoff.ms", "20"),
        ("retry.backoff.max.ms", "100"),
        ("buffer.memory", &buffer_memory),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    c
}

async fn producer(config: ProducerConfig) -> Producer {
    within(Producer::new(config)).await.unwrap()
}

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("resolved within the test's patience")
}

/// Waits (polling) until `condition` holds.
/// The metrics once the producer is quiet: nothing in flight, and no request sent over 250 ms
/// (more than twice `retry.backoff.max.ms`, the longest a metadata refresh it was asked for
/// waits).
async fn quiet(p: &Producer) -> Metrics {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let before = p.metrics();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let after = p.metrics();
        let idle = |m: &Metrics| m.producer("requests-in-flight") == Some(0.0);
        if idle(&before)
            && idle(&after)
            && before.producer("request-total") == after.producer("request-total")
        {
            return after;
        }
        assert!(Instant::now() < deadline, "the producer never went quiet");
    }
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Queues [`TRAFFIC`] with values of `value` followed by the record's number; returns the
/// futures, per topic-partition.
async fn send_traffic(p: &Producer, value: &str) -> Vec<((&'static str, i32), DeliveryFuture)> {
    let mut futures = Vec::new();
    for (topic, partition, count) in TRAFFIC {
        for i in 0..count {
            let record = ProducerRecord::new(topic)
                .key(format!("k{i}"))
                .value(format!("{value}{i}"))
                .partition(partition);
            futures.push(((topic, partition), within(p.send(record)).await.unwrap()));
        }
    }
    futures
}

/// A producer-wide metric, which must exist.
fn producer_metric(m: &Metrics, name: &str) -> f64 {
    m.producer(name)
        .unwrap_or_else(|| panic!("no producer metric {name}:\n{m}"))
}

/// A metric of `topic`, which must exist.
fn topic_metric(m: &Metrics, topic: &str, name: &str) -> f64 {
    m.topic(topic, name)
        .unwrap_or_else(|| panic!("no metric {name} for topic {topic}:\n{m}"))
}

/// The sum of `name` over every broker (`producer-node-metrics`), and how many brokers have it.
fn node_sum(m: &Metrics, name: &str) -> (f64, usize) {
    m.iter()
        .filter(|x| x.group == kafka_producer::metrics::NODE_GROUP && x.name == name)
        .fold((0.0, 0), |(sum, n), x| (sum + x.value, n + 1))
}

/// The requests the broker received of each API a producer without transactions sends:
/// ApiVersions, Metadata, InitProducerId, Produce.
fn broker_requests(b: &FakeBroker) -> [usize; 4] {
    [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::InitProducerId,
        ApiKey::Produce,
    ]
    .map(|api| b.request_count(api))
}

/// Checks what holds after any traffic once `flush` has returned: memory all free, nothing in
/// flight, every request answered, and the producer's totals the sums of the brokers'.
fn check_settled(m: &Metrics, b: &FakeBroker) {
    assert_eq!(
        producer_metric(m, "buffer-total-bytes"),
        BUFFER_MEMORY as f64
    );
    assert_eq!(
        producer_metric(m, "buffer-available-bytes"),
        BUFFER_MEMORY as f64
    );
    assert_eq!(producer_metric(m, "waiting-threads"), 0.0);
    let per_api = broker_requests(b);
    assert_eq!(
        producer_metric(m, "requests-in-flight"),
        0.0,
        "the broker's requests per API: {per_api:?}"
    );
    let requests = producer_metric(m, "request-total");
    assert_eq!(
        requests,
        per_api.iter().sum::<usize>() as f64,
        "every request counted, ApiVersions too: the broker's per API {per_api:?}"
    );
    assert_eq!(
        producer_metric(m, "response-total"),
        requests,
        "all answered"
    );
    for name in [
        "request-total",
        "response-total",
        "outgoing-byte-total",
        "incoming-byte-total",
    ] {
        let (sum, nodes) = node_sum(m, name);
        assert!(nodes >= 1, "{name}: no broker has it:\n{m}");
        assert_eq!(
            producer_metric(m, name),
            sum,
            "{name}: the producer's total is the sum of the brokers'"
        );
    }
    let open = producer_metric(m, "connection-count");
    assert!(open >= 1.0, "connection-count {open}");
    assert_eq!(
        producer_metric(m, "connection-creation-total")
            - producer_metric(m, "connection-close-total"),
        open,
        "connections made less those closed are those open"
    );
    assert!(producer_metric(m, "flush-time-ns-total") > 0.0);
    let age = producer_metric(m, "metadata-age");
    assert!(
        (0.0..PATIENCE.as_secs_f64()).contains(&age),
        "metadata-age {age} s"
    );
    for name in ["request-latency-avg", "request-latency-max"] {
        let v = producer_metric(m, name);
        assert!(v >= 0.0, "{name} {v}");
    }
    assert_eq!(producer_metric(m, "produce-throttle-time-max"), 0.0);
    assert_eq!(producer_metric(m, "buffer-exhausted-total"), 0.0);
}

/// Sends [`TRAFFIC`] and checks every metric it makes exact; `compressed` with lz4 and values
/// that compress well.
async fn known_traffic(compressed: bool) {
    let b = broker().await;
    let extra: &[(&str, &str)] = match compressed {
        true => &[("compression.type", "lz4")],
        false => &[],
    };
    let p = producer(config(&b, extra)).await;
    let value = match compressed {
        true => "x".repeat(200),
        false => "value-".to_string(),
    };
    let futures = send_traffic(&p, &value).await;
    within(p.flush()).await.unwrap();
    for (tp, f) in futures {
        within(f).await.unwrap_or_else(|e| panic!("{tp:?}: {e}"));
    }
    let m = p.metrics();
    let case = format!("compressed={compressed}\n{m}");

    assert_eq!(m.client_id(), CLIENT_ID);
    assert_eq!(producer_metric(&m, "record-send-total"), N as f64, "{case}");
    assert_eq!(topic_metric(&m, "a", "record-send-total"), N_A as f64);
    assert_eq!(topic_metric(&m, "b", "record-send-total"), (N - N_A) as f64);
    for name in ["record-error-total", "record-retry-total"] {
        assert_eq!(producer_metric(&m, name), 0.0, "{name}: {case}");
        for topic in ["a", "b"] {
            assert_eq!(topic_metric(&m, topic, name), 0.0, "{topic} {name}");
        }
    }
    assert_eq!(producer_metric(&m, "batch-split-total"), 0.0);

    // One batch per partition, as the broker saw them.
    for (topic, partition, count) in TRAFFIC {
        let attempts = b.attempts(topic, partition);
        assert_eq!(attempts.len(), 1, "{topic}-{partition}: {attempts:?}");
        assert_eq!(attempts[0].record_count, count, "{topic}-{partition}");
    }
    let batches = TRAFFIC.len() as f64;
    let produce_requests = b.request_count(ApiKey::Produce) as f64;
    assert_eq!(
        producer_metric(&m, "records-per-request-avg"),
        N as f64 / produce_requests,
        "{case}"
    );
    // Every batch's bytes count once in its topic's byte-total and in batch-size-avg.
    let bytes = topic_metric(&m, "a", "byte-total") + topic_metric(&m, "b", "byte-total");
    let avg = producer_metric(&m, "batch-size-avg");
    let max = producer_metric(&m, "batch-size-max");
    assert!(bytes > 0.0, "{case}");
    assert!(
        (avg * batches - bytes).abs() < 1e-6,
        "batch-size-avg {avg} over {batches} batches, byte-total {bytes}"
    );
    assert!(
        avg <= max && max < bytes,
        "avg {avg}, max {max}, total {bytes}"
    );
    let largest_value = value.len() + 2;
    assert!(
        producer_metric(&m, "record-size-max") > largest_value as f64,
        "{case}"
    );
    assert!(producer_metric(&m, "record-queue-time-avg") >= 0.0);

    let ratio = producer_metric(&m, "compression-rate-avg");
    if compressed {
        assert!(ratio > 0.0 && ratio < 0.5, "lz4 of repeated bytes: {ratio}");
        for topic in ["a", "b"] {
            let r = topic_metric(&m, topic, "compression-rate");
            assert!(r > 0.0 && r < 0.5, "{topic}: {r}");
        }
    } else {
        assert_eq!(ratio, 1.0, "{case}");
        for topic in ["a", "b"] {
            assert_eq!(topic_metric(&m, topic, "compression-rate"), 1.0);
        }
    }
    check_settled(&m, &b);

    let json = m.to_json();
    assert_eq!(json["client-id"], CLIENT_ID);
    assert_eq!(
        json["producer-topic-metrics"]["a"]["record-send-total"],
        N_A as f64
    );
    within(p.close(PATIENCE)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_is_counted_exactly() {
    known_traffic(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_traffic_with_lz4_shows_its_compression() {
    known_traffic(true).await;
}

/// A partition refused with a non-retriable error: its records, and no others, count as failed,
/// in the producer's total and in their topic's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_refused_for_good_count_as_errors() {
    let b = broker().await;
    let rule = b.script(
        Rule::on_produce()
            .partition("a", 1)
            .respond_error(ErrorCode::INVALID_RECORD),
    );
    let p = producer(config(&b, &[])).await;
    let futures = send_traffic(&p, "value-").await;
    let e = within(p.flush()).await.unwrap_err();
    assert!(matches!(e, Error::FlushFailed { .. }), "{e}");
    let mut failed = 0;
    for (tp, f) in futures {
        match within(f).await {
            Ok(_) => assert_ne!(tp, ("a", 1)),
            Err(e) => {
                assert_eq!(tp, ("a", 1), "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 7);
    assert_eq!(rule.fired(), 1);

    let m = p.metrics();
    assert_eq!(
        producer_metric(&m, "record-error-total"),
        failed as f64,
        "{m}"
    );
    assert_eq!(topic_metric(&m, "a", "record-error-total"), failed as f64);
    assert_eq!(topic_metric(&m, "b", "record-error-total"), 0.0);
    assert_eq!(producer_metric(&m, "record-retry-total"), 0.0);
    assert_eq!(producer_metric(&m, "batch-split-total"), 0.0);
    // The failed batch was sent too.
    assert_eq!(producer_metric(&m, "record-send-total"), N as f64);
    check_settled(&m, &b);
    within(p.close(PATIENCE)).await.unwrap();
}

/// A retriable error, once, for one partition: its batch's records count as retried, and, as in
/// the Java client, as sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_counts_its_records_as_retried_and_sent_again() {
    let b = broker().await;
    let rule = b.script(
        Rule::on_produce()
            .partition("a", 0)
            .nth(1)
            .respond_error(ErrorCode::NOT_ENOUGH_REPLICAS),
    );
    let p = producer(config(&b, &[])).await;
    let futures = send_traffic(&p, "value-").await;
    within(p.flush()).await.unwrap();
    for (tp, f) in futures {
        within(f).await.unwrap_or_else(|e| panic!("{tp:?}: {e}"));
    }
    assert_eq!(rule.fired(), 1);
    let retried = TRAFFIC[0].2;
    assert_eq!(b.attempts("a", 0).len(), 2);
    // The retry asked for fresh metadata, whose answer `flush` does not wait for; the sender
    // may ask again before the metadata task's backoff (`retry.backoff.max.ms`, 100 ms) has
    // passed. Quiet: nothing in flight, and no new request over twice that backoff.
    let m = quiet(&p).await;
    assert_eq!(
        producer_metric(&m, "record-retry-total"),
        retried as f64,
        "{m}"
    );
    assert_eq!(topic_metric(&m, "a", "record-retry-total"), retried as f64);
    assert_eq!(topic_metric(&m, "b", "record-retry-total"), 0.0);
    assert_eq!(
        producer_metric(&m, "record-send-total"),
        (N + retried) as f64
    );
    assert_eq!(
        topic_metric(&m, "a", "record-send-total"),
        (N_A + retried) as f64
    );
    assert_eq!(topic_metric(&m, "b", "record-send-total"), (N - N_A) as f64);
    assert_eq!(producer_metric(&m, "record-error-total"), 0.0);
    assert_eq!(producer_metric(&m, "batch-split-total"), 0.0);
    check_settled(&m, &b);
    within(p.close(PATIENCE)).await.unwrap();
}

/// MESSAGE_TOO_LARGE once for a batch of several records: one split, no retry, no error; the
/// parts' records count as sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_for_the_broker_counts_one_split() {
    let b = broker().await;
    let rule = b.script(
        Rule::on_produce()
            .partition("a", 0)
            .nth(1)
            .respond_error(ErrorCode::MESSAGE_TOO_LARGE),
    );
    let p = producer(config(&b, &[])).await;
    let futures = send_traffic(&p, "value-").await;
    within(p.flush()).await.unwrap();
    for (tp, f) in futures {
        within(f).await.unwrap_or_else(|e| panic!("{tp:?}: {e}"));
    }
    assert_eq!(rule.fired(), 1);
    let split = TRAFFIC[0].2;
    let written: usize = b
        .attempts("a", 0)
        .iter()
        .filter(|a| a.error == ErrorCode::NONE)
        .map(|a| a.record_count)
        .sum();
    assert_eq!(written, split);

    let m = p.metrics();
    assert_eq!(producer_metric(&m, "batch-split-total"), 1.0, "{m}");
    assert_eq!(producer_metric(&m, "record-retry-total"), 0.0);
    assert_eq!(producer_metric(&m, "record-error-total"), 0.0);
    assert_eq!(producer_metric(&m, "record-send-total"), (N + split) as f64);
    check_settled(&m, &b);
    within(p.close(PATIENCE)).await.unwrap();
}

/// `buffer.memory` for three batches, all held by batches the broker is slow to answer: a fourth
/// send waits `max.block.ms`, counted in `waiting-threads` meanwhile, then fails with
/// BufferExhausted, counted in `buffer-exhausted-total` and `bufferpool-wait-time-ns-total`.
#[tokio::test]
async fn a_send_that_finds_the_buffer_full_is_counted_while_and_after_it_waits() {
    const MAX_BLOCK: Duration = Duration::from_millis(1500);
    const BUFFER: usize = 3000;
    let b = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 1)],
        ..FakeConfig::default()
    })
    .await;
    let mut c = ProducerConfig::new(&b.addr());
    let max_block = MAX_BLOCK.as_millis().to_string();
    let buffer = BUFFER.to_string();
    for (k, v) in [
        ("client.id", CLIENT_ID),
        ("linger.ms", "0"),
        ("batch.size", "1000"),
        ("batch.max.size", "1000"),
        ("buffer.memory", &buffer),
        ("max.block.ms", &max_block),
        ("request.timeout.ms", "15000"),
    ] {
        c.set(k, v).unwrap();
    }
    let p = producer(c).await;
    // The topic's metadata first, so that the sends below wait for nothing else.
    assert_eq!(within(p.partition_count("t")).await.unwrap(), 1);
    // The first batch's answer comes after the fourth send has given up; the others queue
    // behind it on the connection.
    let slow = b.script(
        Rule::on_produce()
            .nth(1)
            .delay(MAX_BLOCK + Duration::from_secs(2)),
    );
    // A record fills a batch: each takes a batch's 1000 bytes of buffer.memory.
    let record = || ProducerRecord::new("t").key("k").value("v".repeat(900));
    let mut queued = Vec::new();
    for _ in 0..BUFFER / 1000 {
        queued.push(within(p.send(record())).await.unwrap());
    }
    assert_eq!(p.metrics().producer("buffer-available-bytes"), Some(0.0));

    let before = p.metrics();
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.send(record()).await }
    });
    let mut seen = Vec::new();
    until("the send waits for buffer.memory", || {
        let n = p.metrics().producer("waiting-threads").unwrap();
        seen.push(n);
        n == 1.0
    })
    .await;
    let e = within(waiting).await.unwrap().unwrap_err();
    let Error::BufferExhausted { waited, .. } = e else {
        panic!("expected BufferExhausted, got {e}");
    };
    assert!(waited >= MAX_BLOCK, "{waited:?}");
    assert_eq!(slow.fired(), 1, "the first batch's answer is still delayed");

    let m = p.metrics();
    assert_eq!(producer_metric(&m, "waiting-threads"), 0.0);
    assert_eq!(producer_metric(&m, "buffer-exhausted-total"), 1.0, "{m}");
    // As in the Java client, the failed send is a record error; not its topic's, as no batch of
    // it failed.
    assert_eq!(producer_metric(&m, "record-error-total"), 1.0);
    assert_eq!(topic_metric(&m, "t", "record-error-total"), 0.0);
    let wait_ns = producer_metric(&m, "bufferpool-wait-time-ns-total")
        - producer_metric(&before, "bufferpool-wait-time-ns-total");
    // The send waited for the memory from the moment it found the topic known until
    // max.block.ms after it started: all of max.block.ms but the moment of its metadata lookup.
    let metadata_ns = producer_metric(&m, "metadata-wait-time-ns-total")
        - producer_metric(&before, "metadata-wait-time-ns-total");
    let slack = Duration::from_millis(50).as_nanos() as f64;
    assert!(
        wait_ns + metadata_ns + slack >= MAX_BLOCK.as_nanos() as f64,
        "bufferpool-wait-time-ns-total {wait_ns}, metadata wait {metadata_ns}"
    );
    assert!(
        wait_ns <= waited.as_nanos() as f64,
        "{wait_ns} ns waited, the send says {waited:?}"
    );
    assert!(producer_metric(&m, "bufferpool-wait-ratio") > 0.0);

    // Once answered, every batch gives its memory back.
    within(p.flush()).await.unwrap();
    for f in queued {
        within(f).await.unwrap();
    }
    let m = p.metrics();
    assert_eq!(producer_metric(&m, "buffer-available-bytes"), BUFFER as f64);
    assert_eq!(producer_metric(&m, "waiting-threads"), 0.0);
    assert_eq!(producer_metric(&m, "buffer-exhausted-total"), 1.0);
    assert_eq!(producer_metric(&m, "record-send-total"), 3.0);
    within(p.close(PATIENCE)).await.unwrap();
}

/// A send (or try_send) that fails counts in record-error-total, as in the Java client, unless
/// the Java client would throw IllegalArgumentException or IllegalStateException instead: a
/// partition the topic does not have, a closed producer.
#[tokio::test]
async fn sends_that_fail_count_as_record_errors() {
    let b = broker().await;
    let p = producer(config(
        &b,
        &[("max.block.ms", "200"), ("max.request.size", "10000")],
    ))
    .await;
    let errors = |p: &Producer| producer_metric(&p.metrics(), "record-error-total");
    let too_large = || ProducerRecord::new("a").key("k").value("x".repeat(20_000));

    let e = within(p.send(too_large())).await.unwrap_err();
    assert!(matches!(e, Error::RecordTooLarge { .. }), "{e}");
    assert_eq!(errors(&p), 1.0);
    let e = p.try_send(too_large()).unwrap_err();
    assert!(e.would_wait().is_none(), "{e}");
    assert_eq!(errors(&p), 2.0);
    // Not a topic of the broker's: UnknownTopic after max.block.ms.
    let e = within(p.send(ProducerRecord::new("unknown").key("k").value("v")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnknownTopic { .. }), "{e}");
    assert_eq!(errors(&p), 3.0);

    let e = within(p.send(ProducerRecord::new("a").key("k").value("v").partition(9)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidPartition { .. }), "{e}");
    assert_eq!(
        errors(&p),
        3.0,
        "a partition the topic lacks is not counted"
    );
    within(p.close(PATIENCE)).await.unwrap();
    let e = within(p.send(ProducerRecord::new("a").key("k").value("v")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Closed { .. }), "{e}");
    let m = p.metrics();
    assert_eq!(producer_metric(&m, "record-error-total"), 3.0, "{m}");
    // No batch failed, and none was sent.
    assert_eq!(m.topic("a", "record-error-total"), None);
    assert_eq!(producer_metric(&m, "record-send-total"), 0.0);
}

/// With a `metrics` facade recorder installed (here metrics-util's DebuggingRecorder, for this
/// thread only), the totals it receives are the snapshot's, and each batch sent is one value of
/// the batch-size histogram.
#[tokio::test]
async fn the_metrics_facade_receives_the_same_totals() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The test's runtime runs every task on this thread, so the producer's, registered as it
    // is created and as it first uses a topic or broker, all go to this recorder.
    let _local = metrics::set_default_local_recorder(&recorder);

    let b = broker().await;
    let p = producer(config(&b, &[])).await;
    let futures = send_traffic(&p, "value-").await;
    within(p.flush()).await.unwrap();
    for (tp, f) in futures {
        within(f).await.unwrap_or_else(|e| panic!("{tp:?}: {e}"));
    }
    let m = p.metrics();

    // name and labels -> value
    let mut facade: HashMap<(String, Vec<(String, String)>), DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        labels.sort();
        facade.insert((key.name().to_string(), labels), value);
    }
    let labels = |extra: &[(&str, &str)]| {
        let mut l: Vec<(String, String)> = [("client_id", CLIENT_ID)]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        l
    };
    let counter =
        |name: &str, extra: &[(&str, &str)]| match facade.get(&(name.into(), labels(extra))) {
            Some(DebugValue::Counter(n)) => *n as f64,
            other => panic!(
                "{name} {:?}: {other:?}; the recorder has {:?}",
                labels(extra),
                facade.keys().collect::<Vec<_>>()
            ),
        };

    assert_eq!(
        counter("kafka_producer_record_send_total", &[]),
        producer_metric(&m, "record-send-total")
    );
    assert_eq!(counter("kafka_producer_record_send_total", &[]), N as f64);
    for topic in ["a", "b"] {
        assert_eq!(
            counter(
                "kafka_producer_topic_record_send_total",
                &[("topic", topic)]
            ),
            topic_metric(&m, topic, "record-send-total"),
            "{topic}"
        );
        assert_eq!(
            counter("kafka_producer_topic_byte_total", &[("topic", topic)]),
            topic_metric(&m, topic, "byte-total"),
            "{topic}"
        );
    }
    assert_eq!(
        counter("kafka_producer_request_total", &[]),
        producer_metric(&m, "request-total")
    );
    assert_eq!(counter("kafka_producer_record_error_total", &[]), 0.0);
    match facade.get(&("kafka_producer_batch_size".into(), labels(&[]))) {
        Some(DebugValue::Histogram(values)) => {
            assert_eq!(
                values.len(),
                TRAFFIC.len(),
                "one value per batch: {values:?}"
            );
            let sum: f64 = values.iter().map(|v| v.into_inner()).sum();
            assert_eq!(
                sum,
                topic_metric(&m, "a", "byte-total") + topic_metric(&m, "b", "byte-total")
            );
        }
        other => panic!("kafka_producer_batch_size: {other:?}"),
    }
    match facade.get(&("kafka_producer_buffer_available_bytes".into(), labels(&[]))) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), BUFFER_MEMORY as f64),
        other => panic!("kafka_producer_buffer_available_bytes: {other:?}"),
    }
    within(p.close(PATIENCE)).await.unwrap();
}
