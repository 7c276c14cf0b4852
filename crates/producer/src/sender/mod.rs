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

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_producer_protocol::kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use tracing::Instrument;

use crate::accumulator::Allowed;
use crate::error::Error;
use crate::shared::Shared;
use crate::transaction::Gate;

use self::idempotence::AwaitingProducerId;
pub(crate) use self::idempotence::Idempotence;
pub(crate) use self::nodes::Nodes;

mod answer;
mod idempotence;
mod nodes;
mod produce;

/// The sender task: drain ready batches, send them, sleep until the next linger deadline or wake-up.
pub(crate) async fn run_sender(shared: Arc<Shared>) {
    let c = shared.config();
    loop {
        let now = Instant::now();
        let cluster = shared.metadata().snapshot();
        let closing = shared.is_closing();
        #[cfg(test)]
        if shared.accumulator().pending_records() > 0 {
            crate::task::injected_panic(&c.client_id, "sender");
        }
        // A batch that expires before it was ever sent says why, when its leader cannot be
        // reached: the connection's error.
        let unreachable = |topic: &str, partition: i32| {
            let leader = cluster.topics.get(topic)?.leader(partition)?;
            shared.nodes().connection_error(leader)
        };
        let next_expiry = shared.accumulator().expire(now, &unreachable);
        if shared.accumulator().take_sequence_gap() {
            shared.bump_epoch(None);
        }
        // With idempotence, nothing goes before the producer has an id.
        let (producer, mut nodes_to_send) = match shared.producer_id() {
            Ok(p) => (p, true),
            Err(AwaitingProducerId) => (None, false),
        };
        // With transactions: nothing goes outside one, and under version 1 a partition's
        // batches only once the coordinator added it.
        let gate = shared.transactions().map(|txn| {
            // A record of the open transaction failed: nothing more of it goes.
            if let Some(error) = shared.accumulator().transaction_failure() {
                txn.batch_failed(&error);
            }
            if let Some(error) = txn.abort_reason() {
                shared.accumulator().fail_queued(|_, _| error.clone());
            }
            txn.gate()
        });
        let added = match &gate {
            Some(Gate::Closed) => {
                nodes_to_send = false;
                None
            }
            Some(Gate::Added(added)) => Some(added),
            _ => None,
        };
        let allowed = |topic: &str, partition: i32| {
            added.is_some_and(|a| a.get(topic).is_some_and(|p| p.contains(&partition)))
        };
        let allowed: Allowed<'_> = match added {
            Some(_) => Some(&allowed),
            None => None,
        };
        let ready = shared
            .accumulator()
            .ready_for(&cluster, now, closing, producer, allowed);
        if ready.unknown_leader {
            shared.metadata().request_refresh();
        }
        if !ready.held.is_empty() && nodes_to_send {
            shared.add_partitions(ready.held);
        }
        let mut next = earliest(ready.next_check, next_expiry);
        for node in ready.nodes.into_iter().filter(|_| nodes_to_send) {
            let conn = shared.connection(node, now);
            // For `partitioner.availability.timeout.ms`: whether the node's batches can go.
            let can_send = conn
                .as_ref()
                .is_some_and(|conn| conn.in_flight() < c.max_in_flight);
            shared.accumulator().node_ready(node, now, can_send);
            match conn {
                Some(conn) if can_send => {
                    let batches = shared.accumulator().drain_for(
                        &cluster,
                        node,
                        c.max_request_size,
                        now,
                        producer,
                        allowed,
                    );
                    if !batches.is_empty() {
                        shared.send_produce(conn, batches);
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
        if closing && shared.accumulator().stop_if_drained() {
            break;
        }
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.sender_woken() => {}
            _ = sleep => {}
        }
    }
    shared.nodes().close_all();
    shared.set_stopped();
    shared.metadata().refresh.notify_one();
}

/// The metadata task: refresh when asked (at most once per `retry.backoff.ms`) and when the
/// snapshot is older than `metadata.max.age.ms`.
pub(crate) async fn run_metadata(shared: Arc<Shared>) {
    let c = shared.config();
    let mut stopped = shared.stopped();
    let mut failures = 0u32;
    loop {
        let due = shared
            .metadata()
            .snapshot()
            .updated
            .map_or_else(Instant::now, |u| u + c.metadata_max_age);
        if !shared.metadata().take_forced() {
            tokio::select! {
                _ = shared.metadata().refresh.notified() => {}
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stopped.wait_for(|&s| s) => return,
            }
            shared.metadata().take_forced();
        }
        if *stopped.borrow() {
            return;
        }
        match shared.refresh_metadata().await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "metadata refresh failed");
                shared.metadata().request_refresh();
                shared.metadata().bump();
            }
        }
        shared.wake_sender();
        // Never more than one refresh per backoff, however many ask.
        tokio::time::sleep(shared.backoff(failures.saturating_sub(1))).await;
    }
}

impl Shared {
    /// One Metadata request for the topics in use; replaces the snapshot. Runs in a
    /// `metadata refresh` span with the number of `topics` asked for and the address of the
    /// `broker` asked (the last one tried), so the changes the new metadata brings are logged
    /// inside it.
    pub(crate) async fn refresh_metadata(&self) -> Result<(), Error> {
        let topics: Vec<MetadataRequestTopic> = self
            .metadata()
            .wanted()
            .into_iter()
            .map(|t| {
                MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t))))
            })
            .collect();
        let span = tracing::info_span!(
            "metadata refresh",
            topics = topics.len(),
            broker = tracing::field::Empty
        );
        let req = MetadataRequest::default()
            .with_topics(Some(topics))
            // As the Java producer: the broker's auto.create.topics.enable decides.
            .with_allow_auto_topic_creation(true);
        let req = &req;
        let asked = span.clone();
        async move {
            let resp = self
                .on_any_broker(|conn| {
                    asked.record("broker", conn.addr());
                    async move {
                        let version = conn.version(ApiKey::Metadata)?;
                        conn.call(req, version).await
                    }
                })
                .await?;
            let now = Instant::now();
            self.metadata()
                .update(|cluster| Some((cluster.updated_with(&resp, now), ())));
            self.metrics().metadata_updated();
            Ok(())
        }
        .instrument(span)
        .await
    }

    pub(crate) fn backoff(&self, attempts: u32) -> Duration {
        let c = self.config();
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
