//! Transactions against the testkit's fake broker, for what a real coordinator cannot be made
//! to do on demand: answer with retriable errors (loading, moving, busy) for as long as a test
//! wants, or with a fatal or abortable code at a chosen request. No cluster needed.
//!
//! The fake broker logs every transactional request with its answer
//! ([`FakeBroker::transaction_log`]), so the tests check the order the producer sent them in,
//! including its retries. Scenarios run on both protocol generations where they differ: the
//! fake reports `transaction.version` 0 (the producer then uses version 1: AddPartitionsToTxn,
//! Produce up to v11) or 2 (KIP-890: Produce v12, EndTxn v5 with a new epoch).

use std::future::Future;
use std::time::{Duration, Instant};

use kafka_producer::{
    ConsumerGroupMetadata, DeliveryFuture, Error, ErrorCode, OffsetAndMetadata, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_testkit::{FakeBroker, FakeConfig, Rule, TxnDetail, TxnRequest};

/// Every call's timeout where the call is expected to succeed.
const CALL: Duration = Duration::from_secs(10);
/// Long enough for every scenario here; each test bounds its own waits with it.
const PATIENCE: Duration = Duration::from_secs(20);
/// The fake's finalized `transaction.version` and the protocol the producer then uses.
const LEVELS: [(i16, i16); 2] = [(0, 1), (2, 2)];
const ID: &str = "txn-1";
const GROUP: &str = "readers";

async fn broker(level: i16) -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 2)],
        transaction_version: level,
        ..FakeConfig::default()
    })
    .await
}

/// Small timeouts and backoffs, so that faults cost little time.
async fn producer(broker: &FakeBroker) -> Producer {
    let mut c = ProducerConfig::new(&broker.addr()).with_transactional_id(ID);
    for (k, v) in [
        ("linger.ms", "0"),
        ("request.timeout.ms", "1000"),
        ("delivery.timeout.ms", "10000"),
        ("retry.backoff.ms", "20"),
        ("retry.backoff.max.ms", "100"),
    ] {
        c.set(k, v).unwrap();
    }
    within(Producer::new(c)).await.unwrap()
}

/// A producer whose `init_transactions` succeeded, on the protocol `version`.
async fn initialized(broker: &FakeBroker, version: i16) -> Producer {
    let p = producer(broker).await;
    within(p.init_transactions(CALL)).await.unwrap();
    assert_eq!(p.transaction_version(), Some(version));
    p
}

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("resolved within the test's patience")
}

/// A record with key "k" and `value` for t-`partition`.
fn record(partition: i32, value: &str) -> ProducerRecord<'_, &'static str, &str> {
    ProducerRecord::new("t")
        .key("k")
        .value(value)
        .partition(partition)
}

async fn send(p: &Producer, partition: i32, value: &str) -> DeliveryFuture {
    p.send(record(partition, value)).await.unwrap()
}

/// A broker at `level`, a producer initialized on it at `version`, and an open transaction with
/// "a" sent to t-0 and flushed: what is left is to end it.
async fn flushed_transaction(level: i16, version: i16) -> (FakeBroker, Producer, DeliveryFuture) {
    let b = broker(level).await;
    let p = initialized(&b, version).await;
    p.begin_transaction().unwrap();
    let d = send(&p, 0, "a").await;
    within(p.flush()).await.unwrap();
    (b, p, d)
}

/// One committed transaction writing `value` to t-0.
async fn commit_one(p: &Producer, value: &str) {
    p.begin_transaction().unwrap();
    let d = send(p, 0, value).await;
    within(p.commit_transaction(CALL)).await.unwrap();
    within(d).await.unwrap();
}

fn offsets(offset: i64) -> Vec<(TopicPartition, OffsetAndMetadata)> {
    vec![(TopicPartition::new("in", 0), OffsetAndMetadata::new(offset))]
}

fn values(broker: &FakeBroker, partition: i32) -> Vec<String> {
    broker
        .records("t", partition)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect()
}

/// The log as (API, answer) pairs, from the `from`-th request on.
fn answers(broker: &FakeBroker, from: usize) -> Vec<(ApiKey, ErrorCode)> {
    broker.transaction_log()[from..]
        .iter()
        .map(|r| (r.api, r.error))
        .collect()
}

fn of(log: &[TxnRequest], api: ApiKey) -> Vec<&TxnRequest> {
    log.iter().filter(|r| r.api == api).collect()
}

