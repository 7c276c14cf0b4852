//! The record accumulator: one queue of batches per partition, and the memory they may use.
//!
//! `send` encodes each record straight into the open batch of its partition (the back of the
//! queue). The sender drains the front batch of each partition whose leader it is talking to.
//! Everything here is synchronous and takes `now` as an argument.
//!
//! Ordering invariant: without idempotence at most one batch per partition is in flight; with it,
//! up to `max.in.flight.requests.per.connection`, each carrying a sequence number assigned once, at
//! its first drain. A batch that must be retried goes back to the front of its queue in sequence
//! order and is resent alone (nothing else of its partition in flight), so a partition's records
//! reach the log in the order `send` was called, whatever the retries.
//!
//! This file holds the way in (`topic`, `append`) and the way out (`ready`, `drain`). The queues
//! are in `queue`, a batch and its sequence numbers in `batch`, how large a batch may grow in
//! `limits`, `buffer.memory` in `memory`, and what becomes of a drained batch in `settle`.

mod batch;
mod limits;
mod memory;
mod queue;
mod settle;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_producer_protocol::batch::{
    record_size_upper_bound, BatchBuilder, Compression, Header, RECORD_BATCH_OVERHEAD,
};

use crate::delivery::{BatchOutcome, DeliveryFuture};
use crate::error::Error;
use crate::metadata::Cluster;
use crate::metrics::ProducerMetrics;
use crate::partitioner::{QueueSizes, StickyChoice};

use self::batch::next_sequence;
pub(crate) use self::batch::{ProducerBatch, ProducerIdEpoch};
use self::memory::BufferPool;
pub(crate) use self::queue::{PartitionQueue, TopicQueues};

/// A batch taken out of its queue to be sent, with the way back to the queue.
pub(crate) struct Drained {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) batch: ProducerBatch,
    queue: Arc<Mutex<PartitionQueue>>,
}

/// What `ready` found.
pub(crate) struct Ready {
    /// Leaders with at least one batch ready to go.
    pub(crate) nodes: Vec<i32>,
    /// When to look again for batches whose linger has not passed yet.
    pub(crate) next_check: Option<Instant>,
    /// Some partition with queued batches has no known leader.
    pub(crate) unknown_leader: bool,
    /// Partitions with a batch to send that `allowed` held back.
    pub(crate) held: Vec<(Arc<str>, i32)>,
}

pub(crate) struct Accumulator {
    topics: RwLock<foldhash::HashMap<Arc<str>, Arc<TopicQueues>>>,
    batch_size: usize,
    /// `batch.max.size`, within `batch.size..=max.request.size`.
    batch_max: usize,
    /// With compression, a batch holds `batch.size` bytes *after* compression, as estimated;
    /// its uncompressed records stay under this (`max.request.size`, or `batch.size` if larger).
    max_uncompressed: usize,
    linger: Duration,
    delivery_timeout: Duration,
    compression: Compression,
    transactional: bool,
    /// With transactions: the first batch failure since the last `take_transaction_failure`.
    /// Every way a batch fails ends in `settle`, so a transaction can know that one of its
    /// records failed whatever the path (refused, split to one record, expired, aborted).
    transaction_failure: Mutex<Option<Error>>,
    /// How many batches of one partition may be in flight: 1, or with idempotence
    /// `max.in.flight.requests.per.connection`.
    in_flight_per_partition: usize,
    /// A batch with a sequence number failed for good: the partition's sequence has a gap, and
    /// the producer must move to a new epoch.
    sequence_gap: std::sync::atomic::AtomicBool,
    buffer: BufferPool,
    /// Every batch whose outcome is not known yet; their record counts are `pending_records`.
    incomplete: Mutex<HashMap<u64, Arc<BatchOutcome>>>,
    /// Per node, where in its list of partitions the next drain starts (see `drain`).
    drain_start: Mutex<HashMap<i32, usize>>,
    /// `partitioner.adaptive.partitioning.enable`: `ready_for` gives each topic's sticky
    /// partitioner the lengths of its queues.
    adaptive_partitioning: bool,
    /// `partitioner.availability.timeout.ms`; zero: off.
    availability_timeout: Duration,
    /// Per node, when it last had ready batches and when they were last drained (see
    /// `node_ready`); kept only with an `availability_timeout`.
    node_latency: Mutex<HashMap<i32, NodeLatency>>,
    /// The buffers `ready_for` gathers queue lengths in, kept from one call to the next.
    queue_sizes: Mutex<QueueSizes>,
    next_batch_id: AtomicU64,
    /// The sender is closing: no new batches (`stop_if_drained`).
    stopped: std::sync::atomic::AtomicBool,
    flushes: AtomicUsize,
    /// The producer's metrics: batches retried, failed, split; waits for memory.
    pub(crate) metrics: Arc<ProducerMetrics>,
}

