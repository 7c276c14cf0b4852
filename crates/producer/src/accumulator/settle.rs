//! What becomes of a batch after it was drained: acknowledged, failed for good, put back for a
//! retry, or split after the broker refused it as too large; and of queued batches whose
//! delivery timeout passed, or that a forced close aborts. A batch that ends here completes its
//! outcome, leaves the incomplete set and gives its memory back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer_protocol::batch::{BatchBuilder, RECORD_BATCH_OVERHEAD};

use crate::delivery::{BatchAck, BatchOutcome};
use crate::error::Error;

use super::batch::{next_sequence, ProducerBatch, ProducerIdEpoch};
use super::{Accumulator, Drained};

impl Accumulator {
    /// The broker acknowledged the batch.
    pub(crate) fn complete(&self, d: Drained, ack: BatchAck) {
        self.finish(d, Ok(ack));
    }

    /// The batch failed for good.
    pub(crate) fn fail(&self, d: Drained, error: Error) {
        self.finish(d, Err(error));
    }

    fn finish(&self, d: Drained, result: Result<BatchAck, Error>) {
        {
            let mut queue = d.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.in_flight = queue.in_flight.saturating_sub(1);
            if let (Ok(_), Some(seq)) = (&result, d.batch.sequence) {
                // Answers may be handled out of order; the broker's view only moves forward.
                let last = next_sequence(seq, d.batch.record_count.saturating_sub(1));
                queue.last_acked = queue.last_acked.max(last);
            }
        }
        self.settle(&d.batch, result);
    }

    /// Whether this batch is the next one the broker expects for its partition: its sequence
    /// follows the last acknowledged one. An OUT_OF_ORDER_SEQUENCE_NUMBER for any other batch
    /// only means an earlier one is being retried.
    pub(crate) fn is_next_expected(&self, d: &Drained) -> bool {
        let queue = d.queue.lock().unwrap_or_else(|e| e.into_inner());
        d.batch.sequence == Some(next_sequence(queue.last_acked, 1))
    }

    /// Whether the broker acknowledged later sequences of this batch's partition (same epoch):
    /// it accepts sequence n+1 only after n, so this batch is in the log although its own answer
    /// was lost. Resending it would only get OUT_OF_ORDER_SEQUENCE_NUMBER once it has left the
    /// broker's window of the last 5 batches.
    pub(crate) fn acknowledged_after(&self, d: &Drained) -> bool {
        let queue = d.queue.lock().unwrap_or_else(|e| e.into_inner());
        d.batch.sequence.is_some_and(|seq| {
            let last = i64::from(seq) + d.batch.record_count as i64 - 1;
            i64::from(queue.last_acked) >= last
        })
    }

