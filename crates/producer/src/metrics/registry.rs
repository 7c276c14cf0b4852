//! Every sensor of one producer and the names its stats go by.
//!
//! Where each is recorded (all per batch, request, connection or call; none per record):
//! - a Produce request built (`sender/produce.rs`): per batch its topic's records, bytes and
//!   compression, the batch's size, queue time, compression and largest record; per request its
//!   record count;
//! - its answer: the request's latency and throttle time;
//! - a batch retried, failed or split (`accumulator/settle.rs`);
//! - a connection made, authenticated or closed; a request written, a response read
//!   (`connection/`);
//! - a send that waited for `buffer.memory`, or gave up (`accumulator/memory.rs`); a send that
//!   waited for metadata, or failed (`producer/enqueue.rs`); `flush` and each transaction call.
//!
//! Each sensor is also registered once with the `metrics` facade's recorder, if one is installed
//! when the producer is created: its totals as counters, its averages and maxima as one
//! histogram of the values recorded. Gauges are set as what they measure changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::sensor::{Measured, Sensor, Window};
use super::{node_tag, Metric, Metrics, NODE_GROUP, PRODUCER_GROUP, TOPIC_GROUP};

/// Which of a sensor's stats a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    /// Windowed sum per second.
    Rate,
    /// Windowed number of values per second.
    CountRate,
    Avg,
    Max,
    /// Sum since the start.
    Total,
    /// Number of values since the start.
    CountTotal,
    /// Windowed sum of nanoseconds per second: the share of the time spent (0 to 1 per waiter).
    Ratio,
}

/// One metric a sensor shows: its Java name, which stat, and what it means.
type View = (&'static str, Stat, &'static str);

/// A sensor and the metrics it shows.
struct Spec {
    views: &'static [View],
}

