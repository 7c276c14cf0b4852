//! What the producer knows of the cluster: brokers, topics, partitions and their leaders.
//!
//! The view is an immutable snapshot replaced on each refresh, so `send` reads it without
//! waiting on a refresh in progress.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use kafka_producer_protocol::kafka_protocol::messages::MetadataResponse;
use kafka_producer_protocol::ErrorCode;
use tokio::sync::{watch, Notify};

/// One topic as the brokers last described it.
#[derive(Debug, Clone)]
pub(crate) struct TopicMetadata {
    /// The topic-level error (`NONE` when the topic exists).
    pub(crate) error: ErrorCode,
    /// The leader of each partition, by partition index; -1 when it has none now.
    pub(crate) leaders: Vec<i32>,
    /// The partitions that have a leader, for the sticky partitioner.
    pub(crate) available: Vec<u32>,
}

impl TopicMetadata {
    pub(crate) fn partition_count(&self) -> usize {
        self.leaders.len()
    }

    pub(crate) fn leader(&self, partition: i32) -> Option<i32> {
        self.leaders
            .get(partition as usize)
            .copied()
            .filter(|&l| l >= 0)
    }
}

/// A snapshot of the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    /// `host:port` of each broker, by node id.
    pub(crate) brokers: HashMap<i32, String>,
    /// Looked up for every record: a fast hash (topic names are the application's, not an
    /// attacker's, so SipHash's flood resistance buys nothing here).
    /// Shared (`Arc`) so that a snapshot's successor and `send`'s per-thread cache
    /// (`producer/enqueue.rs: with_topic`) take a topic's metadata without copying it.
    pub(crate) topics: foldhash::HashMap<String, Arc<TopicMetadata>>,
    pub(crate) updated: Option<Instant>,
}

impl Cluster {
    fn empty() -> Self {
        Cluster {
            brokers: HashMap::new(),
            topics: Default::default(),
            updated: None,
        }
    }

    /// The snapshot after a Metadata response: brokers are replaced, topics in the response
    /// are replaced, other topics are kept.
    pub(crate) fn updated_with(&self, resp: &MetadataResponse, now: Instant) -> Cluster {
        let brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format_addr(&b.host, b.port)))
            .collect();
        let mut topics = self.topics.clone();
        for t in &resp.topics {
            let Some(name) = &t.name else { continue };
            // Kafka lists every partition of a topic once, numbered from 0, so the list's length
            // is the partition count. An index outside it is a broken answer: that partition is
            // ignored rather than trusted to size or index anything.
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                match usize::try_from(p.partition_index) {
                    Ok(i) if i < leaders.len() => leaders[i] = p.leader_id.0,
                    _ => tracing::warn!(
                        topic = %name.0,
                        partition = p.partition_index,
                        listed = t.partitions.len(),
                        "metadata lists a partition index out of range; ignored"
                    ),
                }
            }
            let available = leaders
                .iter()
                .enumerate()
                .filter(|(_, &l)| l >= 0)
                .map(|(i, _)| i as u32)
                .collect();
            topics.insert(
                name.0.to_string(),
                Arc::new(TopicMetadata {
                    error: ErrorCode(t.error_code),
                    leaders,
                    available,
                }),
            );
        }
        Cluster {
            brokers,
            topics,
            updated: Some(now),
        }
    }
}

fn format_addr(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Snapshot generations, unique across every producer of the process: a generation names one
/// snapshot of one producer, so a cache keyed by it can never mistake another producer's.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// The shared metadata state: the snapshot, the topics in use, and the refresh signals.
pub(crate) struct Metadata {
    snapshot: RwLock<Arc<Cluster>>,
    /// Names the current snapshot; changes (after the snapshot) whenever it is replaced.
    generation: AtomicU64,
    /// Bumped after every refresh attempt, so waiters in `send` look again.
    version: watch::Sender<u64>,
    wanted: Mutex<HashSet<String>>,
    force: AtomicBool,
    pub(crate) refresh: Notify,
}

impl Metadata {
    pub(crate) fn new() -> Self {
        Metadata {
            snapshot: RwLock::new(Arc::new(Cluster::empty())),
            generation: AtomicU64::new(GENERATIONS.fetch_add(1, Ordering::Relaxed)),
            version: watch::channel(0).0,
            wanted: Mutex::new(HashSet::new()),
            force: AtomicBool::new(false),
            refresh: Notify::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Cluster> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current snapshot's generation. Read before [`Metadata::snapshot`], it is never newer
    /// than the snapshot.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn replace(&self, cluster: Cluster) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cluster);
        self.generation.store(
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
        self.bump();
    }

    /// Wakes whoever waits for metadata, also after a failed refresh, so they can give up in time.
    pub(crate) fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Adds `topic` to the topics asked for, and asks for a refresh if it is new.
    pub(crate) fn want(&self, topic: &str) {
        let new = {
            let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            // `try_send` may ask for a topic at every call until it is known: no allocation then.
            !wanted.contains(topic) && wanted.insert(topic.to_string())
        };
        if new {
            self.request_refresh();
        }
    }

    pub(crate) fn wanted(&self) -> Vec<String> {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Asks the metadata task for a refresh now (a leader moved, a topic is unknown).
    pub(crate) fn request_refresh(&self) {
        self.force.store(true, Ordering::Release);
        self.refresh.notify_one();
    }

    pub(crate) fn take_forced(&self) -> bool {
        self.force.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use kafka_producer_protocol::kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_producer_protocol::kafka_protocol::messages::{BrokerId, TopicName};

    use super::*;

    fn answer(indexes: &[i32]) -> MetadataResponse {
        let partitions = indexes
            .iter()
            .map(|&i| {
                MetadataResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(BrokerId(1))
            })
            .collect();
        MetadataResponse::default().with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(TopicName("t".into())))
            .with_partitions(partitions)])
    }

    #[test]
    fn partition_indexes_from_the_wire_never_size_or_index_anything() {
        let now = Instant::now();
        for indexes in [
            &[i32::MAX][..],
            &[268_435_456],
            &[-1, 0],
            &[0, 1, 2],
            &[2, 0, 1],
            &[0, 0],
        ] {
            let cluster = Cluster::empty().updated_with(&answer(indexes), now);
            let t = &cluster.topics["t"];
            assert_eq!(t.partition_count(), indexes.len(), "{indexes:?}");
            for (i, leader) in t.leaders.iter().enumerate() {
                let listed = indexes.contains(&(i as i32));
                assert_eq!(*leader == 1, listed, "{indexes:?}: partition {i}");
            }
        }
    }
}
