//! The LZ4 frame format as Kafka writes and reads it (`compression.type=lz4`).
//!
//! The Java client's `Lz4BlockOutputStream` writes the magic `0x184D2204` (little-endian), FLG
//! `0x60` (version 1, independent blocks, no checksums, no content size), BD `0x40` (64 KiB
//! blocks) and the header checksum: the second byte of the xxHash32 of FLG and BD, computed
//! correctly since KIP-57 for magic v1 and later. Then blocks, each a little-endian u32 length
//! whose high bit marks a block stored uncompressed, and an end mark of 0. [`compress`] writes
//! exactly that.
//!
//! Its reader, `Lz4BlockInputStream`, which brokers validate produce requests with, requires
//! version 1, independent blocks and zero reserved bits; it skips a content size and a content
//! checksum and verifies block checksums. [`decompress`] takes the same frames, and verifies the
//! content size and checksum as well.

use std::io;

use lz4::block::CompressionMode;
use xxhash_rust::xxh32::xxh32;

use super::{invalid, malformed};
use crate::batch::Compression;
use crate::error::DecodeError;

const MAGIC: u32 = 0x184D_2204;

const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_1: u8 = 0b0100_0000;
const FLG_BLOCK_INDEPENDENCE: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
/// The dictionary id flag of the LZ4 spec and a reserved bit; Kafka allows neither.
const FLG_RESERVED: u8 = 0b0000_0011;

/// BD: bits 4-6 are the maximum block size code (4 = 64 KiB ... 7 = 4 MiB), the rest reserved.
const BD_BLOCK_SIZE_SHIFT: u8 = 4;
const BD_RESERVED: u8 = 0b1000_1111;
const BLOCK_SIZE_CODE_64K: u8 = 4;

/// The block size Kafka writes.
const BLOCK_SIZE: usize = 64 * 1024;

/// High bit of a block length: the block is stored uncompressed.
const UNCOMPRESSED: u32 = 0x8000_0000;

const CODEC: &str = "lz4";

/// Appends `records` as one LZ4 frame to `out`.
///
/// As in the Java client, the default level uses LZ4's fast compressor and every other level LZ4
/// HC (liblz4 treats HC levels above 12 as 12); a block that does not get smaller is stored.
pub(super) fn compress(records: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    let mode = if level == Compression::LZ4_DEFAULT_LEVEL {
        None
    } else {
        let levels = Compression::LZ4_LEVELS;
        Some(CompressionMode::HIGHCOMPRESSION(
            level.clamp(*levels.start(), *levels.end()),
        ))
    };
    let descriptor = [
        FLG_VERSION_1 | FLG_BLOCK_INDEPENDENCE,
        BLOCK_SIZE_CODE_64K << BD_BLOCK_SIZE_SHIFT,
    ];
    out.reserve(records.len() / 2 + 64);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&descriptor);
    out.push(header_checksum(&descriptor));
    for block in records.chunks(BLOCK_SIZE) {
        let len_at = out.len();
        let data_at = len_at + 4;
        out.resize(data_at + lz4::block::compress_bound(block.len())?, 0);
        let written = lz4::block::compress_to_buffer(block, mode, false, &mut out[data_at..])?;
        // A block is at most 64 KiB, so its length leaves the high bit free.
        let len = if written < block.len() {
            out.truncate(data_at + written);
            written as u32
        } else {
            out.truncate(data_at);
            out.extend_from_slice(block);
            block.len() as u32 | UNCOMPRESSED
        };
        out[len_at..data_at].copy_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // end mark
    Ok(())
}

/// Decompresses one LZ4 frame of the kind Kafka accepts; the frame must fill the input.
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut rest = input;
    if u32::from_le_bytes(take(&mut rest)?) != MAGIC {
        return Err(malformed(CODEC, "no LZ4 frame magic"));
    }
    let descriptor_start = rest;
    let [flg, bd] = take(&mut rest)?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_1 {
        return Err(malformed(
            CODEC,
            format!("frame version bits {:#04x}", flg >> 6),
        ));
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        return Err(malformed(CODEC, "reserved bits are set"));
    }
    if flg & FLG_BLOCK_INDEPENDENCE == 0 {
        return Err(malformed(
            CODEC,
            "dependent blocks, which Kafka does not accept",
        ));
    }
    let block_size_code = bd >> BD_BLOCK_SIZE_SHIFT;
    if !(4..=7).contains(&block_size_code) {
        return Err(malformed(
            CODEC,
            format!("block size code {block_size_code}"),
        ));
    }
    let max_block = 1usize << (2 * block_size_code + 8);
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        Some(u64::from_le_bytes(take(&mut rest)?))
    } else {
        None
    };
    let descriptor = &descriptor_start[..descriptor_start.len() - rest.len()];
    let [checksum] = take(&mut rest)?;
    if checksum != header_checksum(descriptor) {
        return Err(malformed(CODEC, "frame descriptor checksum mismatch"));
    }

    let mut out = Vec::new();
    let mut scratch = vec![0u8; max_block];
    loop {
        let len = u32::from_le_bytes(take(&mut rest)?);
        if len == 0 {
            break;
        }
        let size = (len & !UNCOMPRESSED) as usize;
        if size > max_block {
            return Err(malformed(
                CODEC,
                format!("block of {size} bytes, over the frame's {max_block}"),
            ));
        }
        let data = rest
            .get(..size)
            .ok_or_else(|| malformed(CODEC, "the input ends inside a block"))?;
        rest = &rest[size..];
        if flg & FLG_BLOCK_CHECKSUM != 0 && u32::from_le_bytes(take(&mut rest)?) != xxh32(data, 0) {
            return Err(malformed(CODEC, "block checksum mismatch"));
        }
        let block = if len & UNCOMPRESSED != 0 {
            data
        } else {
            // max_block is at most 4 MiB, well within lz4's i32 sizes.
            let written =
                lz4::block::decompress_to_buffer(data, Some(max_block as i32), &mut scratch)
                    .map_err(invalid(CODEC))?;
            &scratch[..written]
        };
        if block.len() > limit - out.len() {
            return Err(DecodeError::DecompressedTooLarge { limit });
        }
        out.extend_from_slice(block);
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 && u32::from_le_bytes(take(&mut rest)?) != xxh32(&out, 0) {
        return Err(malformed(CODEC, "content checksum mismatch"));
    }
    if content_size.is_some_and(|size| size != out.len() as u64) {
        return Err(malformed(CODEC, "content size mismatch"));
    }
    if !rest.is_empty() {
        return Err(malformed(CODEC, "bytes after the end of the frame"));
    }
    Ok(out)
}

