//! How large a batch may grow. `batch.size` and `batch.max.size` count bytes as sent, so with
//! compression the uncompressed records a batch takes are estimated from the topic's compression
//! ratio, which each sealed batch moves (the Java client's estimate); a topic whose batch the
//! broker refused as too large gets a lower ceiling.

use std::sync::atomic::Ordering;

use kafka_producer_protocol::batch::{Compression, RECORD_BATCH_OVERHEAD};

use super::{Accumulator, ProducerBatch, TopicQueues};

/// The Java client's compression ratio estimate (`CompressionRatioEstimator`): it starts at 1.0,
/// falls by at most this much per batch that compressed better than estimated...
const RATIO_IMPROVING_STEP: f32 = 0.005;
/// ...and rises at once, by at least this much, after one that compressed worse.
const RATIO_DETERIORATING_STEP: f32 = 0.05;
/// The Java client's margin on the estimate when it decides whether a record still fits.
const RATIO_ESTIMATION_FACTOR: f32 = 1.05;

impl TopicQueues {
    pub(super) fn compression_ratio(&self) -> f32 {
        f32::from_bits(self.compression_ratio.load(Ordering::Relaxed))
    }

    /// The ratio a batch is sized by: the estimate with the Java client's margin.
    fn estimated_ratio(&self) -> f32 {
        self.compression_ratio() * RATIO_ESTIMATION_FACTOR
    }

    /// Moves the estimate after a batch compressed `observed` (compressed / uncompressed).
    pub(super) fn observe_compression(&self, observed: f32) {
        let current = self.compression_ratio();
        let next = if observed > current {
            (current + RATIO_DETERIORATING_STEP).max(observed)
        } else {
            (current - RATIO_IMPROVING_STEP).max(observed)
        };
        self.compression_ratio
            .store(next.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }
}

impl Accumulator {
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches grow past `batch.size` (up to `batch.max.size`) while `linger.ms` lets them fill.
    pub(crate) fn grows(&self) -> bool {
        self.batch_max > self.batch_size
    }

    /// How many bytes of uncompressed records a batch of `tq` takes: `batch.size`, or with
    /// compression as many as are estimated to compress to `batch.size` (the Java client's rule).
    pub(crate) fn batch_limit(&self, tq: &TopicQueues) -> usize {
        self.uncompressed_limit(tq, self.batch_size)
    }

    /// The same for a batch that grows (`batch.max.size` above `batch.size`): up to
    /// `batch.max.size`, or less once the broker refused a batch of this topic as too large.
    pub(super) fn grown_limit(&self, tq: &TopicQueues) -> usize {
        let max = self
            .batch_max
            .min(tq.max_batch.load(Ordering::Relaxed))
            .max(self.batch_size);
        self.uncompressed_limit(tq, max)
    }

    /// How many bytes of uncompressed records are estimated to make a batch of `target` bytes.
    fn uncompressed_limit(&self, tq: &TopicQueues, target: usize) -> usize {
        if self.compression == Compression::None {
            return target;
        }
        let ratio = tq.estimated_ratio();
        let header = RECORD_BATCH_OVERHEAD.min(target);
        let records = (target - header) as f64 / f64::from(ratio.max(f32::EPSILON));
        (header + records.min(self.max_uncompressed as f64) as usize)
            .clamp(target, self.max_uncompressed.max(target))
    }

    /// The bytes `batch` takes in a request: as sealed, or before sealing with compression as
    /// estimated from the topic's compression ratio (as the Java client estimates a batch's size).
    pub(super) fn sealed_size(&self, tq: &TopicQueues, batch: &ProducerBatch) -> usize {
        if batch.builder.is_none() || self.compression == Compression::None {
            return batch.size();
        }
        let ratio = tq.estimated_ratio();
        RECORD_BATCH_OVERHEAD
            + (batch.size().saturating_sub(RECORD_BATCH_OVERHEAD) as f64 * f64::from(ratio))
                as usize
    }
}
