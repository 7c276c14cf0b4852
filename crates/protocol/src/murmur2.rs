//! The key hash of Kafka's Java client, so keyed records land on the same partition as
//! they would from the Java producer (`org.apache.kafka.common.utils.Utils.murmur2`).

/// The seed Kafka's Java client uses.
const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 (32-bit) of `data` with Kafka's seed, as Java's `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java mixes the length in as an `int`; keys over 4 GiB would differ, which no key is.
    let mut h = SEED ^ data.len() as u32;

    let mut blocks = data.chunks_exact(4);
    for block in blocks.by_ref() {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Java's fall-through switch: XOR in the last 1-3 bytes, then one multiply.
        for (i, &byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(v: i32) -> i32 {
    v & 0x7fff_ffff
}

/// The Java client's default partition for a non-null key (an empty key is hashed too).
///
/// `num_partitions` of 0 gives 0 rather than a panic; callers must not use it as a
/// partition of a topic that has none.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    if num_partitions == 0 {
        return 0;
    }
    // to_positive leaves a non-negative i32, so the cast to u32 is lossless.
    to_positive(murmur2(key)) as u32 % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_test_vectors() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(0), 0);
        assert_eq!(to_positive(5), 5);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
    }

    #[test]
    fn partition_examples() {
        // "21" hashes to -973932308; toPositive gives 1173551340.
        assert_eq!(partition_for_key(b"21", 1), 0);
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for_key(b"21", 10), 0);
        // "abc" hashes to 479470107, already positive.
        assert_eq!(partition_for_key(b"abc", 7), 479_470_107 % 7);
        assert_eq!(partition_for_key(b"abc", 100), 7);
        // The empty key is hashed like any other (it is not the "no key" case).
        let empty = to_positive(murmur2(b"")) as u32;
        assert_eq!(partition_for_key(b"", 13), empty % 13);
        assert_eq!(partition_for_key(b"abc", 0), 0);
    }
}
