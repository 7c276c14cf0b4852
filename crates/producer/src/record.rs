//! What goes in (`ProducerRecord`) and what comes back (`RecordMetadata`).

use std::fmt;
use std::sync::Arc;

pub use kafka_producer_protocol::Header;

use crate::delivery::BatchOutcome;

/// One record to send.
///
/// `K` and `V` are the key and value types: bytes for [`Producer`](crate::Producer), anything with a
/// serializer for [`TypedProducer`](crate::TypedProducer). A `None` key means "no key" (the sticky
/// partitioner picks the partition); a `None` value is a tombstone.
///
/// Its `Debug` shows the topic, partition, timestamp and header count, and only whether there is
/// a key and a value: they may be large, or secret, and need not be `Debug` themselves.
#[derive(Clone)]
pub struct ProducerRecord<'a, K, V> {
    /// The topic.
    pub topic: &'a str,
    /// The key, or `None`.
    pub key: Option<K>,
    /// The value, or `None` for a tombstone.
    pub value: Option<V>,
    /// Headers, in order; the same key may appear more than once.
    pub headers: Vec<Header>,
    /// The CreateTime in milliseconds since the epoch; `None` means now.
    pub timestamp: Option<i64>,
    /// An explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
}

impl<'a, K, V> ProducerRecord<'a, K, V> {
    /// A record for `topic` with no key, no value, no headers.
    pub fn new(topic: &'a str) -> Self {
        ProducerRecord {
            topic,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
            partition: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: V) -> Self {
        self.value = Some(value);
        self
    }

    /// Appends a header.
    pub fn header(mut self, key: impl Into<String>, value: Option<&[u8]>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.map(bytes::Bytes::copy_from_slice),
        });
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Sends to this partition, whatever the key.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

impl<K, V> fmt::Debug for ProducerRecord<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// `Some(..)` or `None`, without the contents.
        struct Present(bool);
        impl fmt::Debug for Present {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(if self.0 { "Some(..)" } else { "None" })
            }
        }
        f.debug_struct("ProducerRecord")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("timestamp", &self.timestamp)
            .field("key", &Present(self.key.is_some()))
            .field("value", &Present(self.value.is_some()))
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// Where an acknowledged record was written.
#[derive(Clone)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: i32,
    /// The record's offset, or `None` with `acks=0`, where the broker does not answer.
    pub offset: Option<i64>,
    /// The record's timestamp: its CreateTime, or the broker's LogAppendTime when the topic uses that.
    pub timestamp: i64,
    /// Whether `timestamp` is the broker's LogAppendTime (the topic's `message.timestamp.type`).
    pub log_append_time: bool,
    /// The outcome of the record's batch, which names its topic: moved here from the record's
    /// [`DeliveryFuture`](crate::DeliveryFuture), so an acknowledgement takes no reference count.
    batch: Arc<BatchOutcome>,
}

impl RecordMetadata {
    /// Metadata for a record of `topic` (for tests of code that handles acknowledgements; the
    /// producer's own come from [`DeliveryFuture`](crate::DeliveryFuture)).
    pub fn new(topic: &str, partition: i32, offset: Option<i64>, timestamp: i64) -> Self {
        RecordMetadata {
            partition,
            offset,
            timestamp,
            log_append_time: false,
            batch: Arc::new(BatchOutcome::new(topic.into(), partition)),
        }
    }

    pub(crate) fn of_batch(
        batch: Arc<BatchOutcome>,
        offset: Option<i64>,
        create_time: i64,
        log_append_time: Option<i64>,
    ) -> Self {
        RecordMetadata {
            partition: batch.partition(),
            offset,
            timestamp: log_append_time.unwrap_or(create_time),
            log_append_time: log_append_time.is_some(),
            batch,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.batch.topic()
    }
}

impl fmt::Debug for RecordMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordMetadata")
            .field("topic", &self.topic())
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl PartialEq for RecordMetadata {
    fn eq(&self, other: &Self) -> bool {
        (self.topic(), self.partition, self.offset, self.timestamp)
            == (
                other.topic(),
                other.partition,
                other.offset,
                other.timestamp,
            )
    }
}

impl Eq for RecordMetadata {}
