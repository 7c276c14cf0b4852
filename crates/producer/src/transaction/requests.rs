//! The transaction protocol: finding coordinators (FindCoordinator), the producer id for the
//! transactional id (InitProducerId), adding partitions and groups (AddPartitionsToTxn,
//! AddOffsetsToTxn), committing offsets (TxnOffsetCommit) and ending (EndTxn), each retried
//! through the errors the Java client retries, and every error code classified as fatal,
//! abortable or retriable.

use std::sync::Arc;
use std::time::Duration;

use kafka_producer_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_producer_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use kafka_producer_protocol::ErrorCode;

use super::{is_fatal_code, ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::accumulator::ProducerIdEpoch;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::shared::Shared;

/// FindCoordinator's key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Group = 0,
    Transaction = 1,
}

/// What one attempt at a coordinator request came to.
enum Step<T> {
    Done(T),
    /// Try again after a backoff (`fast`: CONCURRENT_TRANSACTIONS, which clears in milliseconds).
    Retry {
        error: Error,
        fast: bool,
    },
    /// This broker is not (or no longer) the coordinator: find it again.
    Refind(Error),
    /// The transaction can only be aborted.
    Abortable(Error),
    /// The producer can no longer be used.
    Fatal(Error),
}

/// The step for a coordinator's `code` (not OK).
fn classify<T>(request: &'static str, code: ErrorCode, message: Option<String>) -> Step<T> {
    let error = Error::Coordinator {
        request,
        code,
        message,
    };
    match code {
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => Step::Refind(error),
        ErrorCode::CONCURRENT_TRANSACTIONS => Step::Retry { error, fast: true },
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS | ErrorCode::REQUEST_TIMED_OUT => {
            Step::Retry { error, fast: false }
        }
        // The coordinator's INVALID_PRODUCER_EPOCH means a newer producer took over (KIP-588).
        ErrorCode::INVALID_PRODUCER_EPOCH => Step::Fatal(error),
        code if is_fatal_code(code) => Step::Fatal(error),
        ErrorCode::TRANSACTION_ABORTABLE
        | ErrorCode::TOPIC_AUTHORIZATION_FAILED
        | ErrorCode::GROUP_AUTHORIZATION_FAILED
        | ErrorCode::UNKNOWN_MEMBER_ID
        | ErrorCode::ILLEGAL_GENERATION
        | ErrorCode::FENCED_INSTANCE_ID
        | ErrorCode::REBALANCE_IN_PROGRESS => Step::Abortable(error),
        code if code.is_retriable() => Step::Retry { error, fast: false },
        _ => Step::Abortable(error),
    }
}

