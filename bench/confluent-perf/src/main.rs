//! `kafka-producer-perf-test` on Confluent's Rust client (`confluent-kafka`, a translation of the
//! Java client): the same flags and output as `kprod perf`, for `bench/compare`.
//!
//! Like Kafka's own tool, it passes a callback with every `send`; a record's latency runs from
//! `send` to its callback.
//!
//! It reads the clock for every record, not once per burst (`stats::RecentClock`) as the other
//! Rust programs: its callbacks run on the client's own tasks, and nothing tells where a burst of
//! them ends. At 11 ns a reading this is a small part of its cost per record.

#[path = "../../common/args.rs"]
mod args;
#[path = "../../../crates/cli/src/perf/stats.rs"]
#[allow(dead_code)] // RecentClock: see above
mod stats;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use confluent_kafka::common::serialization::ByteArraySerializer;
use confluent_kafka::producer::{KafkaProducer, Producer, ProducerConfig, ProducerRecord};

use args::PerfArgs;
use stats::{Instant, Stats};

struct State {
    stats: Stats,
    failed: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = PerfArgs::parse();
    let props: HashMap<String, String> = match args.properties() {
        Ok(props) => props.into_iter().collect(),
        Err(e) => {
            eprintln!("confluent-perf: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match ProducerConfig::new(&props) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confluent-perf: {e}");
            return ExitCode::from(2);
        }
    };
    let producer = match KafkaProducer::<Vec<u8>, Vec<u8>>::new(
        config,
        ByteArraySerializer::new(),
        ByteArraySerializer::new(),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("confluent-perf: {e}");
            return ExitCode::from(2);
        }
    };
    let payload = stats::payload(args.record_size);
    // Learn the topic's metadata before the clock starts, as kprod perf does: one record, awaited.
    match producer
        .send(
            ProducerRecord::new(args.topic.clone(), Some(&payload[..])),
            None,
        )
        .await
    {
        Ok(f) => {
            if let Err(e) = f.get().await {
                eprintln!("confluent-perf: first record: {e}");
                return ExitCode::FAILURE;
            }
        }
        Err(e) => {
            eprintln!("confluent-perf: first record: {e}");
            return ExitCode::FAILURE;
        }
    }

    let start = Instant::now();
    let state = Arc::new(Mutex::new(State {
        stats: Stats::new(start, Duration::from_millis(args.reporting_interval.max(1))),
        failed: 0,
    }));
    let gap = args.send_gap();
    let record_size = args.record_size;
    let mut stopped = None;
    for i in 0..args.num_records {
        if let Some(gap) = gap {
            let due = start + gap.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let sent_at = Instant::now();
        let state = state.clone();
        let callback =
            move |metadata: Option<&confluent_kafka::producer::RecordMetadata>,
                  error: Option<&confluent_kafka::common::Error>| {
                let now = Instant::now();
                let mut state = state.lock().unwrap();
                match (metadata, error) {
                    (_, Some(e)) => {
                        state.failed += 1;
                        if state.failed <= 10 {
                            eprintln!("confluent-perf: record failed: {e}");
                        }
                    }
                    _ => {
                        if let Some(line) = state.stats.record(now - sent_at, record_size, now) {
                            println!("{line}");
                        }
                    }
                }
            };
        let record = ProducerRecord::new(args.topic.clone(), Some(&payload[..]));
        if let Err(e) = producer.send(record, Some(Box::new(callback))).await {
            stopped = Some((i, e));
            break;
        }
    }
    let flushed = producer.flush().await;
    let end = Instant::now();
    {
        let state = state.lock().unwrap();
        println!("{}", state.stats.summary(end));
        println!("{}", stats::resource_line(state.stats.count()));
    }
    let _ = producer.close_with_timeout(Duration::from_secs(30)).await;
    let failed = state.lock().unwrap().failed;
    if let Some((i, e)) = &stopped {
        eprintln!("confluent-perf: stopped after {i} records: {e}");
    }
    if let Err(e) = flushed {
        eprintln!("confluent-perf: flush: {e}");
    }
    if failed > 0 {
        eprintln!("confluent-perf: {failed} records failed");
    }
    if stopped.is_none() && failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
