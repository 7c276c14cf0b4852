//! The queues batches wait in: per topic, one queue per partition, oldest batch first. A
//! partition's queue also keeps what decides when its front batch may go (batches in flight,
//! retry backoff, the idempotent sequence state), so that a retried batch goes back in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::partitioner::{Sticky, StickyCount};

use super::batch::{next_sequence, ProducerBatch, ProducerIdEpoch};

/// The queues of one topic.
pub(crate) struct TopicQueues {
    pub(crate) name: Arc<str>,
    pub(super) partitions: Vec<Arc<Mutex<PartitionQueue>>>,
    pub(crate) sticky: Sticky,
    /// With compression: compressed / uncompressed size of this topic's batches, as estimated
    /// from the batches sealed so far (an `f32`'s bits; starts at 1.0).
    pub(super) compression_ratio: AtomicU32,
    /// The most a batch of this topic may grow to (bytes as sent): lowered when the broker
    /// refuses a batch as too large, so batches stop growing past what the topic takes.
    pub(super) max_batch: AtomicUsize,
}

impl TopicQueues {
    pub(super) fn new(name: Arc<str>, partitions: Vec<Arc<Mutex<PartitionQueue>>>) -> Self {
        TopicQueues {
            name,
            partitions,
            sticky: Sticky::default(),
            compression_ratio: AtomicU32::new(1.0f32.to_bits()),
            max_batch: AtomicUsize::new(usize::MAX),
        }
    }
}

/// The batches of one partition, oldest first; the last one takes new records.
#[derive(Default)]
pub(crate) struct PartitionQueue {
    pub(super) batches: VecDeque<ProducerBatch>,
    /// Batches of this partition in requests whose answers have not come back.
    pub(super) in_flight: usize,
    /// No retry before this instant.
    pub(super) backoff_until: Option<Instant>,
    /// Idempotence: the producer id and epoch this partition's sequences belong to.
    pub(super) producer: Option<ProducerIdEpoch>,
    /// Idempotence: the sequence of the next new batch.
    pub(super) next_sequence: i32,
    /// Idempotence: the last sequence the broker acknowledged under `producer` (-1: none).
    pub(super) last_acked: i32,
    /// Bytes (uncompressed) of the last batch drained: the next batch starts with room for as
    /// many, so one that grows as large is not copied at every doubling of its buffer.
    pub(super) last_batch_size: usize,
    /// What the sticky partitioner put here since it last chose this partition.
    pub(super) sticky: StickyCount,
}

impl PartitionQueue {
    /// Whether the front batch may go now, with `limit` batches of a partition in flight at most.
    /// A retried batch (it has a sequence) goes alone, so retries never overtake each other.
    pub(super) fn can_send(
        &self,
        now: Instant,
        limit: usize,
        producer: Option<ProducerIdEpoch>,
    ) -> bool {
        let Some(front) = self.batches.front() else {
            return false;
        };
        if self.backoff_until.is_some_and(|u| u > now) {
            return false;
        }
        // A new epoch starts its sequences at 0: only once the old epoch's batches are answered.
        if producer.is_some() && self.producer != producer && self.in_flight > 0 {
            return false;
        }
        if front.sequence.is_some() {
            self.in_flight == 0
        } else {
            self.in_flight < limit
        }
    }

    /// Moves this partition to a new producer id/epoch: sequences restart at 0, and batches
    /// waiting for a retry are renumbered in their order.
    pub(super) fn restart_sequences(&mut self, producer: ProducerIdEpoch) {
        self.producer = Some(producer);
        self.next_sequence = 0;
        self.last_acked = -1;
        for batch in self.batches.iter_mut().filter(|b| b.sequence.is_some()) {
            let seq = self.next_sequence;
            self.next_sequence = next_sequence(seq, batch.record_count);
            batch.resequence(producer, seq);
        }
    }

    /// Puts a batch back in front, in sequence order among the other batches waiting for a retry.
    pub(super) fn reinsert(&mut self, batch: ProducerBatch) {
        let at = match batch.sequence {
            Some(seq) => self
                .batches
                .iter()
                .position(|b| b.sequence.is_none_or(|s| s > seq))
                .unwrap_or(self.batches.len()),
            None => 0,
        };
        self.batches.insert(at, batch);
    }
}
