//! `kprod`: produce to Kafka from the command line.

fn main() {}
