//! Rewriting the producer state of a sealed record batch, for an idempotent producer's epoch bump.
//!
//! The producer id, epoch and base sequence sit in the batch header (bytes 43..57), outside any
//! compressed part, and the CRC32C (bytes 17..21) covers bytes 21.. to the end; so a new producer
//! state means patching those fields and computing the CRC again, without touching the records.

use bytes::Bytes;

const CRC: std::ops::Range<usize> = 17..21;
const CRC_FROM: usize = 21;
const PRODUCER_ID: std::ops::Range<usize> = 43..51;
const PRODUCER_EPOCH: std::ops::Range<usize> = 51..53;
const BASE_SEQUENCE: std::ops::Range<usize> = 53..57;
const HEADER: usize = 61;

/// A copy of `batch` with a new producer id, epoch and base sequence, and its CRC recomputed.
/// A buffer too short to be a batch is returned unchanged (the broker will reject it).
pub(crate) fn rewrite_producer_state(
    batch: &Bytes,
    id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Bytes {
    if batch.len() < HEADER {
        return batch.clone();
    }
    let mut out = batch.to_vec();
    out[PRODUCER_ID].copy_from_slice(&id.to_be_bytes());
    out[PRODUCER_EPOCH].copy_from_slice(&epoch.to_be_bytes());
    out[BASE_SEQUENCE].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_FROM..]);
    out[CRC].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_producer_protocol::batch::{decode_batches, BatchBuilder, BatchParams};

    #[test]
    fn a_rewritten_batch_equals_one_sealed_with_that_state() {
        let build = |params| {
            let mut b = BatchBuilder::new(256);
            b.try_append(1, Some(b"k"), Some(b"v"), &[], 1000).unwrap();
            b.try_append(2, None, Some(b"w"), &[], 1000).unwrap();
            b.finish(params)
        };
        let first = build(BatchParams {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 40,
            ..BatchParams::default()
        });
        let rewritten = rewrite_producer_state(&first, 7, 1, 0);
        let expected = build(BatchParams {
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 0,
            ..BatchParams::default()
        });
        assert_eq!(rewritten, expected);
        let decoded = decode_batches(&rewritten).unwrap();
        assert_eq!(
            (decoded[0].producer_epoch, decoded[0].base_sequence),
            (1, 0)
        );
    }
}
