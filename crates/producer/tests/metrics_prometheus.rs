//! The producer's metrics reach an exporter the application installed, with no glue: here
//! metrics-exporter-prometheus's recorder, installed before the producer is made, renders what a
//! Prometheus server would scrape, and it agrees with `Producer::metrics()`. Against the
//! testkit's fake broker; no cluster needed.
//!
//! One test in this binary: the recorder is process-wide, as an application's would be.

use std::time::Duration;

use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{FakeBroker, FakeConfig};
use metrics_exporter_prometheus::PrometheusBuilder;

const RECORDS: usize = 250;

/// The value of the sample `name{labels}` in Prometheus's text format: the line that starts with
/// the name and has every label given.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn an_installed_prometheus_recorder_renders_the_producers_metrics() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this process");
    let broker = FakeBroker::start(FakeConfig {
        topics: vec![("orders".into(), 3), ("audit".into(), 1)],
        ..FakeConfig::default()
    })
    .await;
    let mut config = ProducerConfig::new(&broker.addr());
    config.set("client.id", "billing").unwrap();
    config.set("linger.ms", "5").unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let topic = if i % 5 == 0 { "audit" } else { "orders" };
        let value = format!("record {i}");
        let record = ProducerRecord::new(topic)
            .key(value.as_str())
            .value(value.as_str());
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    let snapshot = producer.metrics();
    let text = handle.render();

    let client = ("client_id", "billing");
    let sent = sample(&text, "kafka_producer_record_send_total", &[client]);
    assert_eq!(sent, Some(RECORDS as f64), "{text}");
    assert_eq!(sent, snapshot.producer("record-send-total"));
    for (topic, records) in [("orders", RECORDS - RECORDS / 5), ("audit", RECORDS / 5)] {
        let labels = [client, ("topic", topic)];
        let sent = sample(&text, "kafka_producer_topic_record_send_total", &labels);
        assert_eq!(sent, Some(records as f64), "{topic}: {text}");
        assert_eq!(sent, snapshot.topic(topic, "record-send-total"));
        let bytes = sample(&text, "kafka_producer_topic_byte_total", &labels);
        assert_eq!(bytes, snapshot.topic(topic, "byte-total"), "{topic}");
    }
    // Registered with the producer, so rendered before anything failed.
    assert_eq!(
        sample(&text, "kafka_producer_record_error_total", &[client]),
        Some(0.0),
        "{text}"
    );
    // Histograms render as summaries: one value per batch sent.
    let batches = sample(&text, "kafka_producer_batch_size_count", &[client]).expect(&text);
    assert!(batches >= 2.0, "{batches}");
    let requests = sample(&text, "kafka_producer_records_per_request_count", &[client]).unwrap();
    let per_request = snapshot.producer("records-per-request-avg").unwrap();
    assert!(
        (requests * per_request - RECORDS as f64).abs() < 1e-6,
        "{requests} requests of {per_request} records on average"
    );
    // Gauges: everything acknowledged, so all of buffer.memory is free and nothing in flight.
    assert_eq!(
        sample(&text, "kafka_producer_buffer_available_bytes", &[client]),
        Some(33_554_432.0)
    );
    assert_eq!(
        sample(&text, "kafka_producer_requests_in_flight", &[client]),
        Some(0.0)
    );
    let connections = sample(&text, "kafka_producer_connection_count", &[client]).unwrap();
    assert_eq!(Some(connections), snapshot.producer("connection-count"));
    assert!(connections >= 1.0);
    // Per broker: the fake broker is node 1.
    let node = [client, ("node_id", "node-1")];
    let requests = sample(&text, "kafka_producer_node_request_total", &node).expect(&text);
    assert_eq!(Some(requests), snapshot.node(1, "request-total"));
    assert!(requests >= 2.0, "metadata and produce requests: {requests}");
    producer.close(Duration::from_secs(10)).await.unwrap();
}