    /// The broker refused the batch as too large (MESSAGE_TOO_LARGE): splits it, in order, into
    /// parts of at most half its size, which go back to the front of the queue. Their records
    /// keep their sequence numbers, so later batches stay valid. Hands the batch back when it
    /// cannot be split (a single record): the caller then fails it.
    pub(crate) fn split(&self, d: Drained) -> Option<Drained> {
        let bytes = d.batch.bytes();
        let decoded = match kafka_producer_protocol::decode_batches(&bytes) {
            Ok(mut batches) if d.batch.record_count > 1 && batches.len() == 1 => batches.remove(0),
            _ => return Some(d),
        };
        let limit = (bytes.len() / 2).max(RECORD_BATCH_OVERHEAD + 1);
        // Later batches of this topic grow no larger than the parts.
        if let Some(tq) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&d.topic)
        {
            tq.max_batch.fetch_min(limit, Ordering::Relaxed);
        }
        // (index of the first record, builder) of each part.
        let mut parts: Vec<(u32, BatchBuilder)> = Vec::new();
        for (i, r) in decoded.records.iter().enumerate() {
            let (key, value) = (r.key.as_deref(), r.value.as_deref());
            let appended = parts
                .last_mut()
                .and_then(|(_, b)| b.try_append(r.timestamp, key, value, &r.headers, limit));
            if appended.is_none() {
                let mut b = BatchBuilder::new(limit);
                b.try_append(r.timestamp, key, value, &r.headers, limit)
                    .expect("an empty batch takes any record");
                parts.push((i as u32, b));
            }
        }
        self.metrics.record(&self.metrics.splits, 1.0);
        let Drained {
            batch: parent,
            queue,
            ..
        } = d;
        let mut outcomes = Vec::with_capacity(parts.len());
        let mut batches = Vec::with_capacity(parts.len());
        let mut incomplete = self.incomplete.lock().unwrap_or_else(|e| e.into_inner());
        incomplete.remove(&parent.id);
        for (n, (start, builder)) in parts.into_iter().enumerate() {
            let record_count = builder.record_count() as usize;
            let outcome = Arc::new(BatchOutcome::new(
                parent.outcome.topic_arc().clone(),
                parent.outcome.partition(),
            ));
            outcome.set_records(record_count);
            let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
            incomplete.insert(id, outcome.clone());
            outcomes.push((start, outcome.clone()));
            let mut part = ProducerBatch {
                id,
                builder: Some(builder),
                sealed: None,
                closed: true,
                record_count,
                created: parent.created,
                outcome,
                // The parent's memory goes with the first part.
                reserved: if n == 0 { parent.reserved } else { 0 },
                attempts: parent.attempts,
                sequence: None,
                possibly_persisted: false,
                last_error: parent.last_error.clone(),
                max_record: parent.max_record,
                uncompressed: 0,
            };
            if let Some(seq) = parent.sequence {
                let producer = ProducerIdEpoch {
                    id: decoded.producer_id,
                    epoch: decoded.producer_epoch,
                };
                let seq = next_sequence(seq, start as usize);
                part.seal(self.compression, self.transactional, Some((producer, seq)));
            }
            batches.push(part);
        }
        drop(incomplete);
        parent.outcome.split(outcomes);
        let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.in_flight = queue.in_flight.saturating_sub(1);
        for part in batches.into_iter().rev() {
            if part.sequence.is_some() {
                queue.reinsert(part);
            } else {
                queue.batches.push_front(part);
            }
        }
        None
    }

    /// The first batch failure since the last call, with transactions (else always `None`).
    pub(crate) fn take_transaction_failure(&self) -> Option<Error> {
        self.transaction_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Whether a batch failed since the last `take_transaction_failure`.
    pub(crate) fn transaction_failure(&self) -> Option<Error> {
        self.transaction_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reports, once, that a sequenced batch failed for good since the last call.
    pub(crate) fn take_sequence_gap(&self) -> bool {
        self.sequence_gap.swap(false, Ordering::AcqRel)
    }

    fn settle(&self, batch: &ProducerBatch, result: Result<BatchAck, Error>) {
        let failed = result.is_err();
        if failed && batch.sequence.is_some() {
            self.sequence_gap.store(true, Ordering::Release);
        }
        if let (true, Err(e)) = (self.transactional, &result) {
            self.transaction_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| e.clone());
        }
        // Its memory is free before anyone awaiting the outcome can look: once `flush` has
        // returned, `buffer-available-bytes` is all of `buffer.memory` again.
        self.release(batch.reserved);
        // Counted before the outcome is seen, and only if it is this one: a batch a forced close
        // already failed (`abort_all`) is not counted again.
        batch.outcome.complete(result, || {
            if failed {
                self.count_errors(batch.outcome.topic(), batch.record_count);
            }
        });
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&batch.id);
    }

    /// Puts a batch back at the front of its queue after a retriable error, to go again after
    /// `backoff`; fails it instead when its delivery timeout has passed.
    pub(crate) fn retry(&self, mut d: Drained, error: Error, backoff: Duration, now: Instant) {
        d.batch.attempts += 1;
        if now.saturating_duration_since(d.batch.created) >= self.delivery_timeout {
            let err = self.timeout_error(&d.topic, d.partition, &d.batch, Some(error));
            expired(&d.topic, d.partition, &d.batch, &err);
            return self.fail(d, err);
        }
        d.batch.last_error = Some(error);
        let records = d.batch.record_count as f64;
        let m = &self.metrics;
        m.record(&m.retries, records);
        m.record(&m.topic(&d.topic).retries, records);
        let mut queue = d.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.in_flight = queue.in_flight.saturating_sub(1);
        queue.backoff_until = Some(now + backoff);
        queue.reinsert(d.batch);
    }

    fn timeout_error(
        &self,
        topic: &str,
        partition: i32,
        batch: &ProducerBatch,
        error: Option<Error>,
    ) -> Error {
        Error::DeliveryTimeout {
            topic: topic.to_string(),
            partition,
            timeout: self.delivery_timeout,
            possibly_persisted: batch.possibly_persisted,
            last_error: error.or_else(|| batch.last_error.clone()).map(Box::new),
        }
    }

    /// Fails the queued (not in flight) batches whose `delivery.timeout.ms` has passed, and
    /// returns when the next one would expire. A batch no attempt failed for (it was never sent)
    /// fails with `cause(topic, partition)` as its last error, if that gives one (its leader
    /// could not be reached).
    pub(crate) fn expire(
        &self,
        now: Instant,
        cause: &dyn Fn(&str, i32) -> Option<Error>,
    ) -> Option<Instant> {
        let mut next = None;
        for tq in self.all_topics() {
            for (p, queue) in tq.partitions.iter().enumerate() {
                let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
                while let Some(front) = queue.batches.front() {
                    let deadline = front.created + self.delivery_timeout;
                    if deadline > now {
                        next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                        break;
                    }
                    let batch = queue.batches.pop_front().expect("front exists");
                    let why = match batch.last_error {
                        None => cause(&tq.name, p as i32),
                        Some(_) => None,
                    };
                    let err = self.timeout_error(&tq.name, p as i32, &batch, why);
                    expired(&tq.name, p as i32, &batch, &err);
                    self.settle(&batch, Err(err));
                }
            }
        }
        next
    }

    /// Fails every queued (not in flight) batch, each with the error `error` makes for its
    /// topic and partition (an aborted or failed transaction: nothing more of it is sent).
    pub(crate) fn fail_queued(&self, error: impl Fn(&str, i32) -> Error) {
        for tq in self.all_topics() {
            for (p, queue) in tq.partitions.iter().enumerate() {
                let batches: Vec<ProducerBatch> = queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .batches
                    .drain(..)
                    .collect();
                for batch in batches {
                    self.settle(&batch, Err(error(&tq.name, p as i32)));
                }
            }
        }
    }

    /// Fails every queued batch with `error` (a forced close). In-flight batches are failed by
    /// the caller through their outcomes.
    pub(crate) fn abort_all(&self, error: &Error) {
        self.fail_queued(|_, _| error.clone());
        // In-flight batches: their outcome is decided now; a late answer is ignored.
        let in_flight =
            std::mem::take(&mut *self.incomplete.lock().unwrap_or_else(|e| e.into_inner()));
        for outcome in in_flight.into_values() {
            outcome.complete(Err(error.clone()), || {
                self.count_errors(outcome.topic(), outcome.records());
            });
        }
    }

    /// `record-error-*`: `records` of `topic` failed.
    fn count_errors(&self, topic: &str, records: usize) {
        let m = &self.metrics;
        m.record(&m.errors, records as f64);
        m.record(&m.topic(topic).errors, records as f64);
    }
}

/// The event for a batch whose `delivery.timeout.ms` has passed.
fn expired(topic: &str, partition: i32, batch: &ProducerBatch, error: &Error) {
    tracing::warn!(
        topic,
        partition,
        records = batch.record_count,
        error = %error,
        "batch expired (delivery.timeout.ms)"
    );
}
