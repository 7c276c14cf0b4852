//! Transactions against the real 3-node cluster, on both generations of the protocol: each
//! scenario runs with the cluster's `transaction.version` at 1 (AddPartitionsToTxn,
//! AddOffsetsToTxn) and at 2 (KIP-890), switched for the scenario and held by a lock, so the
//! scenarios of this file run one at a time. What the transactions wrote is read back by the
//! Java consumer with `isolation.level=read_committed`, and consumer group offsets by the Java
//! Admin client.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_producer::{
    BlockingProducer, ConsumerGroupMetadata, Error, OffsetAndMetadata, Producer, ProducerConfig,
    ProducerRecord, StringSerializer, TopicPartition,
};
use kafka_producer_testkit::{cluster, Cluster};
use tokio::sync::{Mutex, MutexGuard};

/// Every transactional call's timeout: far longer than any of them takes here.
const CALL: Duration = Duration::from_secs(60);

/// Both protocol generations, 1 first, so that the cluster is left at 2 (its default) by
/// whichever scenario runs last.
const VERSIONS: [i16; 2] = [1, 2];

/// The cluster's `transaction.version` as this file last set it (`None`: not yet asked).
static VERSION_LOCK: Mutex<Option<i16>> = Mutex::const_new(None);

/// Sets the cluster's `transaction.version` and holds it until the guard is dropped.
async fn on_version(cluster: &Cluster, version: i16) -> MutexGuard<'static, Option<i16>> {
    let mut guard = VERSION_LOCK.lock().await;
    let current = match *guard {
        Some(v) => v,
        None => cluster.transaction_version(),
    };
    if current != version {
        cluster.set_transaction_version(version);
    }
    *guard = Some(version);
    guard
}

fn topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let t = Cluster::random_topic(prefix);
    cluster.create_topic(&t, partitions, 3, &[]);
    t
}

fn config(cluster: &Cluster, transactional_id: &str) -> ProducerConfig {
    ProducerConfig::new(cluster.bootstrap()).with_transactional_id(transactional_id)
}

/// A transactional producer, initialized, on the expected protocol version.
async fn transactional(cluster: &Cluster, id: &str, version: i16) -> Producer {
    let producer = Producer::new(config(cluster, id)).await.unwrap();
    producer.init_transactions(CALL).await.unwrap();
    assert_eq!(producer.transaction_version(), Some(version));
    producer
}