/// The frame descriptor checksum: the second byte of the descriptor's xxHash32.
fn header_checksum(descriptor: &[u8]) -> u8 {
    (xxh32(descriptor, 0) >> 8) as u8
}

/// The next `N` bytes of `rest`.
fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or_else(|| malformed(CODEC, "the input ends inside the frame"))?;
    *rest = tail;
    Ok(*head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(records: &[u8], level: i32) -> Vec<u8> {
        let mut out = Vec::new();
        compress(records, level, &mut out).unwrap();
        out
    }

    #[test]
    fn header_is_the_java_clients() {
        // Magic, FLG 0x60, BD 0x40 and their checksum 0x82, as Kafka's Lz4BlockOutputStream writes.
        assert_eq!(
            frame(b"", 9),
            [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0, 0, 0, 0]
        );
    }

    #[test]
    fn blocks_of_64k_round_trip_at_every_level() {
        let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog "
            .iter()
            .copied()
            .cycle()
            .take(3 * BLOCK_SIZE + 10)
            .collect();
        for level in [1, 3, 9, 12, 17] {
            let bytes = frame(&text, level);
            assert!(
                bytes.len() < text.len() / 10,
                "level {level}: {}",
                bytes.len()
            );
            assert_eq!(
                decompress(&bytes, text.len()).unwrap(),
                text,
                "level {level}"
            );
        }
        // The fast compressor and HC differ, as Java's fastCompressor and highCompressor do.
        assert_ne!(frame(&text, 9), frame(&text, 10));
    }

    #[test]
    fn incompressible_blocks_are_stored() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        let bytes = frame(&noise, 9);
        let len = u32::from_le_bytes(bytes[7..11].try_into().unwrap());
        assert_eq!(len, 1000 | UNCOMPRESSED);
        assert_eq!(&bytes[11..1011], &noise[..]);
        assert_eq!(decompress(&bytes, 1000).unwrap(), noise);
    }

    #[test]
    fn reads_checksums_and_content_size_and_rejects_what_kafka_rejects() {
        // A frame with content size, block checksum and content checksum, built by hand.
        let data = b"abcabcabcabc";
        let flg = FLG_VERSION_1
            | FLG_BLOCK_INDEPENDENCE
            | FLG_BLOCK_CHECKSUM
            | FLG_CONTENT_SIZE
            | FLG_CONTENT_CHECKSUM;
        let mut descriptor = vec![flg, 0x40];
        descriptor.extend_from_slice(&(data.len() as u64).to_le_bytes());
        let mut bytes = MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&descriptor);
        bytes.push(header_checksum(&descriptor));
        bytes.extend_from_slice(&(data.len() as u32 | UNCOMPRESSED).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&xxh32(data, 0).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&xxh32(data, 0).to_le_bytes());
        assert_eq!(decompress(&bytes, 100).unwrap(), data);

        let corrupt = |at: usize| {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            decompress(&bad, 100)
        };
        assert!(corrupt(4).is_err(), "FLG under the header checksum");
        assert!(corrupt(14).is_err(), "header checksum");
        assert!(corrupt(21).is_err(), "block data under its checksum");
        assert!(corrupt(bytes.len() - 1).is_err(), "content checksum");

        let mut dependent = frame(data, 9);
        dependent[4] &= !FLG_BLOCK_INDEPENDENCE;
        dependent[6] = header_checksum(&dependent[4..6]);
        assert!(decompress(&dependent, 100).is_err());

        let good = frame(data, 9);
        assert!(decompress(&good, 11).is_err(), "over the limit");
        assert!(
            decompress(&[&good[..], &[0]].concat(), 100).is_err(),
            "trailing bytes"
        );
        for cut in 0..good.len() {
            assert!(decompress(&good[..cut], 100).is_err(), "cut at {cut}");
        }
    }
}
