//! What the fake broker keeps: one partition's records with their offsets and the idempotent
//! producer state Kafka keeps per partition (its `ProducerStateManager`); and the log of the
//! transactional requests that arrived, for tests to check the order a producer sent them in.
//!
//! Plain synchronous code; the connection tasks call it under the broker's state lock.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_protocol::{DecodedBatch, ErrorCode, Header};

/// Batches remembered per producer and partition for duplicate detection: Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, which is also why a producer may have at most
/// five requests in flight per partition with idempotence.
const RETAINED_BATCHES: usize = 5;

/// A record as the fake broker stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (the batch's base timestamp plus the record's delta).
    pub timestamp: i64,
    /// The key; `None` is Kafka's null.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<Header>,
    /// The batch's producer id; -1 without idempotence.
    pub producer_id: i64,
    /// The batch's producer epoch; -1 without idempotence.
    pub producer_epoch: i16,
    /// The record's own sequence number (the batch's base sequence plus its index); -1 without
    /// idempotence.
    pub sequence: i32,
}

impl StoredRecord {
    /// The key as UTF-8, if it is present and valid.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8, if it is present and valid.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// A transactional request as the fake broker saw and answered it
/// ([`FakeBroker::transaction_log`](super::FakeBroker::transaction_log)): FindCoordinator (both
/// key types), InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
/// TxnOffsetCommit, EndTxn, and Produce requests that carry a transactional id (not with
/// [`Storage::Discard`](super::Storage::Discard), which keeps nothing). Requests a rule closed
/// the connection on before they were processed are not in the log
/// ([`FakeBroker::request_count`](super::FakeBroker::request_count) counts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRequest {
    /// The API.
    pub api: ApiKey,
    /// The version it came at.
    pub version: i16,
    /// The transactional id it names (FindCoordinator: the key, when the key type is 1).
    pub transactional_id: Option<String>,
    /// The producer id and epoch it carried (Produce: the first batch's); -1 when it carries
    /// none, as FindCoordinator and a first InitProducerId.
    pub producer: (i64, i16),
    /// What it asked for, per API.
    pub detail: TxnDetail,
    /// What it was answered: NONE, the top-level error, or the first partition's (or
    /// coordinator key's) error.
    pub error: ErrorCode,
}

/// The API-specific part of a [`TxnRequest`]. Partitions are listed in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnDetail {
    /// FindCoordinator: key type 0 (a group) or 1 (a transactional id), and the keys.
    FindCoordinator {
        /// 0: group, 1: transaction.
        key_type: i8,
        /// One key before v4; v4+ may batch several.
        keys: Vec<String>,
    },
    /// InitProducerId: the producer id and epoch answered (-1 on error).
    InitProducerId {
        /// The producer id and epoch answered.
        answered: (i64, i16),
    },
    /// AddPartitionsToTxn (v0..=3).
    AddPartitionsToTxn {
        /// The partitions to add.
        partitions: Vec<(String, i32)>,
    },
    /// AddOffsetsToTxn.
    AddOffsetsToTxn {
        /// The consumer group.
        group: String,
    },
    /// TxnOffsetCommit.
    TxnOffsetCommit {
        /// The consumer group.
        group: String,
        /// Topic, partition and the offset to commit.
        offsets: Vec<(String, i32, i64)>,
    },
    /// EndTxn.
    EndTxn {
        /// Commit (true) or abort.
        commit: bool,
        /// Under v5 (KIP-890): the producer id and epoch answered, the next epoch.
        answered: Option<(i64, i16)>,
    },
    /// Produce with a transactional id.
    Produce {
        /// The partitions it carries data for.
        partitions: Vec<(String, i32)>,
    },
}

/// The result of appending one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Appended {
    /// Written at this base offset.
    New(i64),
    /// A retry of one of the producer's last five batches: not written again. Kafka answers
    /// such a batch with NONE and the offset it was first written at, so that is what the client
    /// gets.
    Duplicate(i64),
}

impl Appended {
    pub(super) fn base_offset(self) -> i64 {
        match self {
            Appended::New(o) | Appended::Duplicate(o) => o,
        }
    }
}

/// One partition's log.
#[derive(Debug, Default)]
pub(super) struct PartitionLog {
    records: Vec<StoredRecord>,
    next_offset: i64,
    producers: HashMap<i64, ProducerState>,
}

