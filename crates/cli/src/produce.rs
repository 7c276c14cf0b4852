//! `kprod produce`: one record per line (or `-D` delimited record) of stdin or files.
//!
//! The main thread reads the input and hands each line to [`Producer::send`] without waiting for its
//! acknowledgement; the [`DeliveryFuture`](kafka_producer::DeliveryFuture)s travel, in input order, through a bounded channel to
//! the reporter thread ([`crate::report`]), which waits for each in turn. So the producer keeps
//! batching while earlier records are still in flight, and reports come out in input order.
//! With a `transactional.id` the lines go in transactions ([`crate::transactional`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::input::{read_record, Delimiter, Framing, HeaderFormat, Input};
use crate::progress::{self, Progress};
use crate::report::{self, Message, Pending};
use crate::stats::StatsArgs;
use crate::UsageError;

/// Send records read from stdin or files, one per line, to a topic.
///
/// The inputs are the FILE arguments in turn (`-` for stdin), or stdin without any. Each line
/// (without its trailing `\n` or `\r\n`) is one record; with -D the records end at that
/// delimiter instead, taken exactly, and the end of each input ends its last record. An empty
/// line is a record with an empty value. With -K (--key-separator) a record is split at the
/// first SEP into key and value; a record without SEP fails (and is reported) while the others
/// are still sent. Without it the whole record is the value and the key is null.
///
/// -H NAME=VALUE adds a header to every record (NAME alone: a null value); --parse-headers
/// reads each record's own headers from its start, as kafka-console-producer's parse.headers
/// does: `NAME:VALUE,NAME:VALUE<TAB>` then the key and value (an empty list before the TAB
/// for none). -p sends every record to that partition rather than the partitioner's choice.
/// The delimiters take kcat's escapes: \n, \r, \t, \\ and \xNN. Where kcat differs: it skips
/// empty records, sends a record without the -K separator whole as its value (kprod fails it),
/// and sends each FILE whole as one message unless -l (kprod always splits files into records).
///
/// Properties apply in this order, later ones winning: Kafka's defaults, --producer.config,
/// -X, then -b (bootstrap.servers) and --acks.
///
/// With -X transactional.id=ID the lines are written in transactions: the whole input in one,
/// or --transaction-lines N lines in each, every one committed before the next begins. A line
/// counts as delivered only once its transaction has committed. A line that fails (a line
/// without SEP too) aborts its transaction: all of its lines fail, and kprod stops there,
/// reading no further input. SIGINT or SIGTERM aborts the open transaction and ends the run.
/// A later producer with the same transactional.id (another kprod run, say) fences this one,
/// which then stops with an error saying so; its open transaction is aborted. The brokers
/// abort a transaction open longer than transaction.timeout.ms (default 60000).
///
/// --stats json prints the producer's metrics (the Java client's names) on stderr as one JSON
/// line, after every record's outcome is known, and every --stats-interval SECONDS before.
///
/// A summary goes to stderr; "sent" counts records read ("lines", numbered across all the
/// inputs). The exit status is 0 only when every record read was delivered and every input was
/// read to its end, 1 otherwise, 2 for a bad argument or property.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    bootstrap_server: String,

    /// The topic to produce to.
    #[arg(short = 't', long)]
    pub(crate) topic: String,

    /// Split each record at the first SEP into key and value (kcat's -K).
    #[arg(short = 'K', long, value_name = "SEP", value_parser = crate::input::delimiter)]
    key_separator: Option<Delimiter>,

    /// End each record at DELIM rather than at a newline (kcat's -D).
    #[arg(short = 'D', long, value_name = "DELIM", value_parser = crate::input::delimiter)]
    delimiter: Option<Delimiter>,

    /// Add this header to every record; NAME alone for a null value (repeatable; kcat's -H).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = crate::input::header)]
    headers: Vec<(String, Option<String>)>,

    /// Read each record's headers from its start: `NAME:VALUE,...<TAB>` before the key and
    /// value (kafka-console-producer's parse.headers).
    #[arg(long)]
    parse_headers: bool,

    /// With --parse-headers: what ends the headers (headers.delimiter).
    #[arg(long, value_name = "DELIM", default_value = "\\t", value_parser = crate::input::delimiter)]
    headers_delimiter: Delimiter,

    /// With --parse-headers: what separates two headers (headers.separator).
    #[arg(long, value_name = "SEP", default_value = ",", value_parser = crate::input::delimiter)]
    headers_separator: Delimiter,

    /// With --parse-headers: what separates a header's name from its value
    /// (headers.key.separator).
    #[arg(long, value_name = "SEP", default_value = ":", value_parser = crate::input::delimiter)]
    headers_key_separator: Delimiter,

    /// Send every record to this partition; -1 (the default) lets the partitioner choose
    /// (kcat's -p).
    #[arg(short = 'p', long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1..))]
    partition: Option<i32>,

    /// Read these files in turn rather than stdin; `-` is stdin.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,

    /// When a record counts as delivered: 0 (no answer), 1 (leader wrote it), all (all in-sync replicas).
    #[arg(long, value_parser = ["0", "1", "all"])]
    acks: Option<String>,

    /// Set a producer property by its Kafka name, e.g. -X linger.ms=10 (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = property)]
    properties: Vec<(String, String)>,

    /// Read producer properties from a Java .properties file.
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,

    /// Print one line per input line on stdout, in input order, once it is delivered or failed
    /// (in a transaction: once the transaction committed or aborted):
    /// {"line":N,"partition":P,"offset":O} (offset null with acks=0) or {"line":N,"error":"..."}.
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,

    /// With -X transactional.id=ID: commit every N lines as a transaction of their own
    /// (default: the whole input is one transaction). The first transaction that fails is
    /// aborted and ends the run (exit status 1): later lines are not read.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) transaction_lines: Option<u64>,

    #[command(flatten)]
    stats: StatsArgs,
}

