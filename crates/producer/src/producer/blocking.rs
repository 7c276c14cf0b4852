//! [`BlockingProducer`]: a [`TypedProducer`] for synchronous code, on its own runtime.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{PartitionInfo, TrySendError, TypedProducer};
use crate::config::ProducerConfig;
use crate::delivery::DeliveryFuture;
use crate::error::{Error, Result};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::serializer::Serializer;
use crate::transaction::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

/// A producer for synchronous code: each call blocks the calling thread. It runs its own
/// small tokio runtime; do not use it from inside an async runtime.
///
/// Dropping it without [`BlockingProducer::close`] closes it with `delivery.timeout.ms` as the
/// timeout, so queued records are delivered (or fail) before the runtime stops.
pub struct BlockingProducer<K: ?Sized, V: ?Sized> {
    producer: TypedProducer<K, V>,
    runtime: tokio::runtime::Runtime,
    close_timeout: Duration,
    /// Set by `close`, so that a drop does not close again and report its error twice.
    closed: AtomicBool,
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
    /// Connects, like [`Producer::new`](crate::Producer::new), blocking until connected.
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
            .map_err(|e| Error::Runtime {
                message: e.to_string(),
            })?;
        let close_timeout = config.delivery_timeout;
        let producer = runtime.block_on(TypedProducer::new(config, key, value))?;
        Ok(BlockingProducer {
            producer,
            runtime,
            close_timeout,
            closed: AtomicBool::new(false),
        })
    }

    fn delivery(&self, future: DeliveryFuture) -> BlockingDelivery {
        BlockingDelivery {
            future,
            handle: self.runtime.handle().clone(),
        }
    }

    /// Queues a record, blocking while [`Producer::send`](crate::Producer::send) would wait: for
    /// the topic's metadata or for `buffer.memory`, at most `max.block.ms`. Returns the record's
    /// [`BlockingDelivery`] once queued; fails as [`TypedProducer::send`] does.
    pub fn send(&self, record: ProducerRecord<'_, &K, &V>) -> Result<BlockingDelivery> {
        let future = self.runtime.block_on(self.producer.send(record))?;
        Ok(self.delivery(future))
    }

    /// Queues a record if that needs no waiting, and never blocks; otherwise hands it back with
    /// the reason, as [`TypedProducer::try_send`] does.
    // Large: the record comes back by value, as in `Producer::try_send`.
    #[allow(clippy::result_large_err)]
    pub fn try_send<'a, 'k, 'v>(
        &self,
        record: ProducerRecord<'a, &'k K, &'v V>,
    ) -> std::result::Result<BlockingDelivery, TrySendError<ProducerRecord<'a, &'k K, &'v V>>> {
        self.producer.try_send(record).map(|f| self.delivery(f))
    }

    /// Records queued whose outcome is not known yet; never blocks. See
    /// [`Producer::pending_records`](crate::Producer::pending_records).
    pub fn pending_records(&self) -> usize {
        self.producer.pending_records()
    }

    /// A snapshot of the producer's metrics; never blocks. See
    /// [`Producer::metrics`](crate::Producer::metrics).
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.producer.metrics()
    }

    /// The partition count of `topic`, blocking the first time a topic is used until its
    /// metadata is known (at most `max.block.ms`). See
    /// [`Producer::partition_count`](crate::Producer::partition_count).
    pub fn partition_count(&self, topic: &str) -> Result<usize> {
        self.runtime.block_on(self.producer.partition_count(topic))
    }

    /// The partitions of `topic` with their leaders, blocking as
    /// [`partition_count`](Self::partition_count) does. See
    /// [`Producer::partitions`](crate::Producer::partitions).
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        self.runtime.block_on(self.producer.partitions(topic))
    }

    /// The cluster's brokers, and the partitions of `topics` (every topic with `None`), blocking
    /// for the answer. See [`Producer::describe_cluster`](crate::Producer::describe_cluster).
    pub fn describe_cluster(&self, topics: Option<&[&str]>) -> Result<crate::ClusterDescription> {
        self.runtime
            .block_on(self.producer.describe_cluster(topics))
    }

    /// Sends everything queued and blocks until each record is acknowledged or has failed. See
    /// [`Producer::flush`](crate::Producer::flush).
    pub fn flush(&self) -> Result<()> {
        self.runtime.block_on(self.producer.flush())
    }

    /// Blocks until the producer id for `transactional.id` is known; see
    /// [`Producer::init_transactions`](crate::Producer::init_transactions).
    pub fn init_transactions(&self, timeout: Duration) -> Result<()> {
        self.runtime
            .block_on(self.producer.init_transactions(timeout))
    }

    /// See [`Producer::begin_transaction`](crate::Producer::begin_transaction).
    pub fn begin_transaction(&self) -> Result<()> {
        self.producer.begin_transaction()
    }

    /// Blocks until the offsets joined the transaction; see
    /// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction).
    pub fn send_offsets_to_transaction<I>(
        &self,
        offsets: I,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        self.runtime.block_on(
            self.producer
                .send_offsets_to_transaction(offsets, group, timeout),
        )
    }

    /// Blocks until the transaction is committed; see
    /// [`Producer::commit_transaction`](crate::Producer::commit_transaction).
    pub fn commit_transaction(&self, timeout: Duration) -> Result<()> {
        self.runtime
            .block_on(self.producer.commit_transaction(timeout))
    }

    /// Blocks until the transaction is aborted; see
    /// [`Producer::abort_transaction`](crate::Producer::abort_transaction).
    pub fn abort_transaction(&self, timeout: Duration) -> Result<()> {
        self.runtime
            .block_on(self.producer.abort_transaction(timeout))
    }

    /// Flushes, then stops, blocking at most about `timeout`. See
    /// [`Producer::close`](crate::Producer::close). Later sends fail with [`Error::Closed`];
    /// dropping the producer afterwards does not close it again.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        self.closed.store(true, Ordering::Relaxed);
        self.runtime.block_on(self.producer.close(timeout))
    }
}

/// The producer underneath (bootstrap servers, client id, pending records).
impl<K: ?Sized, V: ?Sized> fmt::Debug for BlockingProducer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingProducer")
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized, V: ?Sized> Drop for BlockingProducer<K, V> {
    fn drop(&mut self) {
        if *self.closed.get_mut() {
            return;
        }
        if let Err(e) = self
            .runtime
            .block_on(self.producer.close(self.close_timeout))
        {
            eprintln!("kafka-producer: closing a dropped BlockingProducer: {e}");
        }
    }
}
