//! `kprod perf`: the counterpart of Kafka's `kafka-producer-perf-test`.
//!
//! The main thread sends records as fast as the producer takes them (or at `--throughput`), one
//! payload buffer reused for all of them, with `try_send` (and `send` when the producer must
//! wait for memory, as Kafka's tool blocks in `send` then), and hands each [`DeliveryFuture`]
//! with its send time to an awaiting task in chunks. That task awaits them in send order and counts each one's latency
//! when it sees it resolve. Records of different partitions can be acknowledged out of send
//! order; such a record is counted when the earlier ones have been, so the latency is an upper
//! bound by at most the skew between partitions.
//!
//! Both times are read once per burst ([`RecentClock`]): a few sends in a row share one reading,
//! as do the acknowledgements the awaiting task finds together; a wait ends a burst.
//!
//! With a transactional id the records go in transactions of `--transaction-duration-ms`, as in
//! Kafka's tool: the send loop commits once a transaction is that old, waiting for the commit
//! (and so for every record of it), then begins the next.

pub(crate) mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kafka_producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::stats::StatsArgs;
use stats::{Instant, RecentClock, Stats};

/// Measure the producer: send N records of a given size as fast as possible (or at a given rate).
///
/// Takes the flags of Kafka's kafka-producer-perf-test and prints what it prints: every
/// --reporting-interval (5 s, Kafka's fixed interval), at the first acknowledgement after it, a
/// line over that window: `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max
/// latency.`; then `N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency,
/// P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.` over the run, then `client cpu: C
/// ns/record, peak rss: R MiB`. A record's latency is the time from its send to its
/// acknowledgement, in microseconds where Kafka's tool has whole milliseconds; "MB" is MiB, as
/// in Kafka's tool.
///
/// Properties apply in this order, later ones winning: Kafka's defaults, --producer.config,
/// --producer-props, then -b (bootstrap.servers). --stats json and --stats-interval print the
/// producer's metrics on stderr as `kprod produce` does. The exit status is 0 when every record was
/// delivered, 1 when any failed, 2 for a bad argument or property.
#[derive(Debug, Args)]
pub(crate) struct PerfArgs {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    bootstrap_server: String,

    /// The topic to produce to.
    #[arg(long)]
    topic: String,

    /// How many records to send.
    #[arg(long, value_name = "N")]
    num_records: u64,

    /// Bytes per record value (random upper-case letters, the same for every record); no key.
    #[arg(long, value_name = "BYTES")]
    record_size: usize,

    /// At most this many records per second; -1 (or any value <= 0) for no limit.
    #[arg(long, value_name = "RECORDS_PER_SEC", allow_negative_numbers = true)]
    throughput: f64,

    /// Producer properties by their Kafka names, e.g. --producer-props acks=1 linger.ms=5.
    #[arg(
        long = "producer-props",
        visible_alias = "command-property",
        value_name = "KEY=VALUE",
        num_args = 1..,
        value_parser = property
    )]
    producer_props: Vec<(String, String)>,

    /// Read producer properties from a Java .properties file.
    #[arg(
        long = "producer.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    producer_config: Option<PathBuf>,

    /// Milliseconds between progress lines.
    #[arg(long = "reporting-interval", value_name = "MS", default_value_t = 5000)]
    reporting_interval: u64,

    /// Send in transactions with this transactional.id (as the property does).
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_id: Option<String>,

    /// Commit each transaction once it is this old (default 3000 when transactional; alone, it
    /// makes the run transactional with the id `kprod-perf-<pid>`), as Kafka's tool does.
    #[arg(long = "transaction-duration-ms", value_name = "MS")]
    transaction_duration_ms: Option<u64>,

    #[command(flatten)]
    stats: StatsArgs,
}

/// Kafka's tool's default transaction duration.
const DEFAULT_TRANSACTION_DURATION: Duration = Duration::from_millis(3000);
/// Each transactional call's timeout.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Records per message on the channel to the awaiting task. Small, so that a resolved future
/// waits little before the awaiting task sees it; large enough that the channel costs little.
const CHUNK: usize = 64;
/// Every record's outcome is known before `close` is called, so this only covers the goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Failures printed to stderr, at most.
const MAX_ERRORS_SHOWN: u64 = 10;

/// One record on its way: its outcome, and when it was handed to `send`.
type Sent = (DeliveryFuture, Instant);

/// Runs the test and prints its results; `Ok(true)` when every record was delivered.
pub(crate) fn run(args: PerfArgs) -> anyhow::Result<bool> {
    let config = config(&args)?;
    args.stats.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(perf(args, config))
}

/// Builds the configuration in the documented order.
fn config(args: &PerfArgs) -> Result<ProducerConfig, kafka_producer::Error> {
    let mut config = crate::settings::producer_config(
        &args.bootstrap_server,
        args.producer_config.as_deref(),
        &args.producer_props,
    )?;
    match (&args.transactional_id, args.transaction_duration_ms) {
        (Some(id), _) => config = config.with_transactional_id(id.as_str()),
        (None, Some(_)) if config.transactional_id().is_none() => {
            config = config.with_transactional_id(format!("kprod-perf-{}", std::process::id()))
        }
        _ => {}
    }
    config.validate()?;
    Ok(config)
}

