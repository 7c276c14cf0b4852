//! `kprod produce` with a `transactional.id`: the lines in transactions of `--transaction-lines`
//! each (one for the whole input without it), each committed before the next begins.
//!
//! It differs from the plain run (`produce::read_and_send`) in three ways. Stdin is read through
//! tokio, whose blocking reads run on its blocking pool, so that a wait for input ends at a
//! SIGINT or SIGTERM, which aborts the open transaction. After a transaction's last line its
//! records are flushed and it is committed before the next line is read. And the reporter is
//! told how each transaction ended ([`Message::End`]), since a line is delivered only once its
//! transaction has committed.
//!
//! The run stops at the first transaction that does not commit: what follows in the input may
//! depend on it, and a user who resumes from the report knows that every line after the last
//! delivered one still has to be written.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use kafka_producer::{Error, ErrorCode, Producer};
use tokio::sync::{mpsc, oneshot};

use crate::input::{read_record_async, Framing, Input};
use crate::produce::{ProduceArgs, CHUNK};
use crate::report::{Message, Pending, TransactionEnd};

/// How long `init_transactions`, `commit_transaction` and `abort_transaction` may take each: the
/// Java client's default `max.block.ms`, which bounds its own. A transaction's records are
/// flushed before its commit (each bounded by `delivery.timeout.ms`), so this bounds the
/// coordinator's part.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads stdin to its end, sending one record per line in transactions; returns the number of
/// lines. Every line read is handed to the reporter, and the end of its transaction with it.
///
/// Fails when the run stops early: at the first transaction that does not commit (it is aborted,
/// unless the producer was fenced or failed for good), or at a signal (the open transaction is
/// aborted). Also stops, with an error nobody shows, when the reporter has gone away; its own
/// error says why.
pub(crate) async fn read_and_send(
    producer: &Producer,
    args: &ProduceArgs,
    framing: &Framing,
    inputs: Vec<Input>,
    transactional_id: &str,
    tx: mpsc::Sender<Message>,
) -> anyhow::Result<u64> {
    let mut run = Run {
        producer,
        transactional_id,
        tx,
        chunk: Vec::with_capacity(CHUNK),
        lines: 0,
        open: None,
        signals: interruption().context("cannot handle SIGINT and SIGTERM")?,
    };
    tokio::select! {
        biased;
        signal = &mut run.signals => {
            anyhow::bail!("interrupted by {signal} before the first transaction began")
        }
        init = producer.init_transactions(CALL_TIMEOUT) => {
            init.context("cannot initialize transactions (init_transactions)")?
        }
    }
    let mut buf = Vec::with_capacity(4096);
    for input in inputs {
        let name = input.name();
        let mut input = input.async_reader();
        loop {
            // As in the plain run: hand over what is read before a read that may block.
            if input.buffer().is_empty() {
                run.hand_over().await?;
            }
            // The read first: a signal is noticed when the read has to wait, at the latest when
            // tokio's stdin reads the next block.
            let read = tokio::select! {
                biased;
                read = read_record_async(&mut input, &framing.delimiter, &mut buf) => read,
                signal = &mut run.signals => return Err(run.interrupted(signal).await),
            };
            match read {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let reason = format!("cannot read {name}: {e}");
                    return Err(run.abort_and_stop(reason).await);
                }
            }
            if run.open.is_none() {
                if let Err(e) = run.begin() {
                    return Err(run.failed(e, "begin_transaction").await);
                }
            }
            run.lines += 1;
            crate::progress::sent();
            match framing.parse(&buf) {
                Ok(parsed) => match producer.send(framing.record(&args.topic, parsed)).await {
                    Ok(delivery) => run.chunk.push(Pending::Sent(delivery)),
                    Err(e) if e.is_fatal() => {
                        run.chunk.push(Pending::Refused(Box::new(e.clone())));
                        return Err(run.failed(e, "send").await);
                    }
                    Err(e) => {
                        let reason = format!("line {}: {}", run.lines, inner(&e));
                        run.chunk.push(Pending::Refused(Box::new(e)));
                        return Err(run.abort_and_stop(reason).await);
                    }
                },
                Err(reason) => {
                    let reason = format!("line {}: {reason}", run.lines);
                    run.chunk.push(Pending::Failed(reason.clone()));
                    return Err(run.abort_and_stop(reason).await);
                }
            }
            if run.chunk.len() == CHUNK {
                run.hand_over().await?;
            }
            if args
                .transaction_lines
                .is_some_and(|n| run.open.is_some_and(|first| run.lines - first + 1 == n))
            {
                run.commit().await?;
            }
        }
    }
    if run.open.is_some() {
        run.commit().await?;
    }
    Ok(run.lines)
}

