//! Arbitrary bytes as record batches: an error or batches, never a panic, and no
//! allocation past libFuzzer's malloc limit (decompression stops at MAX_DECOMPRESSED).
#![no_main]

use kafka_producer_protocol::decode_batches;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_batches(data);
    // Random bytes almost never carry a valid CRC32C; with it fixed up the fuzzer gets
    // past the batch header to the records and the codecs.
    let mut fixed = data.to_vec();
    fix_crcs(&mut fixed);
    let _ = decode_batches(&fixed);
});

/// Byte offsets in a v2 batch header (Kafka's `DefaultRecordBatch`).
const LENGTH: usize = 8;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;

/// Rewrites the CRC of each whole batch in `buf` to match its contents.
fn fix_crcs(buf: &mut [u8]) {
    let mut start = 0;
    loop {
        let Some(&len) = buf.get(start + LENGTH..).and_then(|b| b.first_chunk::<4>()) else {
            return;
        };
        let Ok(len) = usize::try_from(i32::from_be_bytes(len)) else {
            return;
        };
        let end = start + LENGTH + 4 + len;
        if end > buf.len() || end < start + ATTRIBUTES {
            return;
        }
        let crc = crc32c::crc32c(&buf[start + ATTRIBUTES..end]);
        buf[start + CRC..start + ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
        start = end;
    }
}
