//! Produce requests: building one per broker from drained batches, and handling its answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer_protocol::kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_producer_protocol::kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_producer_protocol::produce::{encode_produce_request, TopicBatches};
use kafka_producer_protocol::ErrorCode;

use super::answer::{left_out, unanswered, verdict, BatchFacts, Verdict};
use crate::accumulator::Drained;
use crate::config::{Acks, CompressionType};
use crate::connection::Connection;
use crate::delivery::BatchAck;
use crate::error::Error;
use crate::metadata::{format_addr, LeaderHint};
use crate::shared::Shared;

/// What is known of a batch written with acks=0, or without an answer of its own.
const NO_OFFSET: BatchAck = BatchAck {
    base_offset: None,
    log_append_time: None,
};

/// The first Produce version that may carry zstd batches.
const ZSTD_PRODUCE_VERSION: i16 = 7;

impl Shared {
    /// Fails batches that cannot be sent to this broker at all; their partitions may send
    /// again.
    fn fail_all(&self, batches: Vec<Drained>, e: Error) {
        for d in batches {
            self.accumulator().fail(d, e.clone());
        }
        self.wake_sender();
    }

    /// Sends one ProduceRequest and handles its answer in the background.
    pub(super) fn send_produce(self: &Arc<Self>, conn: Connection, batches: Vec<Drained>) {
        let txn = self.transactions();
        let version = match conn.version(ApiKey::Produce) {
            // Produce v12 adds the partition to the transaction (KIP-890): only under
            // transaction version 2.
            Ok(v) if txn.and_then(|t| t.version()).is_some_and(|tv| tv < 2) => v.min(11),
            Ok(v) => v,
            Err(e) => {
                self.fail_all(batches, e);
                return;
            }
        };
        // zstd came with Produce v7 (Kafka 2.1, KIP-110); an older broker would take the batch
        // and fail it with a less helpful error, or store what its readers cannot decompress.
        if version < ZSTD_PRODUCE_VERSION && self.config().compression.kind == CompressionType::Zstd
        {
            let e = Error::UnsupportedVersion {
                broker: conn.addr().to_string(),
                feature: "zstd compression (compression.type=zstd)".into(),
                kafka: "2.1",
                api: "Produce",
                needed: ZSTD_PRODUCE_VERSION,
                max: version,
            };
            self.fail_all(batches, e);
            return;
        }
        if let Some(txn) = txn {
            txn.batch_sent();
        }
        count_sent(&conn, &batches);
        let transactional_id = txn.map(|t| t.id());
        let acks = self.config().acks;
        let timeout = self.config().request_timeout;
        let encode = |correlation_id| {
            let topics = produce_topics(&batches);
            let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            let client_id = Some(conn.client_id());
            encode_produce_request(
                version,
                correlation_id,
                client_id,
                transactional_id,
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
        let shared = self.clone();
        let sent = Instant::now();
        self.spawn("produce", async move {
            #[cfg(test)]
            crate::task::injected_panic(&shared.config().client_id, "produce");
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
            if let Ok(Some(resp)) = &result {
                let (m, node) = conn.metrics();
                let now = Instant::now();
                let latency = now.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                m.record_at(&m.latency, latency, now);
                m.record_at(&node.latency, latency, now);
                m.record_at(&m.throttle, f64::from(resp.throttle_time_ms), now);
            }
            shared.handle_produce(conn.addr(), batches, result);
            shared.wake_sender();
        });
    }

    /// Turns the answer to one Produce request into each batch's verdict, and carries it out.
    fn handle_produce(
        &self,
        broker: &str,
        batches: Vec<Drained>,
        result: Result<Option<ProduceResponse>, Error>,
    ) {
        let now = Instant::now();
        let resp = match result {
            Ok(Some(resp)) => resp,
            // acks=0: written to the socket is all there is to know.
            Ok(None) => {
                for d in batches {
                    self.accumulator().complete(d, NO_OFFSET);
                }
                return;
            }
            Err(e) => {
                self.metadata().request_refresh();
                for d in batches {
                    let verdict = unanswered(self.retries_left(&d));
                    self.apply(broker, d, verdict, NO_OFFSET, |_| e.clone(), now);
                }
                return;
            }
        };
        let moved = self.apply_leader_hints(broker, &batches, &resp);
        for d in batches {
            let answer = resp
                .responses
                .iter()
                .filter(|t| *t.name.0 == *d.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == d.partition);
            let Some(p) = answer else {
                let verdict = left_out(self.retries_left(&d));
                let error = |d: &Drained| Error::Protocol {
                    broker: broker.to_string(),
                    message: format!(
                        "no answer for {}-{} in the produce response",
                        d.topic, d.partition
                    ),
                };
                self.apply(broker, d, verdict, NO_OFFSET, error, now);
                continue;
            };
            let code = ErrorCode(p.error_code);
            let idempotent = d.batch.sequence.is_some();
            // Each takes the partition's lock: asked only when the verdict reads it.
            let out_of_order = idempotent && code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER;
            let acknowledged_after = out_of_order && self.accumulator().acknowledged_after(&d);
            let facts = BatchFacts {
                idempotent,
                acknowledged_after,
                next_expected: out_of_order
                    && !acknowledged_after
                    && self.accumulator().is_next_expected(&d),
                log_start_known: p.log_start_offset >= 0,
                retries_left: self.retries_left(&d),
                leader_moved: moved
                    .iter()
                    .any(|(t, p)| **t == *d.topic && *p == d.partition),
            };
            let ack = BatchAck {
                base_offset: Some(p.base_offset),
                log_append_time: (p.log_append_time_ms >= 0).then_some(p.log_append_time_ms),
            };
            let error = |d: &Drained| Error::Broker {
                topic: d.topic.to_string(),
                partition: Some(d.partition),
                code,
                message: p.error_message.as_ref().map(|m| m.to_string()),
            };
            self.apply(broker, d, verdict(code, &facts), ack, error, now);
        }
    }

    /// Moves the partitions the answer refused to the newer leaders it names (KIP-951), in the
    /// metadata, so that their retries go there without waiting for a refresh. Returns the
    /// partitions now led by the leader named, at its epoch or a newer one, elsewhere than at
    /// `broker`: those this answer moved, and those an answer to another request in flight at
    /// the same time already moved. Their batches go again without backoff, as the Java client
    /// lets a batch whose partition's leader epoch changed since its last attempt do. An answer
    /// without hints, the common one, costs a scan of its partitions and no allocation.
    fn apply_leader_hints(
        &self,
        broker: &str,
        batches: &[Drained],
        resp: &ProduceResponse,
    ) -> Vec<(String, i32)> {
        // As the Java client: only these two errors carry a hint it takes.
        let hinted = |p: &&PartitionProduceResponse| {
            matches!(
                ErrorCode(p.error_code),
                ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::FENCED_LEADER_EPOCH
            ) && p.current_leader.leader_id.0 >= 0
                && p.current_leader.leader_epoch >= 0
        };
        let any = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .any(|p| hinted(&p));
        if !any {
            return Vec::new();
        }
        let hints: Vec<LeaderHint<'_>> = resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partition_responses
                    .iter()
                    .filter(hinted)
                    .map(move |p| LeaderHint {
                        topic: &t.name.0,
                        partition: p.index,
                        leader: p.current_leader.leader_id.0,
                        epoch: p.current_leader.leader_epoch,
                    })
            })
            // Only what was asked: the answer cannot move partitions it was not sent.
            .filter(|h| {
                batches
                    .iter()
                    .any(|d| *d.topic == *h.topic && d.partition == h.partition)
            })
            .collect();
        let endpoints: Vec<(i32, String)> = resp
            .node_endpoints
            .iter()
            .map(|e| (e.node_id.0, format_addr(&e.host, e.port)))
            .collect();
        // The metadata logs each partition it moves.
        self.metadata().apply_leader_hints(&hints, &endpoints);
        let cluster = self.metadata().snapshot();
        hints
            .iter()
            .filter(|h| {
                // Never at once to the broker that just refused.
                cluster.leads(h.topic, h.partition, h.leader, h.epoch)
                    && cluster.brokers.get(&h.leader).is_some_and(|a| a != broker)
            })
            .map(|h| (h.topic.to_string(), h.partition))
            .collect()
    }