/// The state of a transactional run.
struct Run<'a> {
    producer: &'a Producer,
    transactional_id: &'a str,
    tx: mpsc::Sender<Message>,
    /// Lines not handed to the reporter yet.
    chunk: Vec<Pending>,
    /// Lines read.
    lines: u64,
    /// The first line of the open transaction (one past `lines` while it has none).
    open: Option<u64>,
    /// Completes at the first SIGINT or SIGTERM, with its name.
    signals: Pin<Box<dyn Future<Output = &'static str>>>,
}

impl Run<'_> {
    fn begin(&mut self) -> Result<(), Error> {
        self.producer.begin_transaction()?;
        self.open = Some(self.lines + 1);
        Ok(())
    }

    /// Sends the open transaction's records, commits it, and tells the reporter.
    async fn commit(&mut self) -> anyhow::Result<()> {
        self.hand_over().await?;
        // Until the records are acknowledged a signal can still abort.
        tokio::select! {
            biased;
            signal = &mut self.signals => return Err(self.interrupted(signal).await),
            _ = self.producer.flush() => {}
        }
        // Commit only if every line was acknowledged, as the reporter (which has each line's
        // outcome) says, rather than trusting the producer to refuse the commit after a failed
        // record: this way the line that failed is named, and the transaction is all or
        // nothing whatever the producer does.
        let (answer, check) = oneshot::channel();
        self.send(Message::Check(answer)).await?;
        let failure = tokio::select! {
            biased;
            signal = &mut self.signals => return Err(self.interrupted(signal).await),
            failure = check => failure.map_err(|_| anyhow!("the reporter stopped"))?,
        };
        if let Some(reason) = failure {
            return Err(self.abort_and_stop(reason).await);
        }
        match self.producer.commit_transaction(CALL_TIMEOUT).await {
            Ok(()) => self.end(TransactionEnd::Committed).await,
            Err(e) if e.requires_abort() => Err(self.abort_and_stop(inner(&e)).await),
            Err(e) => Err(self.failed(e, "commit_transaction").await),
        }
    }

    /// A line of the open transaction failed, or stdin could not be read: aborts the
    /// transaction and returns the error that ends the run.
    async fn abort_and_stop(&mut self, reason: String) -> anyhow::Error {
        let span = self.span();
        if let Err(e) = self.abort(reason.clone()).await {
            return e;
        }
        anyhow!(
            "the transaction of {span} was aborted ({reason}); stopped there: no input after line {} was read",
            self.lines
        )
    }

    /// SIGINT or SIGTERM: aborts the open transaction; returns the error that ends the run.
    async fn interrupted(&mut self, signal: &str) -> anyhow::Error {
        let had_lines = self.open_with_lines();
        let span = self.span();
        if let Err(e) = self.abort(format!("interrupted by {signal}")).await {
            return e;
        }
        if had_lines {
            anyhow!("interrupted by {signal}: the open transaction ({span}) was aborted")
        } else {
            anyhow!(
                "interrupted by {signal} after line {}, with every line read committed; the rest of the input was not read",
                self.lines
            )
        }
    }

    /// Aborts the open transaction and tells the reporter why.
    async fn abort(&mut self, reason: String) -> anyhow::Result<()> {
        if self.open.is_none() {
            return Ok(());
        }
        self.hand_over().await?;
        match self.producer.abort_transaction(CALL_TIMEOUT).await {
            Ok(()) => self.end(TransactionEnd::Aborted(reason)).await,
            Err(e) => Err(self.failed(e, "abort_transaction").await),
        }
    }

    /// A transactional call failed and the open transaction cannot be ended as it should:
    /// the producer was fenced or failed for good (the transaction did not commit), or a commit
    /// did not finish (it may yet). Tells the reporter and returns the error that ends the run.
    async fn failed(&mut self, e: Error, call: &str) -> anyhow::Error {
        let span = self.span();
        let id = self.transactional_id;
        let (end, context) = if is_fenced(&e) {
            (
                TransactionEnd::Aborted(format!(
                    "fenced: a newer producer with transactional.id `{id}` took over"
                )),
                format!(
                    "fenced: a newer producer with transactional.id `{id}` (another kprod run?) \
                     took over, so this run stopped; its open transaction ({span}) is aborted"
                ),
            )
        } else if call == "commit_transaction"
            && matches!(
                e,
                Error::TransactionTimeout { .. } | Error::TaskPanicked { .. }
            )
        {
            (
                TransactionEnd::Unknown(format!(
                    "the commit did not finish ({e}): whether the transaction committed is unknown"
                )),
                format!(
                    "{call} of the transaction of {span} failed: whether it committed is unknown"
                ),
            )
        } else {
            (
                TransactionEnd::Aborted(format!("{call} failed: {e}")),
                format!("{call} failed; the transaction of {span} was not committed"),
            )
        };
        if self.open.is_some() {
            if let Err(gone) = self.end(end).await {
                return gone;
            }
        }
        anyhow::Error::new(e).context(context)
    }

    /// Tells the reporter that the open transaction ended, after its last lines.
    async fn end(&mut self, end: TransactionEnd) -> anyhow::Result<()> {
        self.hand_over().await?;
        self.open = None;
        self.send(Message::End(end)).await
    }

    async fn hand_over(&mut self) -> anyhow::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.send(Message::Lines(chunk)).await
    }

    async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        self.tx
            .send(message)
            .await
            .map_err(|_| anyhow!("the reporter stopped"))
    }

    /// Whether a transaction is open and has lines.
    fn open_with_lines(&self) -> bool {
        self.open.is_some_and(|first| first <= self.lines)
    }

    /// "lines A-B" of the open transaction, "line A", or "no line".
    fn span(&self) -> String {
        match self.open {
            Some(first) if first < self.lines => format!("lines {first}-{}", self.lines),
            Some(first) if first == self.lines => format!("line {first}"),
            _ => "no line".into(),
        }
    }
}

/// Whether another producer with the same `transactional.id` has taken over (KIP-98: its
/// InitProducerId bumped the epoch; the brokers refuse the older one's requests).
fn is_fenced(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(code) if code == ErrorCode::PRODUCER_FENCED || code == ErrorCode::INVALID_PRODUCER_EPOCH
    )
}

/// What failed, without the advice to call `abort_transaction` that wraps it.
fn inner(e: &Error) -> String {
    match e {
        Error::TransactionAbortable { reason, .. } => reason.to_string(),
        e => e.to_string(),
    }
}

/// Completes at the first SIGINT or SIGTERM after the call, with the signal's name. From the
/// call on, neither ends the process by itself.
#[cfg(unix)]
fn interruption() -> std::io::Result<Pin<Box<dyn Future<Output = &'static str>>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }))
}

#[cfg(not(unix))]
fn interruption() -> std::io::Result<Pin<Box<dyn Future<Output = &'static str>>>> {
    Ok(Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }))
}
