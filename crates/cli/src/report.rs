//! The reporter: waits for each record's outcome in input order, counts, and reports.
//!
//! It runs on a thread of its own because it writes to stdout with blocking I/O; it waits for
//! the producer's futures through the runtime's handle.

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use kafka_producer::{DeliveryFuture, RecordMetadata};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::produce::ReportFormat;

/// One input line on its way to a report.
pub(crate) enum Pending {
    /// Queued in the producer; its outcome is on the way.
    Sent(DeliveryFuture),
    /// Failed before it could be queued.
    Failed(String),
}

/// How many records were delivered and how many failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
}

/// Without `--report`, failures go to stderr, this many at most.
const MAX_ERRORS_SHOWN: u64 = 100;

/// Reports every line received on `rx` once its outcome is known, until the channel closes.
pub(crate) fn run(
    mut rx: mpsc::Receiver<Vec<Pending>>,
    runtime: &Handle,
    format: Option<ReportFormat>,
) -> io::Result<Counts> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout());
    let mut counts = Counts::default();
    let mut line = 0u64;
    loop {
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing new yet: let the reader of stdout see what is known so far.
                out.flush()?;
                match rx.blocking_recv() {
                    Some(chunk) => chunk,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
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
                Pending::Failed(message) => Err(message),
            };
            match &outcome {
                Ok(_) => counts.delivered += 1,
                Err(_) => counts.failed += 1,
            }
            match format {
                Some(ReportFormat::Json) => write_json(&mut out, line, &outcome)?,
                None => {
                    if let Err(message) = &outcome {
                        show_error(line, message, counts.failed);
                    }
                }
            }
        }
    }
    out.flush()?;
    if format.is_none() && counts.failed > MAX_ERRORS_SHOWN {
        eprintln!(
            "kprod: {} more failure(s) not shown; use --report json to see every one",
            counts.failed - MAX_ERRORS_SHOWN
        );
    }
    Ok(counts)
}

/// The outcome if it is already known, without blocking.
fn ready_now(delivery: &mut DeliveryFuture) -> Option<kafka_producer::Result<RecordMetadata>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(delivery).poll(&mut cx) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// `{"line":N,"partition":P,"offset":O}` or `{"line":N,"error":"..."}`.
fn write_json(
    out: &mut impl Write,
    line: u64,
    outcome: &Result<RecordMetadata, String>,
) -> io::Result<()> {
    match outcome {
        Ok(meta) => {
            write!(
                out,
                "{{\"line\":{line},\"partition\":{},\"offset\":",
                meta.partition
            )?;
            match meta.offset {
                Some(offset) => write!(out, "{offset}}}")?,
                None => out.write_all(b"null}")?,
            }
        }
        Err(message) => {
            write!(out, "{{\"line\":{line},\"error\":")?;
            serde_json::to_writer(&mut *out, message)?;
            out.write_all(b"}")?;
        }
    }
    out.write_all(b"\n")
}

fn show_error(line: u64, message: &str, failed_so_far: u64) {
    if failed_so_far <= MAX_ERRORS_SHOWN {
        eprintln!("kprod: line {line}: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(line: u64, outcome: Result<RecordMetadata, String>) -> serde_json::Value {
        let mut out = Vec::new();
        write_json(&mut out, line, &outcome).unwrap();
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).unwrap()
    }

    fn meta(offset: Option<i64>) -> RecordMetadata {
        RecordMetadata::new("t", 2, offset, 0)
    }

    #[test]
    fn json_lines() {
        assert_eq!(
            json(1, Ok(meta(Some(17)))),
            serde_json::json!({"line": 1, "partition": 2, "offset": 17})
        );
        assert_eq!(
            json(2, Ok(meta(None))),
            serde_json::json!({"line": 2, "partition": 2, "offset": null})
        );
        assert_eq!(
            json(3, Err("bad \"quote\"\n".into())),
            serde_json::json!({"line": 3, "error": "bad \"quote\"\n"})
        );
    }
}
