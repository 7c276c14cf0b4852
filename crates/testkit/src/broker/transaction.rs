//! The transaction coordinator (KIP-98, KIP-890) and the group coordinator's transactional
//! offset commits, as far as a producer needs them: the fake broker is the coordinator of every
//! transactional id and group.
//!
//! Kept small: an ended transaction writes no markers (offsets stay dense), no `read_committed`
//! view is kept, and an EndTxn completes at once, so the coordinator is never busy, loading or
//! elsewhere unless a rule says so. EndTxn(commit) makes the transaction's pending offsets the
//! group's committed ones. What it does check is what a correct producer must get right:
//!
//! - every request's producer id and epoch are the transactional id's current ones;
//! - a partition joined the transaction before a Produce below v12 writes to it, and a group
//!   before a TxnOffsetCommit below v5 (as Kafka 3.6+ verifies);
//! - only an open transaction is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::BytesMut;
use kafka_producer_protocol::kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_producer_protocol::kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorAnswer;
use kafka_producer_protocol::kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, BrokerId, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, ProducerId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use kafka_producer_protocol::{DecodedBatch, ErrorCode};

use super::log::{TxnDetail, TxnRequest};
use super::script::{Fault, Faults};
use super::serve::{deliver, After, Request, Shared};

/// The first producer id InitProducerId hands out.
const FIRST_PRODUCER_ID: i64 = 1000;

/// Kafka's `transaction.max.timeout.ms` default: a longer `transaction.timeout.ms` is refused.
const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;

/// The error message of a scripted error, where the response has one.
const SCRIPTED: &str = "scripted by the fake broker";

/// Every transactional id's state, the groups' committed offsets, and the request log.
#[derive(Debug, Default)]
pub(super) struct Coordinator {
    transactions: HashMap<String, Txn>,
    /// Per group, per (topic, partition): the committed offset.
    committed: BTreeMap<String, BTreeMap<(String, i32), i64>>,
    next_producer_id: i64,
    pub(super) log: Vec<TxnRequest>,
}

/// One transactional id.
#[derive(Debug)]
struct Txn {
    producer_id: i64,
    epoch: i16,
    /// The open transaction's partitions and groups; both empty while none is open.
    partitions: BTreeSet<(String, i32)>,
    groups: BTreeSet<String>,
    /// Offsets of the open transaction: (group, topic, partition) to offset.
    pending: BTreeMap<(String, String, i32), i64>,
    /// How the last transaction ended (commit?) and the epoch its EndTxn carried: a retry of
    /// that EndTxn, whose answer was lost, is answered as it was.
    last_end: Option<(bool, i16)>,
}

impl Txn {
    fn is_open(&self) -> bool {
        !self.partitions.is_empty() || !self.groups.is_empty()
    }

    fn clear(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        self.pending.clear();
    }
}

impl Coordinator {
    /// A producer id never handed out before (idempotent and transactional producers alike).
    pub(super) fn new_producer_id(&mut self) -> i64 {
        let id = FIRST_PRODUCER_ID + self.next_producer_id;
        self.next_producer_id += 1;
        id
    }

    /// The offsets `group` has committed.
    pub(super) fn committed(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        self.committed.get(group).cloned().unwrap_or_default()
    }