/// Why `append` did not take a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAppended {
    /// It needs a new batch, and so buffer memory reserved for it. `last_full`: the partition's
    /// open batch had no room for it (rather than there being no open batch).
    NeedsBatch { last_full: bool },
    /// The sender stopped for good (the producer closed while this send was on its way), so
    /// nothing would ever send a new batch.
    Stopped,
    /// The record was for the sticky partition, and it moved on before the partition's lock
    /// was taken: choose again (memory reserved stays with the caller).
    Moved,
}

/// Where a record went.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) future: DeliveryFuture,
    /// A new batch was started or one was closed: the sender should look.
    pub(crate) wake_sender: bool,
}

/// What the accumulator works by: the producer's settings that shape batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) batch_size: usize,
    /// `batch.max.size`: how far a batch may grow past `batch.size` while it lingers.
    pub(crate) batch_max_size: usize,
    pub(crate) max_request_size: usize,
    pub(crate) linger: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) buffer_memory: usize,
    pub(crate) compression: Compression,
    /// Batches of one partition in flight at once: up to 5 with idempotence, else 1.
    pub(crate) in_flight_per_partition: usize,
    /// Batches carry the transactional attribute (a producer with a `transactional.id`).
    pub(crate) transactional: bool,
    /// `partitioner.adaptive.partitioning.enable`.
    pub(crate) adaptive_partitioning: bool,
    /// `partitioner.availability.timeout.ms`; zero: off.
    pub(crate) availability_timeout: Duration,
}

/// When a node last had batches ready, and when they were last drained: Java's
/// `NodeLatencyStats`. Far apart, the node is not keeping up (no connection, or every request
/// slot taken), and with `partitioner.availability.timeout.ms` the sticky partitioner leaves
/// its partitions that have batches waiting.
#[derive(Debug, Clone, Copy)]
struct NodeLatency {
    ready: Instant,
    drained: Instant,
}

/// Which partitions' batches may go now (a transaction under version 1 sends only to
/// partitions its coordinator added); `None`: all.
pub(crate) type Allowed<'a> = Option<&'a dyn Fn(&str, i32) -> bool>;

/// A record's parts, as [`Accumulator::append`] encodes them into a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordParts<'a> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [Header],
}

impl Accumulator {
    /// An accumulator with metrics of its own (for tests).
    #[cfg(test)]
    pub(crate) fn new(settings: Settings) -> Self {
        let window = crate::metrics::Window {
            samples: 2,
            window_ms: 30_000,
        };
        let metrics = ProducerMetrics::new("", window, settings.buffer_memory);
        Self::with_metrics(settings, Arc::new(metrics))
    }

    pub(crate) fn with_metrics(settings: Settings, metrics: Arc<ProducerMetrics>) -> Self {
        let Settings {
            batch_size,
            batch_max_size,
            max_request_size,
            linger,
            delivery_timeout,
            buffer_memory,
            compression,
            in_flight_per_partition,
            transactional,
            adaptive_partitioning,
            availability_timeout,
        } = settings;
        Accumulator {
            topics: RwLock::new(Default::default()),
            batch_size,
            // batch.size 0 asks for no batching: such batches do not grow either.
            batch_max: if batch_size == 0 {
                0
            } else {
                batch_max_size.min(max_request_size).max(batch_size)
            },
            max_uncompressed: max_request_size.max(batch_size),
            linger,
            delivery_timeout,
            compression,
            transactional,
            transaction_failure: Mutex::new(None),
            in_flight_per_partition: in_flight_per_partition.max(1),
            sequence_gap: Default::default(),
            buffer: BufferPool::new(buffer_memory),
            incomplete: Mutex::new(HashMap::new()),
            drain_start: Mutex::new(HashMap::new()),
            adaptive_partitioning,
            availability_timeout,
            node_latency: Mutex::new(HashMap::new()),
            queue_sizes: Mutex::new(QueueSizes::default()),
            next_batch_id: AtomicU64::new(0),
            stopped: Default::default(),
            flushes: AtomicUsize::new(0),
            metrics,
        }
    }

