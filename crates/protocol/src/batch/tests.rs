use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::error::DecodeError;

fn header(key: &str, value: Option<&[u8]>) -> Header {
    Header {
        key: key.to_owned(),
        value: value.map(Bytes::copy_from_slice),
    }
}

/// Recomputes the CRC after a test has edited a batch, so the decoder looks past it.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[offset::ATTRIBUTES..]);
    batch[offset::CRC..offset::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// Two records: deltas, null key, empty value, one header.
fn sample_batch() -> Bytes {
    let mut builder = BatchBuilder::new(0);
    let headers = [header("h", Some(b"x"))];
    assert_eq!(
        builder.try_append(1000, Some(b"k"), Some(b"v"), &headers, usize::MAX),
        Some(0)
    );
    assert_eq!(
        builder.try_append(990, None, Some(b""), &[], usize::MAX),
        Some(1)
    );
    builder.finish(BatchParams {
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 7,
        ..BatchParams::default()
    })
}

#[test]
fn matches_a_hand_written_layout() {
    #[rustfmt::skip]
    let expected: Vec<u8> = [
        &0i64.to_be_bytes()[..],        // 0..8 baseOffset
        &69i32.to_be_bytes(),           // 8..12 batchLength: 81 - 12
        &(-1i32).to_be_bytes(),         // 12..16 partitionLeaderEpoch
        &[2],                           // 16 magic
        &0xe6e3_405fu32.to_be_bytes(),  // 17..21 crc, computed independently of crc32c
        &0i16.to_be_bytes(),            // 21..23 attributes
        &1i32.to_be_bytes(),            // 23..27 lastOffsetDelta
        &1000i64.to_be_bytes(),         // 27..35 baseTimestamp
        &1000i64.to_be_bytes(),         // 35..43 maxTimestamp
        &42i64.to_be_bytes(),           // 43..51 producerId
        &3i16.to_be_bytes(),            // 51..53 producerEpoch
        &7i32.to_be_bytes(),            // 53..57 baseSequence
        &2i32.to_be_bytes(),            // 57..61 recordCount
        // record 0: length 12, attributes, timestampDelta 0, offsetDelta 0,
        // key "k", value "v", 1 header "h" = "x"
        &[0x18, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x02, 0x02, b'h', 0x02, b'x'],
        // record 1: length 6, attributes, timestampDelta -10, offsetDelta 1,
        // null key, empty value, no headers
        &[0x0c, 0x00, 0x13, 0x02, 0x01, 0x00, 0x00],
    ]
    .concat();
    assert_eq!(sample_batch(), expected);
}

#[test]
fn decodes_the_sample() {
    let batches = decode_batches(&sample_batch()).unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.crc, 0xe6e3_405f);
    assert!(!batch.is_transactional());
    assert!(!batch.is_control());
    assert_eq!(
        batch.records,
        [
            DecodedRecord {
                offset_delta: 0,
                timestamp: 1000,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![header("h", Some(b"x"))],
            },
            DecodedRecord {
                offset_delta: 1,
                timestamp: 990,
                key: None,
                value: Some(Bytes::new()),
                headers: vec![],
            },
        ]
    );
}

#[test]
fn empty_input_is_no_batches_and_concatenated_batches_all_decode() {
    assert_eq!(decode_batches(&[]).unwrap(), []);
    let one = sample_batch();
    let two = [&one[..], &one[..]].concat();
    let decoded = decode_batches(&two).unwrap();
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded[0], decoded[1]);
}

#[test]
fn transactional_flag_sets_attribute_bit_4() {
    let mut builder = BatchBuilder::new(0);
    builder.try_append(1, None, None, &[], usize::MAX).unwrap();
    let bytes = builder.finish(BatchParams {
        transactional: true,
        ..BatchParams::default()
    });
    let batch = &decode_batches(&bytes).unwrap()[0];
    assert_eq!(batch.attributes, 0x10);
    assert!(batch.is_transactional());
}

#[test]
fn first_record_is_always_accepted() {
    let mut builder = BatchBuilder::new(0);
    let big = vec![7u8; 1000];
    assert_eq!(builder.try_append(5, None, Some(&big), &[], 100), Some(0));
    assert!(builder.size_in_bytes() > 100);
    assert_eq!(builder.first_timestamp(), Some(5));
}