/// How long each transaction lasts, for a transactional run.
fn transaction_duration(args: &PerfArgs, config: &ProducerConfig) -> Option<Duration> {
    config.transactional_id().map(|_| {
        args.transaction_duration_ms
            .map_or(DEFAULT_TRANSACTION_DURATION, Duration::from_millis)
    })
}

async fn perf(args: PerfArgs, config: ProducerConfig) -> anyhow::Result<bool> {
    let buffer_memory = config.buffer_memory();
    let transactions = transaction_duration(&args, &config);
    let producer = Producer::new(config).await?;
    // Fail once, now, for a missing topic, and keep the metadata wait out of the measurement.
    producer.partition_count(&args.topic).await?;
    if transactions.is_some() {
        producer.init_transactions(TRANSACTION_CALL_TIMEOUT).await?;
    }

    let snapshots = args.stats.start(&producer);
    let payload = stats::payload(args.record_size);
    let chunks = channel_chunks(buffer_memory, args.record_size);
    let (tx, rx) = mpsc::channel(chunks);
    // Emptied chunks go back to the sender, so steady state allocates no chunks.
    let (recycle_tx, recycle_rx) = mpsc::channel(chunks);
    let start = Instant::now();
    let interval = Duration::from_millis(args.reporting_interval.max(1));
    let awaiting = tokio::spawn(await_deliveries(
        rx,
        recycle_tx,
        Stats::new(start, interval),
        args.record_size,
    ));

    let sent = send_all(
        &producer,
        &args,
        transactions,
        &payload,
        start,
        tx,
        recycle_rx,
    )
    .await;
    // Each record's own outcome, failures included, reaches the awaiting task through its
    // future, so flush's result adds nothing.
    let _ = producer.flush().await;
    let outcome = awaiting.await;
    let end = Instant::now();
    // Every record's outcome is known: the last snapshot counts them all.
    snapshots.finish(&producer).await;
    // Close on every path, so no record is left behind by a dropped producer.
    let closed = producer.close(CLOSE_TIMEOUT).await;
    let (stats, failed) = outcome.context("the task awaiting deliveries failed")?;
    println!("{}", stats.summary(end));
    println!("{}", stats::resource_line(stats.count()));
    if let Err((sent, e)) = &sent {
        eprintln!("kprod perf: stopped after {sent} records: {e}");
    }
    if failed > 0 {
        eprintln!("kprod perf: {failed} records failed");
    }
    closed?;
    Ok(sent.is_ok() && failed == 0)
}

/// How many chunks of futures the channel to the awaiting task holds: enough for every record
/// `buffer.memory` can hold at once (a keyless record without headers takes its value's bytes
/// and at least [`MIN_RECORD_OVERHEAD`] more there). So, as in Kafka's tool, where each
/// record's callback waits in the producer, the producer's memory is what bounds the records
/// on their way, not this channel. (A bound of 16 Ki records, as this was until 2026-11-28,
/// capped the rate at 16 Ki per acknowledgement latency: about 1.3M records/s on the test
/// cluster with `acks=all`.) The futures take about 40 bytes each: 13 MB at most for the default
/// 32 MiB and 100-byte records.
fn channel_chunks(buffer_memory: usize, record_size: usize) -> usize {
    (buffer_memory / (record_size + MIN_RECORD_OVERHEAD))
        .div_ceil(CHUNK)
        .max(1)
}

/// The fewest bytes a record takes in a batch besides its value: its length, attributes,
/// timestamp and offset deltas, key length (-1) and value length, and header count, one byte each
/// at least.
const MIN_RECORD_OVERHEAD: usize = 7;