// The producer's sensors (`producer-metrics`).
const RECORDS_PER_REQUEST: Spec = Spec {
    views: &[
        (
            "record-send-rate",
            Stat::Rate,
            "Records sent per second (a retried record counts again).",
        ),
        (
            "record-send-total",
            Stat::Total,
            "Records sent (a retried record counts again).",
        ),
        (
            "records-per-request-avg",
            Stat::Avg,
            "Records per Produce request.",
        ),
    ],
};
const BATCH_SIZE: Spec = Spec {
    views: &[
        (
            "batch-size-avg",
            Stat::Avg,
            "Bytes per batch sent, compressed.",
        ),
        (
            "batch-size-max",
            Stat::Max,
            "Largest batch sent, in bytes, compressed.",
        ),
    ],
};
const COMPRESSION_RATE: Spec = Spec {
    views: &[(
        "compression-rate-avg",
        Stat::Avg,
        "Compressed size over uncompressed size of the batches sent (1 without compression).",
    )],
};
const QUEUE_TIME: Spec = Spec {
    views: &[
        (
            "record-queue-time-avg",
            Stat::Avg,
            "Milliseconds a batch waited from its first record until it was sent.",
        ),
        (
            "record-queue-time-max",
            Stat::Max,
            "Longest wait of a batch from its first record until it was sent, in ms.",
        ),
    ],
};
const RECORD_SIZE: Spec = Spec {
    views: &[
        (
            "record-size-avg",
            Stat::Avg,
            "Bytes of the largest record of each batch sent, averaged.",
        ),
        (
            "record-size-max",
            Stat::Max,
            "Bytes of the largest record sent.",
        ),
    ],
};
const RETRIES: Spec = Spec {
    views: &[
        (
            "record-retry-rate",
            Stat::Rate,
            "Records whose batch was retried, per second.",
        ),
        (
            "record-retry-total",
            Stat::Total,
            "Records whose batch was retried.",
        ),
    ],
};
const ERRORS: Spec = Spec {
    views: &[
        (
            "record-error-rate",
            Stat::Rate,
            "Records that failed, in a batch or in send, per second.",
        ),
        (
            "record-error-total",
            Stat::Total,
            "Records that failed: in a batch, or in send (as the Java client counts them).",
        ),
    ],
};
const SPLITS: Spec = Spec {
    views: &[
        (
            "batch-split-rate",
            Stat::Rate,
            "Batches split because the broker found them too large, per second.",
        ),
        (
            "batch-split-total",
            Stat::Total,
            "Batches split because the broker found them too large.",
        ),
    ],
};
const LATENCY: Spec = Spec {
    views: &[
        (
            "request-latency-avg",
            Stat::Avg,
            "Milliseconds from a Produce request queued to its answer.",
        ),
        (
            "request-latency-max",
            Stat::Max,
            "Longest time from a Produce request queued to its answer, in ms.",
        ),
    ],
};
const THROTTLE: Spec = Spec {
    views: &[
        (
            "produce-throttle-time-avg",
            Stat::Avg,
            "Milliseconds the brokers said they throttled a Produce request.",
        ),
        (
            "produce-throttle-time-max",
            Stat::Max,
            "Longest throttle time of a Produce request, in ms.",
        ),
    ],
};
const BYTES_SENT: Spec = Spec {
    views: &[
        (
            "outgoing-byte-rate",
            Stat::Rate,
            "Bytes of requests sent per second, to all brokers.",
        ),
        (
            "outgoing-byte-total",
            Stat::Total,
            "Bytes of requests sent, to all brokers.",
        ),
        (
            "request-rate",
            Stat::CountRate,
            "Requests sent per second, every kind.",
        ),
        (
            "request-total",
            Stat::CountTotal,
            "Requests sent, every kind.",
        ),
        ("request-size-avg", Stat::Avg, "Bytes per request."),
        ("request-size-max", Stat::Max, "Largest request, in bytes."),
    ],
};
const BYTES_RECEIVED: Spec = Spec {
    views: &[
        (
            "incoming-byte-rate",
            Stat::Rate,
            "Bytes of responses read per second, from all brokers.",
        ),
        (
            "incoming-byte-total",
            Stat::Total,
            "Bytes of responses read, from all brokers.",
        ),
        (
            "response-rate",
            Stat::CountRate,
            "Responses read per second.",
        ),
        ("response-total", Stat::CountTotal, "Responses read."),
    ],
};
const CONNECTIONS_CREATED: Spec = Spec {
    views: &[
        (
            "connection-creation-rate",
            Stat::Rate,
            "Connections made per second.",
        ),
        (
            "connection-creation-total",
            Stat::Total,
            "Connections made (connected, versions agreed, authenticated).",
        ),
    ],
};
const CONNECTIONS_CLOSED: Spec = Spec {
    views: &[
        (
            "connection-close-rate",
            Stat::Rate,
            "Connections closed per second.",
        ),
        ("connection-close-total", Stat::Total, "Connections closed."),
    ],
};
const AUTHENTICATED: Spec = Spec {
    views: &[
        (
            "successful-authentication-rate",
            Stat::Rate,
            "SASL authentications that succeeded, per second.",
        ),
        (
            "successful-authentication-total",
            Stat::Total,
            "SASL authentications that succeeded.",
        ),
    ],
};
const AUTHENTICATION_FAILED: Spec = Spec {
    views: &[
        ("failed-authentication-rate", Stat::Rate, "SASL authentications (or TLS handshakes) the broker or this client refused, per second."),
        ("failed-authentication-total", Stat::Total, "SASL authentications (or TLS handshakes) the broker or this client refused."),
    ],
};
const BUFFER_EXHAUSTED: Spec = Spec {
    views: &[
        (
            "buffer-exhausted-rate",
            Stat::Rate,
            "Sends that failed after max.block.ms without buffer.memory, per second.",
        ),
        (
            "buffer-exhausted-total",
            Stat::Total,
            "Sends that failed after max.block.ms without buffer.memory.",
        ),
    ],
};
const BUFFER_WAIT: Spec = Spec {
    views: &[
        (
            "bufferpool-wait-ratio",
            Stat::Ratio,
            "Share of the time sends spent waiting for buffer.memory.",
        ),
        (
            "bufferpool-wait-time-ns-total",
            Stat::Total,
            "Nanoseconds sends spent waiting for buffer.memory.",
        ),
    ],
};
const FLUSH_TIME: Spec = Spec {
    views: &[(
        "flush-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in flush.",
    )],
};
const METADATA_WAIT: Spec = Spec {
    views: &[(
        "metadata-wait-time-ns-total",
        Stat::Total,
        "Nanoseconds sends spent waiting for a topic's metadata.",
    )],
};
const TXN_INIT: Spec = Spec {
    views: &[(
        "txn-init-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in init_transactions.",
    )],
};
const TXN_BEGIN: Spec = Spec {
    views: &[(
        "txn-begin-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in begin_transaction.",
    )],
};
const TXN_SEND_OFFSETS: Spec = Spec {
    views: &[(
        "txn-send-offsets-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in send_offsets_to_transaction.",
    )],
};
const TXN_COMMIT: Spec = Spec {
    views: &[(
        "txn-commit-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in commit_transaction.",
    )],
};
const TXN_ABORT: Spec = Spec {
    views: &[(
        "txn-abort-time-ns-total",
        Stat::Total,
        "Nanoseconds spent in abort_transaction.",
    )],
};

