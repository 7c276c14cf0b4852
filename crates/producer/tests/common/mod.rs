//! Helpers shared by the fault tests: send numbered records while something breaks, then compare
//! every outcome with what the Java reader finds in the topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_producer::{Error, Producer, ProducerRecord, RecordMetadata};
use kafka_producer_testkit::Cluster;

/// Records go to this many keys, round robin.
pub const KEYS: usize = 6;
/// How many examples of each kind of problem to print.
const SHOWN: usize = 20;

/// What happened to every record, and what the broker holds.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    /// Acknowledged at a partition and offset other than where the reader finds the record.
    pub misplaced: usize,
    /// Failed with an error saying the record was not written, yet the reader finds it.
    pub failed_but_written: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, acked {}, failed {}, lost {}, duplicated {}, reordered {} \
             (misplaced {}, failed but written {})",
            self.sent,
            self.acked,
            self.failed,
            self.lost,
            self.duplicated,
            self.reordered,
            self.misplaced,
            self.failed_but_written
        )
    }
}

/// Sends numbered records (value = number, key = number mod [`KEYS`]) until `stop`, then waits for every outcome.
/// Returns, per record number, its outcome.
pub async fn produce_until(
    producer: Producer,
    topic: String,
    stop: Arc<AtomicBool>,
) -> Vec<Result<RecordMetadata, Error>> {
    let mut futures = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Acquire) {
        let key = format!("key-{}", n % KEYS);
        futures.push(
            producer
                .send(ProducerRecord::new(&topic).key(key).value(n.to_string()))
                .await,
        );
        n += 1;
        if n % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut outcomes = Vec::with_capacity(futures.len());
    for f in futures {
        outcomes.push(match f {
            Ok(f) => f.await,
            Err(e) => Err(e),
        });
    }
    outcomes
}

/// Compares the outcomes with what the Java reader finds in the topic, printing examples of every problem.
pub fn check(cluster: &Cluster, topic: &str, outcomes: &[Result<RecordMetadata, Error>]) -> Tally {
    let read = cluster.read_topic(topic);
    let mut tally = Tally {
        sent: outcomes.len(),
        ..Tally::default()
    };
    // Where the reader finds each record number: (partition, offset), in log order.
    let mut found: HashMap<usize, Vec<(i32, i64)>> = HashMap::new();
    let mut last_in_partition: HashMap<i32, (usize, i64)> = HashMap::new();
    for r in &read {
        let value = r.value_str().unwrap_or_default();
        let n: usize = value.parse().unwrap_or_else(|e| {
            panic!("{topic}-{}@{}: value {value:?}: {e}", r.partition, r.offset)
        });
        found.entry(n).or_default().push((r.partition, r.offset));
        if let Some((prev, prev_offset)) = last_in_partition.insert(r.partition, (n, r.offset)) {
            if prev > n {
                tally.reordered += 1;
                if tally.reordered <= SHOWN {
                    eprintln!(
                        "reordered: partition {}: record {prev} at offset {prev_offset}, then record {n} at offset {}",
                        r.partition, r.offset
                    );
                }
            }
        }
    }
    // Failures grouped by error, with the first few record numbers of each.
    let mut failures: BTreeMap<String, (usize, Vec<usize>)> = BTreeMap::new();
    for (n, outcome) in outcomes.iter().enumerate() {
        let places = found.get(&n).map(Vec::as_slice).unwrap_or_default();
        match outcome {
            Ok(md) => {
                tally.acked += 1;
                if places.is_empty() {
                    tally.lost += 1;
                    if tally.lost <= SHOWN {
                        eprintln!(
                            "lost: record {n} acknowledged at partition {} offset {:?}, not in the topic",
                            md.partition, md.offset
                        );
                    }
                } else if !places.contains(&(md.partition, md.offset.unwrap_or(-1))) {
                    tally.misplaced += 1;
                    if tally.misplaced <= SHOWN {
                        eprintln!(
                            "misplaced: record {n} acknowledged at partition {} offset {:?}, found at {places:?}",
                            md.partition, md.offset
                        );
                    }
                }
            }
            Err(e) => {
                tally.failed += 1;
                if !places.is_empty() && !e.possibly_persisted() {
                    tally.failed_but_written += 1;
                    if tally.failed_but_written <= SHOWN {
                        eprintln!(
                            "failed as not written, yet found at {places:?}: record {n}: {e}"
                        );
                    }
                }
                let (count, examples) = failures
                    .entry(format!(
                        "{e} (retriable: {}, possibly persisted: {})",
                        e.is_retriable(),
                        e.possibly_persisted()
                    ))
                    .or_default();
                *count += 1;
                if examples.len() < 5 {
                    examples.push(n);
                }
            }
        }
        if places.len() > 1 {
            tally.duplicated += places.len() - 1;
            if tally.duplicated <= SHOWN {
                eprintln!(
                    "duplicated: record {n} ({}) found at {places:?}",
                    match outcome {
                        Ok(md) =>
                            format!("acknowledged at {} offset {:?}", md.partition, md.offset),
                        Err(e) => format!("failed: {e}"),
                    }
                );
            }
        }
    }
    for (error, (count, examples)) in &failures {
        eprintln!("{count} records failed: {error}; e.g. records {examples:?}");
    }
    tally
}
