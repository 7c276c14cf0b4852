//! The reporter: waits for each record's outcome in input order, counts, and reports.
//!
//! It runs on a thread of its own because it writes to stdout with blocking I/O; it waits for
//! the producer's futures through the runtime's handle. In a transactional run it holds each
//! line's outcome until the line's transaction has ended ([`Message::End`]): a record
//! acknowledged inside a transaction is not delivered until the transaction commits.

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use kafka_producer::{DeliveryFuture, RecordMetadata};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::produce::ReportFormat;
use crate::progress;

/// What the reader of stdin hands to the reporter.
pub(crate) enum Message {
    /// The next input lines, in order.
    Lines(Vec<Pending>),
    /// Transactional runs: once the outcome of every line so far is known, answer with the
    /// first failure among the open transaction's lines, if any.
    Check(oneshot::Sender<Option<String>>),
    /// Transactional runs: the transaction of every line since the previous `End` has ended.
    End(TransactionEnd),
}

/// One input line on its way to a report.
pub(crate) enum Pending {
    /// Queued in the producer; its outcome is on the way.
    Sent(DeliveryFuture),
    /// Refused by `send` (transactional runs, which need the error itself; others use
    /// `Failed`). Boxed, so that every `Pending` stays as small as a `DeliveryFuture`.
    Refused(Box<kafka_producer::Error>),
    /// Failed before it could be queued.
    Failed(String),
}

/// How a transaction ended.
pub(crate) enum TransactionEnd {
    Committed,
    /// Aborted: its lines fail with "transaction aborted: " and the first failure of one of
    /// them, or this reason when none failed itself (a signal, fencing).
    Aborted(String),
    /// Not known to have committed or aborted (the commit did not finish): its lines fail with
    /// this message.
    Unknown(String),
}

/// How many records were delivered and how many failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
}

/// Without `--report`, failures go to stderr, this many at most.
const MAX_ERRORS_SHOWN: u64 = 100;

/// Reports every line received on `rx` once its outcome is known (in a `transactional` run, once
/// its transaction has ended), until the channel closes.
pub(crate) fn run(
    mut rx: mpsc::Receiver<Message>,
    runtime: &Handle,
    format: Option<ReportFormat>,
    transactional: bool,
) -> io::Result<Counts> {
    if transactional {
        let report = Report::new(Box::new(io::stdout()), format);
        return run_transactional(rx, runtime, report);
    }
    // A plain run: each line is reported as soon as its outcome is known. This is the hot path,
    // so it has a loop of its own, without the transactional run's bookkeeping.
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout());
    let mut counts = Counts::default();
    let mut line = 0u64;
    loop {
        let message = match rx.try_recv() {
            Ok(message) => message,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing new yet: let the reader of stdout see what is known so far.
                out.flush()?;
                match rx.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let Message::Lines(chunk) = message else {
            debug_assert!(false, "a transaction in a run without transactions");
            continue;
        };
        for pending in chunk {
            line += 1;
            let outcome = match pending {
                Pending::Sent(mut delivery) => match ready_now(&mut delivery) {
                    Some(outcome) => outcome.map_err(|e| e.to_string()),
                    None => {
                        out.flush()?;
                        runtime.block_on(delivery).map_err(|e| e.to_string())
                    }
                },
                Pending::Refused(e) => Err(e.to_string()),
                Pending::Failed(message) => Err(message),
            };
            match &outcome {
                Ok(_) => counts.delivered += 1,
                Err(_) => counts.failed += 1,
            }
            progress::settled(outcome.is_ok());
            match format {
                Some(ReportFormat::Json) => match &outcome {
                    Ok(meta) => write_delivered(&mut out, line, meta.partition, meta.offset)?,
                    Err(message) => write_failed(&mut out, line, message)?,
                },
                None => {
                    if let Err(message) = &outcome {
                        if counts.failed <= MAX_ERRORS_SHOWN {
                            progress::stderr_line(&format!("kprod: line {line}: {message}"));
                        }
                    }
                }
            }
        }
    }
    out.flush()?;
    if format.is_none() && counts.failed > MAX_ERRORS_SHOWN {
        progress::stderr_line(&format!(
            "kprod: {} more failure(s) not shown; use --report json to see every one",
            counts.failed - MAX_ERRORS_SHOWN
        ));
    }
    Ok(counts)
}

