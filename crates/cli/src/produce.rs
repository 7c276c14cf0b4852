//! `kprod produce`: one record per stdin line.
//!
//! The main thread reads stdin and hands each line to [`Producer::send`] without waiting for its
//! acknowledgement; the [`DeliveryFuture`](kafka_producer::DeliveryFuture)s travel, in input order, through a bounded channel to
//! the reporter thread ([`crate::report`]), which waits for each in turn. So the producer keeps
//! batching while earlier records are still in flight, and reports come out in input order.
//! With a `transactional.id` the lines go in transactions ([`crate::transactional`]).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::report::{self, Message, Pending};
use crate::UsageError;

/// Send records read from stdin, one per line, to a topic.
///
/// Each line (without its trailing `\n` or `\r\n`) is one record. With --key-separator the line
/// is split at the first SEP into key and value; a line without SEP fails (and is reported) while
/// the others are still sent. Without it the whole line is the value and the key is null.
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
/// A summary goes to stderr; "sent" counts input lines read. The exit status is 0 only when
/// every line read was delivered and the input was read to its end, 1 otherwise, 2 for a bad
/// argument or property.
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

    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP", value_parser = non_empty)]
    pub(crate) key_separator: Option<String>,

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
    if args.transaction_lines.is_some() && config.transactional_id().is_none() {
        return Err(UsageError(
            "--transaction-lines needs a transactional.id (-X transactional.id=ID)".into(),
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    // The main thread is not one of the runtime's workers: its blocking stdin reads in `produce`
    // hold up neither the producer's tasks nor the reporter.
    let summary = runtime.block_on(produce(args, config));
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

async fn produce(args: ProduceArgs, config: ProducerConfig) -> anyhow::Result<Summary> {
    let transactional_id = config.transactional_id().map(str::to_owned);
    let transactional = transactional_id.is_some();
    let producer = Producer::new(config).await?;
    // Fail once, now, for a missing topic, rather than once per line after max.block.ms each
    // (before a transactional run takes over its id).
    producer.partition_count(&args.topic).await?;

    let started = Instant::now();
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let handle = tokio::runtime::Handle::current();
    let format = args.report;
    let reporter = std::thread::Builder::new()
        .name("kprod-report".into())
        .spawn(move || report::run(rx, &handle, format, transactional))
        .context("cannot start the reporter thread")?;

    let read = if let Some(id) = &transactional_id {
        crate::transactional::read_and_send(&producer, &args, id, tx).await
    } else {
        read_and_send(&producer, &args, tx)
            .await
            .context("cannot read stdin")
    };
    // Send what is left now rather than after linger.ms. Each record's own outcome, failures
    // included, reaches the reporter through its future, so this result adds nothing.
    let _ = producer.flush().await;
    let counts = tokio::task::spawn_blocking(move || reporter.join()).await;
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
    eprintln!("{summary}");
    read?;
    closed?;
    Ok(summary)
}

/// Reads stdin to its end, sending one record per line; returns the number of lines.
///
/// Stops early, without error, when the reporter has gone away; its own error says why.
async fn read_and_send(
    producer: &Producer,
    args: &ProduceArgs,
    tx: mpsc::Sender<Message>,
) -> std::io::Result<u64> {
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut input = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut lines = 0u64;
    loop {
        // Hand over what is read before a read that may block, so that an interactive or slow
        // writer sees its reports without waiting for a chunk to fill.
        if input.buffer().is_empty() && !chunk.is_empty() {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.send(Message::Lines(full)).await.is_err() {
                return Ok(lines);
            }
        }
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        lines += 1;
        let pending = match split_line(strip_newline(&buf), separator) {
            Some((key, value)) => {
                let mut record = ProducerRecord::new(&args.topic).value(value);
                record.key = key;
                match producer.send(record).await {
                    Ok(delivery) => Pending::Sent(delivery),
                    Err(e) => Pending::Failed(e.to_string()),
                }
            }
            None => Pending::Failed(no_separator(lines, args)),
        };
        chunk.push(pending);
        if chunk.len() == CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            if tx.send(Message::Lines(full)).await.is_err() {
                return Ok(lines);
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Message::Lines(chunk)).await;
    }
    Ok(lines)
}

/// Why line `line` failed: it lacks the key separator.
pub(crate) fn no_separator(line: u64, args: &ProduceArgs) -> String {
    format!(
        "line {line}: no key separator {:?} in the line",
        args.key_separator.as_deref().unwrap_or_default()
    )
}

/// The line without its `\n` or `\r\n`.
pub(crate) fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Key and value of a line: split at the first `separator`, or no key without one.
/// `None` when there is a separator and the line does not contain it.
pub(crate) fn split_line<'a>(
    line: &'a [u8],
    separator: Option<&[u8]>,
) -> Option<(Option<&'a [u8]>, &'a [u8])> {
    let Some(sep) = separator else {
        return Some((None, line));
    };
    let at = find(line, sep)?;
    Some((Some(&line[..at]), &line[at + sep.len()..]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [byte] => haystack.iter().position(|b| b == byte),
        _ => haystack.windows(needle.len()).position(|w| w == needle),
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the separator must not be empty".into())
    } else {
        Ok(s.to_string())
    }
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

    #[test]
    fn newlines_are_stripped() {
        assert_eq!(strip_newline(b"a\n"), b"a");
        assert_eq!(strip_newline(b"a\r\n"), b"a");
        assert_eq!(strip_newline(b"a"), b"a");
        assert_eq!(strip_newline(b"a\r"), b"a");
        assert_eq!(strip_newline(b"\n"), b"");
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            Some((Some(&b"k"[..]), &b"v:w"[..]))
        );
        assert_eq!(
            split_line(b":v", Some(b":")),
            Some((Some(&b""[..]), &b"v"[..]))
        );
        assert_eq!(
            split_line(b"k::v", Some(b"::")),
            Some((Some(&b"k"[..]), &b"v"[..]))
        );
        assert_eq!(split_line(b"kv", Some(b":")), None);
        assert_eq!(split_line(b"k", Some(b"::")), None);
        assert_eq!(split_line(b"k:v", None), Some((None, &b"k:v"[..])));
    }

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
