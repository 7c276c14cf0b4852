//! Produce requests: building one per broker from drained batches, and handling its answer.

use std::sync::Arc;
use std::time::Instant;

use kafka_producer_protocol::kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_producer_protocol::produce::{encode_produce_request, TopicBatches};
use kafka_producer_protocol::ErrorCode;

use super::Inner;
use crate::accumulator::Drained;
use crate::config::Acks;
use crate::connection::Connection;
use crate::delivery::BatchAck;
use crate::error::Error;

impl Inner {
    /// Sends one ProduceRequest and handles its answer in the background.
    pub(super) fn send_produce(self: &Arc<Self>, conn: Connection, batches: Vec<Drained>) {
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