/// Sends `values` to `topic` (keys = values, so they spread over the partitions) and waits
/// until each one is acknowledged: written to the log, inside the open transaction.
async fn send_acknowledged(producer: &Producer, topic: &str, values: &[String]) {
    let mut deliveries = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic)
            .key(v.as_bytes())
            .value(v.as_bytes());
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The values of what a `read_committed` consumer reads, sorted.
fn committed_values(cluster: &Cluster, topic: &str) -> Vec<String> {
    let mut v: Vec<String> = cluster
        .read_topic_committed(topic)
        .iter()
        .map(|r| r.value_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Waits until a `read_committed` consumer reads exactly `expected` (sorted) from `topic`:
/// `commit_transaction` returns once the coordinator decided, and the markers that make the
/// records visible are written right after.
fn assert_committed(cluster: &Cluster, topic: &str, expected: &[String], what: &str) {
    let mut read = Vec::new();
    for _ in 0..20 {
        read = committed_values(cluster, topic);
        if read == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(read, expected, "{what}");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn committed_records_appear_together_and_aborted_ones_never() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let a = topic(&cluster, "txn-a", 3);
        let b = topic(&cluster, "txn-b", 2);
        let producer = transactional(&cluster, &Cluster::random_topic("tid"), version).await;

        producer.begin_transaction().unwrap();
        let first = values("one", 20);
        send_acknowledged(&producer, &a, &first[..10]).await;
        send_acknowledged(&producer, &b, &first[10..]).await;
        // Written and acknowledged, but not committed: invisible.
        assert!(cluster.read_topic(&a).len() >= 10, "v{version}: in the log");
        assert_eq!(
            committed_values(&cluster, &a),
            Vec::<String>::new(),
            "v{version}"
        );
        assert_eq!(
            committed_values(&cluster, &b),
            Vec::<String>::new(),
            "v{version}"
        );
        producer.commit_transaction(CALL).await.unwrap();
        assert_committed(
            &cluster,
            &a,
            &sorted(first[..10].to_vec()),
            &format!("v{version}"),
        );
        assert_committed(
            &cluster,
            &b,
            &sorted(first[10..].to_vec()),
            &format!("v{version}"),
        );

        // Aborted after its records reached the log: they stay invisible.
        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &a, &values("aborted", 10)).await;
        producer.abort_transaction(CALL).await.unwrap();

        // Aborted before anything was sent: the records fail, saying so.
        producer.begin_transaction().unwrap();
        let unsent = producer
            .send(ProducerRecord::new(&b).key("k").value("never"))
            .await
            .unwrap();
        producer.abort_transaction(CALL).await.unwrap();
        match unsent.await {
            Err(Error::TransactionAborted { .. }) | Ok(_) => {}
            Err(e) => panic!("v{version}: {e}"),
        }

        producer.begin_transaction().unwrap();
        let last = values("three", 6);
        send_acknowledged(&producer, &a, &last).await;
        producer.commit_transaction(CALL).await.unwrap();

        let mut expected = first[..10].to_vec();
        expected.extend(last);
        assert_committed(&cluster, &a, &sorted(expected), &format!("v{version}"));
        assert_committed(
            &cluster,
            &b,
            &sorted(first[10..].to_vec()),
            &format!("v{version}"),
        );
        let everything = cluster.read_topic(&a);
        assert!(
            everything
                .iter()
                .any(|r| r.value_str().unwrap().starts_with("aborted")),
            "v{version}: the aborted records were written, and skipped by read_committed"
        );
        producer.close(CALL).await.unwrap();
    }
}

#[tokio::test]
async fn offsets_sent_with_a_transaction_reach_the_group_only_on_commit() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let input = topic(&cluster, "txn-in", 2);
        let output = topic(&cluster, "txn-out", 2);
        let group = ConsumerGroupMetadata::new(Cluster::random_topic("group"));
        let producer = transactional(&cluster, &Cluster::random_topic("tid"), version).await;
        let offsets = |o0: i64, o1: i64| {
            vec![
                (TopicPartition::new(&input, 0), OffsetAndMetadata::new(o0)),
                (TopicPartition::new(&input, 1), OffsetAndMetadata::new(o1)),
            ]
        };

        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &output, &values("x", 4)).await;
        producer
            .send_offsets_to_transaction(offsets(5, 3), &group, CALL)
            .await
            .unwrap();
        producer.abort_transaction(CALL).await.unwrap();
        assert_eq!(
            cluster.group_offsets(group.group_id()),
            vec![],
            "v{version}"
        );

        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(offsets(7, 2), &group, CALL)
            .await
            .unwrap();
        assert_eq!(
            cluster.group_offsets(group.group_id()),
            vec![],
            "v{version}: not before the commit"
        );
        producer.commit_transaction(CALL).await.unwrap();
        assert_eq!(
            cluster.stable_group_offsets(group.group_id()),
            vec![(input.clone(), 0, 7), (input.clone(), 1, 2)],
            "v{version}"
        );
        producer.close(CALL).await.unwrap();
    }
}

#[tokio::test]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let t = topic(&cluster, "txn-fence", 3);
        let id = Cluster::random_topic("tid");
        let first = transactional(&cluster, &id, version).await;
        first.begin_transaction().unwrap();
        send_acknowledged(&first, &t, &values("zombie", 10)).await;

        // Taking over the id aborts the first producer's open transaction.
        let second = transactional(&cluster, &id, version).await;
        let e = first.commit_transaction(CALL).await.unwrap_err();
        assert!(
            matches!(e, Error::TransactionFatal { .. }) && e.is_fatal(),
            "v{version}: {e}"
        );
        let later = first
            .send(ProducerRecord::new(&t).key("k").value("late"))
            .await
            .unwrap_err();
        assert!(
            later.is_fatal(),
            "v{version}: every later call fails: {later}"
        );
        assert!(first.begin_transaction().unwrap_err().is_fatal());

        second.begin_transaction().unwrap();
        send_acknowledged(&second, &t, &values("live", 5)).await;
        second.commit_transaction(CALL).await.unwrap();
        assert_committed(
            &cluster,
            &t,
            &sorted(values("live", 5)),
            &format!("v{version}"),
        );
        assert!(first.close(CALL).await.unwrap_err().is_fatal());
        second.close(CALL).await.unwrap();
    }
}