/// A value measured when asked (a gauge): its Java name and what it means.
type Gauge = (&'static str, &'static str);

const BUFFER_TOTAL_BYTES: Gauge = (
    "buffer-total-bytes",
    "buffer.memory: the bytes batches may hold.",
);
const BUFFER_AVAILABLE_BYTES: Gauge = (
    "buffer-available-bytes",
    "Bytes of buffer.memory not held by a batch.",
);
const WAITING_THREADS: Gauge = ("waiting-threads", "Sends waiting for buffer.memory now.");
const REQUESTS_IN_FLIGHT: Gauge = (
    "requests-in-flight",
    "Requests sent and not answered yet, every kind, all brokers.",
);
const CONNECTION_COUNT: Gauge = ("connection-count", "Connections open now.");
const METADATA_AGE: Gauge = (
    "metadata-age",
    "Seconds since the metadata was last refreshed.",
);

// Per topic (`producer-topic-metrics`).
const TOPIC_RECORDS: Spec = Spec {
    views: &[
        (
            "record-send-rate",
            Stat::Rate,
            "Records of this topic sent per second (a retried record counts again).",
        ),
        (
            "record-send-total",
            Stat::Total,
            "Records of this topic sent (a retried record counts again).",
        ),
    ],
};
const TOPIC_BYTES: Spec = Spec {
    views: &[
        (
            "byte-rate",
            Stat::Rate,
            "Bytes of this topic's batches sent per second, compressed.",
        ),
        (
            "byte-total",
            Stat::Total,
            "Bytes of this topic's batches sent, compressed.",
        ),
    ],
};
const TOPIC_COMPRESSION: Spec = Spec {
    views: &[(
        "compression-rate",
        Stat::Avg,
        "Compressed size over uncompressed size of this topic's batches.",
    )],
};
const TOPIC_RETRIES: Spec = Spec {
    views: &[
        (
            "record-retry-rate",
            Stat::Rate,
            "Records of this topic whose batch was retried, per second.",
        ),
        (
            "record-retry-total",
            Stat::Total,
            "Records of this topic whose batch was retried.",
        ),
    ],
};
const TOPIC_ERRORS: Spec = Spec {
    views: &[
        (
            "record-error-rate",
            Stat::Rate,
            "Records of this topic that failed, per second.",
        ),
        (
            "record-error-total",
            Stat::Total,
            "Records of this topic that failed.",
        ),
    ],
};

// Per broker (`producer-node-metrics`).
const NODE_BYTES_SENT: Spec = Spec {
    views: &[
        (
            "outgoing-byte-rate",
            Stat::Rate,
            "Bytes of requests sent to this broker per second.",
        ),
        (
            "outgoing-byte-total",
            Stat::Total,
            "Bytes of requests sent to this broker.",
        ),
        (
            "request-rate",
            Stat::CountRate,
            "Requests sent to this broker per second.",
        ),
        (
            "request-total",
            Stat::CountTotal,
            "Requests sent to this broker.",
        ),
        (
            "request-size-avg",
            Stat::Avg,
            "Bytes per request to this broker.",
        ),
        (
            "request-size-max",
            Stat::Max,
            "Largest request to this broker, in bytes.",
        ),
    ],
};
const NODE_BYTES_RECEIVED: Spec = Spec {
    views: &[
        (
            "incoming-byte-rate",
            Stat::Rate,
            "Bytes of responses from this broker per second.",
        ),
        (
            "incoming-byte-total",
            Stat::Total,
            "Bytes of responses from this broker.",
        ),
        (
            "response-rate",
            Stat::CountRate,
            "Responses from this broker per second.",
        ),
        (
            "response-total",
            Stat::CountTotal,
            "Responses from this broker.",
        ),
    ],
};
const NODE_LATENCY: Spec = Spec {
    views: &[
        (
            "request-latency-avg",
            Stat::Avg,
            "Milliseconds from a Produce request to this broker queued to its answer.",
        ),
        (
            "request-latency-max",
            Stat::Max,
            "Longest time from a Produce request to this broker queued to its answer, in ms.",
        ),
    ],
};

