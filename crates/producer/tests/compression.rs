//! Every `compression.type` against the real cluster. The brokers accept the batches (they
//! decompress them to validate), the Java client reads every record back intact, and Kafka's own
//! `kafka-dump-log` shows that the batches on disk carry the codec.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{cluster, dump_log_batches, dump_log_field, Cluster};

const RECORDS: usize = 500;

/// One record as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Keyed records whose values are compressible text, random bytes, empty or null, of sizes from
/// a few bytes to 20 KiB, with headers (one of them null).
fn records() -> Vec<Sent> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..RECORDS)
        .map(|i| {
            let size = if i % 50 == 4 {
                20_000
            } else {
                [5, 60, 300, 1_500][i % 4]
            };
            let value = match i % 7 {
                0 if i % 3 == 0 => None,
                1 => Some(Vec::new()),
                2 | 4 => Some((0..size).map(|_| random() as u8).collect()),
                _ => Some(
                    format!(
                        "{{\"reading\":{i},\"city\":\"city-{}\",\"note\":\"calm\"}} ",
                        i % 13
                    )
                    .into_bytes()
                    .into_iter()
                    .cycle()
                    .take(size)
                    .collect(),
                ),
            };
            let mut headers = vec![
                ("seq".to_string(), Some(i.to_string().into_bytes())),
                ("source".to_string(), Some(b"compression-test".to_vec())),
            ];
            if i % 10 == 0 {
                headers.push(("nothing".to_string(), None));
            }
            Sent {
                key: format!("key-{}", i % 37).into_bytes(),
                value,
                headers,
            }
        })
        .collect()
}