#[test]
fn later_records_over_the_limit_are_refused_without_writing() {
    let mut builder = BatchBuilder::new(0);
    builder
        .try_append(5, Some(b"a"), Some(b"b"), &[], 1000)
        .unwrap();
    let size = builder.size_in_bytes();
    let refused = vec![0u8; 1000];
    assert_eq!(builder.try_append(6, None, Some(&refused), &[], 1000), None);
    assert_eq!(builder.size_in_bytes(), size);
    assert_eq!(builder.record_count(), 1);
    // Each of these records takes 9 bytes: a length byte, then attributes, two one-byte
    // deltas, key and value (length + 1 byte each) and the header count.
    let record = 9;
    let limit = size + record;
    assert_eq!(
        builder.try_append(7, Some(b"c"), Some(b"d"), &[], limit),
        Some(1)
    );
    assert_eq!(
        builder.size_in_bytes(),
        limit,
        "a batch exactly at the limit is fine"
    );
    assert_eq!(
        builder.try_append(8, Some(b"e"), Some(b"f"), &[], limit),
        None
    );
    let batch = &decode_batches(&builder.finish(BatchParams::default())).unwrap()[0];
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.max_timestamp, 7);
}

#[test]
fn empty_builder_finishes_to_an_empty_batch() {
    let builder = BatchBuilder::new(16);
    assert!(builder.is_empty());
    assert_eq!(builder.size_in_bytes(), RECORD_BATCH_OVERHEAD);
    let bytes = builder.finish(BatchParams::default());
    let batch = &decode_batches(&bytes).unwrap()[0];
    assert_eq!(
        (
            batch.last_offset_delta,
            batch.base_timestamp,
            batch.max_timestamp
        ),
        (-1, -1, -1)
    );
    assert!(batch.records.is_empty());
}

#[test]
fn flipped_bytes_under_the_crc_are_rejected() {
    let good = sample_batch();
    for i in offset::CRC..good.len() {
        let mut bad = good.to_vec();
        bad[i] ^= 0x40;
        let err = decode_batches(&bad).unwrap_err();
        assert!(
            matches!(err, DecodeError::BadCrc { .. }),
            "byte {i}: {err:?}"
        );
    }
    let mut bad_magic = good.to_vec();
    bad_magic[offset::MAGIC] = 1;
    assert!(matches!(
        decode_batches(&bad_magic),
        Err(DecodeError::UnsupportedMagic(1))
    ));
}

#[test]
fn truncated_input_is_rejected() {
    let good = sample_batch();
    for len in 1..good.len() {
        let err = decode_batches(&good[..len]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated),
            "prefix {len}: {err:?}"
        );
    }
}

#[test]
fn trailing_garbage_is_rejected() {
    let good = sample_batch();
    for garbage in [&[0u8][..], &[1, 2, 3], &[0xff; 12], &[0; 61]] {
        let input = [&good[..], garbage].concat();
        assert!(decode_batches(&input).is_err(), "{garbage:?}");
    }
    // Bytes inside the batch after the last record, with a CRC that covers them.
    let mut padded = [&good[..], &[0u8]].concat();
    padded[offset::BATCH_LENGTH..offset::PARTITION_LEADER_EPOCH]
        .copy_from_slice(&70i32.to_be_bytes());
    fix_crc(&mut padded);
    assert!(matches!(
        decode_batches(&padded),
        Err(DecodeError::TrailingBytes)
    ));
}

#[test]
fn record_count_must_match_the_records() {
    let good = sample_batch();
    for (count, expected) in [(1, "trailing"), (3, "truncated"), (-1, "invalid")] {
        let mut bad = good.to_vec();
        bad[offset::RECORD_COUNT..RECORD_BATCH_OVERHEAD].copy_from_slice(&i32::to_be_bytes(count));
        fix_crc(&mut bad);
        let err = decode_batches(&bad).unwrap_err();
        let ok = match expected {
            "trailing" => matches!(err, DecodeError::TrailingBytes),
            "truncated" => matches!(err, DecodeError::Truncated),
            _ => matches!(err, DecodeError::InvalidLength(-1)),
        };
        assert!(ok, "count {count}: {err:?}");
    }
}

/// Every codec, at its default level.
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::gzip(),
    Compression::Snappy,
    Compression::lz4(),
    Compression::zstd(),
];

/// A batch of `count` records with compressible text values, keys and a header.
fn text_batch(count: usize, compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(0);
    for i in 0..count {
        let value = format!("reading {i}: temperature {} humidity {}", i % 40, i % 100);
        builder
            .try_append(
                1_700_000_000_000 + i as i64,
                Some(format!("city-{}", i % 7).as_bytes()),
                Some(value.as_bytes()),
                &[header("source", Some(b"station"))],
                usize::MAX,
            )
            .unwrap();
    }
    builder.finish(BatchParams {
        compression,
        ..BatchParams::default()
    })
}

