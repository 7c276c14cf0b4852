//! Reading batches: every length is checked against the bytes actually there before it
//! is used, and no allocation is sized by a count from the wire alone.

use bytes::Bytes;

use super::{
    compression, offset, DecodedBatch, DecodedRecord, Header, COMPRESSION_MASK, LOG_OVERHEAD,
    MAGIC, RECORD_BATCH_OVERHEAD,
};
use crate::error::DecodeError;
use crate::varint::{get_varint, get_varlong};

/// The smallest possible record: one byte each for length, attributes, timestamp delta,
/// offset delta, key length, value length and header count.
const MIN_RECORD_LEN: usize = 7;

/// The smallest possible header: one byte each for key length and value length.
const MIN_HEADER_LEN: usize = 2;

/// The most a compressed batch may decompress to: 64 MiB, far above Kafka's default
/// `message.max.bytes` (1 MiB), so a hostile batch cannot make the decoder allocate without bound.
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// Decodes one or more concatenated v2 batches, verifying each CRC and rejecting trailing/short data. Never panics.
///
/// An empty input is zero batches. Compressed batches (gzip, snappy, lz4, zstd) are decompressed,
/// up to [`MAX_DECOMPRESSED`] bytes of records each; codecs 5-7 are
/// [`DecodeError::UnsupportedCompression`].
pub fn decode_batches(buf: &[u8]) -> Result<Vec<DecodedBatch>, DecodeError> {
    let mut rest = buf;
    let mut batches = Vec::new();
    while !rest.is_empty() {
        batches.push(decode_batch(&mut rest)?);
    }
    Ok(batches)
}

/// Decodes the batch at the front of `buf` and advances `buf` past it.
fn decode_batch(buf: &mut &[u8]) -> Result<DecodedBatch, DecodeError> {
    // Read the prefix from a copy: `buf` only moves once the whole batch is known good.
    let mut peek: &[u8] = buf;
    let mut prefix = Reader(&mut peek);
    let base_offset = prefix.i64()?;
    let batch_length = prefix.i32()?;
    let min_length = (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i32;
    if batch_length < min_length {
        return Err(DecodeError::InvalidLength(batch_length.into()));
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    let (batch, rest) = buf.split_at(total);

    // The magic decides where the CRC is, so it is checked first.
    let magic = batch[offset::MAGIC] as i8;
    if magic != MAGIC {
        return Err(DecodeError::UnsupportedMagic(magic));
    }
    let mut header_bytes = &batch[offset::PARTITION_LEADER_EPOCH..RECORD_BATCH_OVERHEAD];
    let mut header = Reader(&mut header_bytes);
    let partition_leader_epoch = header.i32()?;
    let _magic = header.u8()?;
    let crc = header.u32()?;
    let actual = crc32c::crc32c(&batch[offset::ATTRIBUTES..]);
    if crc != actual {
        return Err(DecodeError::BadCrc {
            expected: crc,
            actual,
        });
    }
    let attributes = header.i16()?;
    let last_offset_delta = header.i32()?;
    let base_timestamp = header.i64()?;
    let max_timestamp = header.i64()?;
    let producer_id = header.i64()?;
    let producer_epoch = header.i16()?;
    let base_sequence = header.i32()?;
    let record_count = header.i32()?;
    let record_count = usize::try_from(record_count)
        .map_err(|_| DecodeError::InvalidLength(record_count.into()))?;

    let records_section = &batch[RECORD_BATCH_OVERHEAD..];
    let decompressed;
    let mut body = match attributes & COMPRESSION_MASK {
        0 => records_section,
        codec => {
            decompressed = compression::decompress(codec, records_section, MAX_DECOMPRESSED)?;
            &decompressed[..]
        }
    };
    let mut records = Vec::with_capacity(record_count.min(body.len() / MIN_RECORD_LEN));
    for _ in 0..record_count {
        records.push(decode_record(&mut body, base_timestamp)?);
    }
    if !body.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }

    *buf = rest;
    Ok(DecodedBatch {
        base_offset,
        partition_leader_epoch,
        magic,
        crc,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        records,
    })
}

/// Decodes the record at the front of `body` and advances `body` past it.
fn decode_record(body: &mut &[u8], base_timestamp: i64) -> Result<DecodedRecord, DecodeError> {
    let len = get_varint(body)?;
    let mut record = Reader(body).take(len)?;

    let _attributes = Reader(&mut record).u8()?; // unused in v2
    let timestamp_delta = get_varlong(&mut record)?;
    let offset_delta = get_varint(&mut record)?;
    let key = nullable_bytes(&mut record)?;
    let value = nullable_bytes(&mut record)?;

    let header_count = get_varint(&mut record)?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| DecodeError::InvalidLength(header_count.into()))?;
    let mut headers = Vec::with_capacity(header_count.min(record.len() / MIN_HEADER_LEN));
    for _ in 0..header_count {
        // Kafka rejects a null header key, so the key length must not be negative.
        let key_len = get_varint(&mut record)?;
        let key = Reader(&mut record).take(key_len)?;
        let key = std::str::from_utf8(key).map_err(|_| DecodeError::InvalidUtf8)?;
        let value = nullable_bytes(&mut record)?;
        headers.push(Header {
            key: key.to_owned(),
            value,
        });
    }
    if !record.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }

    Ok(DecodedRecord {
        offset_delta,
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        key,
        value,
        headers,
    })
}

/// A varint length then that many bytes; length -1 is null.
fn nullable_bytes(buf: &mut &[u8]) -> Result<Option<Bytes>, DecodeError> {
    let len = get_varint(buf)?;
    if len == -1 {
        return Ok(None);
    }
    let bytes = Reader(buf).take(len)?;
    Ok(Some(Bytes::copy_from_slice(bytes)))
}

/// Big-endian reads that advance the borrowed slice and fail instead of panicking.
struct Reader<'a, 'b>(&'b mut &'a [u8]);

impl<'a> Reader<'a, '_> {
    /// The next `len` bytes, for a length read from the wire.
    fn take(&mut self, len: i32) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::InvalidLength(len.into()))?;
        if self.0.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.0.split_at(len);
        *self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        *self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
}
