//! What `try_send` answers when it did not queue a record: [`TrySendError`], which says why
//! ([`NotQueued`], [`WouldWait`]) and hands the record back.

use std::fmt;

use crate::error::Error;

/// A record [`try_send`](crate::Producer::try_send) did not queue, handed back with the reason,
/// as rust-rdkafka's `BaseProducer::send` hands back its record with the error.
///
/// Nothing of the record was queued. When [`reason`](Self::reason) is
/// [`NotQueued::WouldWait`], `send` queues it after waiting; [`record_for_send`](Self::record_for_send)
/// sorts the two cases.
///
/// Its `Debug` shows the reason only, so it needs nothing of the record: `unwrap` works for
/// records of any type.
pub struct TrySendError<R> {
    /// Why the record was not queued.
    pub reason: NotQueued,
    /// The record, as it was handed to `try_send`.
    pub record: R,
}

/// Why [`try_send`](crate::Producer::try_send) did not queue a record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NotQueued {
    /// `send` would wait for this before queuing the record; calling `send` with it is the way
    /// to wait.
    WouldWait(WouldWait),
    /// `send` would fail at once too, with this error: a record larger than `max.request.size`
    /// or `buffer.memory`, a partition the topic does not have, a topic the brokers call invalid
    /// or not authorized, a serializer's error, a closed producer.
    Failed(Error),
}

/// What [`send`](crate::Producer::send) would wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WouldWait {
    /// The topic's metadata: not known yet, or a partition has no leader. It is being fetched.
    MetadataNotReady,
    /// Room in `buffer.memory` for the new batch the record needs.
    BufferFull,
}

impl<R> TrySendError<R> {
    /// The record, if `send` would queue it after waiting; the error if `send` would fail too.
    ///
    /// ```no_run
    /// # async fn example(producer: kafka_producer::Producer) -> kafka_producer::Result<()> {
    /// # let record = kafka_producer::ProducerRecord::<&str, &str>::new("events").value("hello");
    /// let delivery = match producer.try_send(record) {
    ///     Ok(delivery) => delivery,
    ///     Err(not_queued) => producer.send(not_queued.record_for_send()?).await?,
    /// };
    /// # Ok(())
    /// # }
    /// ```
    pub fn record_for_send(self) -> Result<R, Error> {
        match self.reason {
            NotQueued::WouldWait(_) => Ok(self.record),
            NotQueued::Failed(e) => Err(e),
        }
    }

    /// The record, whatever the reason.
    pub fn into_record(self) -> R {
        self.record
    }

    /// `Some` with what `send` would wait for; `None` if it would fail.
    pub fn would_wait(&self) -> Option<WouldWait> {
        match self.reason {
            NotQueued::WouldWait(w) => Some(w),
            NotQueued::Failed(_) => None,
        }
    }
}

impl<R: Clone> Clone for TrySendError<R> {
    fn clone(&self) -> Self {
        TrySendError {
            reason: self.reason.clone(),
            record: self.record.clone(),
        }
    }
}

impl<R> fmt::Debug for TrySendError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrySendError")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Display for TrySendError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

/// Transparent: the reason's message and source.
impl<R> std::error::Error for TrySendError<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.reason.source()
    }
}

impl fmt::Display for NotQueued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotQueued::WouldWait(w) => write!(f, "not queued: sending would wait for {w}"),
            NotQueued::Failed(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Transparent for [`NotQueued::Failed`]: the error's message and source.
impl std::error::Error for NotQueued {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NotQueued::WouldWait(_) => None,
            NotQueued::Failed(e) => std::error::Error::source(e),
        }
    }
}

impl fmt::Display for WouldWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WouldWait::MetadataNotReady => "the topic's metadata",
            WouldWait::BufferFull => "room in buffer.memory",
        })
    }
}

/// The send path's own answer when it did not queue: as [`NotQueued`], with the error boxed,
/// as it is moved through every `send` (`Error` is 64 bytes).
pub(super) enum Unqueued {
    Wait(WouldWait),
    Failed(Box<Error>),
}

impl Unqueued {
    /// The public answer, with the record handed back. Rare, so out of line.
    #[cold]
    #[inline(never)]
    pub(super) fn hand_back<R>(self, record: R) -> TrySendError<R> {
        let reason = match self {
            Unqueued::Wait(w) => NotQueued::WouldWait(w),
            Unqueued::Failed(e) => NotQueued::Failed(*e),
        };
        TrySendError { reason, record }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_wait_or_are_the_error() {
        let wait = TrySendError {
            reason: NotQueued::WouldWait(WouldWait::BufferFull),
            record: (),
        };
        assert_eq!(
            wait.to_string(),
            "not queued: sending would wait for room in buffer.memory"
        );
        assert_eq!(
            format!("{wait:?}"),
            "TrySendError { reason: WouldWait(BufferFull), .. }"
        );
        assert_eq!(wait.would_wait(), Some(WouldWait::BufferFull));
        assert!(wait.record_for_send().is_ok());

        let error = Error::Closed { topic: None };
        let failed = TrySendError {
            reason: NotQueued::Failed(error.clone()),
            record: (),
        };
        assert_eq!(failed.to_string(), error.to_string());
        assert_eq!(failed.would_wait(), None);
        assert_eq!(
            failed.record_for_send().unwrap_err().to_string(),
            error.to_string()
        );
    }
}
