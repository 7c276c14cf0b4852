//! The accumulator's unit tests: they drive it as the sender and `send` do, with no broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_producer_protocol::batch::Compression;

use crate::delivery::{BatchAck, DeliveryFuture};
use crate::error::Error;
use crate::metadata::{Cluster, TopicMetadata};
use crate::partitioner::StickyChoice;

use super::{
    Accumulator, Drained, NotAppended, PartitionQueue, ProducerBatch, ProducerIdEpoch, Ready,
    RecordParts, Settings, TopicQueues,
};

/// The settings most tests start from: 1000-byte batches that do not grow, no linger, no
/// compression, one batch per partition in flight.
fn settings() -> Settings {
    Settings {
        batch_size: 1000,
        batch_max_size: 1000,
        max_request_size: 1 << 20,
        linger: Duration::ZERO,
        delivery_timeout: Duration::from_secs(10),
        buffer_memory: 1 << 20,
        compression: Compression::None,
        in_flight_per_partition: 1,
        transactional: false,
        adaptive_partitioning: true,
        availability_timeout: Duration::ZERO,
    }
}

/// `ready_for` and `drain_for` with every partition allowed, as without transactions.
impl Accumulator {
    fn ready(
        &self,
        cluster: &Cluster,
        now: Instant,
        closing: bool,
        producer: Option<ProducerIdEpoch>,
    ) -> Ready {
        self.ready_for(cluster, now, closing, producer, None)
    }

    fn drain(
        &self,
        cluster: &Cluster,
        node: i32,
        max_request_size: usize,
        now: Instant,
        producer: Option<ProducerIdEpoch>,
    ) -> Vec<Drained> {
        self.drain_for(cluster, node, max_request_size, now, producer, None)
    }
}

fn cluster(leaders: Vec<i32>) -> Cluster {
    let mut topics = foldhash::HashMap::default();
    topics.insert(
        "t".to_string(),
        Arc::new(TopicMetadata {
            error: kafka_producer_protocol::ErrorCode(0),
            available: (0..leaders.len() as u32).collect(),
            leader_epochs: vec![-1; leaders.len()],
            topic_id: 0,
            leaders,
        }),
    );
    Cluster {
        brokers: HashMap::new(),
        topics,
        updated: None,
    }
}

fn acc(batch_size: usize, linger_ms: u64) -> Accumulator {
    Accumulator::new(Settings {
        batch_size,
        batch_max_size: batch_size,
        linger: Duration::from_millis(linger_ms),
        ..settings()
    })
}

/// lz4 with batch.size 1000 and max.request.size 10,000.
fn lz4_acc(buffer_memory: usize) -> Accumulator {
    Accumulator::new(Settings {
        max_request_size: 10_000,
        buffer_memory,
        compression: Compression::Lz4 { level: 9 },
        ..settings()
    })
}

fn add(a: &Accumulator, tq: &TopicQueues, p: i32, v: &[u8], now: Instant) -> DeliveryFuture {
    match a.append(
        tq,
        p,
        None,
        RecordParts {
            timestamp: 0,
            key: None,
            value: Some(v),
            headers: &[],
        },
        None,
        || now,
    ) {
        Ok(x) => x.future,
        Err(_) => {
            a.append(
                tq,
                p,
                None,
                RecordParts {
                    timestamp: 0,
                    key: None,
                    value: Some(v),
                    headers: &[],
                },
                Some(a.batch_size),
                || now,
            )
            .unwrap()
            .future
        }
    }
}

#[test]
fn linger_decides_readiness_unless_full_or_flushing() {
    let a = acc(1000, 5);
    let tq = a.topic("t", 2);
    let c = cluster(vec![1, 2]);
    let t0 = Instant::now();
    let _f = add(&a, &tq, 0, b"x", t0);
    let r = a.ready(&c, t0, false, None);
    assert!(r.nodes.is_empty());
    assert_eq!(r.next_check, Some(t0 + Duration::from_millis(5)));
    assert_eq!(
        a.ready(&c, t0 + Duration::from_millis(5), false, None)
            .nodes,
        vec![1]
    );
    a.begin_flush();
    assert_eq!(a.ready(&c, t0, false, None).nodes, vec![1]);
    a.end_flush();
    assert_eq!(a.ready(&c, t0, true, None).nodes, vec![1]);
}

