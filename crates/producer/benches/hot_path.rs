//! CPU cost of the produce hot path: encoding a record into its batch, sealing a batch
//! (header + CRC32C), choosing a partition for a key, encoding a ProduceRequest (no network for
//! these), and `Producer::send` itself against an in-process sink broker (the send loop is timed;
//! the background sender runs meanwhile, as in real use). `cargo bench -p kafka-producer --bench
//! hot_path`.

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kafka_producer::{partition_for_key, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use kafka_producer_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_producer_protocol::produce::{encode_produce_request, TopicBatches};
use kafka_producer_protocol::{frame, BatchBuilder, BatchParams};
use kafka_producer_testkit::{FakeBroker, FakeConfig};

/// `batch.size`'s default: the batch the producer fills before it starts another.
const BATCH_SIZE: usize = 16_384;
const TIMESTAMP: i64 = 1_700_000_000_000;

/// A batch of `BATCH_SIZE` filled with `value`-sized records; returns it and its record count.
fn full_batch(value: &[u8]) -> (BatchBuilder, u64) {
    let mut batch = BatchBuilder::new(BATCH_SIZE);
    let mut n = 0;
    while batch
        .try_append(TIMESTAMP + n as i64, None, Some(value), &[], BATCH_SIZE)
        .is_some()
    {
        n += 1;
    }
    (batch, n)
}

/// Appending records to an empty batch until it is full: per record, what `send` pays to encode.
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_append");
    for size in [100usize, 1000] {
        let value = vec![b'x'; size];
        let (_, per_batch) = full_batch(&value);
        group.throughput(Throughput::Elements(per_batch));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                let (batch, n) = full_batch(black_box(&value));
                black_box(batch);
                n
            })
        });
    }
    group.finish();
}

/// Sealing a full 16 KiB batch: the header and the CRC32C over it.
fn finish(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_finish");
    for size in [100usize, 1000] {
        let value = vec![b'x'; size];
        let (batch, _) = full_batch(&value);
        group.throughput(Throughput::Bytes(batch.size_in_bytes() as u64));
        drop(batch);
        group.bench_function(format!("16KiB_of_{size}B"), |b| {
            b.iter_batched(
                || full_batch(&value).0,
                |batch| batch.finish(BatchParams::default()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The Java client's murmur2 key partitioner, for 16-byte keys over 6 partitions.
fn partition(c: &mut Criterion) {
    let keys: Vec<[u8; 16]> = (0u64..1024)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k[8..].copy_from_slice(&(i * 0x9E37_79B9).to_be_bytes());
            k
        })
        .collect();
    let mut group = c.benchmark_group("partition_for_key");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("16B_key_6_partitions", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| partition_for_key(black_box(k), 6))
                .sum::<u32>()
        })
    });
    group.finish();
}

/// A ProduceRequest (v9) carrying six full 16 KiB batches: encoded by kafka-protocol into a reused
/// buffer (the batches copied), and as the sender encodes it, in chunks.
fn encode_request(c: &mut Criterion) {
    let value = vec![b'x'; 100];
    let batches: Vec<Bytes> = (0..6)
        .map(|_| full_batch(&value).0.finish(BatchParams::default()))
        .collect();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName("bench".into()))
            .with_partition_data(
                batches
                    .iter()
                    .enumerate()
                    .map(|(i, batch)| {
                        PartitionProduceData::default()
                            .with_index(i as i32)
                            .with_records(Some(batch.clone()))
                    })
                    .collect(),
            )]);
    let bytes: usize = batches.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("encode_request");
    group.throughput(Throughput::Bytes(bytes as u64));
    let mut buf = BytesMut::with_capacity(bytes + 1024);
    group.bench_function("produce_v9_6x16KiB", |b| {
        b.iter(|| {
            buf.clear();
            frame::encode_request(&mut buf, 9, 1, Some("bench"), black_box(&request))
                .expect("encodes");
            buf.len()
        })
    });
    // What the sender does: the same request as frame chunks, the batches referenced, not copied.
    let topics = [TopicBatches {
        topic: "bench",
        partitions: batches
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, b)| (i as i32, b))
            .collect(),
    }];
    group.bench_function("produce_v9_6x16KiB_chunks", |b| {
        b.iter(|| {
            encode_produce_request(9, 1, Some("bench"), None, 1, 30_000, black_box(&topics))
                .expect("encodes")
                .len()
        })
    });
    group.finish();
}

/// `Producer::send` per record, from the caller's side: partitioning, encoding into the batch,
/// and the handle, with the sender shipping batches to a sink broker in the background. Each
/// measurement ends with a flush outside the timed loop, so buffer.memory never fills.
fn send(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let broker = runtime.block_on(FakeBroker::start(FakeConfig::sink(6)));
    let mut group = c.benchmark_group("producer_send");
    for (name, props) in [
        ("100B_null_key", &[][..]),
        ("100B_null_key_acks1", &[("acks", "1")][..]),
    ] {
        let mut config = ProducerConfig::new(&broker.addr());
        config.set("linger.ms", "5").expect("linger.ms");
        for (k, v) in props {
            config.set(k, v).expect("property");
        }
        let producer = runtime.block_on(Producer::new(config)).expect("producer");
        runtime
            .block_on(producer.partition_count("bench"))
            .expect("metadata");
        let value = [b'x'; 100];
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        let record = ProducerRecord::<&[u8], &[u8]>::new("bench").value(&value[..]);
                        drop(producer.send(record).await.expect("send"));
                    }
                    let elapsed = start.elapsed();
                    producer.flush().await.expect("flush");
                    elapsed
                })
            })
        });
        runtime
            .block_on(producer.close(std::time::Duration::from_secs(5)))
            .expect("close");
    }
    group.finish();
}

criterion_group!(benches, append, finish, partition, encode_request, send);
criterion_main!(benches);
