//! A Kafka producer in pure Rust.
