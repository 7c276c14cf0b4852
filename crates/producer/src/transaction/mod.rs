//! Transactions (KIP-98): the state of a transactional producer, and its calls (init, begin,
//! send offsets, commit, abort) as the background work they start.
//!
//! A transactional producer is idempotent; its producer id and epoch come from the transaction
//! coordinator (InitProducerId with the `transactional.id`), not from any broker. Two generations
//! of the protocol, chosen per transaction by the cluster's finalized `transaction.version`:
//!
//! - **1** (Kafka 0.11 to 3.x): a partition joins the transaction through AddPartitionsToTxn
//!   before its first batch goes (the sender holds the batch until then, [`Transactions::gate`]),
//!   a consumer group through AddOffsetsToTxn; Produce at most v11.
//! - **2** (KIP-890, the default of a new Kafka 4 cluster): Produce v12 with the transactional id
//!   adds its partitions itself, TxnOffsetCommit v5 adds the group, and every EndTxn moves the
//!   producer to a new epoch (its answer carries it), so sequences start again at 0.
//!
//! Errors are classified as the Java client does (KIP-691): fatal ones fail the producer as a
//! whole ([`Shared::fail`] with [`Error::TransactionFatal`]), abortable ones put the transaction
//! in a state where only `abort_transaction` is allowed, and retriable coordinator errors are
//! retried until the call's work is done. Each call runs as a task; a call that times out leaves
//! it running, and the next call of the same kind waits for the same outcome (as Java's
//! `commitTransaction` may be called again after a `TimeoutException`).
//!
//! [`requests`] holds the coordinator protocol.

mod requests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::shared::Shared;

/// The consumer group whose offsets a transaction commits, as the Java consumer's
/// `groupMetadata()` describes it. With a generation and member id the group coordinator
/// refuses the commit from a member that is no longer in the group (a zombie), which is what
/// makes a consume-transform-produce loop exactly-once under rebalances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub(crate) group_id: String,
    pub(crate) generation_id: i32,
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// A group's metadata without a member: generation -1 and no member id, as the Java
    /// client's `new ConsumerGroupMetadata(groupId)`. The coordinator then takes the offsets
    /// without checking membership (a group with no active members, or one managed by hand).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// The generation and member id of the consumer that read the offsets.
    pub fn with_member(mut self, generation_id: i32, member_id: impl Into<String>) -> Self {
        self.generation_id = generation_id;
        self.member_id = member_id.into();
        self
    }

    /// The consumer's `group.instance.id` (static membership, KIP-345).
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }
}

/// One partition of a topic, as offsets are keyed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// The offset to commit for a partition: the offset of the next record to read (the last one
/// processed plus one), with optional metadata, as the Java client's `OffsetAndMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to read.
    pub offset: i64,
    /// Free text stored with the offset.
    pub metadata: Option<String>,
    /// The leader epoch of the last record read, if known (KIP-320).
    pub leader_epoch: Option<i32>,
}

impl OffsetAndMetadata {
    /// The offset, with no metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            metadata: None,
            leader_epoch: None,
        }
    }
}

/// The transactional state of a producer with a `transactional.id`.
pub(crate) struct Transactions {
    id: String,
    /// True while a transaction is open and may take records: `send` reads it without a lock.
    open: AtomicBool,
    state: Mutex<State>,
    /// The call in progress: one at a time; one that timed out stays here.
    call: tokio::sync::Mutex<Option<Running>>,
}

struct Running {
    operation: &'static str,
    task: tokio::task::JoinHandle<Result<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `init_transactions` has not succeeded yet.
    Uninitialized,
    /// Between transactions.
    Ready,
    /// `begin_transaction` was called; records and offsets may join.
    InTransaction,
    /// Commit or abort under way: no new records; the sender still sends what is queued.
    Ending,
    /// The open transaction failed: only `abort_transaction` is allowed.
    Abortable,
}

