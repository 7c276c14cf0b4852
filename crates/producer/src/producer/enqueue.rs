//! The send path: from a record to its place in a partition's batch, without waiting when
//! the topic is known and there is room, and waiting (for metadata or buffer memory) when not.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use kafka_producer_protocol::batch::{record_size_upper_bound, Header, RECORD_BATCH_OVERHEAD};

use crate::accumulator::{Appended, NotAppended, RecordParts, TopicQueues};
use crate::clock::now_millis;
use crate::delivery::DeliveryFuture;
use crate::error::{Error, ErrorCode, Result};
use crate::metadata::{Cluster, TopicMetadata};
use crate::partitioner::partition_for_key;
use crate::record::ProducerRecord;
use crate::shared::Shared;

use super::try_send::{Unqueued, WouldWait};

/// A record as bytes, borrowed from the caller.
pub(super) struct RawRecord<'a> {
    pub(super) topic: &'a str,
    pub(super) key: Option<&'a [u8]>,
    pub(super) value: Option<&'a [u8]>,
    pub(super) headers: &'a [Header],
    pub(super) timestamp: Option<i64>,
    pub(super) partition: Option<i32>,
}

impl<'a> RawRecord<'a> {
    #[inline]
    pub(super) fn of<K: AsRef<[u8]>, V: AsRef<[u8]>>(record: &'a ProducerRecord<'_, K, V>) -> Self {
        RawRecord {
            topic: record.topic,
            key: record.key.as_ref().map(AsRef::as_ref),
            value: record.value.as_ref().map(AsRef::as_ref),
            headers: &record.headers,
            timestamp: record.timestamp,
            partition: record.partition,
        }
    }
}

/// The whole of `send` when the topic is known and the open batch has room: no waiting.
///
/// The error is boxed: `Error` is 64 bytes, and this result is moved through every `send`; the
/// box is allocated only for a record that fails.
fn try_send_now(
    shared: &Arc<Shared>,
    r: &RawRecord<'_>,
) -> std::result::Result<Option<DeliveryFuture>, Box<Error>> {
    check_sendable(shared, r.topic)?;
    if !surely_fits(shared, r) {
        check_size(shared, r)?;
    }
    with_topic(shared, r.topic, |meta, tq| {
        let timestamp = r.timestamp.unwrap_or_else(now_millis);
        let placed = place(shared, meta, r)?;
        Ok(
            match append_placed(shared, meta, tq, placed, r, timestamp, None) {
                Ok(a) => Some(appended(shared, a)),
                Err(not) => {
                    if not == (NotAppended::NeedsBatch { last_full: true }) {
                        // That batch was just closed: it can go now, whatever linger.ms says.
                        shared.wake_sender();
                    }
                    None
                }
            },
        )
    })
    .unwrap_or(Ok(None))
}

/// `send` without waiting: the record goes into its partition's open batch or, if buffer memory
/// for a new batch is free now, into a new one. Otherwise nothing is queued, and the answer says
/// what `send` would wait for, or why it would fail.
pub(super) fn try_queue(
    shared: &Arc<Shared>,
    r: &RawRecord<'_>,
) -> std::result::Result<DeliveryFuture, Unqueued> {
    let result = match try_send_now(shared, r) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => try_new_batch(shared, r),
        Err(e) => Err(Unqueued::Failed(e)),
    };
    if let Err(Unqueued::Failed(e)) = &result {
        count_failed_send(shared, e);
    }
    result
}

/// Counts a `send` that failed in `record-error-total`, as the Java client does (its `send`
/// and its sender share the sensor), except for what Java answers with an
/// `IllegalStateException` or `IllegalArgumentException` instead: a closed producer, a
/// partition the topic does not have, a send outside a transaction.
pub(super) fn count_failed_send(shared: &Shared, e: &Error) {
    if !matches!(
        e,
        Error::Closed { .. } | Error::InvalidPartition { .. } | Error::TransactionState { .. }
    ) {
        let m = shared.metrics();
        m.record(&m.errors, 1.0);
    }
}

