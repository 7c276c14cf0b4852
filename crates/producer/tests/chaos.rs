//! Delivery guarantees while the network misbehaves (issue 4): every connection between the producer and the
//! brokers goes through a TCP fault proxy ([`FaultProxy`]) that cuts them all at random every 0.5 to 1.5 s. The
//! producer (acks=all, idempotence on, as by default) sends numbered records over several keys meanwhile; the topic
//! is read back with the Java reader and every acknowledged record must be there exactly once, in send order per
//! partition. The name starts with `disruptive_`: `scripts/test` runs it alone, since it takes a minute and its
//! timing suffers from tests running beside it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer::{Error, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
use kafka_producer_testkit::{cluster, Cluster, FaultProxy};

const KEYS: usize = 6;
/// How many examples of each kind of problem to print.
const SHOWN: usize = 20;

/// What happened to every record, and what the broker holds.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    acked: usize,
    failed: usize,
    lost: usize,
    duplicated: usize,
    reordered: usize,
    /// Acknowledged at a partition and offset other than where the reader finds the record.
    misplaced: usize,
    /// Failed with an error saying the record was not written, yet the reader finds it.
    failed_but_written: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, acked {}, failed {}, lost {}, duplicated {}, reordered {}",
            self.sent, self.acked, self.failed, self.lost, self.duplicated, self.reordered
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disruptive_connections_cut_at_random_for_a_minute() {
    let Some(cluster) = cluster() else { return };
    let Some(proxy_bootstrap) = cluster.proxy_bootstrap() else {
        return;
    };
    let proxy = FaultProxy::for_cluster(&proxy_bootstrap)
        .await
        .unwrap_or_else(|e| panic!("fault proxy on {proxy_bootstrap}: {e}"));
    let topic = Cluster::random_topic("chaos");
    cluster.create_topic(&topic, KEYS as i32, 3, &[("min.insync.replicas", "2")]);

    let mut config = ProducerConfig::new(&proxy_bootstrap);
    // enable.idempotence stays at its default, on.
    config.set("acks", "all").unwrap();
    config.set("linger.ms", "2").unwrap();
    let producer = Producer::new(config).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(produce_until(producer.clone(), topic.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let ms = Duration::from_millis;
    let cuts = proxy
        .cut_at_random(Duration::from_secs(60), ms(500)..=ms(1500))
        .await;
    let chaos_time = started.elapsed();
    stop.store(true, Ordering::Release);
    let outcomes = sender.await.unwrap();
    producer.close(Duration::from_secs(60)).await.unwrap();

    let connections_cut: usize = cuts.iter().map(|c| c.connections).sum();
    let idle_cuts = cuts.iter().filter(|c| c.connections == 0).count();
    eprintln!(
        "{} cuts in {chaos_time:.1?} closed {connections_cut} connections ({idle_cuts} cuts found none open); the \
         proxy accepted {} connections",
        cuts.len(),
        proxy.connections_accepted()
    );
    let c = cluster.clone();
    let tally = tokio::task::spawn_blocking(move || check(&c, &topic, &outcomes))
        .await
        .unwrap();
    eprintln!("connections cut {} times: {tally}", cuts.len());

    // The producer's connections really went through the proxy: a producer that bypassed it (say, because the
    // brokers advertised their own ports) would leave nothing to cut after bootstrapping.
    assert!(
        cuts.len() >= 30 && connections_cut >= cuts.len() / 2,
        "{} cuts closed {connections_cut} connections",
        cuts.len()
    );
    assert_eq!(
        (tally.lost, tally.duplicated, tally.reordered),
        (0, 0, 0),
        "{tally}"
    );
    assert_eq!(
        (tally.misplaced, tally.failed_but_written),
        (0, 0),
        "acknowledged at the wrong place, or failed as not written yet written: {tally:?}"
    );
    assert!(tally.acked > 1000, "{tally}");
}

/// Sends numbered records (value = number, key = number mod [`KEYS`]) until `stop`, then waits for every outcome.
/// Returns, per record number, its outcome.
async fn produce_until(
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
fn check(cluster: &Cluster, topic: &str, outcomes: &[Result<RecordMetadata, Error>]) -> Tally {
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