#[test]
fn a_full_batch_closes_and_the_next_record_starts_another() {
    let a = acc(200, 1000);
    let tq = a.topic("t", 1);
    let c = cluster(vec![7]);
    let now = Instant::now();
    let mut futures = Vec::new();
    for _ in 0..5 {
        futures.push(add(&a, &tq, 0, &[0u8; 60], now));
    }
    assert_eq!(a.ready(&c, now, false, None).nodes, vec![7]);
    let d = a.drain(&c, 7, 1 << 20, now, None);
    assert_eq!(d.len(), 1, "one batch per partition per request");
    assert!(d[0].batch.record_count < 5);
    // The partition is muted until the answer comes back.
    assert!(a.drain(&c, 7, 1 << 20, now, None).is_empty());
}

#[test]
fn a_retried_batch_goes_back_to_the_front_and_keeps_its_bytes() {
    let a = acc(100, 0);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let _f1 = add(&a, &tq, 0, &[1u8; 60], now);
    let _f2 = add(&a, &tq, 0, &[2u8; 60], now);
    let mut d = a.drain(&c, 1, 1 << 20, now, None);
    let first = d.pop().unwrap();
    let bytes = first.batch.sealed.clone().unwrap();
    a.retry(
        first,
        Error::Closed { topic: None },
        Duration::from_millis(10),
        now,
    );
    assert!(a.drain(&c, 1, 1 << 20, now, None).is_empty(), "backing off");
    let later = now + Duration::from_millis(10);
    let mut d = a.drain(&c, 1, 1 << 20, later, None);
    assert_eq!(
        d[0].batch.sealed.clone().unwrap(),
        bytes,
        "the same batch, first"
    );
    assert_eq!(d.pop().unwrap().batch.attempts, 1);
}

#[tokio::test]
async fn outcomes_reach_handles_and_memory_comes_back() {
    let a = acc(100, 0);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    assert!(a.reserve(100, now + Duration::from_secs(1)).await);
    let f = a
        .append(
            &tq,
            0,
            None,
            RecordParts {
                timestamp: 5,
                key: None,
                value: Some(b"v"),
                headers: &[],
            },
            Some(100),
            || now,
        )
        .unwrap()
        .future;
    assert_eq!(a.pending_records(), 1);
    let d = a.drain(&c, 1, 1 << 20, now, None).pop().unwrap();
    a.complete(
        d,
        BatchAck {
            base_offset: Some(42),
            log_append_time: None,
        },
    );
    let md = f.await.unwrap();
    assert_eq!(md.offset, Some(42));
    assert_eq!(a.pending_records(), 0);
    assert!(!a.has_incomplete());
    assert!(
        a.reserve(1 << 20, now + Duration::from_millis(10)).await,
        "all memory is back"
    );
}