/// What the partition remembers of one idempotent producer.
#[derive(Debug)]
struct ProducerState {
    epoch: i16,
    /// Its last batches, oldest first; never empty.
    recent: VecDeque<BatchMeta>,
}

#[derive(Debug, Clone, Copy)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

impl PartitionLog {
    pub(super) fn records(&self) -> &[StoredRecord] {
        &self.records
    }

    /// Assigns offsets to `count` records without keeping them (the sink); returns the first.
    pub(super) fn skip(&mut self, count: i64) -> i64 {
        let base = self.next_offset;
        self.next_offset += count;
        base
    }

    /// Validates `batch` as a Kafka broker does and appends it.
    ///
    /// Offset deltas must run 0, 1, 2, ... and the batch must not be empty (INVALID_RECORD).
    /// With a producer id (>= 0), per producer: an epoch older than the one seen last is
    /// INVALID_PRODUCER_EPOCH; a repeat of one of its last five batches (same epoch, same
    /// sequence range) is a [`Appended::Duplicate`]; a new epoch must start at sequence 0 and
    /// otherwise the base sequence must follow the last one (wrapping after `i32::MAX`), else
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    ///
    /// Stricter than Kafka in one way: Kafka accepts any sequence from a producer it has no state
    /// for, because retention may have deleted that state; in a test nothing is deleted, so a
    /// first batch that does not start at 0 is a client bug and is rejected.
    pub(super) fn append(&mut self, batch: DecodedBatch) -> Result<Appended, ErrorCode> {
        let count = i32::try_from(batch.records.len()).map_err(|_| ErrorCode::INVALID_RECORD)?;
        let contiguous = batch
            .records
            .iter()
            .zip(0..)
            .all(|(r, i)| r.offset_delta == i);
        if count == 0 || !contiguous || batch.last_offset_delta != count - 1 {
            return Err(ErrorCode::INVALID_RECORD);
        }
        let idempotent = batch.producer_id >= 0;
        if idempotent {
            let first_seq = batch.base_sequence;
            let last_seq = increment_sequence(first_seq, count - 1);
            match self.producers.get(&batch.producer_id) {
                Some(p) if batch.producer_epoch < p.epoch => {
                    return Err(ErrorCode::INVALID_PRODUCER_EPOCH)
                }
                Some(p) if batch.producer_epoch == p.epoch => {
                    if let Some(dup) = p
                        .recent
                        .iter()
                        .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
                    {
                        return Ok(Appended::Duplicate(dup.base_offset));
                    }
                    let last = p.recent.back().map_or(-1, |b| b.last_seq);
                    if first_seq < 0 || first_seq != increment_sequence(last, 1) {
                        return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                    }
                }
                // A producer not seen here yet, or a new epoch of one.
                _ if first_seq != 0 => return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
                _ => {}
            }
        }

        let base_offset = self.next_offset;
        self.next_offset += i64::from(count);
        if idempotent {
            let state = self
                .producers
                .entry(batch.producer_id)
                .or_insert_with(|| ProducerState {
                    epoch: batch.producer_epoch,
                    recent: VecDeque::with_capacity(RETAINED_BATCHES),
                });
            if state.epoch != batch.producer_epoch {
                state.epoch = batch.producer_epoch;
                state.recent.clear();
            }
            if state.recent.len() == RETAINED_BATCHES {
                state.recent.pop_front();
            }
            state.recent.push_back(BatchMeta {
                first_seq: batch.base_sequence,
                last_seq: increment_sequence(batch.base_sequence, count - 1),
                base_offset,
            });
        }
        for (record, index) in batch.records.into_iter().zip(0..) {
            self.records.push(StoredRecord {
                offset: base_offset + i64::from(index),
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
                producer_id: batch.producer_id,
                producer_epoch: batch.producer_epoch,
                sequence: if idempotent {
                    increment_sequence(batch.base_sequence, index)
                } else {
                    -1
                },
            });
        }
        Ok(Appended::New(base_offset))
    }
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 as Kafka's
/// `DefaultRecordBatch.incrementSequence` does.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

#[cfg(test)]
mod tests {
    use kafka_producer_protocol::{decode_batches, BatchBuilder, BatchParams};

    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> DecodedBatch {
        let mut b = BatchBuilder::new(256);
        for v in values {
            b.try_append(1, None, Some(v.as_bytes()), &[], usize::MAX)
                .unwrap();
        }
        let bytes = b.finish(BatchParams {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            ..BatchParams::default()
        });
        decode_batches(&bytes).unwrap().pop().unwrap()
    }

