//! Record batch v2 (magic 2, Kafka 0.11+): the unit a producer sends for one partition.
//!
//! Layout of the 61-byte header, big-endian (Kafka's `DefaultRecordBatch`):
//!
//! | bytes  | field                | notes                                            |
//! |--------|----------------------|--------------------------------------------------|
//! | 0..8   | baseOffset           | 0 from a producer; the broker assigns offsets    |
//! | 8..12  | batchLength          | bytes after this field, to the end of the batch  |
//! | 12..16 | partitionLeaderEpoch | -1 from a producer                               |
//! | 16     | magic                | 2                                                |
//! | 17..21 | crc                  | CRC32C of everything from `attributes` to the end|
//! | 21..23 | attributes           | bits 0-2 compression, 4 transactional, 5 control |
//! | 23..27 | lastOffsetDelta      | record count - 1                                 |
//! | 27..35 | baseTimestamp        | the first record's timestamp                     |
//! | 35..43 | maxTimestamp         |                                                  |
//! | 43..51 | producerId           | -1 without idempotence                           |
//! | 51..53 | producerEpoch        |                                                  |
//! | 53..57 | baseSequence         | the first record's sequence number               |
//! | 57..61 | recordCount          |                                                  |
//!
//! Each record then is: length (varint), attributes (i8, unused), timestampDelta
//! (varlong), offsetDelta (varint), key and value (varint length, -1 for null, then bytes),
//! header count (varint), and per header a key (varint length, UTF-8) and a value (like
//! the record value).
//!
//! In a compressed batch the records, all of them together, are one compressed stream in the
//! codec's format ([`Compression`]); the header stays as it is and the CRC covers the compressed
//! bytes, so it can be checked before decompressing.

mod builder;
mod compression;
mod decode;
#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

use bytes::Bytes;

pub use builder::BatchBuilder;
pub use decode::{decode_batches, MAX_DECOMPRESSED};

use crate::varint::varint_len;

/// Header bytes of a record batch, before its records.
pub const RECORD_BATCH_OVERHEAD: usize = 61;

/// The record batch format this crate reads and writes.
const MAGIC: i8 = 2;

/// `baseOffset` and `batchLength`: the bytes that `batchLength` does not count.
const LOG_OVERHEAD: usize = 12;

/// Offsets of the header fields, from the table in the module docs.
mod offset {
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
}

/// Attribute bits other than compression.
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;
const COMPRESSION_MASK: i16 = 0x07;

/// Kafka's "no timestamp", used for the timestamps of an empty batch.
const NO_TIMESTAMP: i64 = -1;

/// One record header. Keys may repeat; a value may be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header key.
    pub key: String,
    /// The header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// Compression codec of a batch (attribute bits 0-2) and the level it compresses at.
///
/// The formats are the ones the Java client writes, so that brokers and every consumer read them:
/// [`BatchBuilder::finish`] compresses everything after the 61-byte header, and the codec stays in
/// the attributes even when the data did not get smaller (as in Java). The level is not written
/// anywhere; a level outside the codec's range is clamped to it (for gzip: treated as the default).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records are stored as they are (`compression.type=none`).
    #[default]
    None,
    /// A gzip stream (RFC 1952). `level` is 1 (fastest) to 9, or -1 for zlib's default (6), as
    /// `compression.gzip.level`.
    Gzip {
        /// Deflate level, see [`Compression::GZIP_LEVELS`].
        level: i32,
    },
    /// Raw snappy blocks of 32 KiB of input each, in snappy-java's stream framing (a 16-byte
    /// header starting `\x82SNAPPY\0`, then each block behind its big-endian length), which is
    /// what the Java client writes. Snappy has no levels.
    Snappy,
    /// An LZ4 frame (magic `0x184D2204`) of independent 64 KiB blocks, without checksums, with the
    /// correct header checksum of magic v2 (KIP-57). `level` is 1 to 17, as
    /// `compression.lz4.level`; like the Java client, the default 9 uses LZ4's fast compressor and
    /// every other level LZ4 HC at that level.
    Lz4 {
        /// LZ4 level, see [`Compression::LZ4_LEVELS`].
        level: i32,
    },
    /// One zstd frame. `level` is -131072 (fastest) to 22, default 3, as `compression.zstd.level`.
    Zstd {
        /// zstd level, see [`Compression::ZSTD_LEVELS`].
        level: i32,
    },
}

impl Compression {
    /// `compression.gzip.level`'s default: zlib's own default level (6).
    pub const GZIP_DEFAULT_LEVEL: i32 = -1;
    /// The gzip levels besides [`GZIP_DEFAULT_LEVEL`](Self::GZIP_DEFAULT_LEVEL).
    pub const GZIP_LEVELS: RangeInclusive<i32> = 1..=9;
    /// `compression.lz4.level`'s default.
    pub const LZ4_DEFAULT_LEVEL: i32 = 9;
    /// The LZ4 levels.
    pub const LZ4_LEVELS: RangeInclusive<i32> = 1..=17;
    /// `compression.zstd.level`'s default.
    pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
    /// The zstd levels; negative levels trade ratio for speed.
    pub const ZSTD_LEVELS: RangeInclusive<i32> = -131_072..=22;

