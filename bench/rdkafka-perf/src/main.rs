//! `kafka-producer-perf-test` on librdkafka, through rust-rdkafka's `BaseProducer`: the same flags
//! and output as `kprod perf`, for `bench/compare`.
//!
//! One thread sends and polls. A record's latency runs from `send` to its delivery callback, which
//! librdkafka calls from `poll`; the loop polls every [`POLL_EVERY`] sends, and while it waits
//! for room in the queue or for the --throughput schedule.

#[path = "../../common/args.rs"]
mod args;
#[path = "../../../crates/cli/src/perf/stats.rs"]
mod stats;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;

use args::PerfArgs;
use stats::{Instant, Stats};

/// Sends between two `poll(0)` calls: often enough that a callback waits little.
const POLL_EVERY: u64 = 64;

struct Perf {
    start: Instant,
    record_size: usize,
    state: Mutex<State>,
}

struct State {
    stats: Stats,
    failed: u64,
}

impl ClientContext for Perf {}

impl ProducerContext for Perf {
    /// When the record was sent, in nanoseconds since the start: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = Instant::now();
        let sent_at = self.start + Duration::from_nanos(sent_ns as u64);
        let mut state = self.state.lock().unwrap();
        match result {
            Ok(_) => {
                if let Some(line) = state.stats.record(now - sent_at, self.record_size, now) {
                    println!("{line}");
                }
            }
            Err((e, _)) => {
                state.failed += 1;
                if state.failed <= 10 {
                    eprintln!("rdkafka-perf: record failed: {e}");
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args = PerfArgs::parse();
    let props = match args.properties() {
        Ok(props) => props,
        Err(e) => {
            eprintln!("rdkafka-perf: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = ClientConfig::new();
    for (key, value) in &props {
        config.set(key, value);
    }
    let start = Instant::now();
    let context = Perf {
        start,
        record_size: args.record_size,
        state: Mutex::new(State {
            stats: Stats::new(start, Duration::from_millis(args.reporting_interval.max(1))),
            failed: 0,
        }),
    };
    let producer: BaseProducer<Perf> = match config.create_with_context(context) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rdkafka-perf: {e}");
            return ExitCode::from(2);
        }
    };
    // Learn the topic's metadata before the clock starts, as kprod perf does.
    if let Err(e) = producer
        .client()
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
    {
        eprintln!("rdkafka-perf: metadata for {}: {e}", args.topic);
        return ExitCode::FAILURE;
    }

    let payload = stats::payload(args.record_size);
    let gap = args.send_gap();
    let start = Instant::now();
    let mut stopped = None;
    for i in 0..args.num_records {
        if let Some(gap) = gap {
            let due = start + gap.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                // poll takes whole milliseconds and returns at once for less: wait at least 1 ms
                // rather than spin, and catch up with the schedule afterwards.
                producer.poll((due - now).max(Duration::from_millis(1)));
            }
        }
        let sent_ns = producer.context().start.elapsed().as_nanos() as usize;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_ns)
            .payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    stopped = Some((i, e));
                    break;
                }
            }
        }
        if stopped.is_some() {
            break;
        }
        if i % POLL_EVERY == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    let flushed = producer.flush(Timeout::Never);
    let end = Instant::now();
    let state = producer.context().state.lock().unwrap();
    println!("{}", state.stats.summary(end));
    println!("{}", stats::resource_line(state.stats.count()));
    let failed = state.failed;
    drop(state);
    if let Some((i, e)) = &stopped {
        eprintln!("rdkafka-perf: stopped after {i} records: {e}");
    }
    if let Err(e) = flushed {
        eprintln!("rdkafka-perf: flush: {e}");
    }
    if failed > 0 {
        eprintln!("rdkafka-perf: {failed} records failed");
    }
    if stopped.is_none() && failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