    fn values(log: &PartitionLog) -> Vec<&str> {
        log.records().iter().filter_map(|r| r.value_str()).collect()
    }

    #[test]
    fn without_a_producer_id_everything_is_appended_even_twice() {
        let mut log = PartitionLog::default();
        assert_eq!(
            log.append(batch(-1, -1, -1, &["a", "b"])),
            Ok(Appended::New(0))
        );
        assert_eq!(
            log.append(batch(-1, -1, -1, &["a", "b"])),
            Ok(Appended::New(2))
        );
        assert_eq!(values(&log), ["a", "b", "a", "b"]);
        assert_eq!(log.records()[3].offset, 3);
        assert_eq!(log.records()[3].sequence, -1);
    }

    #[test]
    fn sequences_must_follow_on_and_start_at_zero() {
        let mut log = PartitionLog::default();
        assert_eq!(
            log.append(batch(1000, 0, 1, &["x"])),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "a first batch starts at 0"
        );
        assert_eq!(
            log.append(batch(1000, 0, 0, &["a", "b"])),
            Ok(Appended::New(0))
        );
        assert_eq!(
            log.append(batch(1000, 0, 3, &["c"])),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "a gap"
        );
        assert_eq!(log.append(batch(1000, 0, 2, &["c"])), Ok(Appended::New(2)));
        assert_eq!(log.records()[2].sequence, 2);
        // Another producer has its own sequences.
        assert_eq!(log.append(batch(1001, 0, 0, &["z"])), Ok(Appended::New(3)));
        assert_eq!(values(&log), ["a", "b", "c", "z"]);
    }

    #[test]
    fn a_retry_of_a_recent_batch_is_answered_with_its_first_offset_and_not_written() {
        let mut log = PartitionLog::default();
        for seq in 0..6 {
            log.append(batch(7, 0, seq, &["v"])).unwrap();
        }
        // Batches with sequences 1..=5 are remembered; 0 has dropped out.
        assert_eq!(
            log.append(batch(7, 0, 1, &["v"])),
            Ok(Appended::Duplicate(1))
        );
        assert_eq!(
            log.append(batch(7, 0, 5, &["v"])),
            Ok(Appended::Duplicate(5))
        );
        assert_eq!(
            log.append(batch(7, 0, 0, &["v"])),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        // Same base sequence, different length: not the same batch.
        assert_eq!(
            log.append(batch(7, 0, 5, &["v", "w"])),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(log.records().len(), 6);
    }

    #[test]
    fn epochs_fence_older_ones_and_restart_sequences() {
        let mut log = PartitionLog::default();
        log.append(batch(7, 1, 0, &["a"])).unwrap();
        log.append(batch(7, 1, 1, &["b"])).unwrap();
        assert_eq!(
            log.append(batch(7, 0, 2, &["old"])),
            Err(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(
            log.append(batch(7, 2, 2, &["c"])),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "a new epoch starts at 0"
        );
        assert_eq!(log.append(batch(7, 2, 0, &["c"])), Ok(Appended::New(2)));
        // The old epoch's batches are forgotten: no duplicate across epochs.
        assert_eq!(
            log.append(batch(7, 2, 1, &["d"])),
            Ok(Appended::New(3)),
            "sequence 1 of epoch 2 is new even though epoch 1 had one"
        );
        assert_eq!(
            log.append(batch(7, 1, 1, &["b"])),
            Err(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 0), 5);

        let mut log = PartitionLog::default();
        log.append(batch(9, 0, 0, &["a"])).unwrap();
        // Force the remembered last sequence to just below the wrap.
        log.producers
            .get_mut(&9)
            .unwrap()
            .recent
            .back_mut()
            .unwrap()
            .last_seq = i32::MAX - 1;
        assert_eq!(
            log.append(batch(9, 0, i32::MAX, &["b", "c"])),
            Ok(Appended::New(1))
        );
        assert_eq!(log.records()[2].sequence, 0, "the second record wrapped");
        assert_eq!(log.append(batch(9, 0, 1, &["d"])), Ok(Appended::New(3)));
    }

    #[test]
    fn skip_assigns_offsets_without_records() {
        let mut log = PartitionLog::default();
        assert_eq!(log.skip(10), 0);
        assert_eq!(log.skip(5), 10);
        assert_eq!(log.append(batch(-1, -1, -1, &["a"])), Ok(Appended::New(15)));
    }
}