#[test]
fn attribute_bits_are_kafkas_codec_ids() {
    let bits: Vec<i16> = CODECS.iter().map(|c| c.attribute_bits()).collect();
    assert_eq!(bits, [0, 1, 2, 3, 4]);
    let names: Vec<&str> = CODECS.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["none", "gzip", "snappy", "lz4", "zstd"]);
    for codec in CODECS {
        let bytes = text_batch(3, codec);
        let attributes =
            i16::from_be_bytes([bytes[offset::ATTRIBUTES], bytes[offset::ATTRIBUTES + 1]]);
        assert_eq!(attributes, codec.attribute_bits(), "{codec:?}");
        let batch = &decode_batches(&bytes).unwrap()[0];
        assert_eq!(batch.attributes, codec.attribute_bits());
        assert_eq!(batch.records.len(), 3);
    }
}

#[test]
fn compressed_records_are_in_each_codecs_own_format() {
    let records = |codec| text_batch(2000, codec).slice(RECORD_BATCH_OVERHEAD..);
    let plain = records(Compression::None);
    // gzip member header: 1f 8b, deflate.
    assert_eq!(records(Compression::gzip())[..3], [0x1f, 0x8b, 0x08]);
    // snappy-java's stream header, then the first block's big-endian length.
    let snappy = records(Compression::Snappy);
    assert_eq!(&snappy[..16], b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01");
    let first_block = u32::from_be_bytes(snappy[16..20].try_into().unwrap()) as usize;
    let block = snap::raw::Decoder::new()
        .decompress_vec(&snappy[20..20 + first_block])
        .unwrap();
    assert_eq!(block, plain[..32 * 1024], "blocks of 32 KiB of input");
    // LZ4 frame: magic 0x184D2204 little-endian, FLG 0x60, BD 0x40, header checksum 0x82,
    // and the frame decodes with liblz4's own frame decoder.
    let lz4 = records(Compression::lz4());
    assert_eq!(lz4[..7], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut lz4::Decoder::new(&lz4[..]).unwrap(), &mut decoded).unwrap();
    assert_eq!(decoded, plain);
    // zstd frame magic 0xFD2FB528 little-endian.
    let zstd = records(Compression::zstd());
    assert_eq!(zstd[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(zstd::decode_all(&zstd[..]).unwrap(), plain);
    for codec in &CODECS[1..] {
        let compressed = records(*codec);
        assert!(
            compressed.len() < plain.len() / 3,
            "{codec:?}: {} of {}",
            compressed.len(),
            plain.len()
        );
    }
}

#[test]
fn levels_change_the_output_and_every_level_decodes() {
    let at = |compression| text_batch(500, compression);
    let records = |bytes: &Bytes| decode_batches(bytes).unwrap().remove(0).records;
    let plain = records(&at(Compression::None));
    for (low, high) in [
        (
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: 9 },
        ),
        (
            Compression::Lz4 { level: 1 },
            Compression::Lz4 { level: 17 },
        ),
        (
            Compression::Zstd { level: -131_072 },
            Compression::Zstd { level: 19 },
        ),
    ] {
        let (low_bytes, high_bytes) = (at(low), at(high));
        assert!(low_bytes.len() > high_bytes.len(), "{low:?} vs {high:?}");
        assert_eq!(records(&low_bytes), plain, "{low:?}");
        assert_eq!(records(&high_bytes), plain, "{high:?}");
    }
    // Levels out of range are clamped (gzip: the default), never an error or a panic.
    for codec in [
        Compression::Gzip { level: 0 },
        Compression::Gzip { level: 100 },
        Compression::Lz4 { level: -3 },
        Compression::Lz4 { level: 1000 },
        Compression::Zstd { level: i32::MIN },
        Compression::Zstd { level: i32::MAX },
    ] {
        let bytes = at(codec);
        assert_eq!(
            decode_batches(&bytes).unwrap()[0].records.len(),
            500,
            "{codec:?}"
        );
    }
}

#[test]
fn incompressible_records_keep_the_codec_as_in_java() {
    // Pseudo-random bytes (xorshift): every codec's output is larger than its input.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..300)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    for codec in CODECS {
        let mut builder = BatchBuilder::new(0);
        builder
            .try_append(1, None, Some(&noise), &[], usize::MAX)
            .unwrap();
        let uncompressed_size = builder.size_in_bytes();
        let bytes = builder.finish(BatchParams {
            compression: codec,
            ..BatchParams::default()
        });
        if codec != Compression::None {
            assert!(bytes.len() > uncompressed_size, "{codec:?}");
        }
        let batch = &decode_batches(&bytes).unwrap()[0];
        assert_eq!(batch.attributes, codec.attribute_bits());
        assert_eq!(batch.records[0].value.as_deref(), Some(&noise[..]));
    }
}

/// Replaces a batch's records section, fixing batchLength and the CRC.
fn with_records_section(batch: &[u8], section: &[u8]) -> Vec<u8> {
    let mut out = [&batch[..RECORD_BATCH_OVERHEAD], section].concat();
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[offset::BATCH_LENGTH..offset::PARTITION_LEADER_EPOCH]
        .copy_from_slice(&length.to_be_bytes());
    fix_crc(&mut out);
    out
}

#[test]
fn corrupt_compressed_records_are_errors_not_panics() {
    for codec in &CODECS[1..] {
        let good = text_batch(300, *codec);
        let section = &good[RECORD_BATCH_OVERHEAD..];
        let cut = with_records_section(&good, &section[..section.len() / 2]);
        let garbage = with_records_section(&good, &[0xff; 200]);
        let empty = with_records_section(&good, &[]);
        for (what, bad) in [("cut", cut), ("garbage", garbage), ("empty", empty)] {
            let err = decode_batches(&bad).unwrap_err();
            assert!(
                matches!(err, DecodeError::Decompression { codec: name, .. } if name == codec.name()),
                "{codec:?} {what}: {err:?}"
            );
        }
        // Flipped bytes anywhere in the compressed data: an error, or records that decode.
        for at in (0..section.len()).step_by(section.len() / 300 + 1) {
            let mut flipped = section.to_vec();
            flipped[at] ^= 0x55;
            let _ = decode_batches(&with_records_section(&good, &flipped));
        }
    }
    // Plain records marked as compressed are not misread either.
    let plain = sample_batch();
    let mut marked = plain.to_vec();
    marked[offset::ATTRIBUTES + 1] = 1;
    fix_crc(&mut marked);
    assert!(matches!(
        decode_batches(&marked),
        Err(DecodeError::Decompression { codec: "gzip", .. })
    ));
    for codec in 5..=7 {
        marked[offset::ATTRIBUTES + 1] = codec;
        fix_crc(&mut marked);
        assert!(matches!(
            decode_batches(&marked),
            Err(DecodeError::UnsupportedCompression(c)) if c == codec
        ));
    }
}

#[test]
fn decompression_is_bounded() {
    // Raw snappy whose header claims 100 MiB: refused before anything is allocated.
    let mut claim = Vec::new();
    let mut n = 100u32 << 20;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.push(0);
    let batch = with_records_section(&text_batch(1, Compression::Snappy), &claim);
    assert!(matches!(
        decode_batches(&batch),
        Err(DecodeError::DecompressedTooLarge {
            limit: MAX_DECOMPRESSED
        })
    ));
    // A real stream just over the limit: zstd of zeros is small and fast to make.
    let zeros = zstd::bulk::compress(&vec![0u8; MAX_DECOMPRESSED + 1], 1).unwrap();
    let batch = with_records_section(&text_batch(1, Compression::zstd()), &zeros);
    assert!(matches!(
        decode_batches(&batch),
        Err(DecodeError::DecompressedTooLarge { .. })
    ));
}

#[test]
fn multi_block_batches_round_trip() {
    // Over 64 KiB of records: several snappy (32 KiB) and lz4 (64 KiB) blocks.
    let plain = decode_batches(&text_batch(5000, Compression::None)).unwrap();
    assert!(text_batch(5000, Compression::None).len() > 200_000);
    for codec in &CODECS[1..] {
        let batch = &decode_batches(&text_batch(5000, *codec)).unwrap()[0];
        assert_eq!(batch.records, plain[0].records, "{codec:?}");
    }
}

#[test]
fn unrepresentable_records_are_refused_even_when_empty() {
    assert_eq!(
        record_size_upper_bound(Some(i32::MAX as usize + 1), None, &[]),
        usize::MAX
    );
    assert_eq!(
        record_size_upper_bound(Some(usize::MAX), Some(usize::MAX), &[]),
        usize::MAX
    );
}

/// One record as generated for the round trip.
#[derive(Debug, Clone)]
struct Input {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
}

fn bytes_strategy() -> impl Strategy<Value = Option<Vec<u8>>> {
    // Null, empty, random and repetitive (compressible), with lengths that cross the 1-byte
    // varint boundary (63).
    prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        proptest::collection::vec(any::<u8>(), 1..100).prop_map(Some),
        (proptest::collection::vec(any::<u8>(), 1..8), 1..300usize)
            .prop_map(|(unit, len)| Some(unit.into_iter().cycle().take(len).collect())),
    ]
}

