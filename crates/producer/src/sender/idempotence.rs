//! Idempotence: the producer id and epoch (InitProducerId), and moving to the next epoch.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProducerId,
};
use kafka_producer_protocol::ErrorCode;

use crate::accumulator::ProducerIdEpoch;
use crate::error::Error;
use crate::shared::Shared;

/// The producer id and epoch of an idempotent producer.
#[derive(Default)]
pub(crate) struct Idempotence(Mutex<IdempotenceState>);

#[derive(Default)]
struct IdempotenceState {
    /// `None` until InitProducerId answered.
    current: Option<ProducerIdEpoch>,
    /// An InitProducerId request is under way.
    fetching: bool,
}

/// Why no batch may go yet: the producer is idempotent and InitProducerId has not answered.
pub(super) struct AwaitingProducerId;

impl Shared {
    /// The producer id and epoch to write in new batches; `None` without idempotence.
    /// With idempotence and no id yet, starts fetching one (unless a fetch is under way) and
    /// returns [`AwaitingProducerId`]: send nothing.
    pub(super) fn producer_id(
        self: &Arc<Self>,
    ) -> Result<Option<ProducerIdEpoch>, AwaitingProducerId> {
        let Some(state) = self.idempotence() else {
            return Ok(None);
        };
        let mut state = state.lock();
        if let Some(p) = state.current {
            return Ok(Some(p));
        }
        // A transactional producer's id comes from `init_transactions`.
        if !state.fetching && self.transactions().is_none() {
            state.fetching = true;
            let shared = self.clone();
            self.spawn("producer id", async move {
                let result = shared.init_producer_id().await;
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "InitProducerId failed; retrying");
                    tokio::time::sleep(shared.backoff(0)).await;
                }
                if let Some(state) = shared.idempotence() {
                    state.lock().fetching = false;
                }
                shared.wake_sender();
            });
        }
        Err(AwaitingProducerId)
    }

    /// Asks any broker for a producer id (InitProducerId without a transactional id, KIP-98),
    /// retrying retriable errors (a broker still loading its transaction state answers
    /// COORDINATOR_LOAD_IN_PROGRESS) for up to `max.block.ms`.
    pub(crate) async fn init_producer_id(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config().max_block;
        let mut attempt = 0;
        loop {
            match self.try_init_producer_id().await {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "InitProducerId: retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_init_producer_id(&self) -> Result<(), Error> {
        let Some(state) = self.idempotence() else {
            return Ok(());
        };
        if self.transactions().is_some() {
            return Ok(());
        }
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = self.call_any_broker(ApiKey::InitProducerId, &req).await?;
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            return Err(Error::ProducerId { code });
        }
        let id = ProducerIdEpoch {
            id: resp.producer_id.0,
            epoch: resp.producer_epoch,
        };
        tracing::debug!(
            producer_id = id.id,
            epoch = id.epoch,
            "idempotent producer id"
        );
        state.lock().current = Some(id);
        Ok(())
    }

    /// Moves to the next epoch after a sequence gap, as the Java client does for an idempotent
    /// producer: the broker accepts a higher epoch starting at sequence 0. At the last epoch, a new
    /// producer id is fetched instead. `gap`, when known, is the topic and partition where the
    /// gap showed and the error that showed it (not known when a sequenced batch failed for good
    /// elsewhere, as at its delivery timeout); the info event that says so names them.
    ///
    /// A transactional producer's epoch belongs to its coordinator: the gap is closed when the
    /// transaction is aborted (see `transaction`).
    pub(super) fn bump_epoch(&self, gap: Option<(&str, i32, &Error)>) {
        let topic = gap.map(|g| g.0);
        let partition = gap.map(|g| g.1);
        let error = gap.map(|g| tracing::field::display(g.2));
        if let Some(txn) = self.transactions() {
            // The bump itself, at the abort, is the info event.
            tracing::debug!(
                transactional_id = txn.id(),
                topic,
                partition,
                error,
                "sequence gap; the producer epoch is bumped when the transaction is aborted"
            );
            txn.epoch_bump_required();
            return;
        }
        let Some(state) = self.idempotence() else {
            return;
        };
        let (old, new) = {
            let mut state = state.lock();
            let old = state.current;
            state.current = match old {
                Some(p) if p.epoch < i16::MAX => Some(ProducerIdEpoch {
                    id: p.id,
                    epoch: p.epoch + 1,
                }),
                _ => None,
            };
            (old, state.current)
        };
        match (old, new) {
            (Some(old), Some(new)) => tracing::info!(
                producer_id = old.id,
                from_epoch = old.epoch,
                to_epoch = new.epoch,
                topic,
                partition,
                error,
                "producer epoch bumped"
            ),
            (Some(old), None) => tracing::info!(
                producer_id = old.id,
                from_epoch = old.epoch,
                topic,
                partition,
                error,
                "producer epoch exhausted; fetching a new producer id"
            ),
            // Already without an id: a new one is on its way.
            (None, _) => {}
        }
    }
}

impl Shared {
    /// Sets the producer id and epoch new batches are written with (a transactional producer's,
    /// from its coordinator). Partitions restart their sequences at 0 under it.
    pub(crate) fn set_producer(&self, id: ProducerIdEpoch) {
        if let Some(state) = self.idempotence() {
            state.lock().current = Some(id);
        }
    }
}

impl Idempotence {
    fn lock(&self) -> MutexGuard<'_, IdempotenceState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The producer id and epoch, once known.
    pub(crate) fn current(&self) -> Option<ProducerIdEpoch> {
        self.lock().current
    }
}
