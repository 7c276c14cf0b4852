//! What becomes of a batch once its Produce request is answered: a pure function of the
//! partition's error code and what is known about the batch, so that every case can be read,
//! and tested, in one table. [`super::produce`] gathers the facts and carries the verdict out.

use kafka_producer_protocol::ErrorCode;

/// What is known about a batch when its partition's answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchFacts {
    /// The batch carries a sequence number: the producer is idempotent.
    pub(super) idempotent: bool,
    /// The broker acknowledged later sequences of the batch's partition, so it holds this batch
    /// although its own answer was lost. Read only for OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub(super) acknowledged_after: bool,
    /// The batch's sequence follows the last one acknowledged: an OUT_OF_ORDER_SEQUENCE_NUMBER
    /// for it is a real gap, not a batch overtaking one being retried. Read only for
    /// OUT_OF_ORDER_SEQUENCE_NUMBER when `acknowledged_after` is false.
    pub(super) next_expected: bool,
    /// The answer carries the partition's log start offset. Read only for UNKNOWN_PRODUCER_ID.
    pub(super) log_start_known: bool,
    /// The batch has been tried fewer than `retries` times.
    pub(super) retries_left: bool,
    /// The answer named a new leader for the batch's partition (KIP-951), another broker, and
    /// the metadata now has it at that epoch or a newer one. Read only for
    /// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH.
    pub(super) leader_moved: bool,
}

/// What to do with the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Written: complete it with the offset the answer gives.
    Complete,
    /// Already in the log (a resend of a batch whose answer was lost): complete it, offset
    /// unknown.
    CompleteDuplicate,
    /// Too large for the broker (its `max.message.bytes`): split it and send the parts in
    /// order; a batch of one record fails.
    Split,
    /// Send it again after backoff, ahead of the partition's later batches.
    Retry {
        /// The broker may have written it although it answered with an error.
        possibly_persisted: bool,
        /// The producer's view of the partition's leader is stale.
        refresh_metadata: bool,
        /// A sequence gap: move to the next producer epoch.
        bump_epoch: bool,
        /// Without backoff: it goes to a new leader (KIP-951), as the Java client does.
        at_once: bool,
    },
    /// Fail it for good.
    Fail {
        /// As for [`Verdict::Retry`].
        refresh_metadata: bool,
        /// As for [`Verdict::Retry`].
        bump_epoch: bool,
    },
}

/// The verdict on a batch whose partition answered with `code`.
pub(super) fn verdict(code: ErrorCode, batch: &BatchFacts) -> Verdict {
    if batch.idempotent {
        match code {
            // A resend of a batch whose answer was lost.
            ErrorCode::DUPLICATE_SEQUENCE_NUMBER => return Verdict::CompleteDuplicate,
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER if batch.acknowledged_after => {
                return Verdict::CompleteDuplicate;
            }
            // The next batch the broker expects: a real gap (a lost batch), so a new epoch.
            // Any other: an earlier batch is being retried, and this one follows it.
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER => {
                return Verdict::Retry {
                    possibly_persisted: false,
                    refresh_metadata: false,
                    bump_epoch: batch.next_expected,
                    at_once: false,
                }
                .unless_exhausted(batch.retries_left);
            }
            // The broker lost the producer's state. With the log start offset known, its
            // records were removed from the log, so a new epoch; without, retry until it is.
            ErrorCode::UNKNOWN_PRODUCER_ID => {
                return Verdict::Retry {
                    possibly_persisted: false,
                    refresh_metadata: false,
                    bump_epoch: batch.log_start_known,
                    at_once: false,
                }
                .unless_exhausted(batch.retries_left);
            }
            _ => {}
        }
    }
    if code.is_ok() {
        return Verdict::Complete;
    }
    if code == ErrorCode::MESSAGE_TOO_LARGE {
        return Verdict::Split;
    }
    let refresh_metadata = invalidates_metadata(code);
    // Under transaction version 2 a Produce adds its partition to the transaction, and the
    // coordinator answers this while it still completes the producer's last transaction; the
    // Java client retries it.
    if !code.is_retriable() && code != ErrorCode::CONCURRENT_TRANSACTIONS {
        return Verdict::Fail {
            refresh_metadata,
            bump_epoch: false,
        };
    }
    Verdict::Retry {
        // Written by the leader, not yet by enough replicas; or timed out while waiting.
        possibly_persisted: matches!(
            code,
            ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND | ErrorCode::REQUEST_TIMED_OUT
        ),
        refresh_metadata,
        bump_epoch: false,
        // The metadata is refreshed all the same (Java: `requestUpdate` on every
        // InvalidMetadataException): a leader change seldom moves one partition alone.
        at_once: batch.leader_moved
            && matches!(
                code,
                ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::FENCED_LEADER_EPOCH
            ),
    }
    .unless_exhausted(batch.retries_left)
}