fn header_strategy() -> impl Strategy<Value = Header> {
    // A small key alphabet makes duplicate keys common.
    let key = prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        "[a-zé]{0,8}"
    ];
    (key, bytes_strategy()).prop_map(|(key, value)| Header {
        key,
        value: value.map(Bytes::from),
    })
}

fn input_strategy() -> impl Strategy<Value = Input> {
    let timestamp = prop_oneof![
        -1000i64..1000,
        1_700_000_000_000i64..1_700_000_100_000,
        any::<i64>(),
    ];
    (
        timestamp,
        bytes_strategy(),
        bytes_strategy(),
        proptest::collection::vec(header_strategy(), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Input {
            timestamp,
            key,
            value,
            headers,
        })
}

fn compression_strategy() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        prop_oneof![
            Just(Compression::GZIP_DEFAULT_LEVEL),
            Compression::GZIP_LEVELS
        ]
        .prop_map(|level| Compression::Gzip { level }),
        Just(Compression::Snappy),
        Compression::LZ4_LEVELS.prop_map(|level| Compression::Lz4 { level }),
        prop_oneof![Just(*Compression::ZSTD_LEVELS.start()), -10..=22]
            .prop_map(|level| Compression::Zstd { level }),
    ]
}

fn params_strategy() -> impl Strategy<Value = BatchParams> {
    (
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
        compression_strategy(),
        any::<bool>(),
    )
        .prop_map(
            |(producer_id, producer_epoch, base_sequence, compression, transactional)| {
                BatchParams {
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    compression,
                    transactional,
                }
            },
        )
}