struct State {
    phase: Phase,
    /// Why the transaction must be aborted, in [`Phase::Abortable`].
    abortable: Option<Error>,
    /// The transaction version of the open transaction: 1 or 2.
    version: i16,
    /// Whether the cluster runs `transaction.version` 2 with every API it needs, as the
    /// coordinator's connection said; decides the next transaction's version.
    v2_available: bool,
    /// The coordinator, once found (forgotten on NOT_COORDINATOR and the like).
    coordinator: Option<Connection>,
    /// Version 1: partitions the coordinator has added to the open transaction (shared with
    /// the sender's [`Gate`], copied only when an AddPartitionsToTxn adds more).
    added: Arc<Added>,
    /// Version 1: an AddPartitionsToTxn is on its way.
    adding: bool,
    /// The coordinator knows of the open transaction (a partition or group joined it, or a
    /// batch went under version 2): EndTxn must end it.
    started: bool,
    /// A batch with a sequence number failed: the partition's sequence has a gap that only a
    /// new epoch closes (version 1: InitProducerId after the abort; version 2: EndTxn does).
    epoch_bump: bool,
    /// Batches may go (a transaction is open or ending).
    sending: bool,
    /// When `begin_transaction` opened the transaction.
    began: Instant,
}

/// Per topic, the partitions added to the transaction.
pub(crate) type Added = HashMap<Arc<str>, HashSet<i32>>;

/// What the sender may send for a transactional producer now.
pub(crate) enum Gate {
    /// No transaction open: hold every batch.
    Closed,
    /// Send any batch.
    Open,
    /// Version 1: send only batches of these partitions (added to the transaction); the
    /// others wait for AddPartitionsToTxn.
    Added(Arc<Added>),
}

impl Transactions {
    pub(crate) fn new(id: String) -> Self {
        Transactions {
            id,
            open: AtomicBool::new(false),
            state: Mutex::new(State {
                phase: Phase::Uninitialized,
                abortable: None,
                version: 2,
                v2_available: false,
                coordinator: None,
                added: Arc::default(),
                adding: false,
                started: false,
                epoch_bump: false,
                sending: false,
                began: Instant::now(),
            }),
            call: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The span of one transactional call (`init_transactions`, `begin_transaction`, ...): its
    /// `operation` and the `transactional_id`. The coordinator requests, their retries and the
    /// connections they open are logged inside it.
    fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::info_span!("transaction", operation, transactional_id = %self.id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a record may be queued now; if not, why (for `send`).
    #[inline]
    pub(crate) fn check_send(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) {
            return Ok(());
        }
        self.refuse_send()
    }

    #[cold]
    fn refuse_send(&self) -> Result<()> {
        let state = self.lock();
        match state.phase {
            Phase::InTransaction => Ok(()),
            Phase::Abortable => Err(self.abortable(state.abortable.clone())),
            phase => Err(Error::TransactionState {
                operation: "send",
                message: format!(
                    "{}; a transactional producer sends only inside a transaction",
                    describe(phase)
                ),
            }),
        }
    }

    /// What the sender may send now.
    pub(crate) fn gate(&self) -> Gate {
        let state = self.lock();
        match (state.sending, state.version) {
            (false, _) => Gate::Closed,
            (true, 1) => Gate::Added(state.added.clone()),
            (true, _) => Gate::Open,
        }
    }

    /// The error the sender fails queued batches with, once the transaction must be aborted
    /// (as the Java sender does: nothing more of a failed transaction goes to the brokers).
    pub(crate) fn abort_reason(&self) -> Option<Error> {
        let state = self.lock();
        (state.phase == Phase::Abortable).then(|| self.abortable(state.abortable.clone()))
    }

    /// A batch of the open transaction went to a broker (version 2: which adds its partition).
    pub(crate) fn batch_sent(&self) {
        let mut state = self.lock();
        if state.version >= 2 {
            state.started = true;
        }
    }

    /// A batch failed for good: the transaction can only be aborted. Fatal codes (fenced, not
    /// authorized for the transactional id) fail the whole producer instead; the caller checks
    /// [`is_fatal_code`] first.
    pub(crate) fn batch_failed(&self, error: &Error) {
        self.set_abortable(error.clone());
    }

    /// A sequenced batch failed: the next epoch must start after the abort.
    pub(crate) fn epoch_bump_required(&self) {
        self.lock().epoch_bump = true;
    }

    fn set_abortable(&self, reason: Error) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::InTransaction | Phase::Ending) {
            self.open.store(false, Ordering::Release);
            state.phase = Phase::Abortable;
            state.abortable = Some(reason);
        }
    }