/// The answers to `api`'s requests, in order.
fn errors(log: &[TxnRequest], api: ApiKey) -> Vec<ErrorCode> {
    of(log, api).iter().map(|r| r.error).collect()
}

/// The broker answers the next `api` request with `code`, once.
fn fail_once(b: &FakeBroker, api: ApiKey, code: ErrorCode) {
    b.script(Rule::on_api(api).times(1).respond_error(code));
}

#[tokio::test]
async fn init_retries_through_a_moving_loading_and_busy_coordinator() {
    use ApiKey::{FindCoordinator, InitProducerId};
    use ErrorCode as C;
    for (level, version) in LEVELS {
        let b = broker(level).await;
        b.script(
            Rule::on_api(FindCoordinator)
                .times(2)
                .respond_error(C::COORDINATOR_NOT_AVAILABLE),
        );
        b.script(
            Rule::on_api(InitProducerId)
                .times(3)
                .respond_error(C::COORDINATOR_LOAD_IN_PROGRESS),
        );
        for n in [4, 5] {
            b.script(
                Rule::on_api(InitProducerId)
                    .nth(n)
                    .respond_error(C::CONCURRENT_TRANSACTIONS),
            );
        }
        let p = producer(&b).await;
        let start = Instant::now();
        within(p.init_transactions(CALL)).await.unwrap();
        // Backoffs of at most retry.backoff.max.ms (100 ms) each.
        assert!(start.elapsed() < Duration::from_secs(3), "{level}");
        assert_eq!(p.transaction_version(), Some(version));
        assert_eq!(
            answers(&b, 0),
            [
                (FindCoordinator, C::COORDINATOR_NOT_AVAILABLE),
                (FindCoordinator, C::COORDINATOR_NOT_AVAILABLE),
                (FindCoordinator, C::NONE),
                (InitProducerId, C::COORDINATOR_LOAD_IN_PROGRESS),
                (InitProducerId, C::COORDINATOR_LOAD_IN_PROGRESS),
                (InitProducerId, C::COORDINATOR_LOAD_IN_PROGRESS),
                (InitProducerId, C::CONCURRENT_TRANSACTIONS),
                (InitProducerId, C::CONCURRENT_TRANSACTIONS),
                (InitProducerId, C::NONE),
            ],
            "transaction.version {level}"
        );
        let log = b.transaction_log();
        assert!(
            of(&log, FindCoordinator)
                .iter()
                .all(|r| r.transactional_id.as_deref() == Some(ID)),
            "key type 1, the transactional id"
        );
        // The producer works with the id and epoch it got.
        commit_one(&p, "a").await;
        assert_eq!(values(&b, 0), ["a"]);
        let r = &b.records("t", 0)[0];
        assert_eq!((r.producer_id, r.producer_epoch), (1000, 0));
        within(p.close(CALL)).await.unwrap();
    }
}

#[tokio::test]
async fn commit_finds_a_moved_coordinator_and_retries_a_busy_one() {
    use ApiKey::{EndTxn, FindCoordinator, Produce};
    use ErrorCode as C;
    for (level, version) in LEVELS {
        let (b, p, d) = flushed_transaction(level, version).await;
        let before = b.transaction_log().len();
        b.script(
            Rule::on_api(EndTxn)
                .nth(1)
                .respond_error(C::NOT_COORDINATOR),
        );
        for n in [2, 3] {
            b.script(
                Rule::on_api(EndTxn)
                    .nth(n)
                    .respond_error(C::CONCURRENT_TRANSACTIONS),
            );
        }
        within(p.commit_transaction(CALL)).await.unwrap();
        assert_eq!(within(d).await.unwrap().offset, Some(0));
        assert_eq!(
            answers(&b, before),
            [
                (EndTxn, C::NOT_COORDINATOR),
                (FindCoordinator, C::NONE),
                (EndTxn, C::CONCURRENT_TRANSACTIONS),
                (EndTxn, C::CONCURRENT_TRANSACTIONS),
                (EndTxn, C::NONE),
            ],
            "transaction.version {level}"
        );
        let log = b.transaction_log();
        assert!(of(&log, EndTxn)
            .iter()
            .all(|r| matches!(r.detail, TxnDetail::EndTxn { commit: true, .. })));
        // The next transaction, at the epoch the commit left (version 2: the next one).
        b.clear_script();
        commit_one(&p, "b").await;
        let epochs: Vec<i16> = of(&b.transaction_log(), Produce)
            .iter()
            .map(|r| r.producer.1)
            .collect();
        assert_eq!(epochs, [0, if version == 2 { 1 } else { 0 }]);
        assert_eq!(values(&b, 0), ["a", "b"]);
        within(p.close(CALL)).await.unwrap();
    }
}

