//! The outcome of a batch, shared by the handles of all its records.
//!
//! One [`BatchOutcome`] is allocated per batch, not per record: a [`DeliveryFuture`] is the batch's
//! outcome plus the record's index in it, so its offset is `base_offset + index`. A batch the
//! broker found too large is split; its outcome then points at the outcomes of the parts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::Error;
use crate::record::RecordMetadata;

/// What the broker answered for a whole batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAck {
    /// The offset of the batch's first record; `None` with `acks=0`.
    pub(crate) base_offset: Option<i64>,
    /// The broker's LogAppendTime, when the topic uses it.
    pub(crate) log_append_time: Option<i64>,
}

/// How a batch ended.
#[derive(Clone)]
pub(crate) enum Resolution {
    /// Acknowledged or failed as a whole.
    Done(Result<BatchAck, Error>),
    /// Split into parts, each `(index of its first record in this batch, its outcome)`, in order.
    Split(Arc<[(u32, Arc<BatchOutcome>)]>),
}

/// The shared, write-once outcome of one batch.
///
/// Once resolved, reading it takes no lock: a handle polled after its batch ended (the common
/// case when a caller awaits many) costs one atomic load.
///
/// Aligned to two cache lines, so the reference count that `send` bumps for every record never
/// shares a line with another batch's outcome that a task awaiting handles is touching (measured:
/// that false sharing made the count's increment most of `append`'s time).
#[repr(align(128))]
pub(crate) struct BatchOutcome {
    topic: Arc<str>,
    /// The batch's partition, for its records' metadata.
    partition: i32,
    /// Records in the batch; written under its partition's lock, read for `pending_records`.
    records: AtomicUsize,
    result: OnceLock<Resolution>,
    /// Handles waiting for the outcome; set under this lock, so no waker is missed.
    wakers: Mutex<Vec<Option<Waker>>>,
}

