//! The transactional calls of [`Producer`] (the Java client's, each with a timeout); the state
//! and the protocol behind them are in `crate::transaction`.

use std::time::Duration;

use super::Producer;
use crate::error::Result;
use crate::transaction::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};

/// Transactions: a producer with a `transactional.id` writes records to many partitions, and
/// consumer offsets with them, all or nothing.
///
/// ```no_run
/// # async fn example() -> kafka_producer::Result<()> {
/// use std::time::Duration;
/// use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
///
/// let config = ProducerConfig::new("localhost:9092").with_transactional_id("orders-etl-0");
/// let producer = Producer::new(config).await?;
/// let timeout = Duration::from_secs(30);
/// producer.init_transactions(timeout).await?;
/// producer.begin_transaction()?;
/// producer.send(ProducerRecord::new("orders").key("o-1").value("paid")).await?;
/// producer.send(ProducerRecord::new("invoices").key("o-1").value("due")).await?;
/// match producer.commit_transaction(timeout).await {
///     Ok(()) => {}
///     // A record failed, or the brokers aborted it: abort, and go on with the next one.
///     Err(e) if e.requires_abort() => producer.abort_transaction(timeout).await?,
///     // Fenced by a newer producer with the same id, or refused for good: stop.
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
impl Producer {
    /// Gets the producer id and epoch for `transactional.id` from its transaction coordinator,
    /// once, before the first transaction. Any earlier producer with the same id is fenced
    /// from then on, and a transaction it left open is completed or aborted first.
    ///
    /// Retries what the coordinator says is passing (loading, moving, busy with the earlier
    /// producer's transaction); fails with [`Error::TransactionTimeout`](crate::Error) after
    /// `timeout` (call it again to wait further), or with
    /// [`Error::TransactionFatal`](crate::Error) when the principal may not use the id.
    pub async fn init_transactions(&self, timeout: Duration) -> Result<()> {
        let m = self.shared.metrics();
        m.timed(&m.txn_init, self.shared.init_transactions(timeout))
            .await
    }

    /// Begins a transaction: every record sent until it is committed or aborted belongs to it.
    /// Needs no network. Sends outside a transaction fail with
    /// [`Error::TransactionState`](crate::Error).
    pub fn begin_transaction(&self) -> Result<()> {
        let start = std::time::Instant::now();
        let result = self.shared.begin_transaction();
        let m = self.shared.metrics();
        m.record_nanos(&m.txn_begin, start.elapsed());
        result
    }

    /// Adds consumed offsets to the transaction: `group` sees them committed only if the
    /// transaction commits. Each offset is the next one to read (the last processed plus one).
    /// With the consumer's generation and member id in `group`, the group coordinator refuses
    /// offsets from a consumer that has left the group (the transaction must then be aborted).
    pub async fn send_offsets_to_transaction<I>(
        &self,
        offsets: I,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        let offsets = offsets.into_iter().collect();
        let m = self.shared.metrics();
        let call = self
            .shared
            .send_offsets_to_transaction(offsets, group.clone(), timeout);
        m.timed(&m.txn_send_offsets, call).await
    }

    /// Commits the transaction: sends what is queued, waits until every record of it is
    /// acknowledged, then has the coordinator commit, which makes records and offsets visible
    /// to `read_committed` consumers at once.
    ///
    /// If a record of the transaction failed, or the brokers aborted it (for instance after
    /// `transaction.timeout.ms`), it fails with
    /// [`Error::TransactionAbortable`](crate::Error): call
    /// [`abort_transaction`](Self::abort_transaction), then carry on. After `timeout` it fails
    /// with [`Error::TransactionTimeout`](crate::Error); the commit goes on, and calling this
    /// again waits for its outcome.
    pub async fn commit_transaction(&self, timeout: Duration) -> Result<()> {
        let m = self.shared.metrics();
        m.timed(&m.txn_commit, self.shared.commit_transaction(timeout))
            .await
    }

    /// Aborts the transaction: records not sent yet fail with
    /// [`Error::TransactionAborted`](crate::Error), records in flight are waited for, and
    /// the coordinator has `read_committed` consumers skip what was written. The producer is
    /// then ready for the next transaction.
    pub async fn abort_transaction(&self, timeout: Duration) -> Result<()> {
        let m = self.shared.metrics();
        m.timed(&m.txn_abort, self.shared.abort_transaction(timeout))
            .await
    }

    /// The transaction protocol the producer uses: 2 (KIP-890: partitions join through
    /// Produce, a new epoch at every commit or abort) when the cluster's finalized
    /// `transaction.version` is 2 or more, else 1. Decided at each `begin_transaction`, from
    /// what the coordinator's broker said when the producer connected to it. `None` for a
    /// producer without `transactional.id`, or before `init_transactions`.
    pub fn transaction_version(&self) -> Option<i16> {
        self.shared.transactions()?.version()
    }
}