    /// Carries out `verdict` on the batch: `ack` is the answer's, for [`Verdict::Complete`];
    /// `error`, what it is retried after or fails with, is built only when needed.
    fn apply(
        &self,
        broker: &str,
        mut d: Drained,
        verdict: Verdict,
        ack: BatchAck,
        error: impl FnOnce(&Drained) -> Error,
        now: Instant,
    ) {
        match verdict {
            Verdict::Complete => self.accumulator().complete(d, ack),
            Verdict::CompleteDuplicate => self.accumulator().complete(d, NO_OFFSET),
            Verdict::Split => {
                let error = error(&d);
                tracing::info!(
                    topic = %d.topic,
                    partition = d.partition,
                    broker,
                    records = d.batch.record_count(),
                    "batch too large for the broker; splitting it"
                );
                if let Some(d) = self.accumulator().split(d) {
                    self.accumulator().fail(d, error);
                }
            }
            Verdict::Retry {
                possibly_persisted,
                refresh_metadata,
                bump_epoch,
                at_once,
            } => {
                let error = error(&d);
                self.side_effects(&d, &error, refresh_metadata, bump_epoch);
                if possibly_persisted {
                    d.batch.possibly_persisted = true;
                }
                let backoff = if at_once {
                    Duration::ZERO
                } else {
                    self.backoff(d.batch.attempts)
                };
                tracing::warn!(
                    topic = %d.topic,
                    partition = d.partition,
                    broker,
                    attempt = d.batch.attempts + 1,
                    records = d.batch.record_count(),
                    backoff_ms = backoff.as_millis() as u64,
                    error = %error,
                    "retrying batch"
                );
                self.accumulator().retry(d, error, backoff, now);
            }
            Verdict::Fail {
                refresh_metadata,
                bump_epoch,
            } => {
                let error = error(&d);
                tracing::warn!(
                    topic = %d.topic,
                    partition = d.partition,
                    broker,
                    records = d.batch.record_count(),
                    error = %error,
                    "batch failed"
                );
                self.side_effects(&d, &error, refresh_metadata, bump_epoch);
                // A transactional producer fenced, or not allowed, is done. Any other failure
                // makes the transaction abortable (`settle` records it).
                let fatal = error.code().is_some_and(crate::transaction::is_fatal_code);
                match self.transactions() {
                    Some(txn) if fatal => {
                        self.accumulator().fail(d, error.clone());
                        self.fail(Error::TransactionFatal {
                            transactional_id: txn.id().to_string(),
                            reason: Box::new(error),
                        });
                    }
                    _ => self.accumulator().fail(d, error),
                }
            }
        }
    }