    fn abortable(&self, reason: Option<Error>) -> Error {
        Error::TransactionAbortable {
            transactional_id: self.id.clone(),
            reason: Box::new(reason.unwrap_or_else(|| Error::TransactionState {
                operation: "commit_transaction",
                message: "the transaction failed".into(),
            })),
        }
    }

    fn fatal(&self, reason: Error) -> Error {
        match reason {
            e @ Error::TransactionFatal { .. } => e,
            reason => Error::TransactionFatal {
                transactional_id: self.id.clone(),
                reason: Box::new(reason),
            },
        }
    }

    /// Whether a transaction is open (begun, or failed and not aborted yet).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.lock().phase, Phase::InTransaction | Phase::Abortable)
    }

    /// How long the open transaction has been open.
    pub(crate) fn age(&self) -> Duration {
        self.lock().began.elapsed()
    }

    /// The transaction protocol version of the open (or last) transaction, once initialized.
    pub(crate) fn version(&self) -> Option<i16> {
        let state = self.lock();
        (state.phase != Phase::Uninitialized).then_some(state.version)
    }
}

fn describe(phase: Phase) -> &'static str {
    match phase {
        Phase::Uninitialized => "init_transactions has not completed",
        Phase::Ready => "no transaction is open (call begin_transaction)",
        Phase::InTransaction => "a transaction is open",
        Phase::Ending => "the transaction is being committed or aborted",
        Phase::Abortable => "the transaction failed and must be aborted",
    }
}

/// Codes that end a transactional producer for good, wherever they come from (KIP-691).
pub(crate) fn is_fatal_code(code: crate::ErrorCode) -> bool {
    use crate::ErrorCode as C;
    matches!(
        code,
        C::PRODUCER_FENCED
            | C::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | C::CLUSTER_AUTHORIZATION_FAILED
            | C::UNSUPPORTED_VERSION
            | C::UNSUPPORTED_FOR_MESSAGE_FORMAT
            | C::INVALID_TXN_STATE
            | C::INVALID_PRODUCER_ID_MAPPING
            | C::INVALID_TRANSACTION_TIMEOUT
    )
}

// The calls, each as the handles run it.
impl Shared {
    fn transactions_or(&self, operation: &'static str) -> Result<&Transactions> {
        if let Some(e) = self.failure() {
            return Err(e.clone());
        }
        if self.is_closing() {
            return Err(Error::Closed { topic: None });
        }
        self.transactions().ok_or_else(|| Error::TransactionState {
            operation,
            message: "the producer has no transactional.id".into(),
        })
    }