/// The part of `send_slow` that needs no waiting: a record for a new batch, queued if buffer
/// memory for the batch is free now. Once per batch, so out of line.
#[cold]
#[inline(never)]
fn try_new_batch(
    shared: &Arc<Shared>,
    r: &RawRecord<'_>,
) -> std::result::Result<DeliveryFuture, Unqueued> {
    let failed = |e| Unqueued::Failed(Box::new(e));
    let size = check_size(shared, r).map_err(failed)?;
    let queued = with_topic(shared, r.topic, |meta, tq| {
        let placed = place(shared, meta, r).map_err(failed)?;
        let reserve = batch_reservation(shared, size);
        if !shared.accumulator().try_reserve(reserve) {
            return Err(Unqueued::Wait(WouldWait::BufferFull));
        }
        append_reserved(shared, meta, tq, placed, r, reserve).map_err(failed)
    });
    match queued {
        Some(result) => result,
        None => {
            // Not known yet, or no leader: fetch it, as `send` would while it waits, unless
            // waiting cannot help (then `send` fails at once too).
            if let Some(e) = incurable(&shared.metadata().snapshot(), r.topic) {
                return Err(failed(e));
            }
            shared.metadata().want(r.topic);
            shared.metadata().request_refresh();
            Err(Unqueued::Wait(WouldWait::MetadataNotReady))
        }
    }
}

/// Appends the record to the partition `place` chose or, for `None`, to the sticky partition,
/// following it if another send moves it on meanwhile; `reserved` as for `Accumulator::append`.
fn append_placed(
    shared: &Shared,
    meta: &TopicMetadata,
    tq: &TopicQueues,
    placed: Option<i32>,
    r: &RawRecord<'_>,
    timestamp: i64,
    reserved: Option<usize>,
) -> std::result::Result<Appended, NotAppended> {
    loop {
        let (partition, sticky) = match placed {
            Some(p) => (p, None),
            None => {
                let c = tq
                    .sticky
                    .current(&meta.available, meta.partition_count() as u32);
                (c.partition as i32, Some(c))
            }
        };
        match shared.accumulator().append(
            tq,
            partition,
            sticky,
            RecordParts {
                timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            },
            reserved,
            Instant::now,
        ) {
            Err(NotAppended::Moved) => continue,
            other => return other,
        }
    }
}

/// The topic this thread last sent to: its metadata in one snapshot, and its queues.
struct LastTopic {
    generation: u64,
    meta: Arc<TopicMetadata>,
    queues: Arc<TopicQueues>,
}

thread_local! {
    /// So that a run of sends to one topic looks nothing up and takes no reference count: the
    /// topic's metadata and queues are kept until the producer's metadata changes. It keeps them
    /// (and so the topic's queues, even a closed producer's, empty once it closed) alive until
    /// this thread sends to another topic or producer, or ends.
    static LAST_TOPIC: RefCell<Option<LastTopic>> = const { RefCell::new(None) };
}

/// Calls `f` with the topic's metadata and queues if records can be placed in it now; `None`
/// if they cannot.
fn with_topic<R>(
    shared: &Shared,
    topic: &str,
    f: impl FnOnce(&TopicMetadata, &TopicQueues) -> R,
) -> Option<R> {
    // Read before the snapshot, so it is never newer than the snapshot cached with it.
    let generation = shared.metadata().generation();
    let mut f = Some(f);
    let from_cache = LAST_TOPIC.try_with(|cell| {
        // Taken already: a send from inside a send (a user partitioner's); none below.
        let mut last = cell.try_borrow_mut().ok()?;
        let cached = last
            .as_ref()
            .is_some_and(|l| l.generation == generation && same_name(&l.queues.name, topic));
        if !cached {
            let Some((meta, queues)) = look_up(shared, topic) else {
                return Some(None);
            };
            *last = Some(LastTopic {
                generation,
                meta,
                queues,
            });
        }
        let l = last.as_ref().expect("filled above");
        Some(f.take().map(|f| f(&l.meta, &l.queues)))
    });
    match from_cache {
        Ok(Some(result)) => result,
        // No cache on this thread: borrowed by a send inside a send, or gone as the thread ends.
        _ => {
            let (meta, queues) = look_up(shared, topic)?;
            Some((f?)(&meta, &queues))
        }
    }
}

/// The topic's metadata in the current snapshot and its queues, if records can be placed in it.
fn look_up(shared: &Shared, topic: &str) -> Option<(Arc<TopicMetadata>, Arc<TopicQueues>)> {
    let cluster = shared.metadata().snapshot();
    let meta = ready_topic(&cluster, topic)?.clone();
    let queues = shared.accumulator().topic(topic, meta.partition_count());
    Some((meta, queues))
}

