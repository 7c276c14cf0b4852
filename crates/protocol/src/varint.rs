//! Zigzag varints, as record batch v2 uses them for record fields.
//!
//! Zigzag maps signed to unsigned (0, -1, 1, -2, ... to 0, 1, 2, 3, ...) so small negative
//! numbers stay short; the result is written 7 bits at a time, least significant group
//! first, with the high bit of each byte saying "more follows" (Kafka's `ByteUtils`).
//!
//! Decoding is strict: an encoding longer than the type (over 5 bytes for `i32`, 10 for
//! `i64`) or with bits set beyond the type's width is [`DecodeError::VarintOverflow`].

use crate::error::DecodeError;

/// Appends `v` as a zigzag varint (1 to 5 bytes).
pub fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_unsigned(buf, u64::from(zigzag32(v)));
}

/// Appends `v` as a zigzag varlong (1 to 10 bytes).
pub fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_unsigned(buf, zigzag64(v));
}

/// The number of bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: i32) -> usize {
    unsigned_len(u64::from(zigzag32(v)))
}

/// The number of bytes [`put_varlong`] writes for `v`.
pub fn varlong_len(v: i64) -> usize {
    unsigned_len(zigzag64(v))
}

/// Reads a zigzag varint from the front of `buf` and advances it past the value.
///
/// On error `buf` is left as it was.
pub fn get_varint(buf: &mut &[u8]) -> Result<i32, DecodeError> {
    let raw = get_unsigned(buf, 32)?;
    // get_unsigned guarantees raw fits in 32 bits.
    let raw = raw as u32;
    Ok((raw >> 1) as i32 ^ -((raw & 1) as i32))
}

/// Reads a zigzag varlong from the front of `buf` and advances it past the value.
///
/// On error `buf` is left as it was.
pub fn get_varlong(buf: &mut &[u8]) -> Result<i64, DecodeError> {
    let raw = get_unsigned(buf, 64)?;
    Ok((raw >> 1) as i64 ^ -((raw & 1) as i64))
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_unsigned(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn unsigned_len(v: u64) -> usize {
    // One byte per started group of 7 significant bits; zero still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads an unsigned LEB128 value of at most `width` bits.
fn get_unsigned(buf: &mut &[u8], width: u32) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate() {
        let shift = 7 * i as u32;
        if shift >= width {
            return Err(DecodeError::VarintOverflow);
        }
        let group = u64::from(byte & 0x7f);
        // Bits that would land beyond the type's width mean the value does not fit.
        if width - shift < 7 && group >> (width - shift) != 0 {
            return Err(DecodeError::VarintOverflow);
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(DecodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn varint_bytes(v: i32) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        buf
    }

    fn varlong_bytes(v: i64) -> Vec<u8> {
        let mut buf = Vec::new();
        put_varlong(&mut buf, v);
        buf
    }

    #[test]
    fn known_encodings() {
        // Values from the zigzag definition and Kafka's ByteUtilsTest.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(-2), [0x03]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(300), [0xd8, 0x04]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varlong_bytes(0), [0x00]);
        assert_eq!(varlong_bytes(-1), [0x01]);
        assert_eq!(
            varlong_bytes(i64::MAX),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            varlong_bytes(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn truncated_and_overflowing_inputs() {
        let mut empty: &[u8] = &[];
        assert!(matches!(
            get_varint(&mut empty),
            Err(DecodeError::Truncated)
        ));
        let mut partial: &[u8] = &[0x80, 0x80];
        assert!(matches!(
            get_varint(&mut partial),
            Err(DecodeError::Truncated)
        ));
        assert_eq!(partial.len(), 2, "input is untouched on error");
        // Sixth byte for an i32, and a fifth byte carrying bits 32 and up.
        let mut long: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(matches!(
            get_varint(&mut long),
            Err(DecodeError::VarintOverflow)
        ));
        let mut wide: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x1f];
        assert!(matches!(
            get_varint(&mut wide),
            Err(DecodeError::VarintOverflow)
        ));
        let mut wide64: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03];
        assert!(matches!(
            get_varlong(&mut wide64),
            Err(DecodeError::VarintOverflow)
        ));
    }

    #[test]
    fn advances_past_the_value_only() {
        let mut buf = varint_bytes(300);
        buf.push(0xaa);
        let mut rest: &[u8] = &buf;
        assert_eq!(get_varint(&mut rest).unwrap(), 300);
        assert_eq!(rest, [0xaa]);
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i32, tail: Vec<u8>) {
            let mut buf = varint_bytes(v);
            prop_assert_eq!(buf.len(), varint_len(v));
            buf.extend_from_slice(&tail);
            let mut rest: &[u8] = &buf;
            prop_assert_eq!(get_varint(&mut rest).unwrap(), v);
            prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn varlong_round_trip(v: i64, tail: Vec<u8>) {
            let mut buf = varlong_bytes(v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            buf.extend_from_slice(&tail);
            let mut rest: &[u8] = &buf;
            prop_assert_eq!(get_varlong(&mut rest).unwrap(), v);
            prop_assert_eq!(rest, &tail[..]);
        }

        #[test]
        fn varint_decoding_never_panics(bytes: Vec<u8>) {
            let mut a: &[u8] = &bytes;
            let _ = get_varint(&mut a);
            let mut b: &[u8] = &bytes;
            let _ = get_varlong(&mut b);
        }
    }
}
