//! [`TypedProducer`]: a [`Producer`] with a key and a value serializer.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::enqueue::count_failed_send;
use super::{send_slow, try_queue, PartitionInfo, Producer, RawRecord, TrySendError, Unqueued};
use crate::config::ProducerConfig;
use crate::delivery::DeliveryFuture;
use crate::error::{Error, Result};
use crate::record::ProducerRecord;
use crate::serializer::Serializer;
use crate::transaction::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

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

/// The producer underneath; serializers have no `Debug`, and the record types say enough.
impl<K: ?Sized, V: ?Sized> fmt::Debug for TypedProducer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish()
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

    /// Serializes the key and value, then sends as [`Producer::send`] does: returns once the
    /// record is queued, waiting only for the topic's metadata or for `buffer.memory`, at most
    /// `max.block.ms`. A serializer error fails this call with [`Error::Serialization`] and
    /// queues nothing.
    pub async fn send(&self, record: ProducerRecord<'_, &K, &V>) -> Result<DeliveryFuture> {
        // As `Producer::send`: yield now and then, before anything is queued.
        tokio::task::consume_budget().await;
        let shared = &self.producer.shared;
        // Fast path: serialize into this thread's scratch buffers and append without waiting.
        let fast = self.with_serialized(&record, |raw| match try_queue(shared, raw) {
            Ok(f) => Ok(Ok(f)),
            Err(Unqueued::Failed(e)) => Err(*e),
            // Must wait: keep owned copies across the await.
            Err(Unqueued::Wait(_)) => Ok(Err((
                raw.key.map(<[u8]>::to_vec),
                raw.value.map(<[u8]>::to_vec),
            ))),
        });
        // A serializer's error (a failure to queue is counted where it happens).
        let fast = fast.inspect_err(|e| count_failed_send(shared, e))??;
        let (key, value) = match fast {
            Ok(f) => return Ok(f),
            Err(owned) => owned,
        };
        let raw = RawRecord {
            topic: record.topic,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &record.headers,
            timestamp: record.timestamp,
            partition: record.partition,
        };
        // Boxed, as in `Producer::send`.
        Box::pin(send_slow(shared, &raw)).await
    }

    /// Serializes the key and value, then queues the record if that needs no waiting, as
    /// [`Producer::try_send`] does; never waits or yields. Returns the record's
    /// [`DeliveryFuture`] once queued; otherwise the record comes back with the reason, as from
    /// `Producer::try_send`, and a serializer's error is [`NotQueued::Failed`] with
    /// [`Error::Serialization`].
    ///
    /// [`NotQueued::Failed`]: crate::NotQueued::Failed
    // Large: the record comes back by value, as in `Producer::try_send`.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub fn try_send<'a, 'k, 'v>(
        &self,
        record: ProducerRecord<'a, &'k K, &'v V>,
    ) -> std::result::Result<DeliveryFuture, TrySendError<ProducerRecord<'a, &'k K, &'v V>>> {
        let shared = &self.producer.shared;
        match self.with_serialized(&record, |raw| try_queue(shared, raw)) {
            Ok(Ok(f)) => Ok(f),
            Ok(Err(unqueued)) => Err(unqueued.hand_back(record)),
            Err(e) => {
                count_failed_send(shared, &e);
                Err(Unqueued::Failed(Box::new(e)).hand_back(record))
            }
        }
    }

    /// Serializes the record's key and value into this thread's scratch buffers, so a typed
    /// send needs no allocation of its own, and calls `f` with the record as bytes.
    fn with_serialized<T>(
        &self,
        record: &ProducerRecord<'_, &K, &V>,
        f: impl FnOnce(&RawRecord<'_>) -> T,
    ) -> Result<T> {
        SCRATCH.with(|s| {
            let (kbuf, vbuf) = &mut *s.borrow_mut();
            let (key, value) = self.serialize(record, kbuf, vbuf)?;
            Ok(f(&RawRecord {
                topic: record.topic,
                key,
                value,
                headers: &record.headers,
                timestamp: record.timestamp,
                partition: record.partition,
            }))
        })
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

    /// Records queued whose outcome is not known yet; see [`Producer::pending_records`].
    pub fn pending_records(&self) -> usize {
        self.producer.pending_records()
    }

    /// A snapshot of the producer's metrics; see [`Producer::metrics`].
    pub fn metrics(&self) -> crate::metrics::Metrics {
        self.producer.metrics()
    }

    /// The partition count of `topic`; waits and fails as [`Producer::partition_count`] does.
    pub async fn partition_count(&self, topic: &str) -> Result<usize> {
        self.producer.partition_count(topic).await
    }

    /// The partitions of `topic` with their leaders; waits and fails as
    /// [`Producer::partitions`] does.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>> {
        self.producer.partitions(topic).await
    }

    /// The cluster's brokers, and the partitions of `topics` (every topic with `None`); see
    /// [`Producer::describe_cluster`].
    pub async fn describe_cluster(
        &self,
        topics: Option<&[&str]>,
    ) -> Result<crate::ClusterDescription> {
        self.producer.describe_cluster(topics).await
    }

    /// Sends everything queued and waits for its outcome; see [`Producer::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.producer.flush().await
    }

    /// Flushes, then stops, waiting at most `timeout`; see [`Producer::close`].
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        self.producer.close(timeout).await
    }

    /// See [`Producer::init_transactions`].
    pub async fn init_transactions(&self, timeout: Duration) -> Result<()> {
        self.producer.init_transactions(timeout).await
    }

    /// See [`Producer::begin_transaction`].
    pub fn begin_transaction(&self) -> Result<()> {
        self.producer.begin_transaction()
    }

    /// See [`Producer::send_offsets_to_transaction`].
    pub async fn send_offsets_to_transaction<I>(
        &self,
        offsets: I,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        self.producer
            .send_offsets_to_transaction(offsets, group, timeout)
            .await
    }

    /// See [`Producer::commit_transaction`].
    pub async fn commit_transaction(&self, timeout: Duration) -> Result<()> {
        self.producer.commit_transaction(timeout).await
    }

    /// See [`Producer::abort_transaction`].
    pub async fn abort_transaction(&self, timeout: Duration) -> Result<()> {
        self.producer.abort_transaction(timeout).await
    }

    /// The untyped producer underneath.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}
