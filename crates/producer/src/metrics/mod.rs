//! The producer's metrics, under the Java client's names and with their meanings:
//! `producer-metrics` for the producer as a whole, `producer-topic-metrics` per topic and
//! `producer-node-metrics` per broker connection. [`Producer::metrics`] takes a snapshot
//! ([`Metrics`]); every value is also sent, as it is recorded, to the [`metrics`] facade crate's
//! recorder if the application installed one, so that Prometheus or OpenTelemetry exporters
//! receive them without glue (README "Metrics" lists the names there).
//!
//! What is counted costs nothing per record: values are recorded per batch, per request and per
//! connection (`metrics/registry.rs` says where). Rates, averages and maxima are Java's windowed
//! stats (`metrics.num.samples` windows of `metrics.sample.window.ms`, `metrics/sensor.rs`);
//! totals count from the producer's start.
//!
//! [`Producer::metrics`]: crate::Producer::metrics

use std::collections::BTreeMap;
use std::fmt;

pub(crate) use self::registry::{Gauges, NodeMetrics, ProducerMetrics};
pub(crate) use self::sensor::Window;

mod registry;
mod sensor;

/// The group of the producer-wide metrics.
pub const PRODUCER_GROUP: &str = "producer-metrics";
/// The group of the per-topic metrics (tagged `topic`).
pub const TOPIC_GROUP: &str = "producer-topic-metrics";
/// The group of the per-broker metrics (tagged `node-id`, as `node-1`; a bootstrap server the
/// producer connected to before it knew the broker's id is `node--1`, `node--2`, ... in the
/// order of `bootstrap.servers`, as in the Java client).
pub const NODE_GROUP: &str = "producer-node-metrics";

/// One metric's value at the moment of the snapshot: Java's `MetricName` and `metricValue()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The Java client's group: [`PRODUCER_GROUP`], [`TOPIC_GROUP`] or [`NODE_GROUP`].
    pub group: &'static str,
    /// The Java client's name, as `record-send-rate`.
    pub name: &'static str,
    /// What it measures, and in what unit.
    pub description: &'static str,
    /// `client-id`, and `topic` or `node-id` in their groups.
    pub tags: Vec<(&'static str, String)>,
    /// The value. An average or maximum with nothing recorded in its windows is NaN, as in the
    /// Java client.
    pub value: f64,
}

impl Metric {
    /// The value of tag `key`, if it has one.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A snapshot of every metric of one producer ([`Producer::metrics`]).
///
/// ```no_run
/// # async fn demo(producer: kafka_producer::Producer) {
/// let metrics = producer.metrics();
/// println!("{} records sent", metrics.producer("record-send-total").unwrap_or(0.0));
/// for m in &metrics {
///     println!("{} {} {:?} = {}", m.group, m.name, m.tags, m.value);
/// }
/// # }
/// ```
///
/// [`Producer::metrics`]: crate::Producer::metrics
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    client_id: String,
    metrics: Vec<Metric>,
}

impl Metrics {
    pub(crate) fn new(client_id: String, metrics: Vec<Metric>) -> Self {
        Metrics { client_id, metrics }
    }

    /// The producer's `client.id` (every metric's `client-id` tag).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Every metric: the producer's, then each topic's, then each broker's.
    pub fn iter(&self) -> std::slice::Iter<'_, Metric> {
        self.metrics.iter()
    }

    /// How many metrics the snapshot holds.
    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    /// Whether it holds none (never: the producer's own metrics are always there).
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// A producer-wide metric (`producer-metrics`) by name, as `record-send-total`.
    pub fn producer(&self, name: &str) -> Option<f64> {
        self.find(PRODUCER_GROUP, name, None)
    }

    /// A metric of `topic` (`producer-topic-metrics`) by name, as `record-error-total`; `None`
    /// for a topic nothing was sent to yet.
    pub fn topic(&self, topic: &str, name: &str) -> Option<f64> {
        self.find(TOPIC_GROUP, name, Some(("topic", topic)))
    }

    /// A metric of broker `node` (`producer-node-metrics`) by name, as `request-latency-avg`;
    /// `None` for a broker never connected to.
    pub fn node(&self, node: i32, name: &str) -> Option<f64> {
        self.find(NODE_GROUP, name, Some(("node-id", &node_tag(node))))
    }

    fn find(&self, group: &str, name: &str, tag: Option<(&str, &str)>) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| {
                m.group == group && m.name == name && tag.is_none_or(|(k, v)| m.tag(k) == Some(v))
            })
            .map(|m| m.value)
    }

    /// The snapshot as JSON: `{"client-id": ..., "producer-metrics": {name: value},
    /// "producer-topic-metrics": {topic: {name: value}}, "producer-node-metrics": {"node-1":
    /// {name: value}}}`, names sorted; NaN (no value yet) is `null`. What `kprod produce --stats
    /// json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value};
        let number = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        let mut producer = BTreeMap::new();
        let mut by_tag: BTreeMap<(&str, &str), BTreeMap<&str, Value>> = BTreeMap::new();
        for m in &self.metrics {
            let tag = match m.group {
                TOPIC_GROUP => m.tag("topic"),
                NODE_GROUP => m.tag("node-id"),
                _ => None,
            };
            match tag {
                Some(tag) => {
                    by_tag
                        .entry((m.group, tag))
                        .or_default()
                        .insert(m.name, number(m.value));
                }
                None => {
                    producer.insert(m.name, number(m.value));
                }
            }
        }
        let mut out = Map::new();
        out.insert("client-id".into(), Value::String(self.client_id.clone()));
        out.insert(
            PRODUCER_GROUP.into(),
            Value::Object(
                producer
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        );
        for group in [TOPIC_GROUP, NODE_GROUP] {
            let entries: Map<String, Value> = by_tag
                .iter()
                .filter(|((g, _), _)| *g == group)
                .map(|((_, tag), values)| {
                    let values = values
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect();
                    (tag.to_string(), Value::Object(values))
                })
                .collect();
            out.insert(group.into(), Value::Object(entries));
        }
        Value::Object(out)
    }
}

impl<'a> IntoIterator for &'a Metrics {
    type Item = &'a Metric;
    type IntoIter = std::slice::Iter<'a, Metric>;

    fn into_iter(self) -> Self::IntoIter {
        self.metrics.iter()
    }
}

impl fmt::Display for Metrics {
    /// One line per metric: `group name{tags} value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.metrics {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                f,
                "{} {}{{{}}} {}",
                m.group,
                m.name,
                tags.join(","),
                m.value
            )?;
        }
        Ok(())
    }
}

/// The Java client's `node-id` tag for broker `node`.
pub(crate) fn node_tag(node: i32) -> String {
    format!("node-{node}")
}
