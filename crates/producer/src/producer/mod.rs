//! The handles users hold: [`Producer`] (bytes), [`TypedProducer`] (with serializers) and
//! [`BlockingProducer`] (for synchronous code).
//!
//! This file holds [`Producer`]; [`enqueue`] is its send path, from a record to its place in a
//! batch; [`typed`] and [`blocking`] hold the other two handles, built on it; [`try_send`] holds
//! what `try_send` answers when it did not queue a record.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ProducerConfig;
use crate::delivery::{settled, DeliveryFuture};
use crate::error::{Error, Result};
use crate::metadata::TopicMetadata;
use crate::partitioner::Partitioner;
use crate::record::ProducerRecord;
use crate::sender::{run_metadata, run_sender};
use crate::shared::Shared;

pub use self::blocking::{BlockingDelivery, BlockingProducer};
pub use self::describe::{
    BrokerDescription, ClusterDescription, PartitionDescription, TopicDescription,
};
use self::enqueue::{send_slow, try_queue, wait_for_topic, RawRecord};
use self::try_send::Unqueued;
pub use self::try_send::{NotQueued, TrySendError, WouldWait};
pub use self::typed::TypedProducer;

mod blocking;
mod describe;
mod enqueue;
mod transactional;
mod try_send;
mod typed;

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
        let shared = Arc::new(Shared::new(config, partitioner)?);
        shared.refresh_metadata().await?;
        shared.init_producer_id().await?;
        shared.spawn("sender", run_sender(shared.clone()));
        shared.spawn("metadata", run_metadata(shared.clone()));
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
            Ok(f) => return Ok(f),
            Err(Unqueued::Failed(e)) => return Err(*e),
            Err(Unqueued::Wait(_)) => {}
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
    /// Returns the record's [`DeliveryFuture`] once it is queued, with the same guarantee of
    /// exactly one outcome as `send`'s. Otherwise nothing is queued and the record comes back in
    /// a [`TrySendError`], with the reason:
    /// - [`NotQueued::WouldWait`] when `send` would wait: for the topic's metadata
    ///   ([`WouldWait::MetadataNotReady`]: not known yet, or a partition without a leader; it is
    ///   fetched, as by `send`), or for `buffer.memory` to have room for the new batch the record
    ///   needs ([`WouldWait::BufferFull`]). Then hand the record to `send`, which waits for it;
    ///   calling `try_send` again in a loop instead only succeeds once the background tasks have
    ///   run, which on a current-thread runtime needs the caller to yield.
    /// - [`NotQueued::Failed`] when `send` would fail at once too: a record larger than
    ///   `max.request.size` or `buffer.memory`, a partition the topic does not have (once the
    ///   topic is known), a topic the brokers call invalid or not authorized, a closed producer.
    ///
    /// ```no_run
    /// # async fn example(producer: kafka_producer::Producer) -> kafka_producer::Result<()> {
    /// use kafka_producer::ProducerRecord;
    ///
    /// let record = ProducerRecord::new("events").key("greeting").value("hello");
    /// let delivery = match producer.try_send(record) {
    ///     Ok(delivery) => delivery,
    ///     // Waits if `try_send` would have had to; fails if `send` would fail too.
    ///     Err(not_queued) => producer.send(not_queued.record_for_send()?).await?,
    /// };
    /// let md = delivery.await?;
    /// # Ok(())
    /// # }
    /// ```
    // The record comes back by value, as the caller gave it, so the error is as large as the
    // record; boxing it would allocate for every record handed back. A queued record's result
    // is written in place, its size costs nothing.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub fn try_send<'a, K, V>(
        &self,
        record: ProducerRecord<'a, K, V>,
    ) -> std::result::Result<DeliveryFuture, TrySendError<ProducerRecord<'a, K, V>>>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let r = RawRecord::of(&record);
        try_queue(&self.shared, &r).map_err(|n| n.hand_back(record))
    }

    /// Sends everything queued now (ignoring `linger.ms`) and waits until every record handed to
    /// `send` before this call is acknowledged or has failed.
    ///
    /// Returns [`Error::FlushFailed`] if any of them failed; each record's own future still
    /// carries its own error.
    pub async fn flush(&self) -> Result<()> {
        let m = self.shared.metrics();
        m.timed(&m.flush_time, flush_all(&self.shared)).await
    }

    /// Flushes, then stops the background tasks and closes the connections. Records still not
    /// acknowledged at `timeout` fail with [`Error::Closed`], which reaches their futures, and
    /// `close` returns [`Error::CloseTimedOut`]. Later sends fail with [`Error::Closed`].
    /// If a background task had panicked, returns that [`Error::TaskPanicked`].
    ///
    /// A transaction still open is aborted first, as the Java client does (within the same
    /// `timeout`): its records fail with [`Error::TransactionAborted`] or are written and
    /// skipped by `read_committed` consumers.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let shared = &self.shared;
        if shared.transactions().is_some_and(|t| t.is_open()) {
            if let Err(error) = shared.abort_transaction(timeout).await {
                tracing::warn!(%error, "close: could not abort the open transaction");
            }
        }
        shared.begin_close();
        shared.wake_sender();
        let mut stopped = shared.stopped();
        let graceful = tokio::time::timeout(timeout, stopped.wait_for(|&s| s))
            .await
            .is_ok();
        if graceful {
            return shared.failure().map_or(Ok(()), |e| Err(e.clone()));
        }
        let pending = shared.accumulator().pending_records();
        shared
            .accumulator()
            .abort_all(&Error::Closed { topic: None });
        shared.wake_sender();
        let _ = stopped.wait_for(|&s| s).await;
        Err(Error::CloseTimedOut { pending, timeout })
    }

    /// Records queued (by `send` or `try_send`) whose outcome is not known yet. Never waits.
    pub fn pending_records(&self) -> usize {
        self.shared.accumulator().pending_records()
    }

    /// A snapshot of the producer's metrics, under the Java client's names and with their
    /// meanings: `producer-metrics` (`record-send-rate`, `request-latency-avg`,
    /// `buffer-available-bytes`, ...), `producer-topic-metrics` per topic and
    /// `producer-node-metrics` per broker. Never waits; see [`Metrics`](crate::metrics::Metrics).
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.shared.metrics_snapshot()
    }

    /// The partition count of `topic` as last seen in metadata.
    ///
    /// Waits, as [`send`](Self::send) does, only the first time a topic is used: until its
    /// metadata is known, at most `max.block.ms`, then fails with [`Error::UnknownTopic`]. Fails
    /// at once for a topic the brokers call invalid or not authorized, or a closed producer.
    pub async fn partition_count(&self, topic: &str) -> Result<usize> {
        Ok(self.topic_metadata(topic).await?.partition_count())
    }

    /// The partitions of `topic` as last seen in metadata, in partition order, each with its
    /// leader, like the Java client's `partitionsFor`. Waits and fails as
    /// [`partition_count`](Self::partition_count) does.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        let meta = self.topic_metadata(topic).await?;
        Ok((0..meta.partition_count() as i32)
            .map(|partition| PartitionInfo {
                partition,
                leader: meta.leader(partition),
            })
            .collect())
    }

    async fn topic_metadata(&self, topic: &str) -> Result<Arc<TopicMetadata>> {
        let deadline = Instant::now() + self.shared.config().max_block;
        let cluster = wait_for_topic(&self.shared, topic, deadline).await?;
        Ok(cluster.topics[topic].clone())
    }
}

/// One partition of a topic, as [`Producer::partitions`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// The partition id: a topic's partitions are `0..partition_count`.
    pub partition: i32,
    /// The node id of the partition's leader, or `None` while it has none.
    pub leader: Option<i32>,
}

/// The bootstrap servers, the client id and the records pending: enough to tell producers
/// apart, and nothing secret.
impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.shared.config();
        f.debug_struct("Producer")
            .field("bootstrap_servers", &config.bootstrap_servers)
            .field("client_id", &config.client_id)
            .field("pending_records", &self.pending_records())
            .finish_non_exhaustive()
    }
}

/// `flush`: sends everything queued now and waits for every batch incomplete at the call.
pub(crate) async fn flush_all(shared: &Shared) -> Result<()> {
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