/// The call `operation` ran out of its timeout.
fn assert_timed_out(err: &Error, operation: &str) {
    assert!(
        matches!(err, Error::TransactionTimeout { operation: o, .. } if *o == operation),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_call_that_keeps_failing_retriably_times_out_and_succeeds_when_called_again() {
    use ErrorCode as C;
    for (level, version) in LEVELS {
        let b = broker(level).await;
        let loading = b.script(
            Rule::on_api(ApiKey::InitProducerId).respond_error(C::COORDINATOR_LOAD_IN_PROGRESS),
        );
        let p = producer(&b).await;
        let start = Instant::now();
        let err = within(p.init_transactions(Duration::from_secs(1)))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert_timed_out(&err, "init_transactions");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(!err.is_fatal() && !err.requires_abort(), "{err:?}");
        assert!(
            loading.fired() >= 3,
            "retried within the call's timeout: {}",
            loading.fired()
        );
        assert_eq!(p.transaction_version(), None, "not initialized");
        // The fault passes: the same call, asked again, completes.
        b.clear_script();
        within(p.init_transactions(CALL)).await.unwrap();
        assert_eq!(p.transaction_version(), Some(version));
        let inits = errors(&b.transaction_log(), ApiKey::InitProducerId);
        assert_eq!(inits.last(), Some(&C::NONE));
        assert!(inits[..inits.len() - 1]
            .iter()
            .all(|&c| c == C::COORDINATOR_LOAD_IN_PROGRESS));

        // The same for a commit whose EndTxn keeps meeting a loading coordinator.
        p.begin_transaction().unwrap();
        let d = send(&p, 1, "a").await;
        let loading =
            b.script(Rule::on_api(ApiKey::EndTxn).respond_error(C::COORDINATOR_LOAD_IN_PROGRESS));
        let err = within(p.commit_transaction(Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert_timed_out(&err, "commit_transaction");
        assert!(loading.fired() >= 3, "{}", loading.fired());
        b.clear_script();
        within(p.commit_transaction(CALL)).await.unwrap();
        within(d).await.unwrap();
        let ends = errors(&b.transaction_log(), ApiKey::EndTxn);
        assert_eq!(ends.iter().filter(|c| c.is_ok()).count(), 1, "{ends:?}");
        commit_one(&p, "b").await;
        within(p.close(CALL)).await.unwrap();
    }
}

/// Fatal: the call fails with [`Error::TransactionFatal`], and so does everything after.
fn assert_fatal(err: &Error, code: ErrorCode) {
    assert!(matches!(err, Error::TransactionFatal { .. }), "{err:?}");
    assert!(err.is_fatal() && !err.requires_abort(), "{err:?}");
    assert_eq!(err.code(), Some(code), "{err:?}");
}

#[tokio::test]
async fn a_fenced_commit_is_fatal_and_later_sends_fail_with_it() {
    for (level, version) in LEVELS {
        let b = broker(level).await;
        let p = initialized(&b, version).await;
        p.begin_transaction().unwrap();
        let d = send(&p, 0, "a").await;
        fail_once(&b, ApiKey::EndTxn, ErrorCode::PRODUCER_FENCED);
        let err = within(p.commit_transaction(CALL)).await.unwrap_err();
        assert_fatal(&err, ErrorCode::PRODUCER_FENCED);
        // The record reached the broker before the commit failed.
        within(d).await.unwrap();
        let later = p.send(record(0, "b")).await.unwrap_err();
        assert_fatal(&later, ErrorCode::PRODUCER_FENCED);
        assert_fatal(
            &p.begin_transaction().unwrap_err(),
            ErrorCode::PRODUCER_FENCED,
        );
        let ends = of(&b.transaction_log(), ApiKey::EndTxn).len();
        assert_eq!(ends, 1, "a fatal answer is not retried");
        let _ = within(p.close(CALL)).await;
    }
}

#[tokio::test]
async fn an_unauthorized_transactional_id_fails_init_for_good() {
    for (level, _) in LEVELS {
        let b = broker(level).await;
        b.script(
            Rule::on_api(ApiKey::InitProducerId)
                .respond_error(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        );
        let p = producer(&b).await;
        let err = within(p.init_transactions(CALL)).await.unwrap_err();
        assert_fatal(&err, ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        let later = p.send(record(0, "b")).await.unwrap_err();
        assert_fatal(&later, ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        let again = within(p.init_transactions(CALL)).await.unwrap_err();
        assert_fatal(&again, ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert_eq!(b.request_count(ApiKey::InitProducerId), 1, "not retried");
        let _ = within(p.close(CALL)).await;
    }
}

/// The transaction failed: `err` asks for an abort.
fn assert_abortable(err: &Error, code: ErrorCode) {
    assert!(err.requires_abort() && !err.is_fatal(), "{err:?}");
    assert_eq!(err.code(), Some(code), "{err:?}");
}

#[tokio::test]
async fn a_partition_the_coordinator_will_not_add_makes_the_transaction_abortable() {
    // Version 1 only: under version 2 no AddPartitionsToTxn is sent.
    let b = broker(0).await;
    let p = initialized(&b, 1).await;
    fail_once(
        &b,
        ApiKey::AddPartitionsToTxn,
        ErrorCode::TRANSACTION_ABORTABLE,
    );
    p.begin_transaction().unwrap();
    let d = send(&p, 0, "lost").await;
    let err = within(p.commit_transaction(CALL)).await.unwrap_err();
    assert_abortable(&err, ErrorCode::TRANSACTION_ABORTABLE);
    assert!(within(d).await.is_err(), "the held record is failed");
    within(p.abort_transaction(CALL)).await.unwrap();
    commit_one(&p, "kept").await;
    assert_eq!(values(&b, 0), ["kept"], "the held record never went");
    use ApiKey::{AddPartitionsToTxn, EndTxn, Produce};
    use ErrorCode as C;
    let after_init = b
        .transaction_log()
        .iter()
        .position(|r| r.api == AddPartitionsToTxn)
        .unwrap();
    assert_eq!(
        answers(&b, after_init),
        [
            (AddPartitionsToTxn, C::TRANSACTION_ABORTABLE),
            // Nothing reached the coordinator: the abort needs no EndTxn.
            (AddPartitionsToTxn, C::NONE),
            (Produce, C::NONE),
            (EndTxn, C::NONE),
        ]
    );
    within(p.close(CALL)).await.unwrap();
}

#[tokio::test]
async fn offsets_the_group_coordinator_refuses_make_the_transaction_abortable() {
    for code in [
        ErrorCode::TRANSACTION_ABORTABLE,
        ErrorCode::GROUP_AUTHORIZATION_FAILED,
    ] {
        for (level, version) in LEVELS {
            let b = broker(level).await;
            let p = initialized(&b, version).await;
            let group = ConsumerGroupMetadata::new(GROUP);
            fail_once(&b, ApiKey::TxnOffsetCommit, code);
            p.begin_transaction().unwrap();
            let d = send(&p, 0, "aborted").await;
            let err = within(p.send_offsets_to_transaction(offsets(5), &group, CALL))
                .await
                .unwrap_err();
            assert_abortable(&err, code);
            let err = within(p.commit_transaction(CALL)).await.unwrap_err();
            assert_abortable(&err, code);
            within(p.abort_transaction(CALL)).await.unwrap();
            let _ = within(d).await;
            assert!(b.committed_offsets(GROUP).is_empty());

            // The next transaction commits its records and offsets.
            p.begin_transaction().unwrap();
            let d = send(&p, 1, "committed").await;
            within(p.send_offsets_to_transaction(offsets(6), &group, CALL))
                .await
                .unwrap();
            within(p.commit_transaction(CALL)).await.unwrap();
            within(d).await.unwrap();
            assert_eq!(
                b.committed_offsets(GROUP).into_iter().collect::<Vec<_>>(),
                [(("in".to_string(), 0), 6)],
                "{} at transaction.version {level}",
                code.name()
            );
            let log = b.transaction_log();
            let commits = errors(&log, ApiKey::TxnOffsetCommit);
            assert_eq!(commits, [code, ErrorCode::NONE], "not retried");
            let ends: Vec<_> = of(&log, ApiKey::EndTxn)
                .iter()
                .map(|r| (r.detail.clone(), r.error))
                .filter_map(|(d, e)| match d {
                    TxnDetail::EndTxn { commit, .. } => Some((commit, e)),
                    _ => None,
                })
                .collect();
            assert_eq!(
                ends,
                [(false, ErrorCode::NONE), (true, ErrorCode::NONE)],
                "the first transaction aborted, the second committed"
            );
            within(p.close(CALL)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn each_protocol_version_sends_what_it_must_and_nothing_else() {
    use ApiKey::{AddOffsetsToTxn, AddPartitionsToTxn, EndTxn, Produce, TxnOffsetCommit};
    for (level, version) in [(0, 1), (1, 1), (2, 2)] {
        let b = broker(level).await;
        let p = initialized(&b, version).await;
        let group = ConsumerGroupMetadata::new(GROUP);
        for round in 0..2 {
            p.begin_transaction().unwrap();
            let mut deliveries = Vec::new();
            for i in 0..6 {
                deliveries.push(send(&p, i % 2, &format!("{round}-{i}")).await);
            }
            within(p.send_offsets_to_transaction(offsets(10 + round), &group, CALL))
                .await
                .unwrap();
            within(p.commit_transaction(CALL)).await.unwrap();
            for d in deliveries {
                within(d).await.unwrap();
            }
        }
        let log = b.transaction_log();
        let at = |s: &str| format!("{s} at transaction.version {level}: {log:#?}");
        let produces = of(&log, Produce);
        assert_eq!(
            produces.len(),
            b.request_count(Produce),
            "{}",
            at("every Produce carries the transactional id")
        );
        assert!(produces
            .iter()
            .all(|r| r.transactional_id.as_deref() == Some(ID) && r.error.is_ok()));
        assert!(
            log.iter().all(|r| r.error.is_ok()),
            "{}",
            at("nothing refused")
        );
        let ends = of(&log, EndTxn);
        assert_eq!(ends.len(), 2, "{}", at("one EndTxn per transaction"));
        if version == 1 {
            assert!(
                produces.iter().all(|r| r.version <= 11),
                "{}",
                at("Produce at most v11")
            );
            assert!(ends.iter().all(|r| r.version <= 4), "{}", at("EndTxn v4"));
            assert!(
                of(&log, TxnOffsetCommit).iter().all(|r| r.version <= 4),
                "{}",
                at("TxnOffsetCommit v4")
            );
            // Per transaction: each partition is added before its first Produce, the group
            // before its TxnOffsetCommit.
            let mut start = 0;
            for end in log
                .iter()
                .enumerate()
                .filter(|(_, r)| r.api == EndTxn)
                .map(|(i, _)| i)
            {
                let txn = &log[start..end];
                let mut added = Vec::new();
                for r in txn {
                    match &r.detail {
                        TxnDetail::AddPartitionsToTxn { partitions } => {
                            added.extend(partitions.iter().cloned())
                        }
                        TxnDetail::Produce { partitions } => assert!(
                            partitions.iter().all(|p| added.contains(p)),
                            "{}",
                            at("a partition added before its Produce")
                        ),
                        _ => {}
                    }
                }
                added.sort();
                assert_eq!(added, [("t".to_string(), 0), ("t".to_string(), 1)]);
                let group_added = txn.iter().position(|r| r.api == AddOffsetsToTxn);
                let offsets_sent = txn.iter().position(|r| r.api == TxnOffsetCommit);
                assert!(
                    group_added.is_some() && group_added < offsets_sent,
                    "{}",
                    at("AddOffsetsToTxn before TxnOffsetCommit")
                );
                start = end + 1;
            }
        } else {
            assert!(
                of(&log, AddPartitionsToTxn).is_empty() && of(&log, AddOffsetsToTxn).is_empty(),
                "{}",
                at("no AddPartitionsToTxn or AddOffsetsToTxn")
            );
            assert!(
                produces.iter().all(|r| r.version == 12),
                "{}",
                at("Produce v12")
            );
            assert!(
                of(&log, TxnOffsetCommit).iter().all(|r| r.version == 5),
                "{}",
                at("TxnOffsetCommit v5")
            );
            // Each EndTxn v5 moves the producer to the next epoch, which the next
            // transaction's batches carry, their sequences from 0.
            let answered: Vec<_> = ends
                .iter()
                .map(|r| match r.detail {
                    TxnDetail::EndTxn { answered, .. } => (r.version, r.producer, answered),
                    _ => unreachable!(),
                })
                .collect();
            assert_eq!(
                answered,
                [
                    (5, (1000, 0), Some((1000, 1))),
                    (5, (1000, 1), Some((1000, 2)))
                ]
            );
            let epochs: Vec<i16> = b.records("t", 0).iter().map(|r| r.producer_epoch).collect();
            assert_eq!(epochs, [0, 0, 0, 1, 1, 1]);
            let sequences: Vec<i32> = b.records("t", 0).iter().map(|r| r.sequence).collect();
            assert_eq!(sequences, [0, 1, 2, 0, 1, 2]);
        }
        assert_eq!(
            b.committed_offsets(GROUP).into_iter().collect::<Vec<_>>(),
            [(("in".to_string(), 0), 11)]
        );
        assert_eq!(values(&b, 1), ["0-1", "0-3", "0-5", "1-1", "1-3", "1-5"]);
        within(p.close(CALL)).await.unwrap();
    }
}

#[tokio::test]
async fn a_lost_end_txn_answer_is_retried_at_the_same_epoch() {
    for (level, version) in LEVELS {
        let (b, p, d) = flushed_transaction(level, version).await;
        b.script(
            Rule::on_api(ApiKey::EndTxn)
                .times(1)
                .close_connection_after(),
        );
        within(p.commit_transaction(CALL)).await.unwrap();
        within(d).await.unwrap();
        commit_one(&p, "b").await;
        // The coordinator committed at the first EndTxn; the retry carries the same epoch and
        // is answered as that one was (version 2: with the epoch it moved to).
        let log = b.transaction_log();
        let ends: Vec<_> = of(&log, ApiKey::EndTxn)
            .iter()
            .map(|r| (r.producer, r.detail.clone(), r.error))
            .collect();
        let next = |epoch| (version == 2).then_some((1000, epoch));
        let end = |epoch, answered| {
            (
                (1000, epoch),
                TxnDetail::EndTxn {
                    commit: true,
                    answered,
                },
                ErrorCode::NONE,
            )
        };
        let second = if version == 2 { 1 } else { 0 };
        assert_eq!(
            ends,
            [end(0, next(1)), end(0, next(1)), end(second, next(2))],
            "transaction.version {level}"
        );
        assert_eq!(values(&b, 0), ["a", "b"]);
        within(p.close(CALL)).await.unwrap();
    }
}

#[tokio::test]
async fn after_a_failed_batch_the_abort_moves_the_producer_to_a_new_epoch() {
    use ApiKey::{EndTxn, InitProducerId, Produce};
    for (level, version) in LEVELS {
        let b = broker(level).await;
        let p = initialized(&b, version).await;
        p.begin_transaction().unwrap();
        within(send(&p, 0, "a").await).await.unwrap();
        b.script(
            Rule::on_produce()
                .times(1)
                .respond_error(ErrorCode::INVALID_RECORD),
        );
        assert!(within(send(&p, 0, "b").await).await.is_err());
        let err = within(p.commit_transaction(CALL)).await.unwrap_err();
        assert_abortable(&err, ErrorCode::INVALID_RECORD);
        within(p.abort_transaction(CALL)).await.unwrap();
        // The partition's sequence has a gap (b's): only a new epoch restarts it. Version 1
        // asks for one after EndTxn with InitProducerId (KIP-360), version 2's EndTxn gives it.
        commit_one(&p, "c").await;
        let log = b.transaction_log();
        let after_abort: Vec<_> = log
            .iter()
            .skip_while(|r| r.api != EndTxn)
            .map(|r| (r.api, r.producer))
            .collect();
        let expected: &[_] = match version {
            1 => &[
                (EndTxn, (1000, 0)),
                (InitProducerId, (1000, 0)),
                (ApiKey::AddPartitionsToTxn, (1000, 1)),
                (Produce, (1000, 1)),
                (EndTxn, (1000, 1)),
            ],
            _ => &[
                (EndTxn, (1000, 0)),
                (Produce, (1000, 1)),
                (EndTxn, (1000, 1)),
            ],
        };
        assert_eq!(after_abort, expected, "transaction.version {level}");
        let stored: Vec<_> = b
            .records("t", 0)
            .iter()
            .map(|r| {
                (
                    r.value_str().unwrap().to_string(),
                    r.producer_epoch,
                    r.sequence,
                )
            })
            .collect();
        assert_eq!(stored, [("a".into(), 0, 0), ("c".into(), 1, 0)]);
        within(p.close(CALL)).await.unwrap();
    }
}