#[tokio::test]
async fn expired_batches_fail_with_a_delivery_timeout() {
    let a = acc(100, 0);
    let tq = a.topic("t", 1);
    let now = Instant::now();
    let f = add(&a, &tq, 0, b"v", now);
    assert!(a
        .expire(now + Duration::from_secs(9), &|_, _| None)
        .is_some());
    assert!(a
        .expire(now + Duration::from_secs(10), &|_, _| None)
        .is_none());
    let e = f.await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::DeliveryTimeout {
                possibly_persisted: false,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn memory_is_bounded() {
    let a = Accumulator::new(Settings {
        batch_size: 100,
        batch_max_size: 100,
        buffer_memory: 250,
        ..settings()
    });
    let t0 = Instant::now();
    assert!(a.reserve(100, t0).await);
    assert!(a.reserve(100, t0).await);
    assert!(
        !a.reserve(100, Instant::now() + Duration::from_millis(20))
            .await
    );
}

fn idempotent(max_in_flight: usize) -> Accumulator {
    Accumulator::new(Settings {
        batch_size: 100,
        batch_max_size: 100,
        in_flight_per_partition: max_in_flight,
        ..settings()
    })
}

fn seq_of(d: &Drained) -> (i16, i32) {
    let b = &kafka_producer_protocol::decode_batches(&d.batch.bytes()).unwrap()[0];
    assert_eq!(Some(b.base_sequence), d.batch.sequence);
    (b.producer_epoch, b.base_sequence)
}

#[test]
fn sequences_are_assigned_once_at_drain_with_up_to_five_in_flight() {
    let a = idempotent(5);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let p0 = ProducerIdEpoch { id: 9, epoch: 0 };
    let _f: Vec<_> = (0..7).map(|_| add(&a, &tq, 0, &[0u8; 60], now)).collect();
    let mut drained = Vec::new();
    for _ in 0..7 {
        drained.extend(a.drain(&c, 1, 1 << 20, now, Some(p0)));
    }
    assert_eq!(drained.len(), 5, "five batches of one partition in flight");
    let seqs: Vec<_> = drained.iter().map(seq_of).collect();
    assert_eq!(seqs, [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);

    // The second and third fail (a lost connection): they come back in sequence order and go
    // again one at a time, with the same bytes, once nothing else is in flight.
    let mut it = drained.into_iter();
    let first = it.next().unwrap();
    let (second, third) = (it.next().unwrap(), it.next().unwrap());
    let bytes2 = second.batch.bytes();
    a.retry(third, Error::Closed { topic: None }, Duration::ZERO, now);
    a.retry(second, Error::Closed { topic: None }, Duration::ZERO, now);
    a.complete(
        first,
        BatchAck {
            base_offset: Some(0),
            log_append_time: None,
        },
    );
    assert!(
        a.drain(&c, 1, 1 << 20, now, Some(p0)).is_empty(),
        "two still in flight"
    );
    for d in it {
        a.complete(
            d,
            BatchAck {
                base_offset: Some(3),
                log_append_time: None,
            },
        );
    }
    let retried = a.drain(&c, 1, 1 << 20, now, Some(p0));
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].batch.bytes(), bytes2, "resent unchanged");
    assert!(
        a.drain(&c, 1, 1 << 20, now, Some(p0)).is_empty(),
        "a retry goes alone"
    );
}

#[test]
fn a_new_epoch_restarts_sequences_and_renumbers_waiting_retries() {
    let a = idempotent(5);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let p0 = ProducerIdEpoch { id: 9, epoch: 0 };
    let p1 = ProducerIdEpoch { id: 9, epoch: 1 };
    let _f: Vec<_> = (0..3).map(|_| add(&a, &tq, 0, &[0u8; 60], now)).collect();
    let mut d = a.drain(&c, 1, 1 << 20, now, Some(p0));
    d.extend(a.drain(&c, 1, 1 << 20, now, Some(p0)));
    assert_eq!(d.len(), 2);
    let second = d.pop().unwrap();
    let first = d.pop().unwrap();
    a.fail(first, Error::Closed { topic: None });
    assert!(a.take_sequence_gap(), "a sequenced batch failed for good");
    assert!(!a.take_sequence_gap(), "reported once");
    // Under the new epoch nothing goes while an old-epoch batch is in flight.
    assert!(a.drain(&c, 1, 1 << 20, now, Some(p1)).is_empty());
    a.retry(second, Error::Closed { topic: None }, Duration::ZERO, now);
    let again = a.drain(&c, 1, 1 << 20, now, Some(p1));
    assert_eq!(
        seq_of(&again[0]),
        (1, 0),
        "the retry renumbered from 0 under epoch 1"
    );
    a.complete(
        again.into_iter().next().unwrap(),
        BatchAck {
            base_offset: Some(1),
            log_append_time: None,
        },
    );
    let third = a.drain(&c, 1, 1 << 20, now, Some(p1));
    assert_eq!(seq_of(&third[0]), (1, 1));
    assert!(a.is_next_expected(&third[0]));
}

#[tokio::test]
async fn a_split_batch_keeps_order_sequences_and_each_records_offset() {
    let a = Accumulator::new(Settings {
        batch_size: 1 << 20,
        batch_max_size: 1 << 20,
        buffer_memory: 1 << 22,
        in_flight_per_partition: 5,
        ..settings()
    });
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let p0 = ProducerIdEpoch { id: 3, epoch: 2 };
    let futures: Vec<_> = (0..10u8).map(|i| add(&a, &tq, 0, &[i; 100], now)).collect();
    let d = a.drain(&c, 1, 1 << 22, now, Some(p0)).pop().unwrap();
    assert_eq!(d.batch.sequence, Some(0));
    assert!(a.split(d).is_none(), "ten records split");
    let mut parts = Vec::new();
    while let Some(d) = a.drain(&c, 1, 1 << 22, now, Some(p0)).pop() {
        parts.push(d);
        // Parts carry sequences: like retries, they go one at a time.
        let d = parts.last().unwrap();
        let decoded = &kafka_producer_protocol::decode_batches(&d.batch.bytes()).unwrap()[0];
        assert_eq!((decoded.producer_id, decoded.producer_epoch), (3, 2));
        let first = decoded.records[0].value.as_ref().unwrap()[0];
        assert_eq!(
            decoded.base_sequence,
            i32::from(first),
            "sequence = record number"
        );
        let base = 100 + i64::from(first);
        let d = parts.pop().unwrap();
        a.complete(
            d,
            BatchAck {
                base_offset: Some(base),
                log_append_time: None,
            },
        );
    }
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.await.unwrap().offset, Some(100 + i as i64));
    }
    assert!(!a.has_incomplete());
    assert_eq!(a.pending_records(), 0);
}

