//! [`BlockingProducer`]: a [`TypedProducer`] for synchronous code, on its own runtime.

use std::time::Duration;

use super::TypedProducer;
use crate::config::ProducerConfig;
use crate::delivery::DeliveryFuture;
use crate::error::{Error, Result};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::serializer::Serializer;

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
    /// Connects, like [`Producer::new`](crate::Producer::new).
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
            producer: Some(producer),
            runtime,
            close_timeout,
        })
    }

    fn typed(&self) -> &TypedProducer<K, V> {
        self.producer.as_ref().expect("present until drop")
    }

    /// Queues a record; see [`Producer::send`](crate::Producer::send) for when this blocks.
    pub fn send(&self, record: ProducerRecord<'_, &K, &V>) -> Result<BlockingDelivery> {
        let future = self.runtime.block_on(self.typed().send(record))?;
        Ok(BlockingDelivery {
            future,
            handle: self.runtime.handle().clone(),
        })
    }

    /// See [`Producer::flush`](crate::Producer::flush).
    pub fn flush(&self) -> Result<()> {
        self.runtime.block_on(self.typed().flush())
    }

    /// See [`Producer::close`](crate::Producer::close).
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
