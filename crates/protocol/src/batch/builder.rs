//! Writing a batch: records are encoded straight into the final buffer, behind a
//! reserved header that [`BatchBuilder::finish`] fills in (after compressing the records, if
//! asked to, into a second buffer behind a header of its own).

use std::fmt;

use bytes::Bytes;

use super::{
    compression, offset, record_body_len, BatchParams, Compression, Header, LOG_OVERHEAD, MAGIC,
    NO_TIMESTAMP, RECORD_BATCH_OVERHEAD, TRANSACTIONAL_FLAG,
};
use crate::varint::{put_varint, put_varlong, varint_len, varlong_len};

/// Builds one record batch v2 for one partition.
///
/// Owns a `Vec<u8>` that starts with [`RECORD_BATCH_OVERHEAD`] reserved bytes; each
/// [`try_append`](Self::try_append) encodes one record after them, and
/// [`finish`](Self::finish) writes the header and hands the bytes over without copying.
pub struct BatchBuilder {
    buf: Vec<u8>,
    record_count: i32,
    first_timestamp: Option<i64>,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty batch; `capacity` is a hint for the buffer, in bytes.
    pub fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(RECORD_BATCH_OVERHEAD));
        buf.resize(RECORD_BATCH_OVERHEAD, 0);
        BatchBuilder {
            buf,
            record_count: 0,
            first_timestamp: None,
            max_timestamp: NO_TIMESTAMP,
        }
    }

    /// True until a record is appended.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Records appended so far.
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of the finished batch if it were finished now: header plus records.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Timestamp of the first record, which is the batch's base timestamp.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp
    }

    /// Appends one record if the batch is empty or the batch stays within `limit` bytes with it;
    /// otherwise writes nothing and returns None. On success returns the record's index in the batch (offset delta).
    ///
    /// The first record is accepted whatever its size, so a record larger than `limit`
    /// still gets a batch of its own (the broker then judges it against its own limit).
    /// Also returns `None`, even on an empty batch, for a record the format cannot hold:
    /// a key, value or header over `i32::MAX` bytes, or a batch over `i32::MAX` bytes or
    /// records.
    ///
    /// The first record's timestamp becomes the batch's base timestamp; later records
    /// store their difference from it, which may be negative.
    pub fn try_append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
        limit: usize,
    ) -> Option<u32> {
        let offset_delta = self.record_count;
        // recordCount is an i32 and must still fit after this record.
        offset_delta.checked_add(1)?;
        // Wrapping keeps extreme timestamps round-tripping: the decoder adds it back wrapping.
        let timestamp_delta = timestamp.wrapping_sub(self.first_timestamp.unwrap_or(timestamp));

        let body_len = record_body_len(
            varlong_len(timestamp_delta),
            varint_len(offset_delta),
            key.map(<[u8]>::len),
            value.map(<[u8]>::len),
            headers,
        )?;
        // record_body_len has checked that every length fits an i32.
        let body_len_i32 = i32::try_from(body_len).ok()?;
        let new_size = self
            .buf
            .len()
            .checked_add(varint_len(body_len_i32))?
            .checked_add(body_len)?;
        // batchLength is an i32.
        i32::try_from(new_size - LOG_OVERHEAD).ok()?;
        if !self.is_empty() && new_size > limit {
            return None;
        }

        self.buf.reserve(new_size - self.buf.len());
        put_varint(&mut self.buf, body_len_i32);
        self.buf.push(0); // record attributes: unused in v2
        put_varlong(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_nullable(&mut self.buf, key);
        put_nullable(&mut self.buf, value);
        put_len(&mut self.buf, headers.len());
        for header in headers {
            put_nullable(&mut self.buf, Some(header.key.as_bytes()));
            put_nullable(&mut self.buf, header.value.as_deref());
        }
        debug_assert_eq!(self.buf.len(), new_size, "record size arithmetic is off");

        self.record_count += 1;
        self.first_timestamp.get_or_insert(timestamp);
        self.max_timestamp = if offset_delta == 0 {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        // offset_delta is a non-negative i32.
        Some(offset_delta as u32)
    }

    /// Compresses the records with `params.compression` (if not [`Compression::None`]), writes the
    /// 61-byte header (base offset 0, batch length, partition leader epoch -1, magic 2, CRC32C over
    /// attributes..end, attributes, last offset delta, base/max timestamp, producer id/epoch, base
    /// sequence, record count) and returns the finished batch bytes.
    ///
    /// Compressed records are kept even when they came out larger, as the Java client does. Should
    /// a codec fail (its libraries do only for inputs of gigabytes, which `try_append` never
    /// builds), the batch is sent uncompressed with compression bits 0, which every reader takes.
    ///
    /// An empty batch gets last offset delta -1 and timestamps -1; Kafka never sends one.
    pub fn finish(self, params: BatchParams) -> Bytes {
        let (mut buf, compression) = compress(self.buf, params.compression);
        // try_append keeps the uncompressed batch length within i32, and `compress` the compressed one.
        let batch_length = (buf.len() - LOG_OVERHEAD) as i32;
        let mut attributes = compression.attribute_bits();
        if params.transactional {
            attributes |= TRANSACTIONAL_FLAG;
        }
        let base_timestamp = self.first_timestamp.unwrap_or(NO_TIMESTAMP);

        let header = &mut buf[..RECORD_BATCH_OVERHEAD];
        put_at(header, 0, &0i64.to_be_bytes());
        put_at(header, offset::BATCH_LENGTH, &batch_length.to_be_bytes());
        put_at(
            header,
            offset::PARTITION_LEADER_EPOCH,
            &(-1i32).to_be_bytes(),
        );
        put_at(header, offset::MAGIC, &MAGIC.to_be_bytes());
        put_at(header, offset::ATTRIBUTES, &attributes.to_be_bytes());
        put_at(
            header,
            offset::LAST_OFFSET_DELTA,
            &(self.record_count - 1).to_be_bytes(),
        );
        put_at(
            header,
            offset::BASE_TIMESTAMP,
            &base_timestamp.to_be_bytes(),
        );
        put_at(
            header,
            offset::MAX_TIMESTAMP,
            &self.max_timestamp.to_be_bytes(),
        );
        put_at(
            header,
            offset::PRODUCER_ID,
            &params.producer_id.to_be_bytes(),
        );
        put_at(
            header,
            offset::PRODUCER_EPOCH,
            &params.producer_epoch.to_be_bytes(),
        );
        put_at(
            header,
            offset::BASE_SEQUENCE,
            &params.base_sequence.to_be_bytes(),
        );
        put_at(
            header,
            offset::RECORD_COUNT,
            &self.record_count.to_be_bytes(),
        );
        // The CRC covers attributes to the end, so it is computed after everything else.
        let crc = crc32c::crc32c(&buf[offset::ATTRIBUTES..]);
        put_at(&mut buf, offset::CRC, &crc.to_be_bytes());
        Bytes::from(buf)
    }
}

impl fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer itself is noise in logs; its size says what matters.
        f.debug_struct("BatchBuilder")
            .field("record_count", &self.record_count)
            .field("size_in_bytes", &self.buf.len())
            .field("first_timestamp", &self.first_timestamp)
            .field("max_timestamp", &self.max_timestamp)
            .finish()
    }
}

/// The batch buffer with its records compressed by `codec` behind the reserved header, and the
/// codec that applies: [`Compression::None`] when there is nothing to do or the codec failed.
fn compress(buf: Vec<u8>, codec: Compression) -> (Vec<u8>, Compression) {
    if codec == Compression::None {
        return (buf, codec);
    }
    let mut out = vec![0; RECORD_BATCH_OVERHEAD];
    match compression::compress(codec, &buf[RECORD_BATCH_OVERHEAD..], &mut out) {
        // Incompressible records near the i32 limit could come out over it.
        Ok(()) if i32::try_from(out.len() - LOG_OVERHEAD).is_ok() => {
            // Codecs reserve for the worst case; the batch may wait for a while in the queue.
            out.shrink_to_fit();
            (out, codec)
        }
        _ => (buf, Compression::None),
    }
}

fn put_at(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A length that `record_body_len` has already checked fits an i32.
fn put_len(buf: &mut Vec<u8>, len: usize) {
    put_varint(buf, len as i32);
}

fn put_nullable(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(buf, -1),
        Some(bytes) => {
            put_len(buf, bytes.len());
            buf.extend_from_slice(bytes);
        }
    }
}