#[test]
fn compressed_batches_fill_to_batch_size_after_compression_as_estimated() {
    let c = cluster(vec![1]);
    let now = Instant::now();
    let a = lz4_acc(1 << 20);
    let tq = a.topic("t", 1);
    assert_eq!(a.batch_limit(&tq), 1000, "no estimate yet: 1.0");
    // The estimate moves as the Java client's: down by 0.005 per better batch...
    tq.observe_compression(0.1);
    assert!((tq.compression_ratio() - 0.995).abs() < 1e-6);
    // ...up at once after a worse one, by at least 0.05.
    tq.observe_compression(0.996);
    assert!((tq.compression_ratio() - 1.0).abs() < 1e-6);
    tq.observe_compression(0.5);
    // Identical records compress well: each sealed batch lowers the estimate a step, so the
    // next batch takes more uncompressed bytes, up to max.request.size.
    let value = [b'x'; 50];
    let mut records_per_batch = Vec::new();
    for _ in 0..200 {
        let mut n = 0;
        let before = a.batch_limit(&tq);
        loop {
            drop(add(&a, &tq, 0, &value, now));
            n += 1;
            let queue = tq.partitions[0].lock().unwrap();
            if queue.batches.len() > 1 {
                break;
            }
        }
        assert!(a.batch_limit(&tq) >= before);
        records_per_batch.push(n);
        a.drain(&c, 1, usize::MAX, now, None);
        tq.partitions[0].lock().unwrap().in_flight = 0;
    }
    assert!(tq.compression_ratio() < 0.1, "{}", tq.compression_ratio());
    assert!(
        records_per_batch[199] > 5 * records_per_batch[1],
        "{records_per_batch:?}"
    );
    assert!(a.batch_limit(&tq) <= 10_000, "capped at max.request.size");
    // Without compression, batch.size is the limit.
    assert_eq!(acc(1000, 0).batch_limit(&tq), 1000);
}

#[test]
fn a_batch_grows_past_batch_size_only_with_free_buffer_memory() {
    let now = Instant::now();
    let a = lz4_acc(20_000);
    let tq = a.topic("t", 1);
    for _ in 0..300 {
        tq.observe_compression(0.01);
    }
    assert_eq!(a.batch_limit(&tq), 10_000);
    // All but 500 bytes of buffer.memory are taken: the batch cannot double its reservation
    // (the test's batches reserve 1000 without taking it from the pool).
    assert!(a.try_reserve(19_500));
    let value = [b'x'; 50];
    let mut n = 0;
    while tq.partitions[0].lock().unwrap().batches.len() < 2 {
        drop(add(&a, &tq, 0, &value, now));
        n += 1;
        assert!(n < 1000);
    }
    let first = tq.partitions[0].lock().unwrap().batches[0].size();
    assert!(first <= 1000, "{first}");
    // With memory free again, the next batch grows to the estimated limit.
    a.release(19_500);
    drop(a.drain(&cluster(vec![1]), 1, usize::MAX, now, None));
    tq.partitions[0].lock().unwrap().in_flight = 0;
    // (Sealing that batch moved the estimate; the limit is still several times batch.size.)
    let limit = a.batch_limit(&tq);
    assert!(limit > 3 * 1000, "{limit}");
    while tq.partitions[0].lock().unwrap().batches.len() < 2 {
        drop(add(&a, &tq, 0, &value, now));
    }
    let second = tq.partitions[0].lock().unwrap().batches[0].size();
    assert!(
        second > limit - 100 && second <= limit,
        "{second} of {limit}"
    );
}

/// batch.size 1000, batch.max.size 4000, at most `in_flight` batches of a partition in flight.
fn growing_acc_with(linger: Duration, in_flight: usize) -> Accumulator {
    Accumulator::new(Settings {
        batch_max_size: 4000,
        linger,
        in_flight_per_partition: in_flight,
        ..settings()
    })
}

/// One batch of a partition in flight (no idempotence), linger 1 s.
fn growing_acc() -> Accumulator {
    growing_acc_with(Duration::from_secs(1), 1)
}

fn acked() -> BatchAck {
    BatchAck {
        base_offset: Some(0),
        log_append_time: None,
    }
}