    /// The queues of `topic`, grown to `partition_count` partitions if the topic grew.
    pub(crate) fn topic(&self, topic: &str, partition_count: usize) -> Arc<TopicQueues> {
        if let Some(tq) = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            if tq.partitions.len() >= partition_count {
                return tq.clone();
            }
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let grown = match topics.get(topic) {
            Some(tq) if tq.partitions.len() >= partition_count => return tq.clone(),
            Some(tq) => {
                let mut partitions = tq.partitions.clone();
                partitions.resize_with(partition_count, Default::default);
                let grown = TopicQueues::new(tq.name.clone(), partitions);
                grown.compression_ratio.store(
                    tq.compression_ratio.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                grown
                    .max_batch
                    .store(tq.max_batch.load(Ordering::Relaxed), Ordering::Relaxed);
                grown
            }
            None => TopicQueues::new(
                topic.into(),
                (0..partition_count).map(|_| Default::default()).collect(),
            ),
        };
        let grown = Arc::new(grown);
        topics.insert(grown.name.clone(), grown.clone());
        grown
    }

    /// Appends a record to its partition's open batch. With `reserved` bytes of buffer memory in
    /// hand, a new batch is started when the open one has no room; without, `None` means "reserve
    /// memory and call again". Reserved bytes not needed are given back.
    ///
    /// `sticky` is the sticky partitioner's choice when it placed the record (the partition is
    /// then `sticky.partition`): what the record adds is counted there, under the partition's
    /// lock, and the partitioner moves on when Java's would (see [`StickyCount`]).
    #[inline]
    pub(crate) fn append(
        &self,
        tq: &TopicQueues,
        partition: i32,
        sticky: Option<StickyChoice>,
        record: RecordParts<'_>,
        reserved: Option<usize>,
        now: impl FnOnce() -> Instant,
    ) -> Result<Appended, NotAppended> {
        let RecordParts {
            timestamp,
            key,
            value,
            headers,
        } = record;
        let mut queue = tq.partitions[partition as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if sticky.is_some_and(|c| !tq.sticky.is(c)) {
            return Err(NotAppended::Moved);
        }
        let limit = self.batch_limit(tq);
        // With growth, a batch takes records past batch.size, up to batch.max.size, for as long
        // as linger.ms lets it fill: a stream goes in a few large requests, not one per
        // batch.size, and the broker's cost is mostly per request and per batch.
        let max = if self.grows() {
            self.grown_limit(tq)
        } else {
            limit
        };
        if let Some(batch) = queue.batches.back_mut().filter(|b| !b.closed) {
            if let Some(builder) = batch.builder.as_mut() {
                let before = builder.size_in_bytes();
                // A batch grows past its reservation (batch.size) only with more buffer.memory,
                // taken without waiting: under memory pressure batches just stay smaller.
                // It grows by doubling (or by the record, for one larger than that), so a batch
                // that linger.ms sends soon after holds little.
                let cap = max.min(batch.reserved.max(before));
                let mut appended = builder.try_append(timestamp, key, value, headers, cap);
                if appended.is_none() && cap < max {
                    let record = record_size_upper_bound(
                        key.map(<[u8]>::len),
                        value.map(<[u8]>::len),
                        headers,
                    );
                    let grown = max.min(cap.saturating_mul(2).max(before + record));
                    if self.try_reserve(grown - cap) {
                        appended = builder.try_append(timestamp, key, value, headers, grown);
                        if appended.is_some() {
                            batch.reserved += grown - cap;
                        } else {
                            // Still no room (a large record): keep nothing for nothing.
                            self.release(grown - cap);
                        }
                    }
                }
                if let Some(index) = appended {
                    batch.record_count += 1;
                    batch.outcome.set_records(batch.record_count);
                    let size = builder.size_in_bytes();
                    let bytes = size - before;
                    // For `record-size-max`: as Java measures it, a batch of this record alone.
                    batch.max_record = batch.max_record.max(bytes + RECORD_BATCH_OVERHEAD);
                    // At `cap` but under `max`, the next record tries for more memory.
                    batch.closed = size >= max;
                    let future = DeliveryFuture::new(batch.outcome.clone(), index, timestamp);
                    let closed = batch.closed;
                    self.count_sticky(tq, &mut queue, sticky, bytes, max, closed);
                    if let Some(r) = reserved {
                        self.release(r);
                    }
                    return Ok(Appended {
                        future,
                        wake_sender: closed,
                    });
                }
            }
            // No room: this batch is done; the record starts the next one.
            batch.closed = true;
            if reserved.is_none() {
                // The sticky partitioner moves on now, so the record starts its batch on the
                // next partition (Java's starts it here and moves on after it).
                if let Some(c) = sticky {
                    tq.sticky.move_on(c);
                }
                return Err(NotAppended::NeedsBatch { last_full: true });
            }
        }
        let Some(mut reserved) = reserved else {
            // With growth, a partition whose batch was sent once batch.size went there gets no
            // new batch from the sticky partitioner: the record goes to the next partition.
            if let Some(c) = sticky {
                if self.grows() && queue.sticky.batch_sent(c.epoch, self.batch_size) {
                    tq.sticky.move_on(c);
                }
            }
            return Err(NotAppended::NeedsBatch { last_full: false });
        };
        // Room for as much as this partition's last batch held, so that a batch growing as large
        // again is never copied to a larger buffer; taken from buffer.memory only while at least
        // half of it stays free, so that batches which stay small (the load fell) cannot hold
        // the memory other partitions' records wait for.
        let last = queue.last_batch_size.min(max);
        if last > reserved
            && self.buffer.permits.available_permits() >= last - reserved + self.buffer.total / 2
            && self.try_reserve(last - reserved)
        {
            reserved = last;
        }
        let mut builder = BatchBuilder::new(reserved.min(max.max(64)));
        let index = builder
            .try_append(timestamp, key, value, headers, limit)
            .expect("an empty batch takes any record");
        let outcome = Arc::new(BatchOutcome::new(tq.name.clone(), partition));
        let id = self.next_batch_id.fetch_add(1, Ordering::Relaxed);
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, outcome.clone());
        // Registered first, then checked: either the sender's last look (`stop_if_drained`)
        // sees this batch and sends it, or this sees that the sender stopped.
        if self.stopped.load(Ordering::SeqCst) {
            self.incomplete
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            self.release(reserved);
            return Err(NotAppended::Stopped);
        }
        outcome.set_records(1);
        let bytes = builder.size_in_bytes();
        let closed = bytes >= max;
        self.count_sticky(tq, &mut queue, sticky, bytes, max, closed);
        queue.batches.push_back(ProducerBatch {
            id,
            builder: Some(builder),
            sealed: None,
            closed,
            record_count: 1,
            // Read only when a batch starts: the clock is not free, and a record needs none.
            created: now(),
            outcome: outcome.clone(),
            reserved,
            attempts: 0,
            sequence: None,
            possibly_persisted: false,
            last_error: None,
            max_record: bytes,
            uncompressed: 0,
        });
        Ok(Appended {
            future: DeliveryFuture::new(outcome, index, timestamp),
            wake_sender: true,
        })
    }

    /// Counts `bytes` the sticky partitioner's choice added to this partition (in a batch that
    /// may hold `limit` bytes and is now `closed` or not), and moves it on when it should.
    fn count_sticky(
        &self,
        tq: &TopicQueues,
        queue: &mut PartitionQueue,
        sticky: Option<StickyChoice>,
        bytes: usize,
        limit: usize,
        closed: bool,
    ) {
        if let Some(c) = sticky {
            if queue
                .sticky
                .appended(c.epoch, bytes, self.batch_size, limit, !closed)
            {
                tq.sticky.move_on(c);
            }
        }
    }

    /// Records handed to `send` whose outcome is not known yet.
    pub(crate) fn pending_records(&self) -> usize {
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|outcome| outcome.records())
            .sum()
    }

