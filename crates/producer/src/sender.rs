//! The background side: the sender task, the metadata task and the broker connections.
//!
//! The sender drains ready batches per leader into one ProduceRequest per broker (at most
//! `max.in.flight.requests.per.connection` outstanding per connection) and turns each answer into
//! outcomes: acknowledged, retried after backoff (back at the front of its partition's queue), or
//! failed. The metadata task keeps the cluster view fresh: every `metadata.max.age.ms`, and at once
//! when a topic is new, a leader is unknown, or a broker says it no longer leads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_producer_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, MetadataRequest, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use kafka_producer_protocol::produce::{encode_produce_request, TopicBatches};
use kafka_producer_protocol::ErrorCode;
use tokio::sync::{watch, Notify};

use crate::accumulator::{Accumulator, Drained, ProducerIdEpoch};
use crate::config::{Acks, ProducerConfig};
use crate::connection::Connection;
use crate::delivery::BatchAck;
use crate::error::Error;
use crate::metadata::Metadata;
use crate::partitioner::Partitioner;

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

#[derive(Default)]
struct IdempotenceState {
    current: Option<ProducerIdEpoch>,
    /// An InitProducerId request is under way.
    fetching: bool,
}

/// Why no batch may go yet: the producer is idempotent and InitProducerId has not answered.
struct AwaitingProducerId;

enum NodeState {
    Ready(Connection),
    Connecting,
    Backoff { until: Instant, failures: u32 },
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