/// Once the sender stopped, a send that raced with close gets no batch (nothing would send
/// it): it is refused, and its memory is given back.
#[test]
fn after_the_sender_stopped_no_new_batch_is_queued() {
    let a = growing_acc();
    let tq = a.topic("t", 1);
    let free = a.buffer.permits.available_permits();
    assert!(a.stop_if_drained(), "nothing queued");
    assert!(a.try_reserve(1000));
    let refused = a.append(
        &tq,
        0,
        None,
        RecordParts {
            timestamp: 0,
            key: None,
            value: Some(b"v"),
            headers: &[],
        },
        Some(1000),
        Instant::now,
    );
    assert!(matches!(refused, Err(NotAppended::Stopped)));
    assert!(!a.has_incomplete());
    assert!(tq.partitions[0].lock().unwrap().batches.is_empty());
    assert_eq!(a.buffer.permits.available_permits(), free);
}

/// The sticky partitioner's records are counted under the partition's lock: it moves on
/// once batch.size went to its partition and that batch closed, or the batch has no room. A
/// send that saw the sticky partition before another send moved it on queues nothing there
/// and is told to choose again.
#[test]
fn sticky_records_move_the_partitioner_on_and_a_stale_choice_is_refused() {
    let a = acc(1000, 1000);
    let tq = a.topic("t", 4);
    let now = Instant::now();
    let all = [0, 1, 2, 3];
    let append = |c: StickyChoice, value: &[u8], reserved: Option<usize>| {
        if let Some(r) = reserved {
            assert!(a.try_reserve(r));
        }
        let p = c.partition as i32;
        a.append(
            &tq,
            p,
            Some(c),
            RecordParts {
                timestamp: 0,
                key: None,
                value: Some(value),
                headers: &[],
            },
            reserved,
            || now,
        )
    };
    // A record larger than batch.size fills its batch: move on.
    let first = tq.sticky.current(&all, 4);
    append(first, &[b'x'; 1200], Some(1300)).expect("a new batch");
    assert!(!tq.sticky.is(first));
    // A send still holding that choice is refused, and queues nothing.
    let stale = append(first, b"v", None);
    assert!(matches!(stale, Err(NotAppended::Moved)));
    assert_eq!(a.pending_records(), 1);
    // Small records stay until their batch has no room.
    let next = tq.sticky.current(&all, 4);
    assert_ne!(next.epoch, first.epoch);
    append(next, &[b'x'; 100], Some(1000)).expect("a new batch");
    for _ in 0..7 {
        append(next, &[b'x'; 100], None).expect("room in the open batch");
        assert!(tq.sticky.is(next));
    }
    let full = append(next, &[b'x'; 100], None);
    assert!(
        matches!(full, Err(NotAppended::NeedsBatch { last_full: true })),
        "{full:?}"
    );
    assert!(!tq.sticky.is(next));
}

/// A partition's next batch starts with room for as many bytes as its last batch held (so it
/// is not copied as it grows that large again), taken from buffer.memory only while at least
/// half of buffer.memory stays free.
#[test]
fn a_new_batch_starts_with_room_for_the_partitions_last_batch() {
    let a = growing_acc();
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let t0 = Instant::now();
    let add100 = || drop(add(&a, &tq, 0, &[7u8; 100], t0));
    let reserved = || tq.partitions[0].lock().unwrap().batches[0].reserved;
    let fill_and_send = || {
        for _ in 0..25 {
            add100();
        }
        let size = tq.partitions[0].lock().unwrap().batches[0].size();
        assert!(size > 2000, "{size}");
        drop(a.drain(&c, 1, usize::MAX, t0, None));
        tq.partitions[0].lock().unwrap().in_flight = 0;
        size
    };
    let first = fill_and_send();
    let free = a.buffer.permits.available_permits();
    add100();
    // The test's `add` brings batch.size (1000) of its own; the rest comes from the pool.
    assert_eq!(reserved(), first);
    assert_eq!(free - a.buffer.permits.available_permits(), first - 1000);

    // With less than half of buffer.memory left free after it, no room is taken ahead.
    let second = fill_and_send();
    let free = a.buffer.permits.available_permits();
    let keep = second - 1000 + a.buffer.total / 2 - 1;
    assert!(a.try_reserve(free - keep));
    add100();
    assert_eq!(reserved(), 1000);
    assert_eq!(a.buffer.permits.available_permits(), keep);
}