#[tokio::test]
async fn a_transaction_outliving_its_timeout_is_aborted_and_reported() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let t = topic(&cluster, "txn-timeout", 2);
        let mut config = config(&cluster, &Cluster::random_topic("tid"));
        config.set("transaction.timeout.ms", "2000").unwrap();
        let producer = Producer::new(config).await.unwrap();
        producer.init_transactions(CALL).await.unwrap();
        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &t, &values("slow", 5)).await;
        // The brokers look for timed-out transactions every second (the harness's
        // transaction.abort.timed.out.transaction.cleanup.interval.ms).
        tokio::time::sleep(Duration::from_secs(6)).await;
        let e = tokio::time::timeout(CALL, producer.commit_transaction(CALL))
            .await
            .expect("the commit returns")
            .unwrap_err();
        // Fatal, as for the Java client: the coordinator moved the id to a new epoch.
        assert!(e.requires_abort() || e.is_fatal(), "v{version}: {e}");
        assert!(
            e.to_string()
                .contains("longer than transaction.timeout.ms (2000 ms)"),
            "v{version}: {e}"
        );
        assert_eq!(
            committed_values(&cluster, &t),
            Vec::<String>::new(),
            "v{version}"
        );
        if e.requires_abort() {
            producer.abort_transaction(CALL).await.unwrap();
            producer.begin_transaction().unwrap();
            send_acknowledged(&producer, &t, &values("next", 3)).await;
            producer.commit_transaction(CALL).await.unwrap();
            assert_committed(
                &cluster,
                &t,
                &sorted(values("next", 3)),
                &format!("v{version}"),
            );
        }
        let _ = producer.close(CALL).await;
    }
}

#[tokio::test]
async fn a_commit_that_timed_out_goes_on_and_can_be_waited_for_again() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let t = topic(&cluster, "txn-again", 2);
        let producer = transactional(&cluster, &Cluster::random_topic("tid"), version).await;
        producer.begin_transaction().unwrap();
        let first = values("first", 5);
        for v in &first {
            let record = ProducerRecord::new(&t)
                .key(v.as_bytes())
                .value(v.as_bytes());
            drop(producer.send(record).await.unwrap());
        }
        let e = producer
            .commit_transaction(Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::TransactionTimeout {
                    operation: "commit_transaction",
                    ..
                }
            ),
            "v{version}: {e}"
        );
        assert!(e.is_retriable(), "v{version}");
        let e = producer.begin_transaction().unwrap_err();
        assert!(
            matches!(e, Error::TransactionState { .. }),
            "v{version}: {e}"
        );
        producer.commit_transaction(CALL).await.unwrap();
        assert_committed(&cluster, &t, &sorted(first.clone()), &format!("v{version}"));

        // A commit that timed out and finished unasked: the next transaction's commit is its
        // own, not that outcome again.
        producer.begin_transaction().unwrap();
        let second = values("second", 3);
        send_acknowledged(&producer, &t, &second).await;
        let e = producer
            .commit_transaction(Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::TransactionTimeout { .. }),
            "v{version}: {e}"
        );
        let mut expected = first;
        expected.extend(second);
        let expected = sorted(expected);
        // The commit goes on in the background (this runtime runs it while the test sleeps).
        let deadline = tokio::time::Instant::now() + CALL;
        while producer.begin_transaction().is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "v{version}: never ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_committed(&cluster, &t, &expected, &format!("v{version}"));
        let third = values("third", 2);
        send_acknowledged(&producer, &t, &third).await;
        producer.commit_transaction(CALL).await.unwrap();
        let mut all = expected;
        all.extend(third);
        assert_committed(&cluster, &t, &sorted(all), &format!("v{version}"));
        producer.close(CALL).await.unwrap();
    }
}

#[tokio::test]
async fn a_record_the_broker_refuses_fails_the_commit_and_nothing_of_it_shows() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let t = Cluster::random_topic("txn-refused-record");
        cluster.create_topic(&t, 1, 3, &[("max.message.bytes", "1024")]);
        let producer = transactional(&cluster, &Cluster::random_topic("tid"), version).await;
        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &t, &values("fine", 3)).await;
        // One record, too large for the topic: the broker refuses it, and it cannot be split.
        let big = "x".repeat(2000);
        let refused = producer
            .send(ProducerRecord::new(&t).key("big").value(big.as_bytes()))
            .await
            .unwrap();
        let e = refused.await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(kafka_producer::ErrorCode::MESSAGE_TOO_LARGE),
            "v{version}: {e}"
        );
        let e = producer.commit_transaction(CALL).await.unwrap_err();
        assert!(e.requires_abort(), "v{version}: {e}");
        assert!(
            e.to_string().contains("MESSAGE_TOO_LARGE"),
            "v{version}: {e}"
        );
        producer.abort_transaction(CALL).await.unwrap();

        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &t, &values("after", 2)).await;
        producer.commit_transaction(CALL).await.unwrap();
        assert_committed(
            &cluster,
            &t,
            &sorted(values("after", 2)),
            &format!("v{version}"),
        );
        producer.close(CALL).await.unwrap();
    }
}

