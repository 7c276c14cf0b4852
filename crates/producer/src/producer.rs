//! The handles users hold: [`Producer`] (bytes), [`TypedProducer`] (with serializers) and
//! [`BlockingProducer`] (for synchronous code).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer_protocol::batch::{record_size_upper_bound, Header, RECORD_BATCH_OVERHEAD};

use crate::accumulator::{Appended, NeedsBatch, TopicQueues};
use crate::clock::now_millis;
use crate::config::ProducerConfig;
use crate::delivery::{settled, DeliveryFuture};
use crate::error::{Error, ErrorCode, Result};
use crate::metadata::{Cluster, TopicMetadata};
use crate::partitioner::{partition_for_key, Partitioner};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::sender::{run_metadata, run_sender};
use crate::serializer::Serializer;
use crate::shared::Shared;

/// A Kafka producer of raw bytes. Cheap to clone (`Clone + Send + Sync`); all clones share one
/// buffer, one set of connections and one background sender.
///
/// Create it inside a tokio runtime: it spawns its sender and metadata tasks there.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

/// Notices when the last user handle goes away without `close`.
struct DropGuard(Arc<Shared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        if !shared.begin_close() {
            return;
        }
        let pending = shared.accumulator().pending_records();
        if pending > 0 {
            let msg = format!(
                "kafka-producer: the producer was dropped without close() while {pending} record(s) \
                 were not yet acknowledged; they are still being sent in the background, but are lost \
                 if the runtime stops first. Call flush() or close() before dropping it."
            );
            if tracing::dispatcher::has_been_set() {
                tracing::warn!(pending, "{msg}");
            } else {
                eprintln!("{msg}");
            }
        }
        shared.wake_sender();
    }
}