#[test]
fn a_batch_grows_past_batch_size_until_linger_and_closes_at_batch_max_size() {
    let a = growing_acc_with(Duration::from_millis(5), 1);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let t0 = Instant::now();
    let add100 = || drop(add(&a, &tq, 0, &[7u8; 100], t0));
    // Past batch.size, the batch keeps filling while linger.ms runs...
    for _ in 0..20 {
        add100();
    }
    let size = tq.partitions[0].lock().unwrap().batches[0].size();
    assert!(size > 2000, "{size}");
    let r = a.ready(&c, t0, false, None);
    assert!(r.nodes.is_empty(), "linger.ms has not passed");
    assert_eq!(r.next_check, Some(t0 + Duration::from_millis(5)));
    // ...and goes when it has.
    let later = t0 + Duration::from_millis(5);
    assert_eq!(a.ready(&c, later, false, None).nodes, vec![1]);
    let first = a.drain(&c, 1, 1 << 20, later, None).pop().unwrap();
    assert_eq!(first.batch.size(), size);
    // A batch that reaches batch.max.size is closed: ready at once, linger or not, but it
    // waits while its partition has a request in flight (one at most here).
    for _ in 0..45 {
        add100();
    }
    let sizes = |q: &PartitionQueue| {
        q.batches
            .iter()
            .map(ProducerBatch::size)
            .collect::<Vec<_>>()
    };
    let queued = sizes(&tq.partitions[0].lock().unwrap());
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued[0] > 3000 && queued[0] <= 4000, "{queued:?}");
    assert!(
        a.ready(&c, t0, false, None).nodes.is_empty(),
        "one in flight"
    );
    a.complete(first, acked());
    assert_eq!(a.ready(&c, t0, false, None).nodes, vec![1]);
    let second = a.drain(&c, 1, 1 << 20, t0, None).pop().unwrap();
    assert_eq!(second.batch.size(), queued[0]);
    let decoded = &kafka_producer_protocol::decode_batches(&second.batch.bytes()).unwrap()[0];
    assert_eq!(decoded.records.len(), second.batch.record_count);
}

#[test]
fn with_idempotence_a_closed_batch_goes_behind_one_in_flight_in_sequence() {
    // Five batches of a partition may be in flight.
    let a = growing_acc_with(Duration::from_millis(5), 5);
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let p0 = ProducerIdEpoch { id: 1, epoch: 0 };
    let t0 = Instant::now();
    let fill = |n: usize| {
        for _ in 0..n {
            drop(add(&a, &tq, 0, &[7u8; 100], t0));
        }
    };
    fill(20);
    let later = t0 + Duration::from_millis(5);
    assert_eq!(a.ready(&c, later, false, Some(p0)).nodes, vec![1]);
    let first = a.drain(&c, 1, 1 << 20, later, Some(p0)).pop().unwrap();
    // The next batch closes at batch.max.size and goes before linger.ms, with the first
    // still in flight, its sequence following the first's records.
    fill(40);
    assert_eq!(a.ready(&c, later, false, Some(p0)).nodes, vec![1]);
    let second = a.drain(&c, 1, 1 << 20, later, Some(p0)).pop().unwrap();
    assert!(second.batch.size() > 3000, "{}", second.batch.size());
    assert_eq!(seq_of(&first), (0, 0));
    assert_eq!(seq_of(&second), (0, first.batch.record_count as i32));
    a.complete(first, acked());
    a.complete(second, acked());
}

#[test]
fn when_a_request_holds_only_some_ready_batches_every_partition_gets_its_turn() {
    // batch.max.size = max.request.size = 4000: one grown batch fills a request.
    let a = Accumulator::new(Settings {
        batch_max_size: 4000,
        max_request_size: 4000,
        linger: Duration::from_millis(5),
        in_flight_per_partition: 5,
        ..settings()
    });
    let tq = a.topic("t", 3);
    let c = cluster(vec![1, 1, 1]);
    let now = Instant::now();
    let mut sent = [0usize; 3];
    for _ in 0..6 {
        // Every partition has a closed batch, and more behind it.
        for p in 0..3 {
            while tq.partitions[p].lock().unwrap().batches.len() < 2 {
                drop(add(&a, &tq, p as i32, &[7u8; 100], now));
            }
        }
        let drained = a.drain(&c, 1, 4000, now, None);
        assert_eq!(drained.len(), 1);
        for d in drained {
            sent[d.partition as usize] += 1;
            a.complete(d, acked());
        }
    }
    assert_eq!(sent, [2, 2, 2]);
}