proptest! {
    #[test]
    fn round_trip(inputs in proptest::collection::vec(input_strategy(), 1..30), params in params_strategy()) {
        let mut builder = BatchBuilder::new(64);
        for (i, input) in inputs.iter().enumerate() {
            let before = builder.size_in_bytes();
            let index = builder.try_append(
                input.timestamp,
                input.key.as_deref(),
                input.value.as_deref(),
                &input.headers,
                usize::MAX,
            );
            prop_assert_eq!(index, Some(i as u32));
            let bound = record_size_upper_bound(
                input.key.as_ref().map(Vec::len),
                input.value.as_ref().map(Vec::len),
                &input.headers,
            );
            prop_assert!(builder.size_in_bytes() - before <= bound);
        }
        let size = builder.size_in_bytes();
        let bytes = builder.finish(params);
        if params.compression == Compression::None {
            prop_assert_eq!(bytes.len(), size);
        }

        let batches = decode_batches(&bytes).unwrap();
        prop_assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let n = inputs.len() as i32;
        prop_assert_eq!(batch.base_offset, 0);
        prop_assert_eq!(batch.partition_leader_epoch, -1);
        prop_assert_eq!(batch.magic, 2);
        prop_assert_eq!(batch.crc, crc32c::crc32c(&bytes[offset::ATTRIBUTES..]));
        let transactional = if params.transactional { 0x10 } else { 0 };
        prop_assert_eq!(batch.attributes, params.compression.attribute_bits() | transactional);
        prop_assert_eq!(batch.last_offset_delta, n - 1);
        prop_assert_eq!(batch.base_timestamp, inputs[0].timestamp);
        prop_assert_eq!(batch.max_timestamp, inputs.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(batch.producer_id, params.producer_id);
        prop_assert_eq!(batch.producer_epoch, params.producer_epoch);
        prop_assert_eq!(batch.base_sequence, params.base_sequence);
        prop_assert_eq!(&bytes[offset::RECORD_COUNT..RECORD_BATCH_OVERHEAD], &n.to_be_bytes());
        prop_assert_eq!(batch.records.len(), inputs.len());
        for (i, (record, input)) in batch.records.iter().zip(&inputs).enumerate() {
            prop_assert_eq!(record.offset_delta, i as i32);
            prop_assert_eq!(record.timestamp, input.timestamp);
            prop_assert_eq!(record.key.as_deref(), input.key.as_deref());
            prop_assert_eq!(record.value.as_deref(), input.value.as_deref());
            prop_assert_eq!(&record.headers, &input.headers);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_batches(&bytes);
    }

    #[test]
    fn mutated_batches_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        keep_crc_valid: bool,
        codec in 0..6usize,
    ) {
        // Start from a valid batch so the edits reach record parsing (or decompression), not
        // just the header.
        let mut bytes = match CODECS.get(codec) {
            Some(compression) => text_batch(20, *compression).to_vec(),
            None => sample_batch().to_vec(),
        };
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        if keep_crc_valid {
            fix_crc(&mut bytes);
        }
        let _ = decode_batches(&bytes);
    }
}