/// A sensor, the metrics it shows, and its handles in the `metrics` facade.
pub(crate) struct Instrument {
    sensor: Sensor,
    spec: &'static Spec,
    /// Counters of its totals: (handle, counts values rather than summing them).
    counters: Vec<(::metrics::Counter, bool)>,
    histogram: Option<::metrics::Histogram>,
}

impl std::fmt::Debug for Instrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrument")
            .field("metric", &self.spec.views[0].0)
            .finish_non_exhaustive()
    }
}

impl Instrument {
    fn new(spec: &'static Spec, window: Window, facade: &Facade) -> Self {
        let counters = spec
            .views
            .iter()
            .filter(|(_, stat, _)| matches!(stat, Stat::Total | Stat::CountTotal))
            .map(|&(name, stat, description)| {
                (facade.counter(name, description), stat == Stat::CountTotal)
            })
            .collect();
        let histogram = spec
            .views
            .iter()
            .find(|(_, stat, _)| matches!(stat, Stat::Avg | Stat::Max))
            .map(|&(name, _, description)| {
                let base = name
                    .strip_suffix("-avg")
                    .or_else(|| name.strip_suffix("-max"))
                    .unwrap_or(name);
                facade.histogram(base, description)
            });
        Instrument {
            sensor: Sensor::new(window),
            spec,
            counters,
            histogram,
        }
    }

    /// Records `value` at `now_ms` ([`ProducerMetrics::now_ms`]).
    pub(crate) fn record_at_ms(&self, value: f64, now_ms: u64) {
        self.sensor.record(value, now_ms);
        for (counter, counts) in &self.counters {
            counter.increment(if *counts { 1 } else { value.max(0.0) as u64 });
        }
        if let Some(h) = &self.histogram {
            h.record(value);
        }
    }