/// A transactional run: each line's outcome is held until its transaction ends.
fn run_transactional(
    mut rx: mpsc::Receiver<Message>,
    runtime: &Handle,
    mut report: Report,
) -> io::Result<Counts> {
    let mut held = Held::default();
    let mut line = 0u64;
    loop {
        let message = match rx.try_recv() {
            Ok(message) => message,
            Err(mpsc::error::TryRecvError::Empty) => {
                report.out.flush()?;
                match rx.blocking_recv() {
                    Some(message) => message,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let chunk = match message {
            Message::Lines(chunk) => chunk,
            Message::Check(answer) => {
                // The reader may have gone (a signal); then nobody needs the answer.
                let _ = answer.send(held.first_failure());
                continue;
            }
            Message::End(end) => {
                held.end(&mut report, end)?;
                continue;
            }
        };
        for pending in chunk {
            line += 1;
            let outcome = match pending {
                Pending::Sent(mut delivery) => match ready_now(&mut delivery) {
                    Some(outcome) => outcome,
                    None => {
                        report.out.flush()?;
                        runtime.block_on(delivery)
                    }
                }
                .map_err(Failure::Producer),
                Pending::Refused(e) => Err(Failure::Producer(*e)),
                Pending::Failed(message) => Err(Failure::Line(message)),
            };
            held.line(line, outcome);
        }
    }
    // Lines of a transaction that never ended (the reader stopped early): not committed.
    let unended = "kprod stopped before the transaction ended".to_string();
    held.end(&mut report, TransactionEnd::Aborted(unended))?;
    report.out.flush()?;
    if report.format.is_none() && report.errors_shown > MAX_ERRORS_SHOWN {
        progress::stderr_line(&format!(
            "kprod: {} more failure(s) not shown; use --report json to see every one",
            report.errors_shown - MAX_ERRORS_SHOWN
        ));
    }
    Ok(report.counts)
}

/// Where a delivered record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delivered {
    partition: i32,
    /// `None` with `acks=0`.
    offset: Option<i64>,
}

impl From<&RecordMetadata> for Delivered {
    #[inline]
    fn from(meta: &RecordMetadata) -> Self {
        Delivered {
            partition: meta.partition,
            offset: meta.offset,
        }
    }
}

/// Why a line failed.
enum Failure {
    Producer(kafka_producer::Error),
    Line(String),
}

/// The output and the counts of a transactional run.
struct Report {
    /// Stdout (a buffer in tests).
    out: BufWriter<Box<dyn Write + Send>>,
    format: Option<ReportFormat>,
    counts: Counts,
    /// Failures written to stderr (without `--report`), or that would have been.
    errors_shown: u64,
}

impl Report {
    fn new(out: Box<dyn Write + Send>, format: Option<ReportFormat>) -> Self {
        Report {
            out: BufWriter::with_capacity(1 << 16, out),
            format,
            counts: Counts::default(),
            errors_shown: 0,
        }
    }

    fn emit(&mut self, line: u64, outcome: Result<Delivered, &str>) -> io::Result<()> {
        match outcome {
            Ok(_) => self.counts.delivered += 1,
            Err(_) => self.counts.failed += 1,
        }
        progress::settled(outcome.is_ok());
        match self.format {
            Some(ReportFormat::Json) => match outcome {
                Ok(at) => write_delivered(&mut self.out, line, at.partition, at.offset)?,
                Err(message) => write_failed(&mut self.out, line, message)?,
            },
            None => {
                if let Err(message) = outcome {
                    self.show_error(&format!("line {line}: {message}"));
                }
            }
        }
        Ok(())
    }

    /// Lines `first..first + count` failed with `message`: one report line each, or without
    /// `--report` one line on stderr for them all.
    fn emit_failed(&mut self, first: u64, count: u64, message: &str) -> io::Result<()> {
        if self.format.is_none() {
            self.counts.failed += count;
            progress::failed(count);
            let lines = match count {
                1 => format!("line {first}"),
                _ => format!("lines {first}-{}", first + count - 1),
            };
            self.show_error(&format!("{lines}: {message}"));
            return Ok(());
        }
        for line in first..first + count {
            self.emit(line, Err(message))?;
        }
        Ok(())
    }

    fn show_error(&mut self, message: &str) {
        self.errors_shown += 1;
        if self.errors_shown <= MAX_ERRORS_SHOWN {
            progress::stderr_line(&format!("kprod: {message}"));
        }
    }
}

/// The outcomes of the open transaction's lines, until it ends.
#[derive(Default)]
struct Held {
    /// The first line of the transaction.
    first: u64,
    /// Each line's place, in order (a failed line's is a placeholder).
    delivered: Vec<Delivered>,
    /// The lines that failed, by index into `delivered`, with the line's own failure; `None`
    /// for one that only follows from the transaction's failing (an earlier record failed, or
    /// the abort failed what was still queued).
    failed: Vec<(usize, Option<String>)>,
}

const PLACEHOLDER: Delivered = Delivered {
    partition: -1,
    offset: None,
};

impl Held {
    fn line(&mut self, line: u64, outcome: Result<RecordMetadata, Failure>) {
        if self.delivered.is_empty() {
            self.first = line;
        }
        match outcome {
            Ok(meta) => self.delivered.push(Delivered::from(&meta)),
            Err(failure) => {
                let own = match failure {
                    Failure::Producer(e) if follows_from_the_transaction(&e) => None,
                    Failure::Producer(e) => Some(format!("line {line}: {e}")),
                    // Failed before the producer saw it; the message names the line.
                    Failure::Line(message) => Some(message),
                };
                self.failed.push((self.delivered.len(), own));
                self.delivered.push(PLACEHOLDER);
            }
        }
    }

    /// The first failure among the lines so far.
    fn first_failure(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let own = self.failed.iter().find_map(|(_, own)| own.clone());
        Some(own.unwrap_or_else(|| "a record of the transaction failed".into()))
    }

    /// Reports the lines held, as `end` says.
    fn end(&mut self, report: &mut Report, end: TransactionEnd) -> io::Result<()> {
        let first = self.first;
        let count = self.delivered.len() as u64;
        if count == 0 {
            return Ok(());
        }
        match end {
            TransactionEnd::Committed => {
                // A committed transaction has no failed record (the reader checks before it
                // commits); should one show up anyway, it is reported as it failed.
                let mut failed = self.failed.iter().peekable();
                for (i, delivered) in self.delivered.iter().enumerate() {
                    let outcome = match failed.next_if(|(at, _)| *at == i) {
                        None => Ok(*delivered),
                        Some((_, own)) => Err(own.as_deref().unwrap_or("not delivered")),
                    };
                    report.emit(first + i as u64, outcome)?;
                }
            }
            TransactionEnd::Aborted(reason) => {
                let cause = self.failed.iter().find_map(|(_, own)| own.as_deref());
                let message = format!("transaction aborted: {}", cause.unwrap_or(&reason));
                report.emit_failed(first, count, &message)?;
            }
            TransactionEnd::Unknown(message) => report.emit_failed(first, count, &message)?,
        }
        self.delivered.clear();
        self.failed.clear();
        Ok(())
    }
}

/// Whether a record failed only because its transaction did: sent after another record of it
/// failed, failed by the abort, or by the producer's end (fenced).
fn follows_from_the_transaction(e: &kafka_producer::Error) -> bool {
    use kafka_producer::Error;
    matches!(
        e,
        Error::TransactionAborted { .. }
            | Error::TransactionAbortable { .. }
            | Error::TransactionFatal { .. }
    )
}

/// The outcome if it is already known, without blocking.
fn ready_now(delivery: &mut DeliveryFuture) -> Option<kafka_producer::Result<RecordMetadata>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(delivery).poll(&mut cx) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// `{"line":N,"partition":P,"offset":O}` (offset `null` with acks=0).
#[inline]
fn write_delivered(
    out: &mut impl Write,
    line: u64,
    partition: i32,
    offset: Option<i64>,
) -> io::Result<()> {
    write!(
        out,
        "{{\"line\":{line},\"partition\":{partition},\"offset\":"
    )?;
    match offset {
        Some(offset) => writeln!(out, "{offset}}}"),
        None => out.write_all(b"null}\n"),
    }
}

/// `{"line":N,"error":"..."}`.
fn write_failed(out: &mut impl Write, line: u64, message: &str) -> io::Result<()> {
    write!(out, "{{\"line\":{line},\"error\":")?;
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"}\n")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn json(line: u64, outcome: Result<Delivered, &str>) -> serde_json::Value {
        let mut out = Vec::new();
        match outcome {
            Ok(at) => write_delivered(&mut out, line, at.partition, at.offset).unwrap(),
            Err(message) => write_failed(&mut out, line, message).unwrap(),
        }
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).unwrap()
    }

    fn at(offset: Option<i64>) -> Delivered {
        Delivered::from(&RecordMetadata::new("t", 2, offset, 0))
    }

    /// A `Report` writing JSON lines into a buffer the test reads.
    fn report() -> (Report, Arc<Mutex<Vec<u8>>>) {
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let report = Report::new(Box::new(Shared(buffer.clone())), Some(ReportFormat::Json));
        (report, buffer)
    }

    fn lines(report: &mut Report, buffer: &Mutex<Vec<u8>>) -> Vec<serde_json::Value> {
        report.out.flush().unwrap();
        let text = String::from_utf8(std::mem::take(&mut *buffer.lock().unwrap())).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn delivered(partition: i32, offset: i64) -> Result<RecordMetadata, Failure> {
        Ok(RecordMetadata::new("t", partition, Some(offset), 0))
    }

    fn aborted_record() -> Result<RecordMetadata, Failure> {
        Err(Failure::Producer(
            kafka_producer::Error::TransactionAborted {
                topic: "t".into(),
                partition: 0,
            },
        ))
    }

    #[test]
    fn a_transaction_s_lines_are_reported_when_it_ends() {
        let (mut report, buffer) = report();
        let mut held = Held::default();
        held.line(1, delivered(0, 5));
        held.line(2, delivered(1, 7));
        assert_eq!(held.first_failure(), None);
        assert!(lines(&mut report, &buffer).is_empty(), "held until the end");
        held.end(&mut report, TransactionEnd::Committed).unwrap();
        assert_eq!(
            lines(&mut report, &buffer),
            [
                serde_json::json!({"line": 1, "partition": 0, "offset": 5}),
                serde_json::json!({"line": 2, "partition": 1, "offset": 7}),
            ]
        );

        // The next transaction: line 4 is its first own failure, line 3's only follows from
        // the abort, so line 4 is the reason given for all three.
        held.line(3, aborted_record());
        held.line(4, Err(Failure::Line("line 4: bad".into())));
        held.line(5, delivered(0, 6));
        assert_eq!(held.first_failure().as_deref(), Some("line 4: bad"));
        held.end(&mut report, TransactionEnd::Aborted("ignored".into()))
            .unwrap();
        let errors: Vec<_> = lines(&mut report, &buffer)
            .iter()
            .map(|l| {
                (
                    l["line"].as_u64().unwrap(),
                    l["error"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expected = "transaction aborted: line 4: bad".to_string();
        assert_eq!(
            errors,
            [(3, expected.clone()), (4, expected.clone()), (5, expected)]
        );

        // No line failed itself: the reason given.
        held.line(6, aborted_record());
        held.end(
            &mut report,
            TransactionEnd::Aborted("interrupted by SIGTERM".into()),
        )
        .unwrap();
        assert_eq!(
            lines(&mut report, &buffer),
            [
                serde_json::json!({"line": 6, "error": "transaction aborted: interrupted by SIGTERM"})
            ]
        );
        assert_eq!(
            report.counts,
            Counts {
                delivered: 2,
                failed: 4
            }
        );

        // Delivered but aborted.
        held.line(7, delivered(0, 9));
        held.end(&mut report, TransactionEnd::Aborted("stopped early".into()))
            .unwrap();
        let last = lines(&mut report, &buffer);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0]["error"], "transaction aborted: stopped early");
    }

    #[test]
    fn json_lines() {
        assert_eq!(
            json(1, Ok(at(Some(17)))),
            serde_json::json!({"line": 1, "partition": 2, "offset": 17})
        );
        assert_eq!(
            json(2, Ok(at(None))),
            serde_json::json!({"line": 2, "partition": 2, "offset": null})
        );
        assert_eq!(
            json(3, Err("bad \"quote\"\n")),
            serde_json::json!({"line": 3, "error": "bad \"quote\"\n"})
        );
    }
}
