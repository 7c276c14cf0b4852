//! Test support: the real local Kafka cluster and the independent reader.