/// Produces [`records`] with `settings`, reads them back with the Java reader, and returns what
/// `kafka-dump-log` prints for the partitions' logs on their leaders.
async fn produce_and_check(prefix: &str, settings: &[(&str, &str)]) -> Option<String> {
    let cluster = cluster()?;
    let topic = Cluster::random_topic(prefix);
    cluster.create_topic(&topic, 3, cluster.replication_factor(), &[]);
    let mut config = ProducerConfig::new(cluster.bootstrap());
    // Some linger so that batches hold many records, as they do under load.
    config.set("linger.ms", "20").unwrap();
    for (key, value) in settings {
        config.set(key, value).unwrap();
    }
    let producer = Producer::new(config).await.unwrap();

    let sent = records();
    let mut futures = Vec::new();
    for record in &sent {
        let mut r = ProducerRecord::<&[u8], &[u8]>::new(&topic).key(&record.key);
        if let Some(value) = &record.value {
            r = r.value(value);
        }
        for (key, value) in &record.headers {
            r = r.header(key.as_str(), value.as_deref());
        }
        futures.push(producer.send(r).await.unwrap());
    }
    producer.flush().await.unwrap();
    // Per partition, the records in send order, at the offsets their futures reported.
    let mut expected: BTreeMap<i32, Vec<(i64, &Sent)>> = BTreeMap::new();
    for (future, record) in futures.into_iter().zip(&sent) {
        let md = future.await.unwrap();
        expected
            .entry(md.partition)
            .or_default()
            .push((md.offset.unwrap(), record));
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let read = cluster.read_topic(&topic);
    assert_eq!(read.len(), RECORDS, "{settings:?}");
    let mut got: BTreeMap<i32, Vec<(i64, Sent)>> = BTreeMap::new();
    for r in read {
        got.entry(r.partition).or_default().push((
            r.offset,
            Sent {
                key: r.key.unwrap_or_default(),
                value: r.value,
                headers: r.headers,
            },
        ));
    }
    let expected: BTreeMap<i32, Vec<(i64, Sent)>> = expected
        .into_iter()
        .map(|(p, records)| {
            (
                p,
                records.into_iter().map(|(o, r)| (o, r.clone())).collect(),
            )
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (partition, records) in &expected {
        // Offsets 0, 1, 2, ... in send order, and every field as sent.
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..records.len() as i64).collect::<Vec<_>>());
        assert!(
            got[partition] == *records,
            "{settings:?}: partition {partition} differs"
        );
    }

    // One kafka-dump-log run over each partition's log on its leader.
    let mut segments = Vec::new();
    for partition in cluster.describe_topic(&topic) {
        let segment = cluster.first_segment(partition.leader, &topic, partition.partition);
        assert!(segment.is_file(), "no segment at {}", segment.display());
        segments.push(segment.to_string_lossy().into_owned());
    }
    let out = cluster.tool(
        "kafka-dump-log",
        &["--files", &segments.join(","), "--print-data-log"],
    );
    assert!(
        out.status.success(),
        "kafka-dump-log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs [`produce_and_check`] and asserts that every batch on disk has `codec`, is valid, and that
/// batches hold several records each; prints the fullest batch's line as evidence.
async fn check_codec(codec: &str, settings: &[(&str, &str)]) {
    let Some(dump) = produce_and_check(codec, settings).await else {
        return;
    };
    let lines = dump_log_batches(&dump);
    let count = |line: &str| dump_log_field(line, "count").parse::<usize>().unwrap();
    for line in &lines {
        assert!(
            dump_log_field(line, "compresscodec").eq_ignore_ascii_case(codec),
            "{settings:?}: {line}"
        );
        assert_eq!(dump_log_field(line, "isvalid"), "true", "{line}");
    }
    assert_eq!(lines.iter().map(|l| count(l)).sum::<usize>(), RECORDS);
    assert!(
        lines.len() < RECORDS / 4,
        "{} batches: records were batched",
        lines.len()
    );
    let stored: usize = lines
        .iter()
        .map(|l| dump_log_field(l, "size").parse::<usize>().unwrap())
        .sum();
    let fullest = lines.iter().max_by_key(|l| count(l)).unwrap();
    println!(
        "{settings:?}: {} batches, {stored} bytes on disk; fullest: {fullest}",
        lines.len()
    );
}

#[tokio::test]
async fn none_writes_plain_batches() {
    check_codec("none", &[("compression.type", "none")]).await;
}

#[tokio::test]
async fn gzip_batches_are_read_by_java_and_stored_as_gzip() {
    check_codec("gzip", &[("compression.type", "gzip")]).await;
}

#[tokio::test]
async fn snappy_batches_are_read_by_java_and_stored_as_snappy() {
    check_codec("snappy", &[("compression.type", "snappy")]).await;
}

#[tokio::test]
async fn lz4_batches_are_read_by_java_and_stored_as_lz4() {
    check_codec("lz4", &[("compression.type", "lz4")]).await;
}

#[tokio::test]
async fn zstd_batches_are_read_by_java_and_stored_as_zstd() {
    check_codec("zstd", &[("compression.type", "zstd")]).await;
}

#[tokio::test]
async fn non_default_levels_are_accepted_too() {
    // LZ4 HC (any level but 9), gzip's fastest level, a negative zstd level.
    check_codec(
        "lz4",
        &[("compression.type", "lz4"), ("compression.lz4.level", "12")],
    )
    .await;
    check_codec(
        "gzip",
        &[
            ("compression.type", "gzip"),
            ("compression.gzip.level", "1"),
        ],
    )
    .await;
    check_codec(
        "zstd",
        &[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "-5"),
        ],
    )
    .await;
}

/// With compression, `batch.size` bounds a batch after compression, as the Java client has it
/// (its compression ratio estimate, which starts at 1.0 and improves by 0.005 per batch):
/// compressible records come to fill batches of many more records than fit in `batch.size`
/// uncompressed, and the batches on disk stay near `batch.size`.
/// (A multi-threaded runtime, so the sender drains batches while the loop sends.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_batches_fill_batch_size_after_compression() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("lz4-fill");
    cluster.create_topic(&topic, 1, cluster.replication_factor(), &[]);
    let mut config = ProducerConfig::new(cluster.bootstrap());
    config.set("compression.type", "lz4").unwrap();
    config.set("linger.ms", "100").unwrap();
    // The Java client's batching: no growth past batch.size.
    config.set("batch.max.size", "16384").unwrap();
    let producer = Producer::new(config).await.unwrap();
    const N: usize = 50_000;
    let value = |i: usize| {
        format!("{{\"reading\":{i:08},\"city\":\"city-{}\",\"note\":\"a calm and sunny day, light wind\"}}", i % 13)
    };
    // At most a few batches' worth in flight, as a steady producer has: the estimate learns
    // from each batch sealed, so a deep backlog of batches closed early would hide it.
    let mut pending = std::collections::VecDeque::new();
    let mut next_offset = 0;
    for i in 0..N {
        let v = value(i);
        let r = ProducerRecord::<&[u8], &[u8]>::new(&topic).value(v.as_bytes());
        pending.push_back(producer.send(r).await.unwrap());
        if pending.len() > 2_000 {
            let f = pending.pop_front().unwrap();
            assert_eq!(f.await.unwrap().offset, Some(next_offset));
            next_offset += 1;
        }
    }
    producer.flush().await.unwrap();
    for f in pending {
        assert_eq!(f.await.unwrap().offset, Some(next_offset));
        next_offset += 1;
    }
    producer.close(Duration::from_secs(10)).await.unwrap();

    let read = cluster.read_topic(&topic);
    assert_eq!(read.len(), N);
    for (i, r) in read.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(value(i).as_bytes()), "record {i}");
    }

    let leader = cluster.describe_topic(&topic)[0].leader;
    let segment = cluster.first_segment(leader, &topic, 0);
    let out = cluster.tool("kafka-dump-log", &["--files", &segment.to_string_lossy()]);
    assert!(out.status.success());
    let dump = String::from_utf8_lossy(&out.stdout);
    let lines = dump_log_batches(&dump);
    let count = |line: &str| dump_log_field(line, "count").parse::<usize>().unwrap();
    let size = |line: &str| dump_log_field(line, "size").parse::<usize>().unwrap();
    let uncompressed_fit = 16_384 / (value(0).len() + 8);
    let fullest = lines.iter().copied().max_by_key(|l| count(l)).unwrap();
    println!(
        "{} batches for {N} records; {uncompressed_fit} would fit in 16 KiB uncompressed; fullest: {fullest}",
        lines.len()
    );
    assert!(count(fullest) > 2 * uncompressed_fit, "{fullest}");
    for line in &lines {
        assert_eq!(
            dump_log_field(line, "compresscodec").to_ascii_lowercase(),
            "lz4"
        );
        assert!(
            size(line) <= 2 * 16_384,
            "a batch far beyond batch.size: {line}"
        );
    }
}