    fn push(
        &self,
        out: &mut Vec<Metric>,
        group: &'static str,
        tags: &[(&'static str, String)],
        now_ms: u64,
    ) {
        let m = self.sensor.measure(now_ms);
        for &(name, stat, description) in self.spec.views {
            out.push(Metric {
                group,
                name,
                description,
                tags: tags.to_vec(),
                value: value(&m, stat),
            });
        }
    }
}

fn value(m: &Measured, stat: Stat) -> f64 {
    match stat {
        Stat::Rate => m.rate,
        Stat::CountRate => m.count_rate,
        Stat::Avg => m.avg,
        Stat::Max => m.max,
        Stat::Total => m.total,
        Stat::CountTotal => m.count as f64,
        Stat::Ratio => m.rate / 1e9,
    }
}

/// Registers one group's handles with the facade's recorder, under Prometheus-style names:
/// `kafka_producer_` (`kafka_producer_topic_`, `kafka_producer_node_`) and the Java name with
/// `_` for `-`, labelled `client_id` (and `topic` or `node_id`).
struct Facade {
    prefix: &'static str,
    labels: Vec<::metrics::Label>,
}

impl Facade {
    fn name(&self, java: &str) -> String {
        format!("{}{}", self.prefix, java.replace('-', "_"))
    }

    fn counter(&self, java: &str, description: &'static str) -> ::metrics::Counter {
        let name = self.name(java);
        ::metrics::describe_counter!(name.clone(), description);
        ::metrics::counter!(name, self.labels.clone())
    }

    fn histogram(&self, java: &str, description: &'static str) -> ::metrics::Histogram {
        let name = self.name(java);
        ::metrics::describe_histogram!(name.clone(), description);
        ::metrics::histogram!(name, self.labels.clone())
    }

    fn gauge(&self, java: &str, description: &'static str) -> ::metrics::Gauge {
        let name = self.name(java);
        ::metrics::describe_gauge!(name.clone(), description);
        ::metrics::gauge!(name, self.labels.clone())
    }
}

/// The sensors of one topic.
pub(crate) struct TopicMetrics {
    pub(crate) records: Instrument,
    pub(crate) bytes: Instrument,
    pub(crate) compression: Instrument,
    pub(crate) retries: Instrument,
    pub(crate) errors: Instrument,
}

impl TopicMetrics {
    fn all(&self) -> [&Instrument; 5] {
        [
            &self.records,
            &self.bytes,
            &self.compression,
            &self.retries,
            &self.errors,
        ]
    }
}

/// The sensors of one broker connection's node.
pub(crate) struct NodeMetrics {
    pub(crate) bytes_sent: Instrument,
    pub(crate) bytes_received: Instrument,
    pub(crate) latency: Instrument,
}

impl NodeMetrics {
    fn all(&self) -> [&Instrument; 3] {
        [&self.bytes_sent, &self.bytes_received, &self.latency]
    }
}

/// What only the producer can measure, at the moment of a snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) buffer_total: usize,
    pub(crate) buffer_available: usize,
    /// Since the last metadata refresh; `None` before the first.
    pub(crate) metadata_age: Option<Duration>,
}

/// Every sensor of one producer.
pub(crate) struct ProducerMetrics {
    client_id: String,
    window: Window,
    /// The clock the windows run on.
    origin: Instant,
    pub(crate) records_per_request: Instrument,
    pub(crate) batch_size: Instrument,
    pub(crate) compression_rate: Instrument,
    pub(crate) queue_time: Instrument,
    pub(crate) record_size: Instrument,
    pub(crate) retries: Instrument,
    pub(crate) errors: Instrument,
    pub(crate) splits: Instrument,
    pub(crate) latency: Instrument,
    pub(crate) throttle: Instrument,
    pub(crate) bytes_sent: Instrument,
    pub(crate) bytes_received: Instrument,
    pub(crate) connections_created: Instrument,
    pub(crate) connections_closed: Instrument,
    pub(crate) authenticated: Instrument,
    pub(crate) authentication_failed: Instrument,
    pub(crate) buffer_exhausted: Instrument,
    pub(crate) buffer_wait: Instrument,
    pub(crate) flush_time: Instrument,
    pub(crate) metadata_wait: Instrument,
    pub(crate) txn_init: Instrument,
    pub(crate) txn_begin: Instrument,
    pub(crate) txn_send_offsets: Instrument,
    pub(crate) txn_commit: Instrument,
    pub(crate) txn_abort: Instrument,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    open_connections: AtomicUsize,
    gauge_waiting: ::metrics::Gauge,
    gauge_in_flight: ::metrics::Gauge,
    gauge_connections: ::metrics::Gauge,
    gauge_buffer_available: ::metrics::Gauge,
    gauge_metadata_updated: ::metrics::Gauge,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
    nodes: RwLock<HashMap<i32, Arc<NodeMetrics>>>,
}

impl std::fmt::Debug for ProducerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerMetrics")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ProducerMetrics {
    pub(crate) fn new(client_id: &str, window: Window, buffer_total: usize) -> Self {
        let facade = Facade {
            prefix: "kafka_producer_",
            labels: vec![::metrics::Label::new("client_id", client_id.to_string())],
        };
        let i = |spec: &'static Spec| Instrument::new(spec, window, &facade);
        let metrics = ProducerMetrics {
            client_id: client_id.to_string(),
            window,
            origin: Instant::now(),
            records_per_request: i(&RECORDS_PER_REQUEST),
            batch_size: i(&BATCH_SIZE),
            compression_rate: i(&COMPRESSION_RATE),
            queue_time: i(&QUEUE_TIME),
            record_size: i(&RECORD_SIZE),
            retries: i(&RETRIES),
            errors: i(&ERRORS),
            splits: i(&SPLITS),
            latency: i(&LATENCY),
            throttle: i(&THROTTLE),
            bytes_sent: i(&BYTES_SENT),
            bytes_received: i(&BYTES_RECEIVED),
            connections_created: i(&CONNECTIONS_CREATED),
            connections_closed: i(&CONNECTIONS_CLOSED),
            authenticated: i(&AUTHENTICATED),
            authentication_failed: i(&AUTHENTICATION_FAILED),
            buffer_exhausted: i(&BUFFER_EXHAUSTED),
            buffer_wait: i(&BUFFER_WAIT),
            flush_time: i(&FLUSH_TIME),
            metadata_wait: i(&METADATA_WAIT),
            txn_init: i(&TXN_INIT),
            txn_begin: i(&TXN_BEGIN),
            txn_send_offsets: i(&TXN_SEND_OFFSETS),
            txn_commit: i(&TXN_COMMIT),
            txn_abort: i(&TXN_ABORT),
            waiting: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            gauge_waiting: facade.gauge(WAITING_THREADS.0, WAITING_THREADS.1),
            gauge_in_flight: facade.gauge(REQUESTS_IN_FLIGHT.0, REQUESTS_IN_FLIGHT.1),
            gauge_connections: facade.gauge(CONNECTION_COUNT.0, CONNECTION_COUNT.1),
            gauge_buffer_available: facade
                .gauge(BUFFER_AVAILABLE_BYTES.0, BUFFER_AVAILABLE_BYTES.1),
            gauge_metadata_updated: facade.gauge(
                "metadata-last-update-timestamp-seconds",
                "Unix time of the last metadata refresh (the facade's stand-in for metadata-age).",
            ),
            topics: RwLock::new(HashMap::new()),
            nodes: RwLock::new(HashMap::new()),
        };
        facade
            .gauge(BUFFER_TOTAL_BYTES.0, BUFFER_TOTAL_BYTES.1)
            .set(buffer_total as f64);
        metrics.gauge_buffer_available.set(buffer_total as f64);
        metrics
    }