/// `a == b`, inline: for names as short as topics', a call to the C library's `memcmp` cost
/// more than the comparison (4% of `send` in a profile).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// `send` when it must wait: for the topic's metadata, or for buffer memory.
pub(super) async fn send_slow(shared: &Arc<Shared>, r: &RawRecord<'_>) -> Result<DeliveryFuture> {
    let result = send_waiting(shared, r).await;
    if let Err(e) = &result {
        count_failed_send(shared, e);
    }
    result
}

/// [`send_slow`], less the counting of its failure.
async fn send_waiting(shared: &Arc<Shared>, r: &RawRecord<'_>) -> Result<DeliveryFuture> {
    let start = Instant::now();
    let deadline = start + shared.config().max_block;
    check_sendable(shared, r.topic)?;
    let size = check_size(shared, r)?;
    let cluster = wait_for_topic(shared, r.topic, deadline).await;
    let m = &shared.accumulator().metrics;
    m.record_nanos(&m.metadata_wait, start.elapsed());
    let cluster = cluster?;
    let meta = ready_topic(&cluster, r.topic).expect("wait_for_topic waits for this");
    let tq = shared.accumulator().topic(r.topic, meta.partition_count());
    let placed = place(shared, meta, r)?;
    let reserve = batch_reservation(shared, size);
    if !shared.accumulator().reserve(reserve, deadline).await {
        check_sendable(shared, r.topic)?;
        m.record(&m.buffer_exhausted, 1.0);
        return Err(Error::BufferExhausted {
            topic: r.topic.to_string(),
            buffer_memory: shared.accumulator().buffer_memory(),
            waited: start.elapsed(),
        });
    }
    if let Err(e) = check_sendable(shared, r.topic) {
        shared.accumulator().release(reserve);
        return Err(e);
    }
    // The sticky partition as it is now, after the wait.
    append_reserved(shared, meta, &tq, placed, r, reserve)
}

/// The buffer memory a new batch for a record of `size` bytes takes: `batch.size`, or the
/// record's size if larger, but never more than `buffer.memory` (`batch.size` may exceed it;
/// `check_size` has made sure the record alone does not).
fn batch_reservation(shared: &Shared, size: usize) -> usize {
    size.max(shared.accumulator().batch_size())
        .min(shared.accumulator().buffer_memory())
}

/// Appends the record with `reserved` bytes of buffer memory for a new batch (`send_slow` and
/// `try_new_batch`), to the partition `place` chose or the sticky partition as it is now.
fn append_reserved(
    shared: &Shared,
    meta: &TopicMetadata,
    tq: &TopicQueues,
    placed: Option<i32>,
    r: &RawRecord<'_>,
    reserved: usize,
) -> Result<DeliveryFuture> {
    let timestamp = r.timestamp.unwrap_or_else(now_millis);
    match append_placed(shared, meta, tq, placed, r, timestamp, Some(reserved)) {
        Ok(a) => Ok(appended(shared, a)),
        // The producer closed meanwhile (while a send waited), and its sender has stopped.
        Err(NotAppended::Stopped) => Err(closed(r.topic)),
        Err(_) => unreachable!("with memory reserved, append always takes the record"),
    }
}

/// After an append: wake the sender if it should look.
fn appended(shared: &Shared, a: Appended) -> DeliveryFuture {
    if a.wake_sender {
        shared.wake_sender();
    }
    a.future
}

/// Whether `check_size` would surely pass the record, found with one comparison: without
/// headers a record takes at most 32 bytes besides its key and value (every varint at its
/// widest), and a batch of it alone [`RECORD_BATCH_OVERHEAD`] more. (`check_size` with its
/// per-field arithmetic was 2% of `send`.)
fn surely_fits(shared: &Shared, r: &RawRecord<'_>) -> bool {
    const WIDEST_RECORD_OVERHEAD: usize = 32;
    let c = shared.config();
    let limit = c.max_request_size.min(c.buffer_memory);
    let key = r.key.map_or(0, <[u8]>::len);
    let value = r.value.map_or(0, <[u8]>::len);
    r.headers.is_empty()
        && key
            .saturating_add(value)
            .saturating_add(WIDEST_RECORD_OVERHEAD + RECORD_BATCH_OVERHEAD)
            <= limit
}