    /// The transactional id's state if the request's producer id and epoch are its current
    /// ones; else the error Kafka answers.
    fn producer(
        &mut self,
        transactional_id: &str,
        (id, epoch): (i64, i16),
        fenced: ErrorCode,
    ) -> Result<&mut Txn, ErrorCode> {
        match self.transactions.get_mut(transactional_id) {
            Some(txn) if txn.producer_id == id && txn.epoch == epoch => Ok(txn),
            Some(txn) if txn.producer_id == id => Err(fenced),
            _ => Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING),
        }
    }

    /// Moves `txn` to its next epoch, or to a new producer id when the epoch is exhausted.
    fn bump(&mut self, transactional_id: &str) -> (i64, i16) {
        let exhausted = self
            .transactions
            .get(transactional_id)
            .is_some_and(|t| t.epoch >= i16::MAX - 1);
        let fresh = exhausted.then(|| self.new_producer_id());
        let txn = self
            .transactions
            .get_mut(transactional_id)
            .expect("bump a known transactional id");
        match fresh {
            Some(id) => (txn.producer_id, txn.epoch) = (id, 0),
            None => txn.epoch += 1,
        }
        (txn.producer_id, txn.epoch)
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0 for an id seen for
    /// the first time, else the next epoch (fencing the earlier producer). With the current id
    /// and epoch (v3+, KIP-360) it is that producer's own bump; with an older one it is fenced.
    /// An open transaction is aborted at once (Kafka answers CONCURRENT_TRANSACTIONS until its
    /// abort is written).
    pub(super) fn init_producer_id(
        &mut self,
        version: i16,
        transactional_id: &str,
        request: &InitProducerIdRequest,
    ) -> Result<(i64, i16), ErrorCode> {
        if transactional_id.is_empty() {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        let timeout = request.transaction_timeout_ms;
        if timeout <= 0 || timeout > MAX_TRANSACTION_TIMEOUT_MS {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        let given = (request.producer_id.0, request.producer_epoch);
        if version >= 3 && given.0 >= 0 {
            let fenced = fenced(ApiKey::InitProducerId, version);
            self.producer(transactional_id, given, fenced)?;
        }
        if !self.transactions.contains_key(transactional_id) {
            let producer_id = self.new_producer_id();
            self.transactions.insert(
                transactional_id.to_string(),
                Txn {
                    producer_id,
                    epoch: 0,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    pending: BTreeMap::new(),
                    last_end: None,
                },
            );
            return Ok((producer_id, 0));
        }
        let txn = self.transactions.get_mut(transactional_id).expect("known");
        txn.clear();
        txn.last_end = None;
        Ok(self.bump(transactional_id))
    }

    /// Whether a transactional batch of a Produce at `version` may be written to
    /// `topic`-`partition`: its producer must be the transactional id's current one, and the
    /// partition in the open transaction. Produce v12 (KIP-890) adds it; below v12 it must have
    /// been added by AddPartitionsToTxn, else INVALID_TXN_STATE (Kafka 3.6+'s verification).
    pub(super) fn verify_produce(
        &mut self,
        version: i16,
        transactional_id: Option<&str>,
        topic: &str,
        partition: i32,
        batch: &DecodedBatch,
    ) -> Result<(), ErrorCode> {
        // Kafka's authorizer refuses transactional records without a transactional id.
        let id = transactional_id.ok_or(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)?;
        let txn = self.producer(
            id,
            (batch.producer_id, batch.producer_epoch),
            ErrorCode::INVALID_PRODUCER_EPOCH,
        )?;
        let key = (topic.to_string(), partition);
        if version >= 12 {
            txn.partitions.insert(key);
        } else if !txn.partitions.contains(&key) {
            return Err(ErrorCode::INVALID_TXN_STATE);
        }
        Ok(())
    }
}

/// The code for a request from a fenced producer: PRODUCER_FENCED from the versions that
/// know it (KIP-588), INVALID_PRODUCER_EPOCH before.
fn fenced(api: ApiKey, version: i16) -> ErrorCode {
    let since = match api {
        ApiKey::InitProducerId => 4,
        ApiKey::TxnOffsetCommit => 3,
        _ => 2,
    };
    if version >= since {
        ErrorCode::PRODUCER_FENCED
    } else {
        ErrorCode::INVALID_PRODUCER_EPOCH
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The first error of `codes`, or NONE.
fn first_error(codes: impl IntoIterator<Item = ErrorCode>) -> ErrorCode {
    codes
        .into_iter()
        .find(|c| !c.is_ok())
        .unwrap_or(ErrorCode::NONE)
}

fn closes_before(faults: &Faults) -> bool {
    matches!(faults.transport, Some(Fault::CloseBefore))
}

/// FindCoordinator (v0..=6): the coordinator of every group and transactional id is the fake
/// itself, under its first node id.
pub(super) fn find_coordinator(
    shared: &Shared,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let request: FindCoordinatorRequest = req.decode()?;
    let faults = shared.faults(ApiKey::FindCoordinator, |_, _| false);
    if closes_before(&faults) {
        return Ok(After::Close);
    }
    let v = req.version;
    let key_type = if v >= 1 { request.key_type } else { 0 };
    let keys: Vec<String> = if v >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    let code = |key: &str| match faults.error {
        Some(code) => code,
        None if !matches!(key_type, 0 | 1) || key.is_empty() => ErrorCode::INVALID_REQUEST,
        None => ErrorCode::NONE,
    };
    let node = shared.node_ids[0];
    // Kafka names no node in an error answer.
    let located = |code: ErrorCode| match code.is_ok() {
        true => (node, str_bytes(&shared.host), i32::from(shared.port)),
        false => (-1, StrBytes::default(), -1),
    };
    let message = |code: ErrorCode| (faults.error == Some(code)).then(|| str_bytes(SCRIPTED));
    let codes: Vec<ErrorCode> = keys.iter().map(|k| code(k)).collect();
    let answer = if v >= 4 {
        let coordinators = keys
            .iter()
            .zip(&codes)
            .map(|(key, &code)| {
                let (node_id, host, port) = located(code);
                CoordinatorAnswer::default()
                    .with_key(str_bytes(key))
                    .with_node_id(BrokerId(node_id))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code.0)
                    .with_error_message(message(code))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let code = codes[0];
        let (node_id, host, port) = located(code);
        let answer = FindCoordinatorResponse::default()
            .with_error_code(code.0)
            .with_node_id(BrokerId(node_id))
            .with_host(host)
            .with_port(port);
        match v {
            0 => answer,
            _ => answer.with_error_message(message(code)),
        }
    };
    let resp = req.respond(out, v, &answer)?;
    shared.state().coordinator.log.push(TxnRequest {
        api: ApiKey::FindCoordinator,
        version: v,
        transactional_id: (key_type == 1).then(|| keys.first().cloned()).flatten(),
        producer: (-1, -1),
        detail: TxnDetail::FindCoordinator { key_type, keys },
        error: first_error(codes),
    });
    Ok(deliver(&faults, out, resp))
}

/// AddPartitionsToTxn (v0..=3): the partitions join the open transaction (opening it). If any
/// partition fails (unknown, or a scripted error), none joins and the others are answered
/// OPERATION_NOT_ATTEMPTED, as Kafka does.
pub(super) fn add_partitions_to_txn(
    shared: &Shared,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let request: AddPartitionsToTxnRequest = req.decode()?;
    let topics = &request.v3_and_below_topics;
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
        .collect();
    let faults = shared.faults(ApiKey::AddPartitionsToTxn, |topic, partition| {
        partitions
            .iter()
            .any(|(t, p)| t == topic && *p == partition)
    });
    if closes_before(&faults) {
        return Ok(After::Close);
    }
    let v = req.version;
    let id = request.v3_and_below_transactional_id.0.to_string();
    let producer = (
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
    );
    let mut state = shared.state();
    let state = &mut *state;
    // Per partition, its own error (scripted, or unknown); then the request's, if none has one.
    let mut codes: Vec<ErrorCode> = partitions
        .iter()
        .map(|(t, p)| {
            let exists = state
                .topic(t, shared.default_partitions)
                .is_some_and(|logs| usize::try_from(*p).is_ok_and(|p| p < logs.len()));
            faults
                .partition_errors
                .iter()
                .find(|(ft, fp, _)| ft == t && fp == p)
                .map(|&(_, _, c)| c)
                .or((!exists).then_some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION))
                .unwrap_or(ErrorCode::NONE)
        })
        .collect();
    let whole = faults.error.map_or_else(
        || {
            state
                .coordinator
                .producer(&id, producer, fenced(ApiKey::AddPartitionsToTxn, v))
                .err()
        },
        Some,
    );
    if let Some(code) = whole {
        codes.fill(code);
    } else if codes.iter().any(|c| !c.is_ok()) {
        for c in codes.iter_mut().filter(|c| c.is_ok()) {
            *c = ErrorCode::OPERATION_NOT_ATTEMPTED;
        }
    } else {
        let txn = state
            .coordinator
            .producer(&id, producer, ErrorCode::NONE)
            .expect("checked above");
        txn.partitions.extend(partitions.iter().cloned());
    }
    let mut results = codes.iter();
    let answer = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        topics
            .iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(
                                        results.next().expect("one code per partition").0,
                                    )
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    state.coordinator.log.push(TxnRequest {
        api: ApiKey::AddPartitionsToTxn,
        version: v,
        transactional_id: Some(id),
        producer,
        error: first_error(codes.iter().copied()),
        detail: TxnDetail::AddPartitionsToTxn { partitions },
    });
    let resp = req.respond(out, v, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// AddOffsetsToTxn: the group joins the open transaction (opening it).
pub(super) fn add_offsets_to_txn(
    shared: &Shared,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let request: AddOffsetsToTxnRequest = req.decode()?;
    let faults = shared.faults(ApiKey::AddOffsetsToTxn, |_, _| false);
    if closes_before(&faults) {
        return Ok(After::Close);
    }
    let v = req.version;
    let id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let mut state = shared.state();
    let code = match faults.error {
        Some(code) => code,
        None => match state
            .coordinator
            .producer(&id, producer, fenced(ApiKey::AddOffsetsToTxn, v))
        {
            Ok(txn) => {
                txn.groups.insert(group.clone());
                ErrorCode::NONE
            }
            Err(code) => code,
        },
    };
    state.coordinator.log.push(TxnRequest {
        api: ApiKey::AddOffsetsToTxn,
        version: v,
        transactional_id: Some(id),
        producer,
        detail: TxnDetail::AddOffsetsToTxn { group },
        error: code,
    });
    drop(state);
    let answer = AddOffsetsToTxnResponse::default().with_error_code(code.0);
    let resp = req.respond(out, v, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// TxnOffsetCommit: the offsets wait in the transaction until EndTxn. From v5 (KIP-890) the
/// request adds its group to the transaction; below v5 AddOffsetsToTxn must have added it,
/// else INVALID_TXN_STATE (Kafka 3.6+'s verification).
pub(super) fn txn_offset_commit(
    shared: &Shared,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let request: TxnOffsetCommitRequest = req.decode()?;
    let offsets: Vec<(String, i32, i64)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    let faults = shared.faults(ApiKey::TxnOffsetCommit, |topic, partition| {
        offsets
            .iter()
            .any(|(t, p, _)| t == topic && *p == partition)
    });
    if closes_before(&faults) {
        return Ok(After::Close);
    }
    let v = req.version;
    let id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let mut state = shared.state();
    // The whole request's error: scripted, or the producer's.
    let whole = match faults.error {
        Some(code) => Some(code),
        None => match state
            .coordinator
            .producer(&id, producer, fenced(ApiKey::TxnOffsetCommit, v))
        {
            Err(code) => Some(code),
            Ok(txn) if v >= 5 => {
                txn.groups.insert(group.clone());
                None
            }
            Ok(txn) if !txn.groups.contains(&group) => Some(ErrorCode::INVALID_TXN_STATE),
            Ok(_) => None,
        },
    };
    let codes: Vec<ErrorCode> = offsets
        .iter()
        .map(|(t, p, offset)| {
            let code = whole.or_else(|| faults.error_for(t, *p));
            if code.is_none() {
                let txn = state
                    .coordinator
                    .producer(&id, producer, ErrorCode::NONE)
                    .expect("checked above");
                txn.pending.insert((group.clone(), t.clone(), *p), *offset);
            }
            code.unwrap_or(ErrorCode::NONE)
        })
        .collect();
    state.coordinator.log.push(TxnRequest {
        api: ApiKey::TxnOffsetCommit,
        version: v,
        transactional_id: Some(id),
        producer,
        error: first_error(codes.iter().copied()),
        detail: TxnDetail::TxnOffsetCommit { group, offsets },
    });
    drop(state);
    let mut results = codes.iter();
    let answer = TxnOffsetCommitResponse::default().with_topics(
        request
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(
                                        results.next().expect("one code per partition").0,
                                    )
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let resp = req.respond(out, v, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// EndTxn: commits (the pending offsets become the groups' committed ones) or aborts the open
/// transaction. From v5 (KIP-890) every EndTxn moves the producer to its next epoch, which the
/// answer carries, and an abort needs no open transaction (the producer cannot know whether
/// its Produce v12 opened one). Committing when no transaction is open is INVALID_TXN_STATE,
/// except for a retry of the EndTxn that ended the last one, answered as before.
pub(super) fn end_txn(shared: &Shared, req: Request, out: &mut BytesMut) -> Result<After, String> {
    let request: EndTxnRequest = req.decode()?;
    let faults = shared.faults(ApiKey::EndTxn, |_, _| false);
    if closes_before(&faults) {
        return Ok(After::Close);
    }
    let v = req.version;
    let id = request.transactional_id.0.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let commit = request.committed;
    let mut state = shared.state();
    let result = match faults.error {
        Some(code) => Err(code),
        None => end(&mut state.coordinator, v, &id, producer, commit),
    };
    let answered = result.ok().filter(|_| v >= 5);
    let code = result.err().unwrap_or(ErrorCode::NONE);
    state.coordinator.log.push(TxnRequest {
        api: ApiKey::EndTxn,
        version: v,
        transactional_id: Some(id),
        producer,
        detail: TxnDetail::EndTxn { commit, answered },
        error: code,
    });
    drop(state);
    let mut answer = EndTxnResponse::default().with_error_code(code.0);
    if let Some((id, epoch)) = answered {
        answer = answer
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
    }
    let resp = req.respond(out, v, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// EndTxn's work; the producer id and epoch the producer goes on with.
fn end(
    coordinator: &mut Coordinator,
    version: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> Result<(i64, i16), ErrorCode> {
    let retry = coordinator.transactions.get(id).is_some_and(|txn| {
        txn.producer_id == producer.0
            && !txn.is_open()
            && txn.last_end == Some((commit, producer.1))
    });
    if retry {
        let txn = &coordinator.transactions[id];
        return Ok((txn.producer_id, txn.epoch));
    }
    let txn = coordinator.producer(id, producer, fenced(ApiKey::EndTxn, version))?;
    if !txn.is_open() && (commit || version < 5) {
        return Err(ErrorCode::INVALID_TXN_STATE);
    }
    let pending = std::mem::take(&mut txn.pending);
    txn.clear();
    txn.last_end = Some((commit, producer.1));
    if commit {
        for ((group, topic, partition), offset) in pending {
            coordinator
                .committed
                .entry(group)
                .or_default()
                .insert((topic, partition), offset);
        }
    }
    Ok(match version >= 5 {
        true => coordinator.bump(id),
        false => producer,
    })
}