    /// The outcomes of every batch not completed yet, for `flush`.
    pub(crate) fn incomplete(&self) -> Vec<Arc<BatchOutcome>> {
        self.incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// For the sender once the producer is closing: from now on no new batch is queued (a send
    /// that raced with `close` fails instead), and true when nothing is left to send.
    pub(crate) fn stop_if_drained(&self) -> bool {
        self.stopped.store(true, Ordering::SeqCst);
        !self.has_incomplete()
    }

    pub(crate) fn has_incomplete(&self) -> bool {
        !self
            .incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// While a flush is in progress every batch is ready, linger or not.
    pub(crate) fn begin_flush(&self) {
        self.flushes.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end_flush(&self) {
        self.flushes.fetch_sub(1, Ordering::AcqRel);
    }

    fn all_topics(&self) -> Vec<Arc<TopicQueues>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Finds the leaders that have a batch to send now, and when to look again.
    /// `closing` makes every batch ready, like a flush.
    ///
    /// With `partitioner.adaptive.partitioning.enable` it also gives each topic's sticky
    /// partitioner the length of every queue whose partition has a leader (Java's `ready` does
    /// it too): the one look at every queue serves both.
    pub(crate) fn ready_for(
        &self,
        cluster: &Cluster,
        now: Instant,
        closing: bool,
        producer: Option<ProducerIdEpoch>,
        allowed: Allowed<'_>,
    ) -> Ready {
        let flushing = closing || self.flushes.load(Ordering::Acquire) > 0;
        let mut ready = Ready {
            nodes: Vec::new(),
            next_check: None,
            unknown_leader: false,
            held: Vec::new(),
        };
        let mut sizes = self
            .adaptive_partitioning
            .then(|| self.queue_sizes.lock().unwrap_or_else(|e| e.into_inner()));
        let latency = (sizes.is_some() && !self.availability_timeout.is_zero())
            .then(|| self.node_latency.lock().unwrap_or_else(|e| e.into_inner()));
        for tq in self.all_topics() {
            let meta = cluster.topics.get(&*tq.name);
            if let Some(sizes) = sizes.as_deref_mut() {
                sizes.start(tq.partitions.len());
            }
            for (p, queue) in tq.partitions.iter().enumerate() {
                let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
                let leader = meta.and_then(|m| m.leader(p as i32));
                if let (Some(sizes), Some(leader)) = (sizes.as_deref_mut(), leader) {
                    let queued = queue.batches.len();
                    // As in Java's: a lagging node's partition is left out only while it has
                    // batches waiting; an empty one may still be chosen.
                    if queued == 0 || !self.lagging(latency.as_deref(), leader) {
                        sizes.push(p as u32, queued);
                    }
                }
                let Some(front) = queue.batches.front() else {
                    continue;
                };
                if allowed.is_some_and(|allowed| !allowed(&tq.name, p as i32)) {
                    ready.held.push((tq.name.clone(), p as i32));
                    continue;
                }
                let Some(leader) = leader else {
                    ready.unknown_leader = true;
                    continue;
                };
                if ready.nodes.contains(&leader) {
                    continue;
                }
                if let Some(until) = queue.backoff_until.filter(|&u| u > now) {
                    ready.next_check = Some(ready.next_check.map_or(until, |c| c.min(until)));
                    continue;
                }
                if !queue.can_send(now, self.in_flight_per_partition, producer) {
                    continue;
                }
                if flushing || queue.batches.len() > 1 || front.is_ready(now, self.linger) {
                    ready.nodes.push(leader);
                } else {
                    let at = front.created + self.linger;
                    ready.next_check = Some(ready.next_check.map_or(at, |c| c.min(at)));
                }
            }
            if let Some(sizes) = sizes.as_deref() {
                tq.sticky.update_load(sizes);
            }
        }
        ready
    }

    /// Whether `node` had batches ready for longer than `partitioner.availability.timeout.ms`
    /// since they were last drained; `latency` is `None` when the timeout is off.
    fn lagging(&self, latency: Option<&HashMap<i32, NodeLatency>>, node: i32) -> bool {
        latency.and_then(|l| l.get(&node)).is_some_and(|n| {
            n.ready.saturating_duration_since(n.drained) > self.availability_timeout
        })
    }

    /// For the sender, for each node `ready_for` found ready: whether its batches can be
    /// drained now (a connection with a free request slot). This is what
    /// `partitioner.availability.timeout.ms` measures (Java's `updateNodeLatencyStats`);
    /// nothing is kept when it is off.
    pub(crate) fn node_ready(&self, node: i32, now: Instant, can_drain: bool) {
        if self.availability_timeout.is_zero() || !self.adaptive_partitioning {
            return;
        }
        let mut latency = self.node_latency.lock().unwrap_or_else(|e| e.into_inner());
        let n = latency.entry(node).or_insert(NodeLatency {
            ready: now,
            drained: now,
        });
        n.ready = now;
        if can_drain {
            n.drained = now;
        }
    }

    /// Takes the front batch of every partition `node` leads that may send now, up to
    /// `max_request_size` bytes in all (at least one batch). Each is sealed and marked in flight.
    pub(crate) fn drain_for(
        &self,
        cluster: &Cluster,
        node: i32,
        max_request_size: usize,
        now: Instant,
        producer: Option<ProducerIdEpoch>,
        allowed: Allowed<'_>,
    ) -> Vec<Drained> {
        let mut drained = Vec::new();
        let mut size = 0;
        // The node's partitions, visited from where the last drain for it stopped (Java's
        // `drainIndex`): when a request holds only some of the ready batches (a grown batch can
        // fill one alone), every partition gets its turn.
        let topics = self.all_topics();
        let led: Vec<(&Arc<TopicQueues>, usize)> = topics
            .iter()
            .filter_map(|tq| Some((tq, cluster.topics.get(&*tq.name)?)))
            .flat_map(|(tq, meta)| {
                (0..tq.partitions.len())
                    .filter(move |&p| meta.leader(p as i32) == Some(node))
                    .map(move |p| (tq, p))
            })
            .collect();
        if led.is_empty() {
            return drained;
        }
        let mut starts = self.drain_start.lock().unwrap_or_else(|e| e.into_inner());
        let start = starts.get(&node).copied().unwrap_or(0) % led.len();
        for i in 0..led.len() {
            let (tq, p) = led[(start + i) % led.len()];
            if allowed.is_some_and(|allowed| !allowed(&tq.name, p as i32)) {
                continue;
            }
            let queue_arc = &tq.partitions[p];
            let mut queue = queue_arc.lock().unwrap_or_else(|e| e.into_inner());
            if !queue.can_send(now, self.in_flight_per_partition, producer) {
                continue;
            }
            if let Some(p) = producer.filter(|&p| queue.producer != Some(p)) {
                queue.restart_sequences(p);
            }
            let Some(front) = queue.batches.front() else {
                continue;
            };
            if !drained.is_empty() && size + self.sealed_size(tq, front) > max_request_size {
                // It goes first in the next request to this node.
                starts.insert(node, (start + i) % led.len());
                return drained;
            }
            let mut batch = queue.batches.pop_front().expect("front exists");
            batch.closed = true;
            let sequence = match producer {
                Some(p) if batch.sequence.is_none() && batch.builder.is_some() => {
                    let seq = queue.next_sequence;
                    queue.next_sequence = next_sequence(seq, batch.record_count);
                    Some((p, seq))
                }
                _ => None,
            };
            let fresh = batch.builder.is_some();
            let uncompressed = batch.size();
            if fresh {
                queue.last_batch_size = uncompressed;
            }
            batch.seal(self.compression, self.transactional, sequence);
            if fresh && self.compression != Compression::None {
                let records = |n: usize| n.saturating_sub(RECORD_BATCH_OVERHEAD) as f32;
                tq.observe_compression(records(batch.size()) / records(uncompressed).max(1.0));
            }
            size += batch.size();
            queue.in_flight += 1;
            drained.push(Drained {
                topic: tq.name.clone(),
                partition: p as i32,
                batch,
                queue: queue_arc.clone(),
            });
        }
        drained
    }
}