/// The verdict on a batch whose request got no answer (the connection failed or the request
/// timed out): the broker may have written it. The caller refreshes metadata, once per request.
pub(super) fn unanswered(retries_left: bool) -> Verdict {
    Verdict::Retry {
        possibly_persisted: true,
        refresh_metadata: false,
        bump_epoch: false,
        at_once: false,
    }
    .unless_exhausted(retries_left)
}

/// The verdict on a batch whose partition the answer left out.
pub(super) fn left_out(retries_left: bool) -> Verdict {
    Verdict::Retry {
        possibly_persisted: false,
        refresh_metadata: false,
        bump_epoch: false,
        at_once: false,
    }
    .unless_exhausted(retries_left)
}

impl Verdict {
    /// This verdict; but a retry of a batch that has used its retries becomes a failure with
    /// the same side effects.
    fn unless_exhausted(self, retries_left: bool) -> Verdict {
        match self {
            Verdict::Retry {
                refresh_metadata,
                bump_epoch,
                ..
            } if !retries_left => Verdict::Fail {
                refresh_metadata,
                bump_epoch,
            },
            verdict => verdict,
        }
    }
}

/// Errors after which the producer's view of leaders is stale (Java: InvalidMetadataException).
fn invalidates_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::KAFKA_STORAGE_ERROR
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
            | ErrorCode::UNKNOWN_TOPIC_ID
            | ErrorCode::INCONSISTENT_TOPIC_ID
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETE: Verdict = Verdict::Complete;
    const DUPLICATE: Verdict = Verdict::CompleteDuplicate;
    const SPLIT: Verdict = Verdict::Split;
    const RETRY: Verdict = Verdict::Retry {
        possibly_persisted: false,
        refresh_metadata: false,
        bump_epoch: false,
        at_once: false,
    };
    /// Retry; the broker may have written it.
    const RETRY_WRITTEN: Verdict = Verdict::Retry {
        possibly_persisted: true,
        refresh_metadata: false,
        bump_epoch: false,
        at_once: false,
    };
    /// Retry after a metadata refresh.
    const RETRY_REFRESH: Verdict = Verdict::Retry {
        possibly_persisted: false,
        refresh_metadata: true,
        bump_epoch: false,
        at_once: false,
    };
    /// Retry in a new epoch.
    const RETRY_BUMP: Verdict = Verdict::Retry {
        possibly_persisted: false,
        refresh_metadata: false,
        bump_epoch: true,
        at_once: false,
    };
    const FAIL: Verdict = Verdict::Fail {
        refresh_metadata: false,
        bump_epoch: false,
    };
    const FAIL_BUMP: Verdict = Verdict::Fail {
        refresh_metadata: false,
        bump_epoch: true,
    };

    /// Retries left; the sequence facts all false.
    const PLAIN: BatchFacts = BatchFacts {
        idempotent: false,
        acknowledged_after: false,
        next_expected: false,
        log_start_known: false,
        retries_left: true,
        leader_moved: false,
    };
    const IDEMPOTENT: BatchFacts = BatchFacts {
        idempotent: true,
        ..PLAIN
    };

    /// What becomes of a retry once the batch has used its retries: a failure, with the same
    /// side effects. Anything else stays as it is.
    fn exhausted(v: Verdict) -> Verdict {
        match v {
            Verdict::Retry {
                refresh_metadata,
                bump_epoch,
                ..
            } => Verdict::Fail {
                refresh_metadata,
                bump_epoch,
            },
            other => other,
        }
    }

    /// Every code a broker may put in a Produce answer (Kafka's ProduceResponse and the Java
    /// client's Sender), with the verdict without and with idempotence; sequence facts false,
    /// log start offset unknown. Each row is also checked with the batch's retries used up.
    #[test]
    fn every_produce_error_code() {
        #[rustfmt::skip]
        let table = [
            // code                                            plain          idempotent
            (ErrorCode::NONE,                                  COMPLETE,      COMPLETE),
            (ErrorCode::UNKNOWN_SERVER_ERROR,                  FAIL,          FAIL),
            (ErrorCode::CORRUPT_MESSAGE,                       RETRY,         RETRY),
            (ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,            RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::LEADER_NOT_AVAILABLE,                  RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::NOT_LEADER_OR_FOLLOWER,                RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::REQUEST_TIMED_OUT,                     RETRY_WRITTEN, RETRY_WRITTEN),
            (ErrorCode::REPLICA_NOT_AVAILABLE,                 RETRY,         RETRY),
            (ErrorCode::MESSAGE_TOO_LARGE,                     SPLIT,         SPLIT),
            (ErrorCode::NETWORK_EXCEPTION,                     RETRY,         RETRY),
            (ErrorCode::INVALID_TOPIC_EXCEPTION,               FAIL,          FAIL),
            (ErrorCode::RECORD_LIST_TOO_LARGE,                 FAIL,          FAIL),
            (ErrorCode::NOT_ENOUGH_REPLICAS,                   RETRY,         RETRY),
            (ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,      RETRY_WRITTEN, RETRY_WRITTEN),
            (ErrorCode::INVALID_REQUIRED_ACKS,                 FAIL,          FAIL),
            (ErrorCode::TOPIC_AUTHORIZATION_FAILED,            FAIL,          FAIL),
            (ErrorCode::CLUSTER_AUTHORIZATION_FAILED,          FAIL,          FAIL),
            (ErrorCode::INVALID_TIMESTAMP,                     FAIL,          FAIL),
            (ErrorCode::UNSUPPORTED_VERSION,                   FAIL,          FAIL),
            (ErrorCode::INVALID_REQUEST,                       FAIL,          FAIL),
            (ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT,        FAIL,          FAIL),
            (ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,          FAIL,          RETRY),
            (ErrorCode::DUPLICATE_SEQUENCE_NUMBER,             FAIL,          DUPLICATE),
            (ErrorCode::INVALID_PRODUCER_EPOCH,                FAIL,          FAIL),
            (ErrorCode::INVALID_TXN_STATE,                     FAIL,          FAIL),
            (ErrorCode::INVALID_PRODUCER_ID_MAPPING,           FAIL,          FAIL),
            (ErrorCode::CONCURRENT_TRANSACTIONS,               RETRY,         RETRY),
            (ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, FAIL,          FAIL),
            (ErrorCode::KAFKA_STORAGE_ERROR,                   RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::UNKNOWN_PRODUCER_ID,                   FAIL,          RETRY),
            (ErrorCode::FENCED_LEADER_EPOCH,                   RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::UNKNOWN_LEADER_EPOCH,                  RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,          FAIL,          FAIL),
            (ErrorCode::OFFSET_NOT_AVAILABLE,                  RETRY,         RETRY),
            (ErrorCode::INVALID_RECORD,                        FAIL,          FAIL),
            (ErrorCode::THROTTLING_QUOTA_EXCEEDED,             RETRY,         RETRY),
            (ErrorCode::PRODUCER_FENCED,                       FAIL,          FAIL),
            (ErrorCode::UNKNOWN_TOPIC_ID,                      RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::INCONSISTENT_TOPIC_ID,                 RETRY_REFRESH, RETRY_REFRESH),
            (ErrorCode::TRANSACTION_ABORTABLE,                 FAIL,          FAIL),
            (ErrorCode(31000),                                 FAIL,          FAIL),
        ];
        for (code, plain, idempotent) in table {
            let name = code.name();
            for (facts, expected) in [(PLAIN, plain), (IDEMPOTENT, idempotent)] {
                assert_eq!(verdict(code, &facts), expected, "{name}, {facts:?}");
                let used_up = BatchFacts {
                    retries_left: false,
                    ..facts
                };
                let expected = exhausted(expected);
                assert_eq!(verdict(code, &used_up), expected, "{name}, {used_up:?}");
            }
        }
    }

    /// The idempotent cases that depend on where the batch stands in its partition's sequence.
    #[test]
    fn sequence_errors_with_idempotence() {
        let out_of_order = ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER;
        let unknown_producer = ErrorCode::UNKNOWN_PRODUCER_ID;
        let acked_after = BatchFacts {
            acknowledged_after: true,
            ..IDEMPOTENT
        };
        let next = BatchFacts {
            next_expected: true,
            ..IDEMPOTENT
        };
        let log_start = BatchFacts {
            log_start_known: true,
            ..IDEMPOTENT
        };
        #[rustfmt::skip]
        let table = [
            // code           facts       retries left  retries used up
            (out_of_order,     acked_after, DUPLICATE,   DUPLICATE),
            (out_of_order,     next,        RETRY_BUMP,  FAIL_BUMP),
            (out_of_order,     IDEMPOTENT,  RETRY,       FAIL),
            (unknown_producer, log_start,   RETRY_BUMP,  FAIL_BUMP),
            (unknown_producer, IDEMPOTENT,  RETRY,       FAIL),
        ];
        for (code, facts, left, used_up) in table {
            assert_eq!(verdict(code, &facts), left, "{}, {facts:?}", code.name());
            let facts = BatchFacts {
                retries_left: false,
                ..facts
            };
            assert_eq!(verdict(code, &facts), used_up, "{}, {facts:?}", code.name());
        }
        // Without idempotence the sequence facts are never gathered, and never read.
        for facts in [acked_after, next, log_start] {
            let plain = BatchFacts {
                idempotent: false,
                ..facts
            };
            assert_eq!(verdict(out_of_order, &plain), FAIL);
            assert_eq!(verdict(unknown_producer, &plain), FAIL);
        }
    }

    /// A newer leader named in the answer (KIP-951) makes the retry go at once; the metadata
    /// is refreshed all the same, as the Java client does. Other codes never read the fact.
    #[test]
    fn a_moved_leader_is_retried_at_once() {
        const RETRY_AT_ONCE: Verdict = Verdict::Retry {
            possibly_persisted: false,
            refresh_metadata: true,
            bump_epoch: false,
            at_once: true,
        };
        for base in [PLAIN, IDEMPOTENT] {
            let moved = BatchFacts {
                leader_moved: true,
                ..base
            };
            for code in [
                ErrorCode::NOT_LEADER_OR_FOLLOWER,
                ErrorCode::FENCED_LEADER_EPOCH,
            ] {
                assert_eq!(verdict(code, &moved), RETRY_AT_ONCE, "{}", code.name());
                assert_eq!(verdict(code, &base), RETRY_REFRESH, "{}", code.name());
                let used_up = BatchFacts {
                    retries_left: false,
                    ..moved
                };
                assert_eq!(verdict(code, &used_up), exhausted(RETRY_REFRESH));
            }
            for code in [
                ErrorCode::LEADER_NOT_AVAILABLE,
                ErrorCode::UNKNOWN_LEADER_EPOCH,
                ErrorCode::NOT_ENOUGH_REPLICAS,
            ] {
                assert_eq!(
                    verdict(code, &moved),
                    verdict(code, &base),
                    "{}",
                    code.name()
                );
            }
        }
    }

    #[test]
    fn batches_without_an_answer() {
        assert_eq!(unanswered(true), RETRY_WRITTEN);
        assert_eq!(unanswered(false), FAIL);
        assert_eq!(left_out(true), RETRY);
        assert_eq!(left_out(false), FAIL);
    }
}