impl Producer {
    /// Validates `config`, connects to `bootstrap.servers` (each in turn, every resolved address,
    /// each bounded by `socket.connection.setup.timeout.ms`) and learns the cluster.
    ///
    /// Fails with [`Error::Config`] for a bad configuration and [`Error::Bootstrap`] when no
    /// bootstrap server answers, naming each address and what it answered.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        Self::with_partitioner(config, None).await
    }

    /// Like [`Producer::new`], with a user partitioner consulted before the built-in one.
    pub async fn with_partitioner(
        config: ProducerConfig,
        partitioner: Option<Arc<dyn Partitioner>>,
    ) -> Result<Producer> {
        config.validate()?;
        let shared = Arc::new(Shared::new(config, partitioner));
        shared.refresh_metadata().await?;
        shared.init_producer_id().await?;
        tokio::spawn(run_sender(shared.clone()));
        tokio::spawn(run_metadata(shared.clone()));
        Ok(Producer {
            _guard: Arc::new(DropGuard(shared.clone())),
            shared,
        })
    }

    /// Queues a record and returns at once with its [`DeliveryFuture`], without touching the
    /// network, when its topic is known and there is room in `buffer.memory`.
    ///
    /// It waits, at most `max.block.ms` in all, only (1) for the topic's metadata the first time a
    /// topic is used, and (2) for room in `buffer.memory` when the brokers are not keeping up.
    /// Then it fails with [`Error::UnknownTopic`] or [`Error::BufferExhausted`]. Apart from that it
    /// only yields to the runtime now and then (tokio's task budget, as tokio's channels do), so a
    /// loop of sends lets the background sender run even on a current-thread runtime.
    /// It fails at once, queuing nothing, for a record larger than `max.request.size`
    /// ([`Error::RecordTooLarge`]), a partition the topic does not have, or a closed producer.
    ///
    /// Once queued, the record gets exactly one outcome through the returned future, whether or
    /// not anybody awaits it: acknowledged with its offset, or failed with the reason (at the
    /// latest after `delivery.timeout.ms`). Cancelling this call before it returns queues nothing.
    pub async fn send<K, V>(&self, record: ProducerRecord<'_, K, V>) -> Result<DeliveryFuture>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        // As tokio's own channels do: every so often (tokio's task budget) a send yields, so a
        // loop of sends that never waits still lets the sender task run on a current-thread
        // runtime. Before anything is queued, so a send cancelled here queues nothing.
        tokio::task::consume_budget().await;
        let r = RawRecord::of(&record);
        match try_queue(&self.shared, &r) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(*e),
        }
        // Boxed: the waiting path's state (the metadata watch, the semaphore's acquire) made up
        // most of this future (848 bytes), and every `send` moves its future at least once;
        // boxed, it is allocated only when a send must wait, not per record.
        Box::pin(send_slow(&self.shared, &r)).await
    }

    /// Queues a record if that needs no waiting, as [`send`](Self::send) does when it returns
    /// at once, and never awaits or yields (it takes the partition's lock, as `send` does): for
    /// a loop that sends many records without an `.await` for each, and for callers outside
    /// async code.
    ///
    /// Returns `Ok(Some(future))` once the record is queued: the same [`DeliveryFuture`], with
    /// the same guarantee of exactly one outcome, as `send` returns. Returns `Ok(None)`, having
    /// queued nothing, when `send` would wait: the topic's metadata is not known yet, or it has
    /// a partition without a leader (the metadata is fetched, as by `send`), or the record needs
    /// a new batch and `buffer.memory` has no room for one now. Then hand the record to `send`,
    /// which waits for it; calling `try_send` again in a loop instead only succeeds once the
    /// background tasks have run, which on a current-thread runtime needs the caller to yield.
    /// Fails, queuing nothing, as `send` fails without waiting: a record larger than
    /// `max.request.size` or `buffer.memory`, a partition the topic does not have (once the
    /// topic is known), a topic the brokers call invalid or not authorized, a closed producer.
    ///
    /// The record is borrowed: after `Ok(None)` or an error it is still the caller's.
    ///
    /// ```no_run
    /// # async fn example(producer: kafka_producer::Producer) -> kafka_producer::Result<()> {
    /// use kafka_producer::ProducerRecord;
    ///
    /// let record = ProducerRecord::new("events").key("greeting").value("hello");
    /// let delivery = match producer.try_send(&record)? {
    ///     Some(delivery) => delivery,
    ///     None => producer.send(record).await?,
    /// };
    /// let md = delivery.await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "a record queued has an outcome to look at; `None` means nothing was queued"]
    pub fn try_send<K, V>(
        &self,
        record: &ProducerRecord<'_, K, V>,
    ) -> Result<Option<DeliveryFuture>>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let r = RawRecord::of(record);
        try_queue(&self.shared, &r).map_err(|e| *e)
    }

    /// Sends everything queued now (ignoring `linger.ms`) and waits until every record handed to
    /// `send` before this call is acknowledged or has failed.
    ///
    /// Returns [`Error::FlushFailed`] if any of them failed; each record's own future still
    /// carries its own error.
    pub async fn flush(&self) -> Result<()> {
        flush(&self.shared).await
    }

    /// Flushes, then stops the background tasks and closes the connections. Records still not
    /// acknowledged at `timeout` fail with [`Error::Closed`], which reaches their futures.
    /// Later sends fail with [`Error::Closed`].
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let shared = &self.shared;
        shared.begin_close();
        shared.wake_sender();
        let mut stopped = shared.stopped();
        let graceful = tokio::time::timeout(timeout, stopped.wait_for(|&s| s))
            .await
            .is_ok();
        if graceful {
            return Ok(());
        }
        let pending = shared.accumulator().pending_records();
        shared
            .accumulator()
            .abort_all(&Error::Closed { topic: None });
        shared.wake_sender();
        let _ = stopped.wait_for(|&s| s).await;
        Err(Error::Closed {
            topic: Some(format!(
                "{pending} record(s) still pending after close timeout of {} ms",
                timeout.as_millis()
            )),
        })
    }

    /// Records handed to `send` whose outcome is not known yet.
    pub fn pending_records(&self) -> usize {
        self.shared.accumulator().pending_records()
    }

    /// The partition count of `topic` as last seen in metadata (fetching it if needed).
    pub async fn partition_count(&self, topic: &str) -> Result<usize> {
        let deadline = Instant::now() + self.shared.config().max_block;
        let cluster = wait_for_topic(&self.shared, topic, deadline).await?;
        Ok(cluster.topics[topic].partition_count())
    }
}

