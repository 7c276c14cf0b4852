//! `buffer.memory`: the bytes batches may hold. A new batch's room is reserved before it starts
//! (`reserve` waits for it, `try_reserve` does not), a batch that grows takes more only if it is
//! free, and a settled batch gives back all it held.

use std::time::Instant;

use tokio::sync::Semaphore;

use super::Accumulator;

/// `buffer.memory`: bytes reserved by batches until their outcome is known.
pub(super) struct BufferPool {
    pub(super) permits: Semaphore,
    pub(super) total: usize,
}

impl BufferPool {
    pub(super) fn new(total: usize) -> Self {
        BufferPool {
            permits: Semaphore::new(total),
            total,
        }
    }
}

impl Accumulator {
    /// Takes `bytes` of buffer memory, waiting until `deadline` for room. A wait counts in
    /// `waiting-threads` while it lasts and in `bufferpool-wait-time-ns-total` after.
    pub(crate) async fn reserve(&self, bytes: usize, deadline: Instant) -> bool {
        let n = bytes.min(self.buffer.total) as u32;
        if let Ok(permit) = self.buffer.permits.try_acquire_many(n) {
            permit.forget();
            self.memory_changed();
            return true;
        }
        let m = &self.metrics;
        let start = Instant::now();
        m.waiting(true);
        let acquire = self.buffer.permits.acquire_many(n);
        let reserved = match tokio::time::timeout_at(deadline.into(), acquire).await {
            Ok(Ok(permit)) => {
                permit.forget();
                true
            }
            _ => false,
        };
        m.waiting(false);
        m.record_nanos(&m.buffer_wait, start.elapsed());
        self.memory_changed();
        reserved
    }

    /// Tells the metrics facade how much `buffer.memory` is free now.
    fn memory_changed(&self) {
        self.metrics.buffer_available(self.buffer_available());
    }

    /// `buffer.memory` not held by a batch now.
    pub(crate) fn buffer_available(&self) -> usize {
        self.buffer.permits.available_permits()
    }

    /// Takes `bytes` more of buffer memory if they are free now.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        match u32::try_from(bytes) {
            Ok(n) if bytes <= self.buffer.total => match self.buffer.permits.try_acquire_many(n) {
                Ok(permit) => {
                    permit.forget();
                    self.memory_changed();
                    true
                }
                Err(_) => false,
            },
            _ => false,
        }
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.buffer
            .permits
            .add_permits(bytes.min(self.buffer.total));
        self.memory_changed();
    }

    /// No more memory is handed out: a `reserve` waiting now, or later, returns false at once.
    /// For a producer that failed for good.
    pub(crate) fn close_memory(&self) {
        self.buffer.permits.close();
    }

    pub(crate) fn buffer_memory(&self) -> usize {
        self.buffer.total
    }
}