    fn side_effects(&self, d: &Drained, error: &Error, refresh_metadata: bool, bump_epoch: bool) {
        if refresh_metadata {
            self.metadata().request_refresh();
        }
        if bump_epoch {
            self.bump_epoch(Some((&d.topic, d.partition, error)));
        }
    }

    fn retries_left(&self, d: &Drained) -> bool {
        d.batch.attempts < self.config().retries
    }
}

/// Counts a Produce request's batches in the metrics, as the Java client does when it sends them
/// (a retried batch counts again): per topic its records, bytes and compression; per batch its
/// size, time queued, compression and largest record; per request its records.
fn count_sent(conn: &Connection, batches: &[Drained]) {
    let (m, _) = conn.metrics();
    let now = Instant::now();
    let at = m.ms(now);
    let mut records = 0;
    for d in batches {
        let b = &d.batch;
        let (count, size, ratio) = (
            b.record_count() as f64,
            b.size() as f64,
            b.compression_ratio(),
        );
        let topic = m.topic(&d.topic);
        topic.records.record_at_ms(count, at);
        topic.bytes.record_at_ms(size, at);
        topic.compression.record_at_ms(ratio, at);
        m.batch_size.record_at_ms(size, at);
        m.compression_rate.record_at_ms(ratio, at);
        let queued = now.saturating_duration_since(b.created());
        m.queue_time.record_at_ms(queued.as_secs_f64() * 1000.0, at);
        m.record_size.record_at_ms(b.max_record() as f64, at);
        records += b.record_count();
    }
    m.records_per_request.record_at_ms(records as f64, at);
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