    /// Milliseconds on the windows' clock at `at`.
    pub(crate) fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Milliseconds on the windows' clock now.
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    /// Records `value` in `instrument` now.
    pub(crate) fn record(&self, instrument: &Instrument, value: f64) {
        instrument.record_at_ms(value, self.now_ms());
    }

    /// Records `value` in `instrument` at `at`.
    pub(crate) fn record_at(&self, instrument: &Instrument, value: f64, at: Instant) {
        instrument.record_at_ms(value, self.ms(at));
    }

    /// Records a duration in nanoseconds (the `*-time-ns-total` metrics).
    pub(crate) fn record_nanos(&self, instrument: &Instrument, spent: Duration) {
        self.record(instrument, spent.as_nanos() as f64);
    }

    /// Awaits `call`, adding the time it took to `instrument` (`flush-time-ns-total`, the
    /// `txn-*-time-ns-total` metrics), whatever its outcome.
    pub(crate) async fn timed<T>(
        &self,
        instrument: &Instrument,
        call: impl Future<Output = T>,
    ) -> T {
        let start = Instant::now();
        let outcome = call.await;
        self.record_nanos(instrument, start.elapsed());
        outcome
    }

    /// The sensors of `topic`, made on first use.
    pub(crate) fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return t.clone();
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(topic.to_string())
            .or_insert_with(|| {
                let facade = Facade {
                    prefix: "kafka_producer_topic_",
                    labels: vec![
                        ::metrics::Label::new("client_id", self.client_id.clone()),
                        ::metrics::Label::new("topic", topic.to_string()),
                    ],
                };
                let i = |spec: &'static Spec| Instrument::new(spec, self.window, &facade);
                Arc::new(TopicMetrics {
                    records: i(&TOPIC_RECORDS),
                    bytes: i(&TOPIC_BYTES),
                    compression: i(&TOPIC_COMPRESSION),
                    retries: i(&TOPIC_RETRIES),
                    errors: i(&TOPIC_ERRORS),
                })
            })
            .clone()
    }

    /// The sensors of broker `node`, made on first use.
    pub(crate) fn node(&self, node: i32) -> Arc<NodeMetrics> {
        if let Some(n) = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
        {
            return n.clone();
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        nodes
            .entry(node)
            .or_insert_with(|| {
                let facade = Facade {
                    prefix: "kafka_producer_node_",
                    labels: vec![
                        ::metrics::Label::new("client_id", self.client_id.clone()),
                        ::metrics::Label::new("node_id", node_tag(node)),
                    ],
                };
                let i = |spec: &'static Spec| Instrument::new(spec, self.window, &facade);
                Arc::new(NodeMetrics {
                    bytes_sent: i(&NODE_BYTES_SENT),
                    bytes_received: i(&NODE_BYTES_RECEIVED),
                    latency: i(&NODE_LATENCY),
                })
            })
            .clone()
    }

    /// A send starts or stops waiting for `buffer.memory`.
    pub(crate) fn waiting(&self, started: bool) {
        let n = match started {
            true => self.waiting.fetch_add(1, Ordering::Relaxed) + 1,
            false => self.waiting.fetch_sub(1, Ordering::Relaxed) - 1,
        };
        self.gauge_waiting.set(n as f64);
    }

    /// A request that expects an answer was sent, or its answer came (or never will).
    pub(crate) fn in_flight(&self, started: bool) {
        let n = match started {
            true => self.in_flight.fetch_add(1, Ordering::Relaxed) + 1,
            false => self.in_flight.fetch_sub(1, Ordering::Relaxed) - 1,
        };
        self.gauge_in_flight.set(n as f64);
    }

    /// A connection was made (`true`) or closed.
    pub(crate) fn connection(&self, opened: bool) {
        let (instrument, n) = match opened {
            true => (
                &self.connections_created,
                self.open_connections.fetch_add(1, Ordering::Relaxed) + 1,
            ),
            false => (
                &self.connections_closed,
                self.open_connections.fetch_sub(1, Ordering::Relaxed) - 1,
            ),
        };
        self.record(instrument, 1.0);
        self.gauge_connections.set(n as f64);
    }

    /// `buffer.memory` not held by a batch changed.
    pub(crate) fn buffer_available(&self, bytes: usize) {
        self.gauge_buffer_available.set(bytes as f64);
    }

    /// The metadata was refreshed.
    pub(crate) fn metadata_updated(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.gauge_metadata_updated.set(now.as_secs_f64());
    }

    /// Every metric now: the producer's (with `gauges`), each topic's, each broker's.
    pub(crate) fn snapshot(&self, gauges: Gauges) -> Metrics {
        let now = self.now_ms();
        let mut out = Vec::with_capacity(128);
        let tags = vec![("client-id", self.client_id.clone())];
        for instrument in [
            &self.records_per_request,
            &self.batch_size,
            &self.compression_rate,
            &self.queue_time,
            &self.record_size,
            &self.retries,
            &self.errors,
            &self.splits,
            &self.latency,
            &self.throttle,
            &self.bytes_sent,
            &self.bytes_received,
            &self.connections_created,
            &self.connections_closed,
            &self.authenticated,
            &self.authentication_failed,
            &self.buffer_exhausted,
            &self.buffer_wait,
            &self.flush_time,
            &self.metadata_wait,
            &self.txn_init,
            &self.txn_begin,
            &self.txn_send_offsets,
            &self.txn_commit,
            &self.txn_abort,
        ] {
            instrument.push(&mut out, PRODUCER_GROUP, &tags, now);
        }
        let gauge = |(name, description): Gauge, value: f64| Metric {
            group: PRODUCER_GROUP,
            name,
            description,
            tags: tags.clone(),
            value,
        };
        out.extend([
            gauge(BUFFER_TOTAL_BYTES, gauges.buffer_total as f64),
            gauge(BUFFER_AVAILABLE_BYTES, gauges.buffer_available as f64),
            gauge(WAITING_THREADS, self.waiting.load(Ordering::Relaxed) as f64),
            gauge(
                REQUESTS_IN_FLIGHT,
                self.in_flight.load(Ordering::Relaxed) as f64,
            ),
            gauge(
                CONNECTION_COUNT,
                self.open_connections.load(Ordering::Relaxed) as f64,
            ),
            // Java's is from the producer's start before the first refresh.
            gauge(
                METADATA_AGE,
                gauges
                    .metadata_age
                    .unwrap_or_else(|| self.origin.elapsed())
                    .as_secs_f64(),
            ),
        ]);
        let mut topics: Vec<(String, Arc<TopicMetrics>)> = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        for (topic, t) in topics {
            let tags = vec![("client-id", self.client_id.clone()), ("topic", topic)];
            for instrument in t.all() {
                instrument.push(&mut out, TOPIC_GROUP, &tags, now);
            }
        }
        let mut nodes: Vec<(i32, Arc<NodeMetrics>)> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        nodes.sort_by_key(|n| n.0);
        for (node, n) in nodes {
            let tags = vec![
                ("client-id", self.client_id.clone()),
                ("node-id", node_tag(node)),
            ];
            for instrument in n.all() {
                instrument.push(&mut out, NODE_GROUP, &tags, now);
            }
        }
        Metrics::new(self.client_id.clone(), out)
    }
}