#[test]
fn without_growth_a_batch_closes_at_batch_size_and_goes_at_once() {
    // batch.max.size at batch.size: the Java client's rule.
    let a = Accumulator::new(Settings {
        linger: Duration::from_secs(1),
        in_flight_per_partition: 5,
        ..settings()
    });
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let mut sizes = Vec::new();
    for _ in 0..100 {
        drop(add(&a, &tq, 0, &[7u8; 100], now));
        // The sender takes each batch once it is ready; the broker answers at once.
        if !a.ready(&c, now, false, None).nodes.is_empty() {
            let d = a.drain(&c, 1, 1 << 20, now, None).pop().unwrap();
            sizes.push(d.batch.size());
            a.complete(d, acked());
        }
    }
    assert!(sizes.len() >= 10, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s > 900 && s <= 1000), "{sizes:?}");
}

#[test]
fn once_the_broker_refuses_a_grown_batch_later_ones_grow_no_larger_than_its_parts() {
    let a = growing_acc();
    let tq = a.topic("t", 1);
    let c = cluster(vec![1]);
    let now = Instant::now();
    let add100 = || drop(add(&a, &tq, 0, &[7u8; 100], now));
    let backlog = |n: usize| {
        for _ in 0..n {
            add100();
        }
        let queue = tq.partitions[0].lock().unwrap();
        queue
            .batches
            .iter()
            .map(ProducerBatch::size)
            .collect::<Vec<_>>()
    };
    add100();
    let first = a.drain(&c, 1, 1 << 20, now, None).pop().unwrap();
    assert!(backlog(60)[0] > 3000);
    a.complete(first, acked());
    let grown = a.drain(&c, 1, 1 << 20, now, None).pop().unwrap();
    let refused = grown.batch.size();
    assert!(a.split(grown).is_none(), "MESSAGE_TOO_LARGE: split in two");
    // Its parts go first, then the batch that grew behind it.
    let mut sizes = Vec::new();
    while let Some(d) = a.drain(&c, 1, 1 << 20, now, None).pop() {
        sizes.push(d.batch.size());
        a.complete(d, acked());
    }
    assert!(sizes[..2].iter().all(|&p| p <= refused / 2), "{sizes:?}");
    // The next batch grows again, but only to half the refused size.
    add100();
    let busy = a.drain(&c, 1, 1 << 20, now, None).pop().unwrap();
    let sizes = backlog(60);
    assert!(
        sizes[0] > refused / 2 - 200 && sizes[0] <= refused / 2,
        "{sizes:?}, refused {refused}"
    );
    a.complete(busy, acked());
}

#[test]
fn grown_compressed_batches_share_a_request_by_their_compressed_size() {
    // lz4, batch.size 1000, batch.max.size and max.request.size 10,000; records that compress
    // well, so a grown batch holds 10,000 bytes of records that compress to under 1,000.
    let a = Accumulator::new(Settings {
        batch_max_size: 10_000,
        max_request_size: 10_000,
        linger: Duration::from_secs(1),
        compression: Compression::Lz4 { level: 9 },
        ..settings()
    });
    let tq = a.topic("t", 2);
    for _ in 0..300 {
        tq.observe_compression(0.01);
    }
    let c = cluster(vec![1, 1]);
    let now = Instant::now();
    let value = [b'x'; 50];
    for p in 0..2 {
        drop(add(&a, &tq, p, &value, now));
    }
    let first = a.drain(&c, 1, 10_000, now, None);
    assert_eq!(first.len(), 2);
    // Their next batches grow to the uncompressed limit.
    for _ in 0..400 {
        for p in 0..2 {
            drop(add(&a, &tq, p, &value, now));
        }
    }
    for p in 0..2 {
        let queue = tq.partitions[p].lock().unwrap();
        assert!(
            queue.batches[0].size() > 9_000,
            "{}",
            queue.batches[0].size()
        );
    }
    for d in first {
        a.complete(d, acked());
    }
    let second = a.drain(&c, 1, 10_000, now, None);
    let sizes: Vec<usize> = second.iter().map(|d| d.batch.size()).collect();
    assert_eq!(
        sizes.len(),
        2,
        "both fit one request once compressed: {sizes:?}"
    );
    assert!(sizes.iter().sum::<usize>() < 10_000, "{sizes:?}");
}

/// Partition 0 with `queued` batches waiting, partition 1 with none, both led by broker 1; the
/// sender has looked at the queues once.
fn one_long_queue(a: &Accumulator, queued: usize) -> Arc<TopicQueues> {
    let tq = a.topic("t", 2);
    let now = Instant::now();
    for _ in 0..queued {
        // Each fills most of a batch: the next one starts a new batch.
        drop(add(a, &tq, 0, &[7u8; 900], now));
    }
    assert_eq!(tq.partitions[0].lock().unwrap().batches.len(), queued);
    drop(a.ready(&cluster(vec![1, 1]), now, false, None));
    tq
}