    /// Runs `operation`'s work as a task (unless the same call is already running, after a
    /// timeout) and waits for it at most `timeout`. The task runs in the call's `transaction`
    /// span ([`Transactions::span`]).
    async fn run_call<F, Fut>(
        self: &Arc<Self>,
        operation: &'static str,
        timeout: Duration,
        start: F,
    ) -> Result<()>
    where
        F: FnOnce(&Transactions) -> Result<Fut>,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let txn = self.transactions_or(operation)?;
        let mut call = tokio::time::timeout(timeout, txn.call.lock())
            .await
            .map_err(|_| Error::TransactionTimeout { operation, timeout })?;
        // A call that timed out, finished since, and was not asked for again: the caller moved
        // on (its outcome shows in the producer's state).
        if call
            .as_ref()
            .is_some_and(|r| r.operation != operation && r.task.is_finished())
        {
            *call = None;
        }
        match call.as_ref() {
            Some(running) if running.operation == operation => {}
            Some(running) => {
                return Err(Error::TransactionState {
                    operation,
                    message: format!(
                        "{} timed out and is still under way; call it again to wait for it",
                        running.operation
                    ),
                })
            }
            None => {
                let work = start(txn)?;
                let shared = self.clone();
                let span = txn.span(operation);
                let task = tokio::spawn(
                    async move {
                        let result = work.await;
                        if let Err(e @ Error::TransactionFatal { .. }) = &result {
                            shared.fail(e.clone());
                        }
                        result
                    }
                    .instrument(span),
                );
                *call = Some(Running { operation, task });
            }
        }
        let running = call.as_mut().expect("set above");
        match tokio::time::timeout(timeout, &mut running.task).await {
            Err(_) => Err(Error::TransactionTimeout { operation, timeout }),
            Ok(joined) => {
                *call = None;
                joined.unwrap_or_else(|e| {
                    let error = Error::TaskPanicked {
                        task: "transaction",
                        message: e.to_string(),
                    };
                    self.fail(error.clone());
                    Err(error)
                })
            }
        }
    }

    /// `init_transactions`: the producer id and epoch for the transactional id, fencing any
    /// earlier producer with the same id and completing or aborting its open transaction.
    pub(crate) async fn init_transactions(self: &Arc<Self>, timeout: Duration) -> Result<()> {
        let shared = self.clone();
        self.run_call("init_transactions", timeout, move |txn| {
            if txn.lock().phase != Phase::Uninitialized {
                return Err(Error::TransactionState {
                    operation: "init_transactions",
                    message: "already initialized".into(),
                });
            }
            Ok(async move {
                let txn = shared.transactions().expect("transactional");
                let id = shared.init_transactional_id(false).await?;
                let mut state = txn.lock();
                state.phase = Phase::Ready;
                state.version = if state.v2_available { 2 } else { 1 };
                tracing::debug!(transactional_id = %txn.id, producer_id = id.id, epoch = id.epoch, "transactions initialized");
                drop(state);
                shared.wake_sender();
                Ok(())
            })
        })
        .await
    }

    /// `begin_transaction`: opens a transaction locally (the coordinator learns of it with its
    /// first partition or group).
    pub(crate) fn begin_transaction(&self) -> Result<()> {
        let txn = self.transactions_or("begin_transaction")?;
        let _span = txn.span("begin_transaction").entered();
        let mut state = txn.lock();
        if state.phase != Phase::Ready {
            return Err(Error::TransactionState {
                operation: "begin_transaction",
                message: describe(state.phase).into(),
            });
        }
        // A commit or abort that timed out and has finished since belongs to the last
        // transaction: calling commit again must not return its outcome for this one.
        if let Ok(mut call) = txn.call.try_lock() {
            if call.as_ref().is_some_and(|r| r.task.is_finished()) {
                *call = None;
            }
        }
        // Failures of batches before this transaction (a stray record between two) are not
        // this transaction's.
        self.accumulator().take_transaction_failure();
        state.phase = Phase::InTransaction;
        state.version = if state.v2_available { 2 } else { 1 };
        state.added = Arc::default();
        state.started = false;
        state.sending = true;
        state.began = Instant::now();
        txn.open.store(true, Ordering::Release);
        tracing::debug!(version = state.version, "transaction begun");
        Ok(())
    }

    /// `send_offsets_to_transaction`: the consumed offsets join the transaction, committed to
    /// the group only if it commits.
    pub(crate) async fn send_offsets_to_transaction(
        self: &Arc<Self>,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        group: ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()> {
        let shared = self.clone();
        self.run_call("send_offsets_to_transaction", timeout, move |txn| {
            let state = txn.lock();
            match state.phase {
                Phase::InTransaction => {}
                Phase::Abortable => return Err(txn.abortable(state.abortable.clone())),
                phase => {
                    return Err(Error::TransactionState {
                        operation: "send_offsets_to_transaction",
                        message: describe(phase).into(),
                    })
                }
            }
            drop(state);
            Ok(async move {
                let txn = shared.transactions().expect("transactional");
                let result = shared.send_offsets(&offsets, &group).await;
                match result {
                    Err(e @ Error::TransactionAbortable { .. }) => {
                        if let Error::TransactionAbortable { reason, .. } = &e {
                            txn.set_abortable((**reason).clone());
                        }
                        Err(e)
                    }
                    result => result,
                }
            })
        })
        .await
    }

    /// `commit_transaction`: sends every queued record of the transaction, waits for their
    /// acknowledgements, then has the coordinator commit. A record that failed makes the
    /// transaction abortable instead.
    pub(crate) async fn commit_transaction(self: &Arc<Self>, timeout: Duration) -> Result<()> {
        let shared = self.clone();
        self.run_call("commit_transaction", timeout, move |txn| {
            let mut state = txn.lock();
            match state.phase {
                Phase::InTransaction => {}
                Phase::Abortable => return Err(txn.abortable(state.abortable.clone())),
                phase => {
                    return Err(Error::TransactionState {
                        operation: "commit_transaction",
                        message: describe(phase).into(),
                    })
                }
            }
            state.phase = Phase::Ending;
            txn.open.store(false, Ordering::Release);
            drop(state);
            Ok(async move {
                let txn = shared.transactions().expect("transactional");
                // Every record of the transaction has its outcome after the flush; any batch
                // that failed since begin_transaction, by whatever path, is in the
                // accumulator's record of failures.
                let _ = crate::producer::flush_all(&shared).await;
                if let Some(reason) = shared.accumulator().take_transaction_failure() {
                    txn.set_abortable(reason);
                }
                if let Some(e) = txn.abort_reason() {
                    return Err(e);
                }
                shared.end_transaction(true).await
            })
        })
        .await
    }

    /// `abort_transaction`: fails the records not sent yet, waits for those in flight, and has
    /// the coordinator abort what was written.
    pub(crate) async fn abort_transaction(self: &Arc<Self>, timeout: Duration) -> Result<()> {
        let shared = self.clone();
        self.run_call("abort_transaction", timeout, move |txn| {
            let mut state = txn.lock();
            match state.phase {
                Phase::InTransaction | Phase::Abortable => {}
                phase => {
                    return Err(Error::TransactionState {
                        operation: "abort_transaction",
                        message: describe(phase).into(),
                    })
                }
            }
            state.phase = Phase::Ending;
            txn.open.store(false, Ordering::Release);
            drop(state);
            Ok(async move {
                shared
                    .accumulator()
                    .fail_queued(|topic, partition| Error::TransactionAborted {
                        topic: topic.to_string(),
                        partition,
                    });
                shared.wake_sender();
                // Those in flight: their outcome, whatever it is, is part of the abort.
                let _ = crate::producer::flush_all(&shared).await;
                shared.end_transaction(false).await
            })
        })
        .await
    }

    /// Ends the open transaction at the coordinator if it knows of it (EndTxn), moves to a new
    /// epoch when one is due, and makes the producer ready for the next transaction.
    async fn end_transaction(self: &Arc<Self>, commit: bool) -> Result<()> {
        let txn = self.transactions().expect("transactional");
        // An AddPartitionsToTxn under way may still make the coordinator start the transaction.
        while txn.lock().adding {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (started, version, epoch_bump) = {
            let state = txn.lock();
            (state.started, state.version, state.epoch_bump)
        };
        let mut bumped = false;
        if started {
            bumped = self.end_txn(commit, version).await?;
        }
        if epoch_bump && !bumped {
            self.init_transactional_id(true).await?;
        }
        // The records this transaction failed (the abort's own among them) are its past.
        self.accumulator().take_transaction_failure();
        let mut state = txn.lock();
        state.phase = Phase::Ready;
        state.abortable = None;
        state.added = Arc::default();
        state.started = false;
        state.epoch_bump = false;
        state.sending = false;
        drop(state);
        self.wake_sender();
        Ok(())
    }

    /// Version 1: partitions with batches waiting that the coordinator has not added to the
    /// transaction yet: adds them in the background (one AddPartitionsToTxn at a time).
    pub(crate) fn add_partitions(self: &Arc<Self>, partitions: Vec<(Arc<str>, i32)>) {
        let Some(txn) = self.transactions() else {
            return;
        };
        {
            let mut state = txn.lock();
            if state.adding || !state.sending || state.phase == Phase::Abortable {
                return;
            }
            state.adding = true;
        }
        let shared = self.clone();
        let span = txn.span("add_partitions");
        let work = async move {
            let txn = shared.transactions().expect("transactional");
            let result = shared.add_partitions_to_txn(&partitions).await;
            let mut state = txn.lock();
            state.adding = false;
            match result {
                Ok(()) => {
                    state.started = true;
                    let added = Arc::make_mut(&mut state.added);
                    for (topic, partition) in partitions {
                        added.entry(topic).or_default().insert(partition);
                    }
                    drop(state);
                }
                Err(e @ Error::TransactionFatal { .. }) => {
                    drop(state);
                    shared.fail(e);
                }
                Err(e) => {
                    drop(state);
                    let reason = match e {
                        Error::TransactionAbortable { reason, .. } => *reason,
                        e => e,
                    };
                    txn.set_abortable(reason);
                }
            }
            shared.wake_sender();
        };
        self.spawn("add partitions", work.instrument(span));
    }
}
