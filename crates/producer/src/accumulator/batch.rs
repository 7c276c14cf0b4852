//! One batch of one partition: filled by `append`, sealed once at its first drain so that every
//! retry resends the same bytes, and with idempotence stamped with its producer id, epoch and
//! base sequence (the sequence arithmetic is here too).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_producer_protocol::batch::{BatchBuilder, BatchParams, Compression};

use crate::delivery::BatchOutcome;
use crate::error::Error;

/// The identity the broker deduplicates by (KIP-98): a producer id and its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdEpoch {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// Sequences wrap from `i32::MAX` to 0, as the broker expects.
pub(super) fn next_sequence(seq: i32, records: usize) -> i32 {
    ((i64::from(seq) + records as i64) % (i64::from(i32::MAX) + 1)) as i32
}

/// One batch: being filled, then sealed (its bytes fixed for every retry), then in flight.
pub(crate) struct ProducerBatch {
    pub(super) id: u64,
    pub(super) builder: Option<BatchBuilder>,
    pub(super) sealed: Option<Bytes>,
    /// No more records go in (it grew as large as it may, or was drained).
    pub(super) closed: bool,
    pub(super) record_count: usize,
    pub(super) created: Instant,
    pub(super) outcome: Arc<BatchOutcome>,
    /// Bytes of `buffer.memory` this batch holds.
    pub(super) reserved: usize,
    pub(crate) attempts: u32,
    /// Idempotence: the base sequence written in the batch, fixed at first drain.
    pub(crate) sequence: Option<i32>,
    /// A request carrying it got no answer (or one saying so): the broker may have written it.
    pub(crate) possibly_persisted: bool,
    pub(super) last_error: Option<Error>,
    /// The largest record's size, as a batch of it alone (for `record-size-max`).
    pub(super) max_record: usize,
    /// Bytes before compression, known once sealed (for `compression-rate-avg`).
    pub(super) uncompressed: usize,
}

impl ProducerBatch {
    /// A batch goes once `linger.ms` has passed since it started, or once it is closed: it can
    /// take no more records. Without growth it closes at `batch.size`, so a full batch goes at
    /// once (the Java rule); with growth it keeps filling past `batch.size` until `linger.ms`, up
    /// to `batch.max.size` (see `Accumulator::append`).
    pub(super) fn is_ready(&self, now: Instant, linger: Duration) -> bool {
        self.closed || now.saturating_duration_since(self.created) >= linger
    }

    /// Seals the batch (header, compression, CRC) if it is not sealed yet. Sealing happens once,
    /// so a retry resends exactly the same batch.
    pub(super) fn seal(
        &mut self,
        compression: Compression,
        transactional: bool,
        producer: Option<(ProducerIdEpoch, i32)>,
    ) {
        if let Some(builder) = self.builder.take() {
            self.uncompressed = builder.size_in_bytes();
            let mut params = BatchParams {
                compression,
                transactional,
                ..BatchParams::default()
            };
            if let Some((p, seq)) = producer {
                params.producer_id = p.id;
                params.producer_epoch = p.epoch;
                params.base_sequence = seq;
                self.sequence = Some(seq);
            }
            self.sealed = Some(builder.finish(params));
        }
    }

    /// Rewrites the producer id, epoch and base sequence of a sealed batch (after an epoch bump).
    pub(super) fn resequence(&mut self, producer: ProducerIdEpoch, seq: i32) {
        if let Some(sealed) = &self.sealed {
            self.sealed = Some(crate::sequence::rewrite_producer_state(
                sealed,
                producer.id,
                producer.epoch,
                seq,
            ));
            self.sequence = Some(seq);
        }
    }

    /// How many records it holds.
    pub(crate) fn record_count(&self) -> usize {
        self.record_count
    }

    /// When its first record came.
    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// The largest record's size, as a batch of it alone.
    pub(crate) fn max_record(&self) -> usize {
        self.max_record
    }

    /// Sealed size over size before compression (1 without compression; 1 before sealing).
    pub(crate) fn compression_ratio(&self) -> f64 {
        match (&self.sealed, self.uncompressed) {
            (Some(s), n) if n > 0 => s.len() as f64 / n as f64,
            _ => 1.0,
        }
    }

    /// The sealed batch's bytes (empty before `seal`).
    pub(crate) fn bytes(&self) -> Bytes {
        self.sealed.clone().unwrap_or_default()
    }

    pub(crate) fn size(&self) -> usize {
        match (&self.builder, &self.sealed) {
            (Some(b), _) => b.size_in_bytes(),
            (None, Some(s)) => s.len(),
            (None, None) => 0,
        }
    }
}