    /// The connection to `node` if it is up; otherwise starts connecting (in the background,
    /// so one unreachable broker never holds up the others) and returns `None`.
    fn connection(self: &Arc<Self>, node: i32, now: Instant) -> Option<Connection> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let failures = match nodes.get(&node) {
            Some(NodeState::Ready(c)) if !c.is_closed() => return Some(c.clone()),
            Some(NodeState::Connecting) => return None,
            Some(NodeState::Backoff { until, .. }) if *until > now => return None,
            Some(NodeState::Backoff { failures, .. }) => *failures,
            _ => 0,
        };
        let Some(addr) = self.metadata.snapshot().brokers.get(&node).cloned() else {
            self.metadata.request_refresh();
            return None;
        };
        nodes.insert(node, NodeState::Connecting);
        let inner = self.clone();
        tokio::spawn(async move {
            let c = &inner.config;
            let result = Connection::connect(
                &addr,
                &c.client_id,
                c.connection_setup_timeout,
                c.request_timeout,
            )
            .await;
            let state = match result {
                Ok(conn) => NodeState::Ready(conn),
                Err(e) => {
                    tracing::warn!(node, %addr, error = %e, "cannot connect to broker");
                    inner.metadata.request_refresh();
                    NodeState::Backoff {
                        until: Instant::now() + reconnect_backoff(c.reconnect_backoff, failures),
                        failures: failures + 1,
                    }
                }
            };
            inner.set_node(node, state);
            inner.wake.notify_one();
        });
        None
    }

    /// Records a node's new state, keeping an open connection that is already there: one
    /// connection per broker, so a partition's requests are never reordered across two sockets.
    /// Returns the node's open connection, if it has one now.
    fn set_node(&self, node: i32, state: NodeState) -> Option<Connection> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(NodeState::Ready(open)) = nodes.get(&node) {
            if !open.is_closed() {
                if let NodeState::Ready(extra) = state {
                    extra.close();
                }
                return Some(open.clone());
            }
        }
        let open = match &state {
            NodeState::Ready(c) => Some(c.clone()),
            _ => None,
        };
        nodes.insert(node, state);
        open
    }

    /// Runs `op` on one broker after another until it succeeds: open connections first, then
    /// the known brokers, then each bootstrap server. A broker that accepts the connection but
    /// fails the request does not stop the search. Fails with [`Error::Bootstrap`] naming every
    /// address tried and what happened there.
    async fn on_any_broker<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let open: Vec<Connection> = {
            let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            nodes
                .values()
                .filter_map(|s| match s {
                    NodeState::Ready(c) if !c.is_closed() => Some(c.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut failures = Vec::new();
        for conn in open {
            match op(conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => failures.push(format!("{}: {e}", conn.addr())),
            }
        }
        let mut known: Vec<(Option<i32>, String)> = self
            .metadata
            .snapshot()
            .brokers
            .iter()
            .map(|(&id, a)| (Some(id), a.clone()))
            .collect();
        known.sort();
        let bootstrap = self
            .config
            .bootstrap_servers
            .iter()
            .map(|a| (None, a.clone()));
        for (node, addr) in known.into_iter().chain(bootstrap) {
            let c = &self.config;
            let conn = match Connection::connect(
                &addr,
                &c.client_id,
                c.connection_setup_timeout,
                c.request_timeout,
            )
            .await
            {
                Ok(conn) => match node {
                    Some(node) => self
                        .set_node(node, NodeState::Ready(conn))
                        .expect("a Ready state yields its connection"),
                    None => conn,
                },
                Err(e) => {
                    failures.push(format!("{addr}: {e}"));
                    continue;
                }
            };
            match op(conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if node.is_none() {
                        conn.close();
                    }
                    failures.push(format!("{addr}: {e}"));
                }
            }
        }
        Err(Error::Bootstrap {
            servers: self.config.bootstrap_servers.join(","),
            details: failures.join("; "),
        })
    }

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

    /// The producer id and epoch to write in new batches; `None` without idempotence.
    /// With idempotence and no id yet, starts fetching one (unless a fetch is under way) and
    /// returns [`AwaitingProducerId`]: send nothing.
    fn producer_id(self: &Arc<Self>) -> Result<Option<ProducerIdEpoch>, AwaitingProducerId> {
        let Some(state) = &self.idempotence else {
            return Ok(None);
        };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = state.current {
            return Ok(Some(p));
        }
        if !state.fetching {
            state.fetching = true;
            let inner = self.clone();
            tokio::spawn(async move {
                let result = inner.init_producer_id().await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "InitProducerId failed; retrying");
                    tokio::time::sleep(inner.backoff(0)).await;
                }
                if let Some(state) = &inner.idempotence {
                    state.lock().unwrap_or_else(|e| e.into_inner()).fetching = false;
                }
                inner.wake.notify_one();
            });
        }
        Err(AwaitingProducerId)
    }

    /// Asks any broker for a producer id (InitProducerId without a transactional id, KIP-98),
    /// retrying retriable errors (a broker still loading its transaction state answers
    /// COORDINATOR_LOAD_IN_PROGRESS) for up to `max.block.ms`.
    pub(crate) async fn init_producer_id(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.max_block;
        let mut attempt = 0;
        loop {
            match self.try_init_producer_id().await {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "InitProducerId: retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_init_producer_id(&self) -> Result<(), Error> {
        let Some(state) = &self.idempotence else {
            return Ok(());
        };
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = self
            .on_any_broker(|conn| {
                let req = &req;
                async move {
                    let version = conn.version(ApiKey::InitProducerId)?;
                    conn.call(req, version).await
                }
            })
            .await?;
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            return Err(Error::ProducerId { code });
        }
        let id = ProducerIdEpoch {
            id: resp.producer_id.0,
            epoch: resp.producer_epoch,
        };
        tracing::debug!(
            producer_id = id.id,
            epoch = id.epoch,
            "idempotent producer id"
        );
        state.lock().unwrap_or_else(|e| e.into_inner()).current = Some(id);
        Ok(())
    }

    /// Moves to the next epoch after a sequence gap, as the Java client does for an idempotent
    /// producer: the broker accepts a higher epoch starting at sequence 0. At the last epoch, a new
    /// producer id is fetched instead.
    fn bump_epoch(&self) {
        if let Some(state) = &self.idempotence {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.current = match state.current {
                Some(p) if p.epoch < i16::MAX => Some(ProducerIdEpoch {
                    id: p.id,
                    epoch: p.epoch + 1,
                }),
                _ => None,
            };
            tracing::debug!(producer = ?state.current, "producer epoch bumped");
        }
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

    /// Sends one ProduceRequest and handles its answer in the background.
    fn send_produce(self: &Arc<Self>, conn: Connection, batches: Vec<Drained>) {
        let version = match conn.version(ApiKey::Produce) {
            Ok(v) => v,
            Err(e) => {
                for d in batches {
                    self.accumulator.fail(d, e.clone());
                }
                // Their partitions may send again: look once more.
                self.wake.notify_one();
                return;
            }
        };
        let acks = self.config.acks;
        let timeout = self.config.request_timeout;
        let encode = |correlation_id| {
            let topics = produce_topics(&batches);
            let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            let client_id = Some(conn.client_id());
            encode_produce_request(
                version,
                correlation_id,
                client_id,
                acks.as_i16(),
                timeout_ms,
                &topics,
            )
        };
        // Queued here, in the sender task, so requests reach the wire in drain order.
        let started = if acks == Acks::None {
            conn.start_frame_send_only(version, "Produce", encode)
                .map(Err)
        } else {
            conn.start_frame(version, "Produce", encode).map(Ok)
        };
        let inner = self.clone();
        tokio::spawn(async move {
            let result = match started {
                Ok(Ok(call)) => call.response::<ProduceRequest>().await.map(Some),
                Ok(Err(written)) => match written.await {
                    Ok(result) => result.map(|()| None),
                    Err(_) => Err(Error::Network {
                        broker: conn.addr().to_string(),
                        message: "connection closed".into(),
                    }),
                },
                Err(e) => Err(e),
            };
            inner.handle_produce(batches, result);
            inner.wake.notify_one();
        });
    }

    fn handle_produce(
        &self,
        batches: Vec<Drained>,
        result: Result<Option<ProduceResponse>, Error>,
    ) {
        let now = Instant::now();
        let resp = match result {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                for d in batches {
                    self.accumulator.complete(
                        d,
                        BatchAck {
                            base_offset: None,
                            log_append_time: None,
                        },
                    );
                }
                return;
            }
            Err(e) => {
                self.metadata.request_refresh();
                for mut d in batches {
                    // No answer: the broker may have written it.
                    d.batch.possibly_persisted = true;
                    self.retry_or_fail(d, e.clone(), now);
                }
                return;
            }
        };
        for d in batches {
            let answer = resp
                .responses
                .iter()
                .filter(|t| *t.name.0 == *d.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == d.partition);
            let Some(p) = answer else {
                let e = Error::Protocol {
                    broker: String::new(),
                    message: format!(
                        "no answer for {}-{} in the produce response",
                        d.topic, d.partition
                    ),
                };
                self.retry_or_fail(d, e, now);
                continue;
            };
            let code = ErrorCode(p.error_code);
            if d.batch.sequence.is_some() {
                match code {
                    // The broker already has this batch (a retry of one whose answer was lost).
                    ErrorCode::DUPLICATE_SEQUENCE_NUMBER => {
                        self.accumulator.complete(
                            d,
                            BatchAck {
                                base_offset: None,
                                log_append_time: None,
                            },
                        );
                        continue;
                    }
                    // Not the next batch: an earlier one is being retried; this one follows it.
                    // The next batch: a real gap (a lost batch), so a new epoch.
                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                        if self.accumulator.acknowledged_after(&d) =>
                    {
                        self.accumulator.complete(
                            d,
                            BatchAck {
                                base_offset: None,
                                log_append_time: None,
                            },
                        );
                        continue;
                    }
                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER | ErrorCode::UNKNOWN_PRODUCER_ID => {
                        let known_log_start = p.log_start_offset >= 0;
                        if code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                            && !self.accumulator.is_next_expected(&d)
                        {
                            // Retried after the batch before it, which the broker is still missing.
                        } else if code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER || known_log_start
                        {
                            self.bump_epoch();
                        }
                        let error = Error::Broker {
                            topic: d.topic.to_string(),
                            partition: Some(d.partition),
                            code,
                            message: p.error_message.as_ref().map(|m| m.to_string()),
                        };
                        self.retry_or_fail(d, error, now);
                        continue;
                    }
                    _ => {}
                }
            }
            if code.is_ok() {
                let ack = BatchAck {
                    base_offset: Some(p.base_offset),
                    log_append_time: (p.log_append_time_ms >= 0).then_some(p.log_append_time_ms),
                };
                self.accumulator.complete(d, ack);
                continue;
            }
            let error = Error::Broker {
                topic: d.topic.to_string(),
                partition: Some(d.partition),
                code,
                message: p.error_message.as_ref().map(|m| m.to_string()),
            };
            // Too large for the broker (its max.message.bytes): split and resend, in order.
            if code == ErrorCode::MESSAGE_TOO_LARGE {
                if let Some(d) = self.accumulator.split(d) {
                    self.accumulator.fail(d, error);
                }
                continue;
            }
            if invalidates_metadata(code) {
                self.metadata.request_refresh();
            }
            if code.is_retriable() {
                let mut d = d;
                // Written by the leader, not yet by enough replicas; or timed out while waiting.
                if matches!(
                    code,
                    ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND | ErrorCode::REQUEST_TIMED_OUT
                ) {
                    d.batch.possibly_persisted = true;
                }
                self.retry_or_fail(d, error, now);
            } else {
                self.accumulator.fail(d, error);
            }
        }
    }

    fn retry_or_fail(&self, d: Drained, error: Error, now: Instant) {
        if d.batch.attempts >= self.config.retries {
            self.accumulator.fail(d, error);
        } else {
            let backoff = self.backoff(d.batch.attempts);
            self.accumulator.retry(d, error, backoff, now);
        }
    }

    /// Ends every connection.
    fn close_connections(&self) {
        let nodes = std::mem::take(&mut *self.nodes.lock().unwrap_or_else(|e| e.into_inner()));
        for state in nodes.into_values() {
            if let NodeState::Ready(c) = state {
                c.close();
            }
        }
    }
}

/// Errors after which the producer's view of leaders is stale (Java: InvalidMetadataException).
fn invalidates_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::KAFKA_STORAGE_ERROR
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
            | ErrorCode::UNKNOWN_TOPIC_ID
            | ErrorCode::INCONSISTENT_TOPIC_ID
    )
}

fn reconnect_backoff(initial: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(1u32 << failures.min(10))
        .min(Duration::from_secs(1))
}

fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// The drained batches, grouped by topic, for one Produce request.
fn produce_topics(batches: &[Drained]) -> Vec<TopicBatches<'_>> {
    let mut topics: Vec<TopicBatches<'_>> = Vec::new();
    for d in batches {
        let data = (d.partition, d.batch.bytes());
        match topics.iter_mut().find(|t| *t.topic == *d.topic) {
            Some(t) => t.partitions.push(data),
            None => topics.push(TopicBatches {
                topic: &d.topic,
                partitions: vec![data],
            }),
        }
    }
    topics
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

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