/// How often each of two partitions is chosen as the new sticky partition in `draws` moves.
fn sticky_choices(tq: &TopicQueues, draws: usize) -> [usize; 2] {
    let mut chosen = [0; 2];
    for _ in 0..draws {
        let c = tq.sticky.current(&[0, 1], 2);
        chosen[c.partition as usize] += 1;
        tq.sticky.move_on(c);
    }
    chosen
}

/// KIP-794's adaptive partitioning: `ready_for` weighs each partition by how short its queue
/// is, and the sticky partitioner's new choices follow the weights.
#[test]
fn new_sticky_partitions_go_where_queues_are_short() {
    let a = Accumulator::new(settings());
    let tq = one_long_queue(&a, 4);
    // Weights 5 - 4 = 1 and 5 - 0 = 5: one random number in six picks partition 0.
    let picked: Vec<u32> = (0..12).map(|r| tq.sticky.choose(&[0, 1], 2, r)).collect();
    assert_eq!(picked, [0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
    // With the producer's own random numbers: expected 2000 and 10,000 of 12,000 (a margin
    // of over 20 standard deviations).
    let [long, short] = sticky_choices(&tq, 12_000);
    assert!(long < 3_000 && short > 9_000, "{long} and {short}");
    // Once the long queue is drained, both weigh the same again: uniform.
    while !a
        .drain(&cluster(vec![1, 1]), 1, 1 << 20, Instant::now(), None)
        .is_empty()
    {
        tq.partitions[0].lock().unwrap().in_flight = 0;
    }
    drop(a.ready(&cluster(vec![1, 1]), Instant::now(), false, None));
    let picked: Vec<u32> = (0..4).map(|r| tq.sticky.choose(&[0, 1], 2, r)).collect();
    assert_eq!(picked, [0, 1, 0, 1]);
}

#[test]
fn without_adaptive_partitioning_the_choice_stays_uniform() {
    let a = Accumulator::new(Settings {
        adaptive_partitioning: false,
        ..settings()
    });
    let tq = one_long_queue(&a, 4);
    let picked: Vec<u32> = (0..4).map(|r| tq.sticky.choose(&[0, 1], 2, r)).collect();
    assert_eq!(picked, [0, 1, 0, 1]);
    // Expected 6000 each (a margin of over 20 standard deviations).
    let [long, short] = sticky_choices(&tq, 12_000);
    assert!(long > 4_800 && short > 4_800, "{long} and {short}");
}

/// `partitioner.availability.timeout.ms`: a broker with batches ready but none drained for
/// longer is left out, but only its partitions with batches waiting, as in the Java client.
#[test]
fn a_lagging_brokers_partitions_with_batches_waiting_are_not_chosen() {
    let a = Accumulator::new(Settings {
        availability_timeout: Duration::from_millis(100),
        ..settings()
    });
    let tq = a.topic("t", 3);
    // Partitions 0 and 1 on broker 1, 2 on broker 2; one batch waiting in each.
    let c = cluster(vec![1, 1, 2]);
    let t0 = Instant::now();
    for p in 0..3 {
        drop(add(&a, &tq, p, &[7u8; 900], t0));
    }
    let picks = |now: Instant| -> Vec<u32> {
        drop(a.ready(&c, now, false, None));
        (0..6).map(|r| tq.sticky.choose(&[0, 1, 2], 3, r)).collect()
    };
    // Every queue one batch long: uniform.
    assert_eq!(picks(t0), [0, 1, 2, 0, 1, 2]);
    // Broker 1 ready, drained, then ready without a drain for 100 ms: still available.
    a.node_ready(1, t0, true);
    a.node_ready(1, t0 + Duration::from_millis(100), false);
    assert_eq!(picks(t0 + Duration::from_millis(100)), [0, 1, 2, 0, 1, 2]);
    // Past 100 ms: only broker 2's partition.
    a.node_ready(1, t0 + Duration::from_millis(101), false);
    assert_eq!(picks(t0 + Duration::from_millis(101)), [2; 6]);
    // Partition 1's queue empties: it is chosen again (weight 2 against 1).
    drop(tq.partitions[1].lock().unwrap().batches.pop_front());
    assert_eq!(picks(t0 + Duration::from_millis(101)), [1, 1, 2, 1, 1, 2]);
    // Broker 1 drained again: everything is back, the empty queue weighing most.
    a.node_ready(1, t0 + Duration::from_millis(200), true);
    assert_eq!(picks(t0 + Duration::from_millis(200)), [0, 1, 1, 2, 0, 1]);
}