/// The step for a request answered per partition: the worst partition's error decides (fatal,
/// then abortable, then the last retriable one); done when every code is OK.
fn worst_step(request: &'static str, codes: impl Iterator<Item = ErrorCode>) -> Step<()> {
    let mut worst = Step::Done(());
    for code in codes.filter(|c| !c.is_ok()) {
        worst = match (worst, classify(request, code, None)) {
            (w @ Step::Fatal(_), _) => w,
            (_, s @ Step::Fatal(_)) => s,
            (w @ Step::Abortable(_), _) => w,
            (_, s) => s,
        };
    }
    worst
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Shared {
    /// Finds the coordinator of `key` and connects to it.
    async fn find_coordinator(
        self: &Arc<Self>,
        key_type: KeyType,
        key: &str,
    ) -> Result<Connection> {
        let found = self
            .on_any_broker(|conn| async move {
                let version = conn.version(ApiKey::FindCoordinator)?;
                let mut req = FindCoordinatorRequest::default().with_key_type(key_type as i8);
                if version >= 4 {
                    req = req.with_coordinator_keys(vec![str_bytes(key)]);
                } else {
                    req = req.with_key(str_bytes(key));
                }
                let resp = conn.call(&req, version).await?;
                let (code, message, node, host, port) = match resp.coordinators.first() {
                    Some(c) if version >= 4 => (
                        c.error_code,
                        c.error_message.clone(),
                        c.node_id.0,
                        c.host.clone(),
                        c.port,
                    ),
                    _ => (
                        resp.error_code,
                        resp.error_message.clone(),
                        resp.node_id.0,
                        resp.host.clone(),
                        resp.port,
                    ),
                };
                let code = ErrorCode(code);
                if !code.is_ok() {
                    return Err(Error::Coordinator {
                        request: "FindCoordinator",
                        code,
                        message: message.map(|m| m.to_string()),
                    });
                }
                Ok((node, format!("{host}:{port}")))
            })
            .await;
        let (node, addr) = match found {
            Ok(found) => found,
            // Every broker answered with the same error: it is the answer.
            Err(Error::Bootstrap { details, .. }) => {
                return Err(Error::Network {
                    broker: "FindCoordinator".into(),
                    message: details,
                })
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(?key_type, key, node, %addr, "coordinator found");
        self.connection_to(node, &addr).await
    }

    /// The transaction coordinator's connection: the one known, or found again.
    async fn transaction_coordinator(self: &Arc<Self>) -> Result<Connection> {
        let txn = self.transactions().expect("transactional");
        if let Some(c) = txn.lock().coordinator.clone().filter(|c| !c.is_closed()) {
            return Ok(c);
        }
        let conn = self
            .find_coordinator(KeyType::Transaction, txn.id())
            .await?;
        let v2 = conn.transaction_version() >= 2
            && conn.version(ApiKey::EndTxn).is_ok_and(|v| v >= 5)
            && conn.version(ApiKey::TxnOffsetCommit).is_ok_and(|v| v >= 5)
            && conn.version(ApiKey::Produce).is_ok_and(|v| v >= 12);
        let mut state = txn.lock();
        state.v2_available = v2;
        state.coordinator = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `attempt` against a coordinator until it is done, retrying as `Step` says, for as
    /// long as the producer is open. Abortable and fatal steps come back as
    /// [`Error::TransactionAbortable`] and [`Error::TransactionFatal`].
    async fn with_coordinator<T, F, Fut>(
        self: &Arc<Self>,
        group: Option<&str>,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<Step<T>>>,
    {
        let txn = self.transactions().expect("transactional");
        let mut failures = 0u32;
        loop {
            if let Some(e) = self.failure() {
                return Err(e.clone());
            }
            if self.is_closing() {
                return Err(Error::Closed { topic: None });
            }
            let conn = match group {
                None => self.transaction_coordinator().await,
                Some(group) => self.find_coordinator(KeyType::Group, group).await,
            };
            let step = match conn {
                Ok(conn) => match attempt(conn).await {
                    Ok(step) => step,
                    // No answer: maybe not the coordinator any more.
                    Err(e) => Step::Refind(e),
                },
                Err(e @ Error::Authentication { .. }) => Step::Fatal(e),
                Err(e @ Error::Coordinator { code, .. }) => match code {
                    code if is_fatal_code(code) => Step::Fatal(e),
                    ErrorCode::GROUP_AUTHORIZATION_FAILED => Step::Abortable(e),
                    _ => Step::Refind(e),
                },
                Err(e) => Step::Refind(e),
            };
            let (error, pause) = match step {
                Step::Done(v) => return Ok(v),
                Step::Fatal(e) => return Err(txn.fatal(e)),
                Step::Abortable(e) => {
                    return Err(Error::TransactionAbortable {
                        transactional_id: txn.id().to_string(),
                        reason: Box::new(e),
                    })
                }
                Step::Retry { error, fast: true } => (error, Duration::from_millis(20)),
                Step::Retry { error, fast: false } => (error, self.backoff(failures)),
                Step::Refind(error) => {
                    if group.is_none() {
                        txn.lock().coordinator = None;
                    }
                    (error, self.backoff(failures))
                }
            };
            tracing::debug!(error = %error, "transactional request: retrying");
            failures += 1;
            tokio::time::sleep(pause).await;
        }
    }

    fn current_producer(&self) -> ProducerIdEpoch {
        self.idempotence()
            .and_then(|i| i.current())
            .unwrap_or(ProducerIdEpoch { id: -1, epoch: -1 })
    }

    /// InitProducerId with the transactional id: a fresh id and epoch (fencing any earlier
    /// producer of the id), or with `bump` the next epoch of the current id (KIP-360), after
    /// a transaction whose sequences have a gap was aborted.
    pub(super) async fn init_transactional_id(
        self: &Arc<Self>,
        bump: bool,
    ) -> Result<ProducerIdEpoch> {
        let txn = self.transactions().expect("transactional");
        let timeout_ms = self
            .config()
            .transaction_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let current = if bump {
            self.current_producer()
        } else {
            ProducerIdEpoch { id: -1, epoch: -1 }
        };
        let id = self
            .with_coordinator(None, |conn| async move {
                let version = conn.version(ApiKey::InitProducerId)?;
                let mut req = InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(str_bytes(txn.id()))))
                    .with_transaction_timeout_ms(timeout_ms);
                if version >= 3 {
                    req = req
                        .with_producer_id(ProducerId(current.id))
                        .with_producer_epoch(current.epoch);
                }
                let resp = conn.call(&req, version).await?;
                let code = ErrorCode(resp.error_code);
                if !code.is_ok() {
                    return Ok(match classify("InitProducerId", code, None) {
                        // Nothing to abort yet: an abortable answer here is the end.
                        Step::Abortable(e) => Step::Fatal(e),
                        step => step,
                    });
                }
                Ok(Step::Done(ProducerIdEpoch {
                    id: resp.producer_id.0,
                    epoch: resp.producer_epoch,
                }))
            })
            .await?;
        if bump {
            tracing::info!(
                transactional_id = txn.id(),
                producer_id = id.id,
                from_epoch = current.epoch,
                to_epoch = id.epoch,
                "producer epoch bumped"
            );
        }
        self.set_producer(id);
        Ok(id)
    }

    /// Version 1: AddPartitionsToTxn for `partitions`.
    pub(super) async fn add_partitions_to_txn(
        self: &Arc<Self>,
        partitions: &[(Arc<str>, i32)],
    ) -> Result<()> {
        let txn = self.transactions().expect("transactional");
        let producer = self.current_producer();
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (topic, partition) in partitions {
            match topics.iter_mut().find(|t| *t.name.0 == **topic) {
                Some(t) => t.partitions.push(*partition),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(vec![*partition]),
                ),
            }
        }
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes(txn.id())))
            .with_v3_and_below_producer_id(ProducerId(producer.id))
            .with_v3_and_below_producer_epoch(producer.epoch)
            .with_v3_and_below_topics(topics);
        let req = &req;
        self.with_coordinator(None, |conn| async move {
            let version = conn.version(ApiKey::AddPartitionsToTxn)?;
            let resp = conn.call(req, version).await?;
            // The worst partition's error decides; OPERATION_NOT_ATTEMPTED only means another
            // partition failed.
            let codes = resp
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| ErrorCode(p.partition_error_code))
                .filter(|c| *c != ErrorCode::OPERATION_NOT_ATTEMPTED);
            Ok(worst_step("AddPartitionsToTxn", codes))
        })
        .await
    }

    /// The consumed offsets join the transaction: version 1 adds the group (AddOffsetsToTxn)
    /// first; then TxnOffsetCommit to the group's coordinator.
    pub(super) async fn send_offsets(
        self: &Arc<Self>,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let txn = self.transactions().expect("transactional");
        let version = txn.lock().version;
        let producer = self.current_producer();
        if version < 2 {
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes(txn.id())))
                .with_producer_id(ProducerId(producer.id))
                .with_producer_epoch(producer.epoch)
                .with_group_id(GroupId(str_bytes(&group.group_id)));
            let req = &req;
            self.with_coordinator(None, |conn| async move {
                let v = conn.version(ApiKey::AddOffsetsToTxn)?;
                let resp = conn.call(req, v).await?;
                let code = ErrorCode(resp.error_code);
                Ok(match code.is_ok() {
                    true => Step::Done(()),
                    false => classify("AddOffsetsToTxn", code, None),
                })
            })
            .await?;
        }
        txn.lock().started = true;
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        let mut sorted: Vec<&(TopicPartition, OffsetAndMetadata)> = offsets.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (tp, om) in sorted {
            let partition = TxnOffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(om.offset)
                .with_committed_leader_epoch(om.leader_epoch.unwrap_or(-1))
                .with_committed_metadata(om.metadata.as_deref().map(str_bytes));
            match topics.last_mut().filter(|t| *t.name.0 == *tp.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes(&tp.topic)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let topics = &topics;
        self.with_coordinator(Some(&group.group_id), |conn| async move {
            let v = conn.version(ApiKey::TxnOffsetCommit)?;
            let v = if version >= 2 { v } else { v.min(4) };
            if version >= 2 && v < 5 {
                return Ok(Step::Fatal(Error::Coordinator {
                    request: "TxnOffsetCommit",
                    code: ErrorCode::UNSUPPORTED_VERSION,
                    message: Some(format!(
                        "transaction.version 2 needs TxnOffsetCommit v5; broker {} speaks v{v}",
                        conn.addr()
                    )),
                }));
            }
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(str_bytes(txn.id())))
                .with_group_id(GroupId(str_bytes(&group.group_id)))
                .with_producer_id(ProducerId(producer.id))
                .with_producer_epoch(producer.epoch)
                .with_topics(topics.clone());
            if v >= 3 {
                req = req
                    .with_generation_id(group.generation_id)
                    .with_member_id(str_bytes(&group.member_id))
                    .with_group_instance_id(group.group_instance_id.as_deref().map(str_bytes));
            }
            let resp = conn.call(&req, v).await?;
            // UNKNOWN_TOPIC_OR_PARTITION (retriable): the group's coordinator moved, or the
            // topic is new to it.
            let codes = resp
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| ErrorCode(p.error_code));
            Ok(worst_step("TxnOffsetCommit", codes))
        })
        .await
    }

    /// EndTxn. Under version 2 its answer moves the producer to a new epoch (or id); returns
    /// whether it did.
    pub(super) async fn end_txn(self: &Arc<Self>, commit: bool, version: i16) -> Result<bool> {
        let txn = self.transactions().expect("transactional");
        let producer = self.current_producer();
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(txn.id())))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_committed(commit);
        let req = &req;
        let timeout = self.config().transaction_timeout;
        let next = self
            .with_coordinator(None, |conn| async move {
                let v = conn.version(ApiKey::EndTxn)?;
                let v = if version >= 2 { v } else { v.min(4) };
                let resp = conn.call(req, v).await?;
                let code = ErrorCode(resp.error_code);
                if !code.is_ok() {
                    // The coordinator aborts a transaction open longer than its timeout and
                    // moves the id to a new epoch, which then looks like a newer producer
                    // (version 1) or a finished transaction (version 2).
                    let age = txn.age();
                    let timed_out = matches!(
                        code,
                        ErrorCode::PRODUCER_FENCED
                            | ErrorCode::INVALID_PRODUCER_EPOCH
                            | ErrorCode::INVALID_TXN_STATE
                    ) && age > timeout;
                    let hint = timed_out.then(|| {
                        format!(
                            "the transaction was open for {} ms, longer than \
                             transaction.timeout.ms ({} ms): the coordinator aborted it",
                            age.as_millis(),
                            timeout.as_millis()
                        )
                    });
                    return Ok(classify("EndTxn", code, hint));
                }
                Ok(Step::Done((v >= 5 && resp.producer_id.0 >= 0).then_some(
                    ProducerIdEpoch {
                        id: resp.producer_id.0,
                        epoch: resp.producer_epoch,
                    },
                )))
            })
            .await?;
        tracing::debug!(
            transactional_id = txn.id(),
            commit,
            ?next,
            "transaction ended"
        );
        match next {
            Some(next) => {
                self.set_producer(next);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a coordinator may answer a transactional request with, and what the
    /// producer does: the Java client's classification (KIP-691).
    #[test]
    fn every_coordinator_error_code() {
        #[rustfmt::skip]
        let table = [
            (ErrorCode::NOT_COORDINATOR,                       "refind"),
            (ErrorCode::COORDINATOR_NOT_AVAILABLE,             "refind"),
            (ErrorCode::CONCURRENT_TRANSACTIONS,               "retry fast"),
            (ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,          "retry"),
            (ErrorCode::REQUEST_TIMED_OUT,                     "retry"),
            (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,            "retry"),
            (ErrorCode::PRODUCER_FENCED,                       "fatal"),
            (ErrorCode::INVALID_PRODUCER_EPOCH,                "fatal"),
            (ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "fatal"),
            (ErrorCode::CLUSTER_AUTHORIZATION_FAILED,          "fatal"),
            (ErrorCode::INVALID_TXN_STATE,                     "fatal"),
            (ErrorCode::INVALID_PRODUCER_ID_MAPPING,           "fatal"),
            (ErrorCode::INVALID_TRANSACTION_TIMEOUT,           "fatal"),
            (ErrorCode::UNSUPPORTED_VERSION,                   "fatal"),
            (ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,        "fatal"),
            (ErrorCode::TRANSACTION_ABORTABLE,                 "abortable"),
            (ErrorCode::TOPIC_AUTHORIZATION_FAILED,            "abortable"),
            (ErrorCode::GROUP_AUTHORIZATION_FAILED,            "abortable"),
            (ErrorCode::UNKNOWN_MEMBER_ID,                     "abortable"),
            (ErrorCode::ILLEGAL_GENERATION,                    "abortable"),
            (ErrorCode::FENCED_INSTANCE_ID,                    "abortable"),
            (ErrorCode::REBALANCE_IN_PROGRESS,                 "abortable"),
            (ErrorCode::UNKNOWN_SERVER_ERROR,                  "abortable"),
            (ErrorCode(31000),                                 "abortable"),
        ];
        for (code, expected) in table {
            let got = match classify::<()>("EndTxn", code, None) {
                Step::Done(()) => "done",
                Step::Retry { fast: true, .. } => "retry fast",
                Step::Retry { fast: false, .. } => "retry",
                Step::Refind(_) => "refind",
                Step::Abortable(_) => "abortable",
                Step::Fatal(_) => "fatal",
            };
            assert_eq!(got, expected, "{}", code.name());
        }
    }
}