/// A record as bytes, borrowed from the caller.
struct RawRecord<'a> {
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [Header],
    timestamp: Option<i64>,
    partition: Option<i32>,
}

impl<'a> RawRecord<'a> {
    #[inline]
    fn of<K: AsRef<[u8]>, V: AsRef<[u8]>>(record: &'a ProducerRecord<'_, K, V>) -> Self {
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
    check_open(shared, r.topic)?;
    if !surely_fits(shared, r) {
        check_size(shared, r)?;
    }
    with_topic(shared, r.topic, |meta, tq| {
        let timestamp = r.timestamp.unwrap_or_else(now_millis);
        let placed = place(shared, meta, r)?;
        Ok(
            match append_placed(shared, meta, tq, placed, r, timestamp, None) {
                Ok(a) => Some(appended(shared, a)),
                Err(needs) => {
                    if needs.last_full {
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
/// for a new batch is free now, into a new one. `None`: `send` would wait (for the topic's
/// metadata, or for buffer memory), and nothing is queued.
fn try_queue(
    shared: &Arc<Shared>,
    r: &RawRecord<'_>,
) -> std::result::Result<Option<DeliveryFuture>, Box<Error>> {
    match try_send_now(shared, r)? {
        Some(f) => Ok(Some(f)),
        None => try_new_batch(shared, r),
    }
}

/// The part of `send_slow` that needs no waiting: a record for a new batch, queued if buffer
/// memory for the batch is free now. Once per batch, so out of line.
#[cold]
#[inline(never)]
fn try_new_batch(
    shared: &Arc<Shared>,
    r: &RawRecord<'_>,
) -> std::result::Result<Option<DeliveryFuture>, Box<Error>> {
    let size = check_size(shared, r)?;
    let queued = with_topic(shared, r.topic, |meta, tq| {
        let placed = place(shared, meta, r)?;
        let reserve = batch_reservation(shared, size);
        if !shared.accumulator().try_reserve(reserve) {
            return Ok(None);
        }
        append_reserved(shared, meta, tq, placed, r, reserve).map(Some)
    });
    match queued {
        Some(result) => result.map_err(Box::new),
        None => {
            // Not known yet, or no leader: fetch it, as `send` would while it waits, unless
            // waiting cannot help (then `send` fails at once too).
            if let Some(e) = incurable(&shared.metadata().snapshot(), r.topic) {
                return Err(Box::new(e));
            }
            shared.metadata().want(r.topic);
            shared.metadata().request_refresh();
            Ok(None)
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
) -> std::result::Result<Appended, NeedsBatch> {
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
            timestamp,
            r.key,
            r.value,
            r.headers,
            reserved,
            Instant::now,
        ) {
            Err(NeedsBatch { moved: true, .. }) => continue,
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
async fn send_slow(shared: &Arc<Shared>, r: &RawRecord<'_>) -> Result<DeliveryFuture> {
    let start = Instant::now();
    let deadline = start + shared.config().max_block;
    check_open(shared, r.topic)?;
    let size = check_size(shared, r)?;
    let cluster = wait_for_topic(shared, r.topic, deadline).await?;
    let meta = ready_topic(&cluster, r.topic).expect("wait_for_topic waits for this");
    let tq = shared.accumulator().topic(r.topic, meta.partition_count());
    let placed = place(shared, meta, r)?;
    let reserve = batch_reservation(shared, size);
    if !shared.accumulator().reserve(reserve, deadline).await {
        return Err(Error::BufferExhausted {
            topic: r.topic.to_string(),
            buffer_memory: shared.accumulator().buffer_memory(),
            waited: start.elapsed(),
        });
    }
    if let Err(e) = check_open(shared, r.topic) {
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
        Err(NeedsBatch { stopped: true, .. }) => Err(closed(r.topic)),
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

/// Fails a send to `topic` once the producer is closing.
fn check_open(shared: &Shared, topic: &str) -> Result<()> {
    if shared.is_closing() {
        return Err(closed(topic));
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
async fn wait_for_topic(shared: &Shared, topic: &str, deadline: Instant) -> Result<Arc<Cluster>> {
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

async fn flush(shared: &Shared) -> Result<()> {
    shared.accumulator().begin_flush();
    struct EndFlush<'a>(&'a Shared);
    impl Drop for EndFlush<'_> {
        fn drop(&mut self) {
            self.0.accumulator().end_flush();
        }
    }
    let _end = EndFlush(shared);
    shared.wake_sender();
    let mut failed = 0;
    let mut first = None;
    for outcome in shared.accumulator().incomplete() {
        if let Err(e) = settled(outcome).await {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(Error::FlushFailed {
            failed,
            first: Box::new(first),
        }),
    }
}

/// A producer with a key and a value serializer, like the Java client's `KafkaProducer<K, V>`.
///
/// ```no_run
/// # async fn demo() -> Result<(), kafka_producer::Error> {
/// use kafka_producer::{JsonSerializer, ProducerConfig, ProducerRecord, StringSerializer, TypedProducer};
///
/// let config = ProducerConfig::new("localhost:9092");
/// let producer = TypedProducer::new(config, StringSerializer, JsonSerializer).await?;
/// let reading = serde_json::json!({"temp": 10});
/// let delivery = producer
///     .send(ProducerRecord::new("weather_realtime").key("seoul").value(&reading))
///     .await?;
/// producer.flush().await?;
/// println!("{:?}", delivery.await?);
/// # Ok(()) }
/// ```
pub struct TypedProducer<K: ?Sized, V: ?Sized> {
    producer: Producer,
    key: Arc<dyn Serializer<K>>,
    value: Arc<dyn Serializer<V>>,
}

impl<K: ?Sized, V: ?Sized> Clone for TypedProducer<K, V> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

/// A serialized key and value, borrowed from the scratch buffers.
type KeyValue<'b> = (Option<&'b [u8]>, Option<&'b [u8]>);

thread_local! {
    /// Scratch buffers for serializing, so a typed send needs no allocation of its own.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl<K: ?Sized, V: ?Sized> TypedProducer<K, V> {
    /// Connects (see [`Producer::new`]) and uses these serializers.
    pub async fn new(
        config: ProducerConfig,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> Result<Self> {
        Ok(Self::from_producer(
            Producer::new(config).await?,
            key,
            value,
        ))
    }

    /// Wraps an existing producer; it shares the buffer and connections with every other handle.
    pub fn from_producer(
        producer: Producer,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> Self {
        TypedProducer {
            producer,
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }

    /// Serializes the key and value, then sends as [`Producer::send`] does. A serializer error
    /// fails this call with [`Error::Serialization`] and queues nothing.
    pub async fn send(&self, record: ProducerRecord<'_, &K, &V>) -> Result<DeliveryFuture> {
        // As `Producer::send`: yield now and then, before anything is queued.
        tokio::task::consume_budget().await;
        let shared = &self.producer.shared;
        let topic = record.topic;
        // Fast path: serialize into this thread's scratch buffers and append without waiting.
        let fast = SCRATCH.with(|s| {
            let (kbuf, vbuf) = &mut *s.borrow_mut();
            let (key, value) = self.serialize(&record, kbuf, vbuf)?;
            let raw = RawRecord {
                topic,
                key,
                value,
                headers: &record.headers,
                timestamp: record.timestamp,
                partition: record.partition,
            };
            match try_queue(shared, &raw).map_err(|e| *e)? {
                Some(f) => Ok(Ok(f)),
                // Must wait: keep owned copies across the await.
                None => Ok(Err((key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec)))),
            }
        })?;
        let (key, value) = match fast {
            Ok(f) => return Ok(f),
            Err(owned) => owned,
        };
        let raw = RawRecord {
            topic,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &record.headers,
            timestamp: record.timestamp,
            partition: record.partition,
        };
        // Boxed, as in `Producer::send`.
        Box::pin(send_slow(shared, &raw)).await
    }

    fn serialize<'b>(
        &self,
        record: &ProducerRecord<'_, &K, &V>,
        kbuf: &'b mut Vec<u8>,
        vbuf: &'b mut Vec<u8>,
    ) -> Result<KeyValue<'b>> {
        let err = |part, e: crate::error::BoxError| Error::Serialization {
            topic: record.topic.to_string(),
            part,
            source: Arc::from(e),
        };
        kbuf.clear();
        vbuf.clear();
        let key = match record.key {
            Some(k) => {
                self.key
                    .serialize(record.topic, k, kbuf)
                    .map_err(|e| err("key", e))?;
                Some(&kbuf[..])
            }
            None => None,
        };
        let value = match record.value {
            Some(v) => {
                self.value
                    .serialize(record.topic, v, vbuf)
                    .map_err(|e| err("value", e))?;
                Some(&vbuf[..])
            }
            None => None,
        };
        Ok((key, value))
    }

    /// See [`Producer::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.producer.flush().await
    }

    /// See [`Producer::close`].
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        self.producer.close(timeout).await
    }

    /// The untyped producer underneath.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

/// A producer for synchronous code: each call blocks the calling thread. It runs its own
/// small tokio runtime; do not use it from inside an async runtime.
///
/// Dropping it without [`BlockingProducer::close`] closes it with `delivery.timeout.ms` as the
/// timeout, so queued records are delivered (or fail) before the runtime stops.
pub struct BlockingProducer<K: ?Sized, V: ?Sized> {
    producer: Option<TypedProducer<K, V>>,
    runtime: tokio::runtime::Runtime,
    close_timeout: Duration,
}

/// The outcome of one record sent by a [`BlockingProducer`].
#[must_use = "a record's outcome is only known by waiting for it"]
#[derive(Debug)]
pub struct BlockingDelivery {
    future: DeliveryFuture,
    handle: tokio::runtime::Handle,
}

impl BlockingDelivery {
    /// Blocks until the record is acknowledged or has failed.
    pub fn wait(self) -> Result<RecordMetadata> {
        self.handle.block_on(self.future)
    }
}

impl<K: ?Sized, V: ?Sized> BlockingProducer<K, V> {
    /// Connects, like [`Producer::new`].
    pub fn new(
        config: ProducerConfig,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kafka-producer")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::config(
                    "(runtime)",
                    format!("cannot start the producer's runtime: {e}"),
                )
            })?;
        let close_timeout = config.delivery_timeout;
        let producer = runtime.block_on(TypedProducer::new(config, key, value))?;
        Ok(BlockingProducer {
            producer: Some(producer),
            runtime,
            close_timeout,
        })
    }

    fn typed(&self) -> &TypedProducer<K, V> {
        self.producer.as_ref().expect("present until drop")
    }

    /// Queues a record; see [`Producer::send`] for when this blocks.
    pub fn send(&self, record: ProducerRecord<'_, &K, &V>) -> Result<BlockingDelivery> {
        let future = self.runtime.block_on(self.typed().send(record))?;
        Ok(BlockingDelivery {
            future,
            handle: self.runtime.handle().clone(),
        })
    }

    /// See [`Producer::flush`].
    pub fn flush(&self) -> Result<()> {
        self.runtime.block_on(self.typed().flush())
    }

    /// See [`Producer::close`].
    pub fn close(mut self, timeout: Duration) -> Result<()> {
        let producer = self.producer.take().expect("present until drop");
        self.runtime.block_on(producer.close(timeout))
    }
}

impl<K: ?Sized, V: ?Sized> Drop for BlockingProducer<K, V> {
    fn drop(&mut self) {
        if let Some(p) = self.producer.take() {
            if let Err(e) = self.runtime.block_on(p.close(self.close_timeout)) {
                eprintln!("kafka-producer: closing a dropped BlockingProducer: {e}");
            }
        }
    }
}
