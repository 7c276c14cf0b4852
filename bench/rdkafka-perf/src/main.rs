//! `kafka-producer-perf-test` on librdkafka, through rust-rdkafka's `BaseProducer`: the same flags
//! and output as `kprod perf`, for `bench/compare`.
//!
//! One thread sends and polls. A record's latency runs from `send` to its delivery callback, which
//! librdkafka calls from `poll`; the loop polls every [`POLL_EVERY`] sends, and while it waits
//! for room in the queue or for the --throughput schedule.
//!
//! As in `kprod perf`, times are read once per burst (`stats::RecentClock`): sends share a reading
//! until a poll that may wait, and the callbacks of one `poll` share one. The statistics live in
//! the polling thread's own storage, as `kprod perf`'s live in its awaiting task: no lock per
//! record.

#[path = "../../common/args.rs"]
mod args;
#[path = "../../../crates/cli/src/perf/stats.rs"]
mod stats;

use std::cell::RefCell;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;

use args::PerfArgs;
use stats::{Instant, RecentClock, Stats};

/// Sends between two `poll(0)` calls: often enough that a callback waits little.
const POLL_EVERY: u64 = 64;

struct Perf {
    start: Instant,
    record_size: usize,
}

struct State {
    stats: Stats,
    failed: u64,
    /// The time of the current `poll`'s callbacks; made stale before every `poll`.
    clock: RecentClock,
}

thread_local! {
    /// The polling thread's statistics: `BaseProducer` calls the delivery callback from `poll`,
    /// on the thread that polls.
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Polls for delivery callbacks, waiting up to `timeout`: the callbacks get a fresh time, and so
/// does the next send (`send_clock`), as the poll took time.
fn poll(producer: &BaseProducer<Perf>, timeout: Duration, send_clock: &mut RecentClock) {
    STATE.with_borrow_mut(|s| s.as_mut().expect("set up in main").clock.stale());
    producer.poll(timeout);
    send_clock.stale();
}

impl ClientContext for Perf {}

impl ProducerContext for Perf {
    /// When the record was sent, in nanoseconds since the start: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        STATE.with_borrow_mut(|state| {
            let state = state
                .as_mut()
                .expect("delivery callbacks come on the polling thread");
            self.record(state, result, sent_ns);
        });
    }
}

impl Perf {
    fn record(&self, state: &mut State, result: &DeliveryResult<'_>, sent_ns: usize) {
        let sent_at = self.start + Duration::from_nanos(sent_ns as u64);
        match result {
            Ok(_) => {
                let now = state.clock.now();
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
    };
    STATE.set(Some(State {
        stats: Stats::new(start, Duration::from_millis(args.reporting_interval.max(1))),
        failed: 0,
        clock: RecentClock::default(),
    }));
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
    let mut clock = RecentClock::default();
    for i in 0..args.num_records {
        if let Some(gap) = gap {
            let due = start + gap.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                // poll takes whole milliseconds and returns at once for less: wait at least 1 ms
                // rather than spin, and catch up with the schedule afterwards.
                poll(
                    &producer,
                    (due - now).max(Duration::from_millis(1)),
                    &mut clock,
                );
            }
        }
        let sent_at = clock.now();
        let sent_ns = (sent_at - producer.context().start).as_nanos() as usize;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_ns)
            .payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    poll(&producer, Duration::from_millis(1), &mut clock);
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
            poll(&producer, Duration::ZERO, &mut clock);
        }
    }
    // flush, polling here so that each burst of callbacks gets a fresh time.
    while producer.in_flight_count() > 0 {
        poll(&producer, Duration::from_millis(1), &mut clock);
    }
    let flushed = producer.flush(Timeout::Never);
    let end = Instant::now();
    let failed = STATE.with_borrow(|state| {
        let state = state.as_ref().expect("set up above");
        println!("{}", state.stats.summary(end));
        println!("{}", stats::resource_line(state.stats.count()));
        state.failed
    });
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