/// The same calls on the typed and the blocking producer: offsets and records of a string
/// producer, committed, on the cluster's default version.
#[test]
fn the_blocking_producer_commits_and_aborts_transactions() {
    let Some(cluster) = cluster() else { return };
    let mut version = VERSION_LOCK.blocking_lock();
    if version.is_some_and(|v| v != 2) || (version.is_none() && cluster.transaction_version() != 2)
    {
        cluster.set_transaction_version(2);
    }
    *version = Some(2);
    let t = topic(&cluster, "txn-blocking", 2);
    let group = ConsumerGroupMetadata::new(Cluster::random_topic("group"));
    let producer = BlockingProducer::<str, str>::new(
        config(&cluster, &Cluster::random_topic("tid")),
        StringSerializer,
        StringSerializer,
    )
    .unwrap();
    producer.init_transactions(CALL).unwrap();
    producer.begin_transaction().unwrap();
    let aborted = producer
        .send(ProducerRecord::new(&t).key("k").value("gone"))
        .unwrap();
    producer.abort_transaction(CALL).unwrap();
    assert!(aborted.wait().is_err(), "never sent: the abort failed it");

    producer.begin_transaction().unwrap();
    let kept = producer
        .send(ProducerRecord::new(&t).key("k").value("kept"))
        .unwrap();
    producer
        .send_offsets_to_transaction(
            [(TopicPartition::new(&t, 0), OffsetAndMetadata::new(42))],
            &group,
            CALL,
        )
        .unwrap();
    producer.commit_transaction(CALL).unwrap();
    kept.wait().unwrap();
    assert_committed(&cluster, &t, &["kept".to_string()], "blocking");
    assert_eq!(
        cluster.stable_group_offsets(group.group_id()),
        vec![(t.clone(), 0, 42)]
    );
    producer.close(CALL).unwrap();
}

#[tokio::test]
async fn empty_transactions_commit_and_abort() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let t = topic(&cluster, "txn-empty", 1);
        let producer = transactional(&cluster, &Cluster::random_topic("tid"), version).await;
        producer.begin_transaction().unwrap();
        producer.commit_transaction(CALL).await.unwrap();
        producer.begin_transaction().unwrap();
        producer.abort_transaction(CALL).await.unwrap();
        producer.begin_transaction().unwrap();
        send_acknowledged(&producer, &t, &values("after", 3)).await;
        producer.commit_transaction(CALL).await.unwrap();
        assert_committed(
            &cluster,
            &t,
            &sorted(values("after", 3)),
            &format!("v{version}"),
        );
        producer.close(CALL).await.unwrap();
    }
}

#[tokio::test]
async fn sends_outside_a_transaction_are_refused() {
    let Some(cluster) = cluster() else { return };
    let t = topic(&cluster, "txn-refused", 1);
    let producer = Producer::new(config(&cluster, &Cluster::random_topic("tid")))
        .await
        .unwrap();
    let refused = |e: Error, when: &str| {
        assert!(
            matches!(
                e,
                Error::TransactionState {
                    operation: "send",
                    ..
                }
            ),
            "{when}: {e}"
        )
    };
    let send = || producer.send(ProducerRecord::new(&t).key("k").value("v"));
    refused(send().await.unwrap_err(), "before init_transactions");
    // Metadata is not a send: it needs no transaction.
    assert_eq!(producer.partition_count(&t).await.unwrap(), 1);
    let e = producer.begin_transaction().unwrap_err();
    assert!(matches!(e, Error::TransactionState { .. }), "{e}");
    producer.init_transactions(CALL).await.unwrap();
    refused(send().await.unwrap_err(), "before begin_transaction");
    producer.begin_transaction().unwrap();
    let e = producer.begin_transaction().unwrap_err();
    assert!(
        matches!(e, Error::TransactionState { .. }),
        "begin twice: {e}"
    );
    let delivery = send().await.unwrap();
    producer.commit_transaction(CALL).await.unwrap();
    delivery.await.unwrap();
    refused(send().await.unwrap_err(), "after the commit");
    let e = producer.commit_transaction(CALL).await.unwrap_err();
    assert!(
        matches!(e, Error::TransactionState { .. }),
        "commit twice: {e}"
    );

    let plain = Producer::new(ProducerConfig::new(cluster.bootstrap()))
        .await
        .unwrap();
    let e = plain.begin_transaction().unwrap_err();
    assert!(e.to_string().contains("transactional.id"), "{e}");
    producer.close(CALL).await.unwrap();
    plain.close(CALL).await.unwrap();
}

