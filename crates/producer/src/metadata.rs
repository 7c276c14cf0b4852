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
    /// The epoch of each partition's leader (Metadata v7+), by partition index; -1 when unknown.
    /// Orders what brokers say about leaders: older news never replaces newer.
    pub(crate) leader_epochs: Vec<i32>,
    /// The topic's id (Metadata v10+, KIP-516); 0 when unknown. A topic deleted and created
    /// again under its name gets a new id, and its epochs start over.
    pub(crate) topic_id: u128,
    /// The partitions that have a leader, for the sticky partitioner.
    pub(crate) available: Vec<u32>,
}

impl TopicMetadata {
    /// A topic with these leaders and their epochs (the same length), `available` derived.
    pub(crate) fn new(
        error: ErrorCode,
        leaders: Vec<i32>,
        leader_epochs: Vec<i32>,
        topic_id: u128,
    ) -> Self {
        debug_assert_eq!(leaders.len(), leader_epochs.len());
        let available = leaders
            .iter()
            .enumerate()
            .filter(|(_, &l)| l >= 0)
            .map(|(i, _)| i as u32)
            .collect();
        TopicMetadata {
            error,
            leaders,
            leader_epochs,
            topic_id,
            available,
        }
    }

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
    ///
    /// As the Java client (`Metadata.updateLatestMetadata`), a partition whose leader epoch in
    /// the response is older than the one known keeps its known leader: a broker the news of a
    /// leader change has not reached yet must not undo a newer leader learnt from a Produce
    /// answer (KIP-951) or from another broker. A partition without an epoch (Metadata before
    /// v7, or no leader) is taken as it comes, and so is every partition of a topic whose id
    /// changed.
    pub(crate) fn updated_with(&self, resp: &MetadataResponse, now: Instant) -> Cluster {
        let brokers = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format_addr(&b.host, b.port)))
            .collect();
        let mut topics = self.topics.clone();
        for t in &resp.topics {
            let Some(name) = &t.name else { continue };
            let topic_id = t.topic_id.as_u128();
            let known = self
                .topics
                .get(&*name.0)
                .filter(|old| topic_id == 0 || old.topic_id == topic_id);
            // Kafka lists every partition of a topic once, numbered from 0, so the list's length
            // is the partition count. An index outside it is a broken answer: that partition is
            // ignored rather than trusted to size or index anything.
            let mut leaders = vec![-1; t.partitions.len()];
            let mut epochs = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                let i = match usize::try_from(p.partition_index) {
                    Ok(i) if i < leaders.len() => i,
                    _ => {
                        tracing::warn!(
                            topic = %name.0,
                            partition = p.partition_index,
                            listed = t.partitions.len(),
                            "metadata lists a partition index out of range; ignored"
                        );
                        continue;
                    }
                };
                let (mut leader, mut epoch) = (p.leader_id.0, p.leader_epoch);
                if let Some(old) = known {
                    let old_epoch = old.leader_epochs.get(i).copied().unwrap_or(-1);
                    if epoch >= 0 && epoch < old_epoch {
                        tracing::debug!(
                            topic = %name.0,
                            partition = i,
                            epoch,
                            known_epoch = old_epoch,
                            "metadata names an older leader epoch than known; keeping the known leader"
                        );
                        (leader, epoch) = (old.leaders[i], old_epoch);
                    }
                }
                leaders[i] = leader;
                epochs[i] = epoch.max(-1);
            }
            topics.insert(
                name.0.to_string(),
                Arc::new(TopicMetadata::new(
                    ErrorCode(t.error_code),
                    leaders,
                    epochs,
                    topic_id,
                )),
            );
        }
        let cluster = Cluster {
            brokers,
            topics,
            updated: Some(now),
        };
        self.trace_changes(&cluster);
        cluster
    }

    /// Events for what changed from this snapshot to `next`: brokers that came, went or moved,
    /// and for each topic in both, a changed partition count or partition leader. Nothing is
    /// compared unless a subscriber listens at the level.
    fn trace_changes(&self, next: &Cluster) {
        if tracing::enabled!(tracing::Level::INFO) && self.updated.is_some() {
            for (node, addr) in &next.brokers {
                match self.brokers.get(node) {
                    None => tracing::info!(node, %addr, "broker joined the metadata"),
                    Some(old) if old != addr => {
                        tracing::info!(node, %addr, previous = %old, "broker moved")
                    }
                    Some(_) => {}
                }
            }
            for (node, addr) in &self.brokers {
                if !next.brokers.contains_key(node) {
                    tracing::info!(node, %addr, "broker left the metadata");
                }
            }
            for (topic, new) in &next.topics {
                match self.topics.get(topic) {
                    Some(old) if old.partition_count() != new.partition_count() => {
                        tracing::info!(
                            topic = %topic,
                            from = old.partition_count(),
                            to = new.partition_count(),
                            "partition count changed"
                        )
                    }
                    _ => {}
                }
            }
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            for (topic, new) in &next.topics {
                let Some(old) = self.topics.get(topic) else {
                    continue;
                };
                for (partition, (&was, &is)) in old.leaders.iter().zip(&new.leaders).enumerate() {
                    if was != is {
                        tracing::debug!(
                            topic = %topic,
                            partition,
                            from = was,
                            to = is,
                            epoch = new.leader_epochs[partition],
                            "partition leader changed"
                        );
                    }
                }
            }
        }
    }

    /// Whether `leader` leads `topic`-`partition` here at `epoch` or a newer one.
    pub(crate) fn leads(&self, topic: &str, partition: i32, leader: i32, epoch: i32) -> bool {
        let Some(t) = self.topics.get(topic) else {
            return false;
        };
        usize::try_from(partition).is_ok_and(|i| {
            t.leaders.get(i) == Some(&leader) && t.leader_epochs.get(i).is_some_and(|&e| e >= epoch)
        })
    }

    /// The snapshot after a Produce answer's leader hints (KIP-951), or `None` when no hint is
    /// news, with the partitions whose leader changed.
    ///
    /// As the Java client (`Metadata.updatePartitionLeadership`), a hint applies only to a
    /// partition known here, with a leader epoch newer than the known one (any, when none is
    /// known), and a leader whose address is known or among `endpoints`. Then every endpoint
    /// of the answer replaces what was known of its node, and the rest of the snapshot
    /// (replicas, other partitions, the refresh time) stays as it was.
    pub(crate) fn with_leader_hints(
        &self,
        hints: &[LeaderHint<'_>],
        endpoints: &[(i32, String)],
    ) -> Option<(Cluster, Vec<(String, i32)>)> {
        let mut topics: Option<foldhash::HashMap<String, Arc<TopicMetadata>>> = None;
        let mut moved = Vec::new();
        for hint in hints {
            if hint.leader < 0 || hint.epoch < 0 {
                continue;
            }
            let current = topics.as_ref().unwrap_or(&self.topics);
            let Some(topic) = current.get(hint.topic) else {
                continue;
            };
            let Some(i) = usize::try_from(hint.partition)
                .ok()
                .filter(|&i| i < topic.partition_count())
            else {
                continue;
            };
            if topic.leader_epochs[i] >= hint.epoch {
                continue;
            }
            let reachable = self.brokers.contains_key(&hint.leader)
                || endpoints.iter().any(|(id, _)| *id == hint.leader);
            if !reachable {
                tracing::debug!(
                    topic = hint.topic,
                    partition = hint.partition,
                    leader = hint.leader,
                    "leader hint names a node of unknown address; ignored"
                );
                continue;
            }
            let previous = topic.leaders[i];
            let mut leaders = topic.leaders.clone();
            let mut epochs = topic.leader_epochs.clone();
            leaders[i] = hint.leader;
            epochs[i] = hint.epoch;
            let updated = TopicMetadata::new(topic.error, leaders, epochs, topic.topic_id);
            topics
                .get_or_insert_with(|| self.topics.clone())
                .insert(hint.topic.to_string(), Arc::new(updated));
            tracing::debug!(
                topic = hint.topic,
                partition = hint.partition,
                from = previous,
                to = hint.leader,
                epoch = hint.epoch,
                "partition leader changed (KIP-951 hint in a Produce answer)"
            );
            moved.push((hint.topic.to_string(), hint.partition));
        }
        let topics = topics?;
        let mut brokers = self.brokers.clone();
        for (id, addr) in endpoints {
            brokers.insert(*id, addr.clone());
        }
        let cluster = Cluster {
            brokers,
            topics,
            updated: self.updated,
        };
        Some((cluster, moved))
    }
}