/// What `--report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One JSON object per input line.
    Json,
}

/// How a run ended; printed to stderr.
#[derive(Debug)]
pub(crate) struct Summary {
    sent: u64,
    delivered: u64,
    failed: u64,
    elapsed: Duration,
}

impl Summary {
    pub(crate) fn all_delivered(&self) -> bool {
        self.failed == 0 && self.delivered == self.sent
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.delivered as f64 / secs
        } else {
            0.0
        };
        write!(
            f,
            "sent {}, delivered {}, failed {}, elapsed {secs:.3}s ({rate:.0} records/s)",
            self.sent, self.delivered, self.failed
        )
    }
}

/// Lines per message on the channel to the reporter: one channel operation per chunk, not per record.
pub(crate) const CHUNK: usize = 1024;
/// Chunks the channel holds; with [`CHUNK`] this bounds the records awaiting a report (64 Ki).
const CHANNEL_CHUNKS: usize = 64;
/// Every record's outcome is known before `close` is called, so this only covers the goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn run(args: ProduceArgs) -> anyhow::Result<Summary> {
    let config = config(&args)?;
    args.stats.check()?;
    if args.transaction_lines.is_some() && config.transactional_id().is_none() {
        return Err(UsageError(
            "--transaction-lines needs a transactional.id (-X transactional.id=ID)".into(),
        )
        .into());
    }
    let framing = framing(&args)?;
    let inputs = Input::open_all(&args.files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    // The main thread is not one of the runtime's workers: its blocking input reads in `produce`
    // hold up neither the producer's tasks nor the reporter.
    let summary = runtime.block_on(produce(args, config, framing, inputs));
    // A transactional run that stopped early may leave a read of stdin blocked on tokio's
    // blocking pool; the producer is closed, so nothing else is left to wait for.
    runtime.shutdown_background();
    summary
}

/// Builds the configuration in the documented order.
fn config(args: &ProduceArgs) -> Result<ProducerConfig, kafka_producer::Error> {
    let mut config = crate::settings::producer_config(
        &args.bootstrap_server,
        args.producer_config.as_deref(),
        &args.properties,
    )?;
    if let Some(acks) = &args.acks {
        config.set("acks", acks)?;
    }
    config.validate()?;
    Ok(config)
}

async fn produce(
    args: ProduceArgs,
    config: ProducerConfig,
    framing: Framing,
    inputs: Vec<Input>,
) -> anyhow::Result<Summary> {
    let transactional_id = config.transactional_id().map(str::to_owned);
    let transactional = transactional_id.is_some();
    let producer = Producer::new(config).await?;
    // Fail once, now, for a missing topic (or partition), rather than once per line after
    // max.block.ms each (before a transactional run takes over its id).
    let partitions = producer.partition_count(&args.topic).await?;
    if let Some(partition) = framing.partition {
        if partition as usize >= partitions {
            let _ = producer.close(CLOSE_TIMEOUT).await;
            return Err(UsageError(format!(
                "-p {partition}: topic {} has {partitions} partition(s), 0 to {}",
                args.topic,
                partitions.saturating_sub(1)
            ))
            .into());
        }
    }

    let started = Instant::now();
    let progress = Progress::start();
    let stats = args.stats.start(&producer);
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let handle = tokio::runtime::Handle::current();
    let format = args.report;
    let reporter = std::thread::Builder::new()
        .name("kprod-report".into())
        .spawn(move || report::run(rx, &handle, format, transactional))
        .context("cannot start the reporter thread")?;

    let read = if let Some(id) = &transactional_id {
        crate::transactional::read_and_send(&producer, &args, &framing, inputs, id, tx).await
    } else {
        read_and_send(&producer, &args, &framing, inputs, tx).await
    };
    // Send what is left now rather than after linger.ms. Each record's own outcome, failures
    // included, reaches the reporter through its future, so this result adds nothing.
    let _ = producer.flush().await;
    let counts = tokio::task::spawn_blocking(move || reporter.join()).await;
    // Every record's outcome is known: the last snapshot counts them all.
    stats.finish(&producer).await;
    // Close on every path, so no record is left behind unreported by a dropped producer.
    let closed = producer.close(CLOSE_TIMEOUT).await;
    let counts = counts
        .context("waiting for the reporter")?
        .map_err(|_| anyhow::anyhow!("the reporter thread panicked"))?
        .context("cannot write the report to stdout")?;
    let summary = Summary {
        sent: read
            .as_ref()
            .map_or(counts.delivered + counts.failed, |n| *n),
        delivered: counts.delivered,
        failed: counts.failed,
        elapsed: started.elapsed(),
    };
    progress.finish();
    eprintln!("{summary}");
    read?;
    closed?;
    Ok(summary)
}