/// Fails a send or a metadata wait for `topic` once the producer is closing.
fn check_open(shared: &Shared, topic: &str) -> Result<()> {
    if shared.is_closing() {
        return Err(shared.failure().cloned().unwrap_or_else(|| closed(topic)));
    }
    Ok(())
}

/// [`check_open`], and for a transactional producer, a transaction open.
#[inline]
fn check_sendable(shared: &Shared, topic: &str) -> Result<()> {
    check_open(shared, topic)?;
    if let Some(txn) = shared.transactions() {
        txn.check_send()?;
    }
    Ok(())
}

fn closed(topic: &str) -> Error {
    Error::Closed {
        topic: Some(topic.to_string()),
    }
}

/// Fails records that can never be sent, before anything is queued; returns the record's size.
fn check_size(shared: &Shared, r: &RawRecord<'_>) -> Result<usize> {
    let size = record_size_upper_bound(r.key.map(<[u8]>::len), r.value.map(<[u8]>::len), r.headers)
        + RECORD_BATCH_OVERHEAD;
    let c = shared.config();
    for (limit_name, limit) in [
        ("max.request.size", c.max_request_size),
        ("buffer.memory", c.buffer_memory),
    ] {
        if size > limit {
            return Err(Error::RecordTooLarge {
                topic: r.topic.to_string(),
                size,
                limit_name,
                limit,
            });
        }
    }
    Ok(size)
}

/// The topic's metadata if records can be placed in it now.
fn ready_topic<'c>(cluster: &'c Cluster, topic: &str) -> Option<&'c Arc<TopicMetadata>> {
    cluster
        .topics
        .get(topic)
        .filter(|t| t.error.is_ok() && t.partition_count() > 0)
}

/// Waits until the topic's partitions are known, asking for metadata as needed, until `deadline`.
pub(super) async fn wait_for_topic(
    shared: &Shared,
    topic: &str,
    deadline: Instant,
) -> Result<Arc<Cluster>> {
    let mut changes = shared.metadata().subscribe();
    let start = Instant::now();
    loop {
        let cluster = shared.metadata().snapshot();
        let last_error = cluster.topics.get(topic).map(|t| t.error);
        if ready_topic(&cluster, topic).is_some() {
            return Ok(cluster);
        }
        if let Some(e) = incurable(&cluster, topic) {
            return Err(e);
        }
        check_open(shared, topic)?;
        shared.metadata().want(topic);
        shared.metadata().request_refresh();
        changes.borrow_and_update();
        if tokio::time::timeout_at(deadline.into(), changes.changed())
            .await
            .is_err()
        {
            return Err(Error::UnknownTopic {
                topic: topic.to_string(),
                waited: start.elapsed(),
                reason: last_error.filter(|c| !c.is_ok()),
            });
        }
    }
}

/// The topic's error in `cluster` if waiting cannot cure it: INVALID_TOPIC_EXCEPTION,
/// TOPIC_AUTHORIZATION_FAILED.
fn incurable(cluster: &Cluster, topic: &str) -> Option<Error> {
    let code = cluster.topics.get(topic)?.error;
    matches!(
        code,
        ErrorCode::INVALID_TOPIC_EXCEPTION | ErrorCode::TOPIC_AUTHORIZATION_FAILED
    )
    .then(|| Error::Broker {
        topic: topic.to_string(),
        partition: None,
        code,
        message: None,
    })
}

/// Chooses the partition, unless the record is one for the sticky partitioner (no key, no
/// partition given, no user partitioner's answer): then `None`.
fn place(shared: &Shared, meta: &TopicMetadata, r: &RawRecord<'_>) -> Result<Option<i32>> {
    let count = meta.partition_count();
    if let Some(p) = r.partition {
        if p < 0 || p as usize >= count {
            return Err(Error::InvalidPartition {
                topic: r.topic.to_string(),
                partition: p,
                partition_count: count,
            });
        }
        return Ok(Some(p));
    }
    if let Some(custom) = shared.partitioner() {
        if let Some(p) = custom.partition(r.topic, r.key, r.value, count as u32) {
            if p as usize >= count {
                return Err(Error::InvalidPartition {
                    topic: r.topic.to_string(),
                    partition: p as i32,
                    partition_count: count,
                });
            }
            return Ok(Some(p as i32));
        }
    }
    if let (Some(key), false) = (r.key, shared.config().partitioner_ignore_keys) {
        return Ok(Some(partition_for_key(key, count as u32) as i32));
    }
    Ok(None)
}
