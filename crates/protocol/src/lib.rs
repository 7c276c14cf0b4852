//! Kafka wire format used by `kafka-producer`: no I/O, no clock, no tasks.
//!
//! - [`varint`]: the zigzag varints of record batch v2.
//! - [`murmur2`]: the Java client's key hash, for the default partitioner.
//! - [`batch`]: building and decoding record batches (magic 2).
//! - [`frame`]: size-prefixed request/response frames around [`kafka_protocol`] messages.
//! - [`error`]: decode errors and Kafka error codes.
//!
//! Everything here takes bytes and returns bytes or typed errors, so it is tested in
//! memory; decoders never panic on input and never size an allocation by a length from
//! the wire alone (see [`frame::decode_response`] for the one exception, inside
//! kafka-protocol).

pub mod batch;
pub mod error;
pub mod frame;
pub mod murmur2;
pub mod varint;

pub use kafka_protocol;

pub use batch::{
    decode_batches, BatchBuilder, BatchParams, Compression, DecodedBatch, DecodedRecord, Header,
};
pub use error::{DecodeError, EncodeError, ErrorCode};