/// Reads the inputs to their end, sending one record each; returns the number of records.
///
/// Stops early, without error, when the reporter has gone away; its own error says why.
async fn read_and_send(
    producer: &Producer,
    args: &ProduceArgs,
    framing: &Framing,
    inputs: Vec<Input>,
    tx: mpsc::Sender<Message>,
) -> anyhow::Result<u64> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut lines = 0u64;
    for input in inputs {
        let name = input.name();
        let mut input = input.reader();
        loop {
            // Hand over what is read before a read that may block, so that an interactive or
            // slow writer sees its reports without waiting for a chunk to fill.
            if input.buffer().is_empty() && !chunk.is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if tx.send(Message::Lines(full)).await.is_err() {
                    return Ok(lines);
                }
            }
            let more = read_record(&mut input, &framing.delimiter, &mut buf)
                .with_context(|| format!("cannot read {name}"))?;
            if !more {
                break;
            }
            lines += 1;
            progress::sent();
            let pending = match framing.parse(&buf) {
                Ok(parsed) => match producer.send(framing.record(&args.topic, parsed)).await {
                    Ok(delivery) => Pending::Sent(delivery),
                    Err(e) => Pending::Failed(e.to_string()),
                },
                Err(message) => Pending::Failed(message),
            };
            chunk.push(pending);
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if tx.send(Message::Lines(full)).await.is_err() {
                    return Ok(lines);
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Message::Lines(chunk)).await;
    }
    Ok(lines)
}

/// How the arguments say to read records.
fn framing(args: &ProduceArgs) -> Result<Framing, UsageError> {
    let headers = if args.parse_headers {
        let format = HeaderFormat {
            delimiter: args.headers_delimiter.0.clone(),
            separator: args.headers_separator.0.clone(),
            key_separator: args.headers_key_separator.0.clone(),
        };
        if format.delimiter == format.separator
            || format.delimiter == format.key_separator
            || format.separator == format.key_separator
        {
            return Err(UsageError(
                "--headers-delimiter, --headers-separator and --headers-key-separator must differ"
                    .into(),
            ));
        }
        Some(format)
    } else {
        None
    };
    let mut fixed = ProducerRecord::<&[u8], &[u8]>::new("");
    for (name, value) in &args.headers {
        fixed = fixed.header(name.as_str(), value.as_deref().map(str::as_bytes));
    }
    Ok(Framing {
        delimiter: args
            .delimiter
            .as_ref()
            .map_or_else(|| b"\n".to_vec(), |d| d.0.clone()),
        key_separator: args.key_separator.as_ref().map(|d| d.0.clone()),
        headers,
        fixed_headers: fixed.headers,
        partition: args.partition.filter(|&p| p >= 0),
    })
}

/// `KEY=VALUE`, for -X.
pub(crate) fn property(s: &str) -> Result<(String, String), String> {
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

    #[test]
    fn properties_are_key_equals_value() {
        assert_eq!(
            property("linger.ms=5").unwrap(),
            ("linger.ms".to_string(), "5".to_string())
        );
        assert_eq!(
            property("client.id=a=b").unwrap(),
            ("client.id".to_string(), "a=b".to_string())
        );
        assert!(property("linger.ms").is_err());
        assert!(property("=5").is_err());
    }

    #[test]
    fn later_settings_win() {
        let dir = std::env::temp_dir().join(format!("kprod-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("producer.properties");
        std::fs::write(&file, "acks=0\nlinger.ms=7\nbootstrap.servers=file:1\n").unwrap();
        let args = |extra: &[&str]| {
            let mut argv = vec!["produce", "-b", "cli:9092", "-t", "t", "--producer.config"];
            argv.push(file.to_str().unwrap());
            argv.extend_from_slice(extra);
            let cli =
                <crate::Cli as clap::Parser>::try_parse_from(std::iter::once("kprod").chain(argv))
                    .unwrap();
            let crate::Command::Produce(args) = cli.command else {
                unreachable!("parsed a produce command line")
            };
            args
        };
        let c = config(&args(&[])).unwrap();
        assert_eq!(c.acks(), kafka_producer::Acks::None);
        assert_eq!(c.bootstrap_servers(), ["cli:9092"]);
        let c = config(&args(&["-X", "acks=1"])).unwrap();
        assert_eq!(c.acks(), kafka_producer::Acks::Leader);
        let c = config(&args(&["-X", "acks=1", "--acks", "all"])).unwrap();
        assert_eq!(c.acks(), kafka_producer::Acks::All);
        let e = config(&args(&["-X", "lingr.ms=1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lingr.ms"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
