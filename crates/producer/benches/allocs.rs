//! Heap allocations per record, counted by a wrapping global allocator.
//!
//! `cargo bench -p kafka-producer --bench allocs` prints allocations and bytes per record for
//! encoding records into a batch (`BatchBuilder::try_append`, alone and with the batch's own
//! buffer and `finish` amortized over its records), and, when `SINK_BOOTSTRAP=HOST:PORT` names a
//! broker (the sink broker: `cargo run --release -p kafka-producer-testkit --bin sink-broker`),
//! for the whole `Producer::send` path: the send loop, then flush, then awaiting every
//! `DeliveryFuture`. The counter is process-wide, so the send loop's figure includes what the
//! sender task allocates meanwhile. `BENCH_RECORDS` sets the records per producer run (200,000).

#![allow(missing_docs)] // a bench program, not an API

use std::alloc::System;
use std::time::{Duration, Instant};

use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use kafka_producer_protocol::{BatchBuilder, BatchParams};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BATCH_SIZE: usize = 16_384;
const TIMESTAMP: i64 = 1_700_000_000_000;

fn main() {
    // `cargo test --benches` runs this too, with `--test`-free arguments: keep that quick.
    let quick = std::env::args().all(|a| a != "--bench");
    println!("allocations per record (allocs, bytes)");
    for size in [100usize, 1000] {
        batch_appends(size, if quick { 10 } else { 10_000 });
    }
    match std::env::var("SINK_BOOTSTRAP") {
        Ok(bootstrap) if !quick => {
            let records = std::env::var("BENCH_RECORDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(200_000);
            for size in [100usize, 1000] {
                producer_send(&bootstrap, size, records);
            }
        }
        Ok(_) => {}
        Err(_) => println!(
            "Producer::send: skipped; set SINK_BOOTSTRAP=HOST:PORT (cargo run --release -p kafka-producer-testkit --bin sink-broker)"
        ),
    }
}

/// Fills `batches` batches of `BATCH_SIZE` with `size`-byte records.
fn batch_appends(size: usize, batches: usize) {
    let value = vec![b'x'; size];
    let mut records = 0u64;
    let mut appends = Count::default();
    let whole = Region::new(GLOBAL);
    for _ in 0..batches {
        let mut batch = BatchBuilder::new(BATCH_SIZE);
        let region = Region::new(GLOBAL);
        while batch
            .try_append(TIMESTAMP, None, Some(&value), &[], BATCH_SIZE)
            .is_some()
        {
            records += 1;
        }
        appends = appends.add(region.change());
        drop(std::hint::black_box(batch.finish(BatchParams::default())));
    }
    let whole = Count::default().add(whole.change());
    line(
        &format!("BatchBuilder::try_append, {size} B"),
        appends,
        records,
    );
    line(
        &format!("  with new + finish per 16 KiB batch, {size} B"),
        whole,
        records,
    );
}

/// One producer against `bootstrap`: a warm-up, then `records` records in three phases.
fn producer_send(bootstrap: &str, size: usize, records: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut config = ProducerConfig::new(bootstrap);
        config.set("acks", "1").expect("acks");
        config.set("linger.ms", "5").expect("linger.ms");
        let producer = Producer::new(config)
            .await
            .expect("connect to SINK_BOOTSTRAP");
        let topic = "bench-allocs";
        let value = vec![b'x'; size];
        let mut pending = Vec::with_capacity(records);
        // Warm-up: connections, metadata, the accumulator's queues and the runtime's buffers.
        run(&producer, topic, &value, records.min(50_000), &mut pending).await;

        let started = Instant::now();
        let mut region = Region::new(GLOBAL);
        for _ in 0..records {
            let record = ProducerRecord::<&[u8], &[u8]>::new(topic).value(&value);
            pending.push(producer.send(record).await.expect("send"));
        }
        let sent = Count::default().add(region.change_and_reset());
        producer.flush().await.expect("flush");
        let flushed = Count::default().add(region.change_and_reset());
        for delivery in pending.drain(..) {
            delivery.await.expect("delivered");
        }
        let awaited = Count::default().add(region.change());
        let elapsed = started.elapsed();
        let n = records as u64;
        line(&format!("Producer::send loop, {size} B"), sent, n);
        line(&format!("  flush, {size} B"), flushed, n);
        line(&format!("  awaiting DeliveryFutures, {size} B"), awaited, n);
        let total = sent.add_count(flushed).add_count(awaited);
        line(&format!("  total, {size} B"), total, n);
        println!(
            "  ({records} records in {:.0} ms)",
            elapsed.as_secs_f64() * 1000.0
        );
        producer
            .close(Duration::from_secs(10))
            .await
            .expect("close");
    });
}

async fn run(
    producer: &Producer,
    topic: &str,
    value: &[u8],
    records: usize,
    pending: &mut Vec<kafka_producer::DeliveryFuture>,
) {
    for _ in 0..records {
        let record = ProducerRecord::<&[u8], &[u8]>::new(topic).value(value);
        pending.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await.expect("flush");
    for delivery in pending.drain(..) {
        delivery.await.expect("delivered");
    }
}

/// Allocations and bytes allocated (reallocations count as allocations).
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    allocations: usize,
    bytes: usize,
}

impl Count {
    fn add(mut self, stats: stats_alloc::Stats) -> Self {
        self.allocations += stats.allocations + stats.reallocations;
        self.bytes += stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize;
        self
    }

    fn add_count(mut self, other: Count) -> Self {
        self.allocations += other.allocations;
        self.bytes += other.bytes;
        self
    }
}

fn line(what: &str, count: Count, records: u64) {
    let records = records.max(1) as f64;
    println!(
        "{what:<48} {:>8.3} allocs {:>10.1} bytes",
        count.allocations as f64 / records,
        count.bytes as f64 / records
    );
}