impl BatchOutcome {
    /// The outcome of a new batch of `topic`'s `partition`.
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Self {
        BatchOutcome {
            topic,
            partition,
            records: AtomicUsize::new(0),
            result: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }

    /// Sets the batch's record count: a plain store, not a read-modify-write, so that counting
    /// costs `send` no locked instruction.
    pub(crate) fn set_records(&self, records: usize) {
        self.records.store(records, Ordering::Relaxed);
    }

    pub(crate) fn records(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Records the outcome and wakes every waiting handle. Only the first call counts, and runs
    /// `first` before any handle can see the outcome: what it records (the metrics of a
    /// failure) is there for whoever awaited the outcome.
    pub(crate) fn complete(&self, result: Result<BatchAck, Error>, first: impl FnOnce()) {
        self.resolve(Resolution::Done(result), first);
    }

    /// Hands the batch's records over to the outcomes of its parts.
    pub(crate) fn split(&self, parts: Vec<(u32, Arc<BatchOutcome>)>) {
        self.resolve(Resolution::Split(parts.into()), || {});
    }

    /// Sets the outcome, unless one is set already, running `first` just before; then wakes
    /// every waiting handle.
    fn resolve(&self, result: Resolution, first: impl FnOnce()) {
        let wakers = {
            // Every resolve holds this lock: none can set the result between the look and the set.
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            if self.result.get().is_some() {
                return;
            }
            first();
            // Cannot fail: it was empty above, and is set only under this lock.
            let _ = self.result.set(result);
            std::mem::take(&mut *wakers)
        };
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }

    /// The outcome if known; otherwise registers `waker` in `slot` (reusing the slot on re-polls;
    /// [`NO_SLOT`] before the first).
    fn poll_result(&self, waker: &Waker, slot: &mut u32) -> Option<&Resolution> {
        if let Some(r) = self.result.get() {
            return Some(r);
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        // Resolved between the look above and the lock: resolve sets it under this lock.
        if let Some(r) = self.result.get() {
            return Some(r);
        }
        match wakers.get_mut(*slot as usize) {
            Some(Some(w)) if w.will_wake(waker) => {}
            Some(entry) => *entry = Some(waker.clone()),
            None => {
                // A batch's handles number at most its records, an i32.
                *slot = wakers.len() as u32;
                wakers.push(Some(waker.clone()));
            }
        }
        None
    }
}

/// A handle's waker slot before it first waits.
const NO_SLOT: u32 = u32::MAX;

// Kept small on purpose (see `DeliveryFuture`).
const _: () = assert!(std::mem::size_of::<DeliveryFuture>() <= 32);

/// Resolves when the record is acknowledged (its [`RecordMetadata`]) or has failed (the reason).
///
/// Every record handed to `send` gets exactly one outcome; dropping this future does not cancel the
/// record, it only means nobody looks at the outcome.
///
/// It is 32 bytes, as it is moved through every `send`: the batch's outcome, the record's
/// partition, index in the batch and timestamp, and where its waker is. Once resolved it hands
/// its reference to the batch's outcome over to the [`RecordMetadata`], so an acknowledgement
/// costs no reference count.
///
/// # Panics
///
/// When polled again after it completed, as the future of an `async fn` does.
#[must_use = "a record's outcome is only known by awaiting its DeliveryFuture"]
pub struct DeliveryFuture {
    /// `None` once the future has completed.
    outcome: Option<Arc<BatchOutcome>>,
    partition: i32,
    index: u32,
    slot: u32,
    timestamp: i64,
}

impl DeliveryFuture {
    pub(crate) fn new(outcome: Arc<BatchOutcome>, index: u32, timestamp: i64) -> Self {
        DeliveryFuture {
            partition: outcome.partition(),
            outcome: Some(outcome),
            index,
            slot: NO_SLOT,
            timestamp,
        }
    }

    /// The partition the record was queued for.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let outcome = this
                .outcome
                .as_ref()
                .expect("DeliveryFuture polled after it completed");
            let part = match outcome.poll_result(cx.waker(), &mut this.slot) {
                Some(Resolution::Done(Ok(ack))) => {
                    let ack = *ack;
                    let batch = this.outcome.take().expect("looked at above");
                    return Poll::Ready(Ok(RecordMetadata::of_batch(
                        batch,
                        ack.base_offset.map(|base| base + i64::from(this.index)),
                        this.timestamp,
                        ack.log_append_time,
                    )));
                }
                Some(Resolution::Done(Err(e))) => {
                    let e = e.clone();
                    this.outcome = None;
                    return Poll::Ready(Err(e));
                }
                // Follow the record into the part that holds it.
                Some(Resolution::Split(parts)) => {
                    let (start, part) = parts
                        .iter()
                        .rev()
                        .find(|(start, _)| *start <= this.index)
                        .expect("the first part starts at 0");
                    this.index -= start;
                    part.clone()
                }
                None => return Poll::Pending,
            };
            this.outcome = Some(part);
            this.slot = NO_SLOT;
        }
    }
}

/// Waits until a batch and, if it was split, every part of it has ended; the first failure, if any.
pub(crate) async fn settled(outcome: Arc<BatchOutcome>) -> Result<(), Error> {
    let mut pending = vec![outcome];
    let mut first_error = None;
    while let Some(outcome) = pending.pop() {
        let resolution = std::future::poll_fn(|cx| {
            let mut slot = NO_SLOT;
            match outcome.poll_result(cx.waker(), &mut slot) {
                Some(r) => Poll::Ready(r.clone()),
                None => Poll::Pending,
            }
        })
        .await;
        match resolution {
            Resolution::Done(Ok(_)) => {}
            Resolution::Done(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Resolution::Split(parts) => pending.extend(parts.iter().map(|(_, p)| p.clone())),
        }
    }
    first_error.map_or(Ok(()), Err)
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.outcome.as_ref().map(|o| o.topic()))
            .field("partition", &self.partition)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_handle_of_a_batch_sees_its_own_offset() {
        let outcome = Arc::new(BatchOutcome::new("t".into(), 2));
        let a = DeliveryFuture::new(outcome.clone(), 0, 10);
        let b = DeliveryFuture::new(outcome.clone(), 1, 11);
        let waiter = tokio::spawn(b);
        tokio::task::yield_now().await;
        outcome.complete(
            Ok(BatchAck {
                base_offset: Some(100),
                log_append_time: None,
            }),
            || {},
        );
        // Ignored: the first outcome wins, and only its `first` runs.
        outcome.complete(Err(Error::Closed { topic: None }), || {
            panic!("a second outcome is not the one that counts")
        });
        assert_eq!(a.await.unwrap().offset, Some(100));
        let b = waiter.await.unwrap().unwrap();
        assert_eq!((b.offset, b.timestamp, b.partition), (Some(101), 11, 2));
        assert!(!b.log_append_time);
        assert_eq!(b.topic(), "t");
    }

    #[tokio::test]
    async fn failure_reaches_every_handle() {
        let outcome = Arc::new(BatchOutcome::new("t".into(), 0));
        let f = DeliveryFuture::new(outcome.clone(), 3, 0);
        outcome.complete(
            Err(Error::Closed {
                topic: Some("t".into()),
            }),
            || {},
        );
        assert!(matches!(f.await, Err(Error::Closed { .. })));
    }

    #[tokio::test]
    async fn a_log_append_time_replaces_the_create_time_and_says_so() {
        let outcome = Arc::new(BatchOutcome::new("t".into(), 0));
        let f = DeliveryFuture::new(outcome.clone(), 1, 10);
        outcome.complete(
            Ok(BatchAck {
                base_offset: Some(7),
                log_append_time: Some(500),
            }),
            || {},
        );
        let md = f.await.unwrap();
        assert_eq!(
            (md.offset, md.timestamp, md.log_append_time),
            (Some(8), 500, true)
        );
    }
}