/// Sends `--num-records` records, passing their futures to the awaiting task in chunks; with
/// `transactions`, in transactions that last that long.
///
/// Returns the error that stopped it early, with the number of records sent before.
async fn send_all(
    producer: &Producer,
    args: &PerfArgs,
    transactions: Option<Duration>,
    payload: &[u8],
    start: Instant,
    tx: mpsc::Sender<Vec<Sent>>,
    mut recycled: mpsc::Receiver<Vec<Sent>>,
) -> Result<u64, (u64, kafka_producer::Error)> {
    let throttle = (args.throughput > 0.0).then(|| Duration::from_secs_f64(1.0 / args.throughput));
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut clock = RecentClock::default();
    let mut began = None;
    for i in 0..args.num_records {
        if let Some(duration) = transactions {
            let now = clock.now();
            match began {
                None => {
                    producer.begin_transaction().map_err(|e| (i, e))?;
                    began = Some(now);
                }
                Some(at) if now.saturating_duration_since(at) >= duration => {
                    hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
                    producer
                        .commit_transaction(TRANSACTION_CALL_TIMEOUT)
                        .await
                        .map_err(|e| (i, e))?;
                    producer.begin_transaction().map_err(|e| (i, e))?;
                    clock.stale();
                    began = Some(clock.now());
                }
                Some(_) => {}
            }
        }
        if let Some(gap) = throttle {
            let due = start + gap.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                // Hand over what is sent before sleeping, so its latency is measured on time.
                hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
                tokio::time::sleep(due - now).await;
                clock.stale();
            }
        }
        let record = ProducerRecord::<&[u8], &[u8]>::new(&args.topic).value(payload);
        let sent_at = clock.now();
        let result = match producer.try_send(record) {
            Ok(delivery) => Ok(delivery),
            Err(not_queued) => match not_queued.record_for_send() {
                // The producer would wait (for buffer.memory, or the topic's metadata): let the
                // awaiting task see what is sent so far, as its acknowledgements are what frees
                // the memory, then wait in `send`.
                Ok(record) => {
                    hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
                    let result = producer.send(record).await;
                    clock.stale();
                    result
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(delivery) => chunk.push((delivery, sent_at)),
            Err(e) => {
                hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
                return Err((i, e));
            }
        }
        if chunk.len() == CHUNK {
            hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
        }
    }
    hand_over(&tx, &mut chunk, &mut recycled, &mut clock).await;
    if began.is_some() {
        producer
            .commit_transaction(TRANSACTION_CALL_TIMEOUT)
            .await
            .map_err(|e| (args.num_records, e))?;
    }
    Ok(args.num_records)
}

/// Sends `chunk` to the awaiting task (if not empty) and replaces it with an emptied one. The
/// channel may be full, so the send times' burst ends here.
async fn hand_over(
    tx: &mpsc::Sender<Vec<Sent>>,
    chunk: &mut Vec<Sent>,
    recycled: &mut mpsc::Receiver<Vec<Sent>>,
    clock: &mut RecentClock,
) {
    clock.stale();
    if chunk.is_empty() {
        return;
    }
    let next = recycled
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
    let full = std::mem::replace(chunk, next);
    // The awaiting task only ends when this channel closes, so the send cannot fail.
    let _ = tx.send(full).await;
}

/// Polls `future` once: its output if it is ready now, `Pending` otherwise (it stays usable).
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

/// Awaits every future received, in order, counting each acknowledged record's latency and
/// printing a progress line every interval; returns the statistics and the number of failures.
async fn await_deliveries(
    mut rx: mpsc::Receiver<Vec<Sent>>,
    recycle: mpsc::Sender<Vec<Sent>>,
    mut stats: Stats,
    record_size: usize,
) -> (Stats, u64) {
    let mut failed = 0u64;
    let mut clock = RecentClock::default();
    while let Some(mut chunk) = rx.recv().await {
        clock.stale();
        for (mut delivery, sent_at) in chunk.drain(..) {
            let result = match poll_once(&mut delivery).await {
                Poll::Ready(result) => result,
                Poll::Pending => {
                    let result = (&mut delivery).await;
                    clock.stale();
                    result
                }
            };
            match result {
                Ok(_) => {
                    let now = clock.now();
                    if let Some(line) = stats.record(now - sent_at, record_size, now) {
                        println!("{line}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    if failed <= MAX_ERRORS_SHOWN {
                        eprintln!("kprod perf: record failed: {e}");
                    }
                }
            }
        }
        let _ = recycle.try_send(chunk);
    }
    (stats, failed)
}

fn property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<PerfArgs, clap::Error> {
        let cli = <crate::Cli as clap::Parser>::try_parse_from(
            ["kprod", "perf"].iter().chain(argv).copied(),
        )?;
        match cli.command {
            crate::Command::Perf(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn kafkas_flags_are_accepted() {
        let args = parse(&[
            "-b",
            "h:1",
            "--topic",
            "t",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "acks=1",
            "linger.ms=5",
        ])
        .unwrap();
        assert_eq!(args.num_records, 10);
        assert_eq!(args.record_size, 100);
        assert!(args.throughput < 0.0);
        assert_eq!(
            args.producer_props,
            [
                ("acks".to_string(), "1".to_string()),
                ("linger.ms".to_string(), "5".to_string())
            ]
        );
        let c = config(&args).unwrap();
        assert_eq!(c.acks(), kafka_producer::Acks::Leader);
        assert_eq!(c.bootstrap_servers(), ["h:1"]);
    }

    #[test]
    fn required_flags_and_bad_properties_are_usage_errors() {
        assert!(parse(&["-b", "h:1", "--topic", "t"]).is_err());
        let args = parse(&[
            "-b",
            "h:1",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "1",
            "--throughput",
            "100",
            "--command-property",
            "lingr.ms=1",
        ])
        .unwrap();
        let e = config(&args).unwrap_err().to_string();
        assert!(e.contains("lingr.ms"), "{e}");
    }

    #[test]
    fn the_channel_holds_every_record_buffer_memory_can() {
        for (memory, size) in [(33_554_432, 100), (33_554_432, 1000), (1000, 7), (10, 100)] {
            let records = channel_chunks(memory, size) * CHUNK;
            assert!(
                records * (size + MIN_RECORD_OVERHEAD) >= memory,
                "{memory} B of {size} B records: {records}"
            );
        }
        // The old bound, 16 Ki records, was below what the default buffer.memory holds.
        assert!(channel_chunks(33_554_432, 100) * CHUNK > 300_000);
    }
}