/// What a Produce answer says of a partition it refused (KIP-951): the broker knows a newer
/// leader for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaderHint<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    /// The leader's node id; -1 when the broker knows none.
    pub(crate) leader: i32,
    /// The leader's epoch; -1 when the broker knows none.
    pub(crate) epoch: i32,
}

/// `host:port` of a broker, bracketed when the host is an IPv6 address.
pub(crate) fn format_addr(host: &str, port: i32) -> String {
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

    /// Replaces the snapshot with what `update` makes of the current one, or leaves it when
    /// `update` returns `None`. The snapshot is locked meanwhile, so that a Metadata answer
    /// and a Produce answer's leader hints applied at the same time both count.
    pub(crate) fn update<T>(
        &self,
        update: impl FnOnce(&Cluster) -> Option<(Cluster, T)>,
    ) -> Option<T> {
        let mut snapshot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let (cluster, result) = update(&snapshot)?;
        *snapshot = Arc::new(cluster);
        self.generation.store(
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
        drop(snapshot);
        self.bump();
        Some(result)
    }

    /// Applies a Produce answer's leader hints (see [`Cluster::with_leader_hints`], which logs
    /// each partition it moves).
    pub(crate) fn apply_leader_hints(&self, hints: &[LeaderHint<'_>], endpoints: &[(i32, String)]) {
        self.update(|cluster| cluster.with_leader_hints(hints, endpoints));
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
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
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

    /// Topic `t`'s partitions led by `(leader, epoch)`, brokers 1 and 2, topic id `id`.
    fn led(leaders: &[(i32, i32)], id: u128) -> MetadataResponse {
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(i, &(leader, epoch))| {
                MetadataResponsePartition::default()
                    .with_partition_index(i as i32)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)
            })
            .collect();
        let brokers = [1, 2]
            .map(|id| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(format!("b{id}").into())
                    .with_port(9092)
            })
            .to_vec();
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName("t".into())))
                .with_topic_id(format!("{id:032x}").parse().expect("32 hex digits"))
                .with_partitions(partitions)])
    }

    fn hint(partition: i32, leader: i32, epoch: i32) -> LeaderHint<'static> {
        LeaderHint {
            topic: "t",
            partition,
            leader,
            epoch,
        }
    }

    fn leaders(cluster: &Cluster) -> Vec<(i32, i32)> {
        let t = &cluster.topics["t"];
        t.leaders
            .iter()
            .copied()
            .zip(t.leader_epochs.iter().copied())
            .collect()
    }

    #[test]
    fn a_leader_hint_applies_only_when_its_epoch_is_newer() {
        let now = Instant::now();
        let cluster = Cluster::empty().updated_with(&led(&[(1, 5), (2, 7), (1, -1)], 9), now);
        // Older and equal epochs, and hints without a leader or an epoch: nothing is news.
        for stale in [
            hint(0, 2, 4),
            hint(0, 2, 5),
            hint(1, 1, 7),
            hint(0, -1, 6),
            hint(0, 2, -1),
        ] {
            assert!(
                cluster.with_leader_hints(&[stale], &[]).is_none(),
                "{stale:?}"
            );
        }
        // A newer epoch moves the partition; so does any epoch where none was known. Another
        // topic, an index out of range, a node of unknown address: ignored.
        let hints = [
            hint(0, 2, 6),
            hint(2, 2, 0),
            hint(5, 2, 9),
            hint(1, 3, 8),
            LeaderHint {
                topic: "other",
                ..hint(0, 2, 9)
            },
        ];
        let (after, moved) = cluster.with_leader_hints(&hints, &[]).expect("news");
        assert_eq!(moved, [("t".to_string(), 0), ("t".to_string(), 2)]);
        assert_eq!(leaders(&after), [(2, 6), (2, 7), (2, 0)]);
        assert_eq!(after.topics["t"].available, [0, 1, 2]);
        assert_eq!(after.topics["t"].topic_id, 9);
        assert_eq!(after.brokers, cluster.brokers);
        assert_eq!(after.updated, Some(now), "a hint is not a refresh");
        // The snapshot it came from is left as it was.
        assert_eq!(leaders(&cluster), [(1, 5), (2, 7), (1, -1)]);
        // What leads where, at which epoch or newer.
        assert!(after.leads("t", 0, 2, 6) && after.leads("t", 0, 2, 5));
        assert!(!after.leads("t", 0, 2, 7) && !after.leads("t", 0, 1, 6));
        assert!(!after.leads("t", 3, 2, 0) && !after.leads("t", -1, 2, 0));
        assert!(!after.leads("other", 0, 2, 0));
    }

    #[test]
    fn a_leader_hint_brings_its_node_endpoints() {
        let cluster = Cluster::empty().updated_with(&led(&[(1, 5)], 9), Instant::now());
        let endpoints = [(3, "b3:9093".to_string()), (2, "moved:9094".to_string())];
        let (after, moved) = cluster
            .with_leader_hints(&[hint(0, 3, 6)], &endpoints)
            .expect("news");
        assert_eq!(moved, [("t".to_string(), 0)]);
        assert_eq!(leaders(&after), [(3, 6)]);
        assert_eq!(after.brokers[&3], "b3:9093", "the new node is added");
        assert_eq!(
            after.brokers[&2], "moved:9094",
            "a known node takes the answer's address"
        );
        assert_eq!(after.brokers[&1], "b1:9092");
        // Endpoints alone, with no hint that is news, change nothing.
        assert!(cluster
            .with_leader_hints(&[hint(0, 3, 5)], &endpoints)
            .is_none());
    }

    #[test]
    fn a_metadata_answer_never_brings_back_an_older_leader() {
        let now = Instant::now();
        let cluster = Cluster::empty().updated_with(&led(&[(1, 5), (1, 5)], 9), now);
        let (cluster, _) = cluster
            .with_leader_hints(&[hint(0, 2, 6)], &[])
            .expect("news");
        // A broker that has not heard of epoch 6 yet: partition 0 keeps its newer leader,
        // partition 1 takes what it is told.
        let lagging = cluster.updated_with(&led(&[(1, 5), (2, 6)], 9), now);
        assert_eq!(leaders(&lagging), [(2, 6), (2, 6)]);
        // The same or a newer epoch replaces it.
        let caught_up = cluster.updated_with(&led(&[(1, 6), (1, 7)], 9), now);
        assert_eq!(leaders(&caught_up), [(1, 6), (1, 7)]);
        // Without an epoch (Metadata before v7, or no leader) the answer is taken as it comes.
        let old_version = cluster.updated_with(&led(&[(1, -1), (-1, -1)], 9), now);
        assert_eq!(leaders(&old_version), [(1, -1), (-1, -1)]);
        assert_eq!(old_version.topics["t"].available, [0]);
        // A new topic id is a new topic: its epochs start over.
        let recreated = cluster.updated_with(&led(&[(1, 0), (1, 0)], 10), now);
        assert_eq!(leaders(&recreated), [(1, 0), (1, 0)]);
        // An answer without topic ids (before v10) is compared by epoch alone.
        let no_id = cluster.updated_with(&led(&[(1, 0), (1, 0)], 0), now);
        assert_eq!(leaders(&no_id), [(2, 6), (1, 5)]);
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
