//! The codecs of [`Compression`]: the records section of a batch in, compressed bytes out, and back.
//!
//! Compression appends to the buffer that already holds the batch's reserved header, so a batch is
//! copied once (by the codec itself). Decompression never produces more than a caller's limit and
//! never sizes an allocation by a length read from the input alone.

mod lz4_frame;
mod xerial;

use std::cell::RefCell;
use std::io::{self, Read, Write};

use super::Compression;
use crate::error::DecodeError;

/// Appends `records`, compressed with `codec`, to `out`.
///
/// Fails only when a codec library reports an error, which the codecs here do only for inputs
/// over their size limits (about 2 GiB), far beyond any batch.
pub(super) fn compress(codec: Compression, records: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip { level } => {
            // Kafka allows 1..=9 besides -1; anything else means the default, as -1 does.
            let level = if Compression::GZIP_LEVELS.contains(&level) {
                flate2::Compression::new(level.unsigned_abs())
            } else {
                flate2::Compression::default()
            };
            // Deflate rarely gets below a quarter on record data; growing past that is amortized.
            out.reserve(records.len() / 4 + 32);
            let mut encoder = flate2::write::GzEncoder::new(out, level);
            encoder.write_all(records)?;
            encoder.finish()?;
        }
        Compression::Snappy => xerial::compress(records, out)?,
        Compression::Lz4 { level } => lz4_frame::compress(records, level, out)?,
        Compression::Zstd { level } => zstd_compress(records, level, out)?,
    }
    Ok(())
}

thread_local! {
    /// A zstd context takes longer to set up (about 100 µs) than compressing a 16 KiB batch, so
    /// each thread keeps one; `compress2` starts every frame afresh with the level set last.
    static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Appends one zstd frame holding `records` to `out`.
fn zstd_compress(records: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    let levels = Compression::ZSTD_LEVELS;
    let level = level.clamp(*levels.start(), *levels.end());
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(records.len()));
    // The cursor makes zstd write after what `out` already holds.
    let mut cursor = io::Cursor::new(std::mem::take(out));
    cursor.set_position(start as u64);
    let result = ZSTD.with(|cached| {
        let mut cached = cached
            .try_borrow_mut()
            .map_err(|_| io::Error::other("zstd context in use"))?;
        let compressor = match &mut *cached {
            Some(compressor) => {
                compressor.set_compression_level(level)?;
                compressor
            }
            None => cached.insert(zstd::bulk::Compressor::new(level)?),
        };
        compressor.compress_to_buffer(records, &mut cursor)
    });
    *out = cursor.into_inner();
    result.map(drop)
}

/// Decompresses the records section of a batch whose attribute bits 0-2 are `codec` (not 0).
///
/// Output beyond `limit` bytes is [`DecodeError::DecompressedTooLarge`]; malformed input is
/// [`DecodeError::Decompression`]; codecs 5-7 are [`DecodeError::UnsupportedCompression`].
pub(super) fn decompress(codec: i16, input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    match codec {
        1 => read_bounded(
            "gzip",
            // Java's GZIPInputStream also reads concatenated gzip members.
            flate2::read::MultiGzDecoder::new(input),
            limit,
        ),
        2 => xerial::decompress(input, limit),
        3 => lz4_frame::decompress(input, limit),
        4 => {
            let mut decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(invalid("zstd"))?;
            // No frame needs a window larger than the limit; this also bounds the decoder's memory.
            let window_log = limit.next_power_of_two().trailing_zeros().clamp(10, 31);
            decoder
                .window_log_max(window_log)
                .map_err(invalid("zstd"))?;
            read_bounded("zstd", decoder, limit)
        }
        other => Err(DecodeError::UnsupportedCompression(other as u8)),
    }
}

/// Reads a decoder to its end, failing once it yields more than `limit` bytes.
fn read_bounded(
    codec: &'static str,
    decoder: impl Read,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(invalid(codec))?;
    if out.len() > limit {
        return Err(DecodeError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// Maps a codec library's error to [`DecodeError::Decompression`].
fn invalid<E: std::fmt::Display>(codec: &'static str) -> impl Fn(E) -> DecodeError {
    move |e| DecodeError::Decompression {
        codec,
        reason: e.to_string(),
    }
}

/// [`DecodeError::Decompression`] with a reason of our own.
fn malformed(codec: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Decompression {
        codec,
        reason: reason.into(),
    }
}
