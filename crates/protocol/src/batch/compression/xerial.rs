//! snappy-java's stream framing, which the Java client writes for `compression.type=snappy`.
//!
//! A 16-byte header (the magic `\x82SNAPPY\0`, then version 1 and minimum compatible version 1 as
//! big-endian i32s), then blocks: a big-endian i32 length and that many bytes of raw snappy, each
//! holding at most 32 KiB of input. snappy-java's `SnappyInputStream`, which brokers and Java
//! consumers read with, also takes plain raw snappy (what librdkafka writes) and a second header
//! in the middle (concatenated streams); so does [`decompress`].

use std::io;

use super::{invalid, malformed};
use crate::error::DecodeError;

const MAGIC: [u8; 8] = *b"\x82SNAPPY\0";

/// The magic, version 1 and minimum compatible version 1.
const HEADER: [u8; 16] = *b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01";

/// snappy-java's default block size, the input behind each length.
const BLOCK_SIZE: usize = 32 * 1024;

const CODEC: &str = "snappy";

/// Appends `records` in snappy-java's framing to `out`.
pub(super) fn compress(records: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    out.reserve(HEADER.len() + records.len() / 2 + 64);
    out.extend_from_slice(&HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for block in records.chunks(BLOCK_SIZE) {
        let len_at = out.len();
        let data_at = len_at + 4;
        out.resize(data_at + snap::raw::max_compress_len(block.len()), 0);
        let written = encoder
            .compress(block, &mut out[data_at..])
            .map_err(io::Error::other)?;
        out.truncate(data_at + written);
        // At most max_compress_len(32 KiB), about 38 KiB.
        out[len_at..data_at].copy_from_slice(&(written as u32).to_be_bytes());
    }
    Ok(())
}

/// Decompresses snappy-java's framing, or raw snappy when the input does not start with the magic.
pub(super) fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = snap::raw::Decoder::new();
    let framed = input.len() >= HEADER.len() && input.starts_with(&MAGIC);
    if !framed {
        let mut out = Vec::new();
        append_block(&mut decoder, input, &mut out, limit)?;
        return Ok(out);
    }

    let mut rest = &input[HEADER.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed(CODEC, "the input ends inside a block length"))?;
        if len[..] == MAGIC[..4] {
            // A concatenated stream: a whole header where a block length would be.
            let magic_rest = &MAGIC[4..];
            if !after.starts_with(magic_rest) || after.len() < HEADER.len() - 4 {
                return Err(malformed(CODEC, "a block length is not a length"));
            }
            rest = &after[HEADER.len() - 4..];
            continue;
        }
        let len = i32::from_be_bytes(*len);
        let block = usize::try_from(len)
            .ok()
            .and_then(|len| after.get(..len))
            .ok_or_else(|| malformed(CODEC, format!("block length {len} is beyond the input")))?;
        rest = &after[block.len()..];
        append_block(&mut decoder, block, &mut out, limit)?;
    }
    Ok(out)
}

/// Decompresses one raw snappy block onto the end of `out`, keeping `out` within `limit`.
fn append_block(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), DecodeError> {
    // The length is read from the block's own header: checked against the limit before use.
    let len = snap::raw::decompress_len(block).map_err(invalid(CODEC))?;
    let start = out.len();
    if len > limit.saturating_sub(start) {
        return Err(DecodeError::DecompressedTooLarge { limit });
    }
    out.resize(start + len, 0);
    let written = decoder
        .decompress(block, &mut out[start..])
        .map_err(invalid(CODEC))?;
    if written != len {
        return Err(malformed(CODEC, "a block is shorter than its header says"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_header_then_length_prefixed_blocks() {
        let input: Vec<u8> = (0..BLOCK_SIZE + 100).map(|i| (i % 251) as u8).collect();
        let mut out = vec![0xaa];
        compress(&input, &mut out).unwrap();
        assert_eq!(out[0], 0xaa, "appends after what is there");
        let framed = &out[1..];
        assert_eq!(&framed[..16], b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
        // Two blocks: 32 KiB, then 100 bytes; each a raw snappy block behind its length.
        let mut rest = &framed[16..];
        let mut blocks = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            blocks.push(
                snap::raw::Decoder::new()
                    .decompress_vec(&rest[4..4 + len])
                    .unwrap(),
            );
            rest = &rest[4 + len..];
        }
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], input[..BLOCK_SIZE]);
        assert_eq!(blocks[1], input[BLOCK_SIZE..]);
        assert_eq!(decompress(framed, usize::MAX).unwrap(), input);
    }

    #[test]
    fn reads_raw_snappy_and_concatenated_streams_as_snappy_java_does() {
        let raw = snap::raw::Encoder::new()
            .compress_vec(b"hello hello hello")
            .unwrap();
        assert_eq!(decompress(&raw, 100).unwrap(), b"hello hello hello");

        let mut two = Vec::new();
        compress(b"first ", &mut two).unwrap();
        compress(b"second", &mut two).unwrap();
        assert_eq!(decompress(&two, 100).unwrap(), b"first second");
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut good = Vec::new();
        compress(&[7u8; 1000], &mut good).unwrap();
        assert!(matches!(
            decompress(&good, 999),
            Err(DecodeError::DecompressedTooLarge { limit: 999 })
        ));
        for cut in [17, 19, 20, good.len() - 1] {
            assert!(
                decompress(&good[..cut], usize::MAX).is_err(),
                "cut at {cut}"
            );
        }
        let mut negative = HEADER.to_vec();
        negative.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(decompress(&negative, usize::MAX).is_err());
        // A raw block claiming 4 GiB of output is refused before anything is allocated.
        assert!(matches!(
            decompress(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0], 1 << 20),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
        assert!(
            decompress(&[], 10).is_err(),
            "snappy-java refuses empty input too"
        );
    }
}
