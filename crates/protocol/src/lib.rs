//! Kafka wire format used by `kafka-producer`: no I/O, no clock, no tasks.
