//! The background side: the sender task, the metadata task and the broker connections.
//!
//! The sender drains ready batches per leader into one ProduceRequest per broker (at most
//! `max.in.flight.requests.per.connection` outstanding per connection) and turns each answer into
//! outcomes: acknowledged, retried after backoff (back at the front of its partition's queue), or
//! failed. The metadata task keeps the cluster view fresh: every `metadata.max.age.ms`, and at once
//! when a topic is new, a leader is unknown, or a broker says it no longer leads.
//!
//! One job per file: [`nodes`] keeps a connection per broker, [`idempotence`] the producer id
//! and epoch, [`produce`] builds Produce requests and carries out what [`answer`] decides for each
//! batch in their answers; this file runs the two tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_producer_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_producer_protocol::kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use tokio::sync::{watch, Notify};

use crate::accumulator::Accumulator;
use crate::config::ProducerConfig;
use crate::error::Error;
use crate::metadata::Metadata;
use crate::partitioner::Partitioner;

use self::idempotence::{AwaitingProducerId, IdempotenceState};
use self::nodes::NodeState;

mod answer;
mod idempotence;
mod nodes;
mod produce;

/// Everything the producer handles and the background tasks share.
pub(crate) struct Inner {
    pub(crate) config: ProducerConfig,
    pub(crate) accumulator: Accumulator,
    pub(crate) metadata: Metadata,
    pub(crate) partitioner: Option<Arc<dyn Partitioner>>,
    /// Wakes the sender: a batch was started or closed, an answer came, metadata changed.
    pub(crate) wake: Notify,
    /// No new records; send what is queued, then stop.
    pub(crate) closing: AtomicBool,
    /// Set when the sender task has ended.
    pub(crate) stopped: watch::Sender<bool>,
    nodes: Mutex<HashMap<i32, NodeState>>,
    /// With idempotence: the producer id and epoch, `None` until InitProducerId answered.
    idempotence: Option<Mutex<IdempotenceState>>,
}

impl Inner {
    pub(crate) fn new(config: ProducerConfig, partitioner: Option<Arc<dyn Partitioner>>) -> Self {
        Inner {
            accumulator: Accumulator::new(
                config.batch_size,
                config.batch_max_size,
                config.max_request_size,
                config.linger,
                config.delivery_timeout,
                config.buffer_memory,
                config.compression.codec(),
                if config.idempotent() {
                    config.max_in_flight
                } else {
                    1
                },
            ),
            metadata: Metadata::new(),
            partitioner,
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            stopped: watch::channel(false).0,
            nodes: Mutex::new(HashMap::new()),
            idempotence: config.idempotent().then(Default::default),
            config,
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// The sender task: drain ready batches, send them, sleep until the next linger deadline or wake-up.
pub(crate) async fn run_sender(inner: Arc<Inner>) {
    let c = &inner.config;
    loop {
        let now = Instant::now();
        let cluster = inner.metadata.snapshot();
        let closing = inner.is_closing();
        let next_expiry = inner.accumulator.expire(now);
        if inner.accumulator.take_sequence_gap() {
            inner.bump_epoch();
        }
        // With idempotence, nothing goes before the producer has an id.
        let (producer, nodes_to_send) = match inner.producer_id() {
            Ok(p) => (p, true),
            Err(AwaitingProducerId) => (None, false),
        };
        let ready = inner.accumulator.ready(&cluster, now, closing, producer);
        if ready.unknown_leader {
            inner.metadata.request_refresh();
        }
        let mut next = earliest(ready.next_check, next_expiry);
        for node in ready.nodes.into_iter().filter(|_| nodes_to_send) {
            match inner.connection(node, now) {
                Some(conn) if conn.in_flight() < c.max_in_flight => {
                    let batches =
                        inner
                            .accumulator
                            .drain(&cluster, node, c.max_request_size, now, producer);
                    if !batches.is_empty() {
                        inner.send_produce(conn, batches);
                        // More may be ready than one request held: look again at once, as the
                        // Java sender does while nodes are ready.
                        next = Some(now);
                    }
                }
                // Full: the answer wakes us.
                Some(_) => {}
                None => {
                    next = earliest(
                        next,
                        Some(now + c.reconnect_backoff.max(Duration::from_millis(10))),
                    )
                }
            }
        }
        if closing && inner.accumulator.stop_if_drained() {
            break;
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = sleep => {}
        }
    }
    inner.close_connections();
    inner.stopped.send_replace(true);
    inner.metadata.refresh.notify_one();
}

/// The metadata task: refresh when asked (at most once per `retry.backoff.ms`) and when the
/// snapshot is older than `metadata.max.age.ms`.
pub(crate) async fn run_metadata(inner: Arc<Inner>) {
    let c = &inner.config;
    let mut stopped = inner.stopped.subscribe();
    let mut failures = 0u32;
    loop {
        let due = inner
            .metadata
            .snapshot()
            .updated
            .map_or_else(Instant::now, |u| u + c.metadata_max_age);
        if !inner.metadata.take_forced() {
            tokio::select! {
                _ = inner.metadata.refresh.notified() => {}
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stopped.wait_for(|&s| s) => return,
            }
            inner.metadata.take_forced();
        }
        if *stopped.borrow() {
            return;
        }
        match inner.refresh_metadata().await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "metadata refresh failed");
                inner.metadata.request_refresh();
                inner.metadata.bump();
            }
        }
        inner.wake.notify_one();
        // Never more than one refresh per backoff, however many ask.
        tokio::time::sleep(inner.backoff(failures.saturating_sub(1))).await;
    }
}

impl Inner {
    /// One Metadata request for the topics in use; replaces the snapshot.
    pub(crate) async fn refresh_metadata(&self) -> Result<(), Error> {
        let topics = self
            .metadata
            .wanted()
            .into_iter()
            .map(|t| {
                MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t))))
            })
            .collect();
        let req = MetadataRequest::default()
            .with_topics(Some(topics))
            // As the Java producer: the broker's auto.create.topics.enable decides.
            .with_allow_auto_topic_creation(true);
        let resp = self
            .on_any_broker(|conn| {
                let req = &req;
                async move {
                    let version = conn.version(ApiKey::Metadata)?;
                    conn.call(req, version).await
                }
            })
            .await?;
        let cluster = self.metadata.snapshot().updated_with(&resp, Instant::now());
        self.metadata.replace(cluster);
        Ok(())
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let c = &self.config;
        let exp = c.retry_backoff.saturating_mul(1u32 << attempts.min(16));
        let base = exp.min(c.retry_backoff_max);
        // ±20% jitter, as the Java client, so many producers do not retry in step.
        let jitter = (nanos_now() % 400) as f64 / 1000.0 - 0.2;
        base.mul_f64(1.0 + jitter)
            .max(c.retry_backoff.min(c.retry_backoff_max))
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}