    /// gzip at the default level.
    pub const fn gzip() -> Self {
        Compression::Gzip {
            level: Self::GZIP_DEFAULT_LEVEL,
        }
    }

    /// LZ4 at the default level.
    pub const fn lz4() -> Self {
        Compression::Lz4 {
            level: Self::LZ4_DEFAULT_LEVEL,
        }
    }

    /// zstd at the default level.
    pub const fn zstd() -> Self {
        Compression::Zstd {
            level: Self::ZSTD_DEFAULT_LEVEL,
        }
    }

    /// The codec's value in attribute bits 0-2: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip { .. } => 1,
            Compression::Snappy => 2,
            Compression::Lz4 { .. } => 3,
            Compression::Zstd { .. } => 4,
        }
    }

    /// Kafka's name for the codec, as in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 { .. } => "lz4",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

/// What [`BatchBuilder::finish`] writes into the header besides the records.
#[derive(Debug, Clone, Copy)]
pub struct BatchParams {
    /// The producer id from InitProducerId, or -1 without idempotence.
    pub producer_id: i64,
    /// The producer epoch, or -1 without idempotence.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1 without idempotence.
    pub base_sequence: i32,
    /// Compression codec; with [`Compression::None`] records are written as built.
    pub compression: Compression,
    /// Sets the transactional attribute bit.
    pub transactional: bool,
}

impl Default for BatchParams {
    /// A batch without idempotence or transactions.
    fn default() -> Self {
        BatchParams {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            transactional: false,
        }
    }
}

/// One batch as read by [`decode_batches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// Offset of the first record; 0 in a batch from a producer.
    pub base_offset: i64,
    /// Leader epoch stamped by the broker; -1 from a producer.
    pub partition_leader_epoch: i32,
    /// Always 2: other formats are rejected.
    pub magic: i8,
    /// The stored CRC32C, already verified.
    pub crc: u32,
    /// The raw attributes field.
    pub attributes: i16,
    /// Offset delta of the last record.
    pub last_offset_delta: i32,
    /// Timestamp the record timestamp deltas are relative to.
    pub base_timestamp: i64,
    /// Largest record timestamp, as stored.
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// The records, as many as the header's record count.
    pub records: Vec<DecodedRecord>,
}

impl DecodedBatch {
    /// The transactional attribute bit.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// The control attribute bit (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// One record of a [`DecodedBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// Position in the batch: the record's offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Absolute timestamp: the batch's base timestamp plus the stored delta.
    pub timestamp: i64,
    /// The key; `None` is Kafka's null.
    pub key: Option<Bytes>,
    /// The value; `None` is Kafka's null.
    pub value: Option<Bytes>,
    /// The headers, in order, duplicates kept.
    pub headers: Vec<Header>,
}

/// Upper bound of the encoded size of one record (its length varint included), without the batch header.
///
/// Exact except for the timestamp and offset deltas, which are counted at their widest.
/// Returns `usize::MAX` for a record that cannot be encoded at all (a length over `i32::MAX`).
pub fn record_size_upper_bound(
    key_len: Option<usize>,
    value_len: Option<usize>,
    headers: &[Header],
) -> usize {
    const WIDEST_VARLONG: usize = 10;
    const WIDEST_VARINT: usize = 5;
    record_body_len(WIDEST_VARLONG, WIDEST_VARINT, key_len, value_len, headers)
        .and_then(|body| body.checked_add(WIDEST_VARINT))
        .unwrap_or(usize::MAX)
}

/// Size of a record after its length varint, given the sizes of its two delta varints.
///
/// `None` if a length does not fit the i32 varints the format uses.
fn record_body_len(
    timestamp_delta_len: usize,
    offset_delta_len: usize,
    key_len: Option<usize>,
    value_len: Option<usize>,
    headers: &[Header],
) -> Option<usize> {
    const ATTRIBUTES_LEN: usize = 1;
    let mut len = ATTRIBUTES_LEN + timestamp_delta_len + offset_delta_len;
    len = len.checked_add(nullable_field_len(key_len)?)?;
    len = len.checked_add(nullable_field_len(value_len)?)?;
    len = len.checked_add(varint_len(i32::try_from(headers.len()).ok()?))?;
    for header in headers {
        len = len.checked_add(nullable_field_len(Some(header.key.len()))?)?;
        len = len.checked_add(nullable_field_len(header.value.as_ref().map(Bytes::len))?)?;
    }
    // The record's own length is an i32 varint too.
    i32::try_from(len).ok()?;
    Some(len)
}

/// Size of a varint length followed by that many bytes; null is the one-byte length -1.
fn nullable_field_len(len: Option<usize>) -> Option<usize> {
    match len {
        None => Some(varint_len(-1)),
        Some(n) => varint_len(i32::try_from(n).ok()?).checked_add(n),
    }
}
