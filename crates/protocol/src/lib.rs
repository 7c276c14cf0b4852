//! Kafka wire format used by `kafka-producer`: no I/O, no clock, no tasks.
//!
//! - [`varint`]: the zigzag varints of record batch v2.
//! - [`murmur2`]: the Java client's key hash, for the default partitioner.
//! - [`batch`]: building and decoding record batches (magic 2), compressed with gzip, snappy,
//!   lz4 or zstd or not at all.
//! - [`frame`]: size-prefixed request/response frames around [`kafka_protocol`] messages.
//! - [`error`]: decode errors and Kafka error codes.
//!
//! Everything here takes bytes and returns bytes or typed errors, so it is tested in
//! memory; decoders never panic on input and never size an allocation by a length from
//! the wire alone: the responses the producer reads are walked by their schema before
//! kafka-protocol decodes them (see [`frame::decode_response`]); only responses that test
//! tools alone read go to kafka-protocol unchecked.
//!
//! ```
//! use bytes::BytesMut;
//! use kafka_producer_protocol::kafka_protocol::messages::produce_request::{
//!     PartitionProduceData, TopicProduceData,
//! };
//! use kafka_producer_protocol::kafka_protocol::messages::{ProduceRequest, TopicName};
//! use kafka_producer_protocol::murmur2::partition_for_key;
//! use kafka_producer_protocol::{frame, BatchBuilder, BatchParams};
//!
//! let partition = partition_for_key(b"user-42", 6);
//! let mut batch = BatchBuilder::new(1024);
//! batch.try_append(1_700_000_000_000, Some(b"user-42"), Some(b"hello"), &[], 16_384);
//! let records = batch.finish(BatchParams::default());
//!
//! let request = ProduceRequest::default()
//!     .with_acks(-1)
//!     .with_timeout_ms(30_000)
//!     .with_topic_data(vec![TopicProduceData::default()
//!         .with_name(TopicName("events".into()))
//!         .with_partition_data(vec![PartitionProduceData::default()
//!             .with_index(partition as i32)
//!             .with_records(Some(records))])]);
//! let mut wire = BytesMut::new();
//! frame::encode_request(&mut wire, 9, 1, Some("my-app"), &request)?;
//! # Ok::<(), kafka_producer_protocol::EncodeError>(())
//! ```

#![warn(missing_debug_implementations)]

pub mod batch;
pub mod error;
pub mod frame;
pub mod murmur2;
pub mod produce;
mod response;
pub mod varint;

pub use kafka_protocol;

pub use batch::{
    decode_batches, BatchBuilder, BatchParams, Compression, DecodedBatch, DecodedRecord, Header,
};
pub use error::{DecodeError, EncodeError, ErrorCode};
