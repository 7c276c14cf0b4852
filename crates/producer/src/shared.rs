//! The state the producer handles and the background tasks share, behind one `Arc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::{watch, Notify};

use crate::accumulator::Accumulator;
use crate::config::ProducerConfig;
use crate::metadata::Metadata;
use crate::partitioner::Partitioner;
use crate::sender::{Idempotence, Nodes};

/// Everything the producer handles and the background tasks share.
pub(crate) struct Shared {
    config: ProducerConfig,
    accumulator: Accumulator,
    metadata: Metadata,
    partitioner: Option<Arc<dyn Partitioner>>,
    /// Wakes the sender: a batch was started or closed, an answer came, metadata changed.
    wake: Notify,
    /// No new records; send what is queued, then stop.
    closing: AtomicBool,
    /// Set when the sender task has ended.
    stopped: watch::Sender<bool>,
    nodes: Nodes,
    /// With idempotence: the producer id and epoch.
    idempotence: Option<Idempotence>,
}

impl Shared {
    pub(crate) fn new(config: ProducerConfig, partitioner: Option<Arc<dyn Partitioner>>) -> Self {
        Shared {
            accumulator: Accumulator::new(
                config.batch_size,
                config.batch_max_size,
                config.max_request_size,
                config.linger,
                config.delivery_timeout,
                config.buffer_memory,
                config.compression.codec(),
                if config.idempotent() {
                    config.max_in_flight
                } else {
                    1
                },
            ),
            metadata: Metadata::new(),
            partitioner,
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            stopped: watch::channel(false).0,
            nodes: Nodes::default(),
            idempotence: config.idempotent().then(Default::default),
            config,
        }
    }

    #[inline]
    pub(crate) fn config(&self) -> &ProducerConfig {
        &self.config
    }

    #[inline]
    pub(crate) fn accumulator(&self) -> &Accumulator {
        &self.accumulator
    }

    #[inline]
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The user's partitioner, consulted before the built-in one.
    #[inline]
    pub(crate) fn partitioner(&self) -> Option<&Arc<dyn Partitioner>> {
        self.partitioner.as_ref()
    }

    /// Makes the sender look again at once: there is something to send or to handle.
    #[inline]
    pub(crate) fn wake_sender(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next [`Shared::wake_sender`], or at once if one came since the last.
    pub(crate) fn sender_woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Takes no new records from now on: the sender sends what is queued, then stops. Returns
    /// false if closing had begun already.
    pub(crate) fn begin_close(&self) -> bool {
        !self.closing.swap(true, Ordering::AcqRel)
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Sees `true` once the sender task has ended.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// The sender task has ended.
    pub(crate) fn set_stopped(&self) {
        self.stopped.send_replace(true);
    }

    pub(crate) fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// `None` without idempotence.
    pub(crate) fn idempotence(&self) -> Option<&Idempotence> {
        self.idempotence.as_ref()
    }
}