/// A consume-transform-produce loop over an input topic, committing the consumed offsets with
/// each transaction, while a broker is killed and restarted: every input record appears in the
/// output exactly once, and the group's offsets end at the input's end. A transaction that
/// fails is aborted, and the loop goes back to the group's committed offsets, as a consumer
/// would after a rebalance.
#[tokio::test]
async fn disruptive_read_process_write_is_exactly_once_across_a_broker_kill() {
    let Some(cluster) = cluster() else { return };
    for version in VERSIONS {
        let _v = on_version(&cluster, version).await;
        let input = topic(&cluster, "rpw-in", 3);
        let output = topic(&cluster, "rpw-out", 3);
        let plain = Producer::new(ProducerConfig::new(cluster.bootstrap()))
            .await
            .unwrap();
        let inputs = values("in", 600);
        send_acknowledged(&plain, &input, &inputs).await;
        plain.close(CALL).await.unwrap();
        // The input as the Java consumer reads it: per partition, in offset order.
        let mut by_partition: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
        for r in cluster.read_topic(&input) {
            by_partition
                .entry(r.partition)
                .or_default()
                .push((r.offset, r.value_str().unwrap().to_string()));
        }
        let group = ConsumerGroupMetadata::new(Cluster::random_topic("rpw-group"));
        let producer = transactional(&cluster, &Cluster::random_topic("rpw"), version).await;

        let mut position: BTreeMap<i32, usize> = by_partition.keys().map(|&p| (p, 0)).collect();
        let mut round = 0;
        let mut aborted = 0;
        let mut outage: Option<kafka_producer_testkit::NodeOutage<'_>> = None;
        while position.iter().any(|(p, &i)| i < by_partition[p].len()) {
            round += 1;
            if round == 12 {
                if let Some(o) = outage.take() {
                    o.end();
                }
            }
            producer.begin_transaction().unwrap();
            let mut next = position.clone();
            let mut offsets = Vec::new();
            let mut deliveries = Vec::new();
            for (&p, records) in &by_partition {
                let from = position[&p];
                let to = (from + 10).min(records.len());
                for (_, v) in &records[from..to] {
                    let out = format!("out-{v}");
                    let record = ProducerRecord::new(&output)
                        .key(out.as_bytes())
                        .value(out.as_bytes());
                    deliveries.push(producer.send(record).await.unwrap());
                }
                next.insert(p, to);
                let offset = records
                    .get(to)
                    .map_or_else(|| records[to - 1].0 + 1, |r| r.0);
                if to > from {
                    offsets.push((
                        TopicPartition::new(&input, p),
                        OffsetAndMetadata::new(offset),
                    ));
                }
            }
            if round == 5 {
                // Mid-transaction, with its records on their way: the leader of an output
                // partition goes down hard.
                let leader = cluster.describe_topic(&output)[0].leader;
                outage = Some(cluster.outage(leader, true));
            }
            let sent = producer
                .send_offsets_to_transaction(offsets, &group, CALL)
                .await;
            let result = match sent {
                Ok(()) => producer.commit_transaction(CALL).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    for d in deliveries {
                        d.await
                            .expect("a committed transaction's records are acknowledged");
                    }
                    position = next;
                }
                Err(e) if e.requires_abort() => {
                    eprintln!("v{version} round {round}: {e}; aborting");
                    aborted += 1;
                    producer.abort_transaction(CALL).await.unwrap();
                    // Back to what the group committed, as a consumer after a rebalance.
                    let committed = cluster.stable_group_offsets(group.group_id());
                    for (&p, records) in &by_partition {
                        let at = committed
                            .iter()
                            .find(|(_, cp, _)| *cp == p)
                            .map_or(0, |(_, _, o)| *o);
                        position.insert(p, records.iter().take_while(|r| r.0 < at).count());
                    }
                }
                Err(e) => panic!("v{version} round {round}: {e}"),
            }
        }
        if let Some(o) = outage.take() {
            o.end();
        }
        producer.close(CALL).await.unwrap();
        eprintln!("v{version}: {round} transactions, {aborted} aborted");

        let expected: Vec<String> = sorted(inputs.iter().map(|v| format!("out-{v}")).collect());
        assert_committed(
            &cluster,
            &output,
            &expected,
            &format!("v{version}: exactly once"),
        );
        let mut end: Vec<(String, i32, i64)> = by_partition
            .iter()
            .map(|(&p, r)| (input.clone(), p, r.last().unwrap().0 + 1))
            .collect();
        end.sort();
        assert_eq!(
            cluster.stable_group_offsets(group.group_id()),
            end,
            "v{version}"
        );
    }
}
