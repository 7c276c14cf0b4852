//! A Kafka producer in pure Rust.
//!
//! `send` encodes a record straight into its partition's batch and returns a [`DeliveryFuture`]
//! without touching the network; a background task sends batches when they fill (`batch.size`),
//! when `linger.ms` passes, or on [`Producer::flush`]. Every record ends in exactly one outcome:
//! acknowledged with its offset, or failed with an [`Error`] saying why.
//!
//! ```no_run
//! use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn demo() -> Result<(), kafka_producer::Error> {
//! let producer = Producer::new(ProducerConfig::new("localhost:9092")).await?;
//! let delivery = producer
//!     .send(ProducerRecord::new("weather_realtime").key("seoul").value(r#"{"temp":10}"#))
//!     .await?;
//! producer.flush().await?;
//! let metadata = delivery.await?;
//! println!("partition {} offset {:?}", metadata.partition, metadata.offset);
//! # Ok(()) }
//! ```
//!
//! Configuration uses the Java client's property names and defaults ([`ProducerConfig`]); keys go
//! to the partition the Java client would pick ([`partition_for_key`]).

#![warn(missing_debug_implementations)]

mod accumulator;
mod clock;
mod config;
mod connection;
mod delivery;
mod error;
mod metadata;
pub mod metrics;
mod oauth;
mod partitioner;
mod producer;
mod record;
mod sasl;
mod sender;
mod sequence;
mod serializer;
mod shared;
mod task;
mod tls;
mod transaction;

pub use self::metrics::{Metric, Metrics};
pub use config::{
    read_properties_file, Acks, CompressionType, MetadataRecoveryStrategy, ProducerConfig,
};
pub use delivery::DeliveryFuture;
pub use error::{BoxError, Error, ErrorCode, Result};
pub use oauth::{OAuthToken, OAuthTokenProvider, TokenFuture};
pub use partitioner::{partition_for_key, Partitioner};
pub use producer::{
    BlockingDelivery, BlockingProducer, BrokerDescription, ClusterDescription, NotQueued,
    PartitionDescription, PartitionInfo, Producer, TopicDescription, TrySendError, TypedProducer,
    WouldWait,
};
pub use record::{Header, ProducerRecord, RecordMetadata};
#[cfg(feature = "json")]
pub use serializer::JsonSerializer;
pub use serializer::{BytesSerializer, Serializer, StringSerializer};
pub use tls::SecurityProtocol;
pub use transaction::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
