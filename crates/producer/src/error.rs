//! The one error type of the library.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use kafka_producer_protocol::ErrorCode;

/// A boxed error from user code (a serializer, a partitioner).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong between `send` and an acknowledgement.
///
/// Each variant names what it concerns (the configuration key, the topic and partition, the broker).
/// [`Error::is_retriable`] says whether trying the same thing again may succeed;
/// [`Error::possibly_persisted`] says whether the broker may have written the record anyway.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key is unknown or its value is not allowed.
    #[error("invalid configuration `{key}`: {message}")]
    Config {
        /// The Kafka property name, e.g. `linger.ms`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },

    /// None of `bootstrap.servers` answered with cluster metadata.
    #[error("could not reach any of bootstrap.servers [{servers}]: {details}")]
    Bootstrap {
        /// The configured servers.
        servers: String,
        /// What each address answered.
        details: String,
    },

    /// A broker answered with an error code for this topic or partition.
    #[error("{topic}{}: broker error {code}{}", partition_suffix(*.partition), acl_hint(*.code))]
    Broker {
        /// The topic the request was for.
        topic: String,
        /// The partition, when the error concerns one.
        partition: Option<i32>,
        /// The Kafka error code, with its name.
        code: ErrorCode,
        /// The broker's own message, when it sent one.
        message: Option<String>,
    },

    /// The key or value serializer failed; the record was not queued.
    #[error("{topic}: could not serialize the record's {part}: {source}")]
    Serialization {
        /// The topic the record was for.
        topic: String,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// The serializer's error.
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The record can never be sent: it is larger than `max.request.size` or `buffer.memory`.
    #[error(
        "{topic}: the record is {size} bytes when serialized, larger than {limit_name} ({limit})"
    )]
    RecordTooLarge {
        /// The topic the record was for.
        topic: String,
        /// Its encoded size in a batch.
        size: usize,
        /// The setting it exceeds.
        limit_name: &'static str,
        /// The setting's value.
        limit: usize,
    },

    /// The topic does not exist (or is not visible) and did not appear within `max.block.ms`.
    #[error("topic `{topic}` not present in metadata after {} ms{}", waited.as_millis(), reason_suffix(.reason))]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// How long `send` waited.
        waited: Duration,
        /// The last error the brokers gave for it, if any.
        reason: Option<ErrorCode>,
    },

    /// The explicit partition of a record does not exist.
    #[error("{topic}: partition {partition} does not exist (the topic has {partition_count})")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many the topic has.
        partition_count: usize,
    },

    /// `send` waited `max.block.ms` for room in `buffer.memory`.
    #[error("{topic}: no room in buffer.memory ({buffer_memory} bytes) after {} ms (max.block.ms); the brokers are not keeping up or unreachable", waited.as_millis())]
    BufferExhausted {
        /// The topic of the record that could not be queued.
        topic: String,
        /// `buffer.memory`.
        buffer_memory: usize,
        /// How long `send` waited.
        waited: Duration,
    },

    /// The record was not acknowledged within `delivery.timeout.ms` of `send`.
    #[error("{topic}-{partition}: not acknowledged within delivery.timeout.ms ({} ms){}", timeout.as_millis(), last_error_suffix(.last_error))]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// `delivery.timeout.ms`.
        timeout: Duration,
        /// Whether the broker may have written the record: a request carrying it got no answer,
        /// or an answer saying it was written to too few replicas or timed out.
        possibly_persisted: bool,
        /// The last error seen while trying, if any.
        last_error: Option<Box<Error>>,
    },

    /// A connection failed or a request got no answer within `request.timeout.ms`.
    #[error("broker {broker}: {message}")]
    Network {
        /// The broker address (`host:port`) or node id.
        broker: String,
        /// What happened.
        message: String,
    },

    /// No producer id for idempotence: InitProducerId failed (e.g. CLUSTER_AUTHORIZATION_FAILED,
    /// when the principal may not write idempotently).
    #[error("could not get a producer id for idempotence (InitProducerId): {code}{}", acl_hint(*.code))]
    ProducerId {
        /// The broker's error code.
        code: ErrorCode,
    },

    /// The broker refused this client's credentials or certificate, or this client refused the
    /// broker's (TLS or SASL). Not retriable: the producer closes, failing every pending record
    /// and later send with this error.
    #[error("authentication with broker {broker} failed ({method}): {message}")]
    Authentication {
        /// The broker address.
        broker: String,
        /// `TLS`, or `SASL/` and the mechanism.
        method: String,
        /// What happened.
        message: String,
    },

    /// The broker is too old for what was asked of it: for this client at all (a broker before
    /// Kafka 0.11, which lacks record batch v2: the producer then closes, as after a failed
    /// authentication), or for one feature (zstd needs Kafka 2.1). Trying again does not help;
    /// upgrading the broker, or doing without the feature, does.
    #[error(
        "broker {broker} is too old for {feature}: that needs Kafka {kafka} or later ({api} v{needed}+), and this broker speaks {api} {}",
        speaks(*.max)
    )]
    UnsupportedVersion {
        /// The broker address.
        broker: String,
        /// What needs the newer broker (`this client`, `zstd compression`).
        feature: String,
        /// The first Kafka release that has it.
        kafka: &'static str,
        /// The request that must be at `needed` or above.
        api: &'static str,
        /// The lowest version of `api` that has it.
        needed: i16,
        /// The highest version of `api` the broker speaks; -1 when it does not speak it at all.
        max: i16,
    },

    /// The broker sent something this client cannot understand.
    #[error("protocol error from broker {broker}: {message}")]
    Protocol {
        /// The broker address.
        broker: String,
        /// What was wrong.
        message: String,
    },

    /// The producer was closed; the record was not (or no longer) sent.
    #[error("the producer is closed{}", topic.as_deref().map(|t| format!(" (record for {t} not delivered)")).unwrap_or_default())]
    Closed {
        /// The topic of the record, when the error concerns one.
        topic: Option<String>,
    },

    /// `close` gave up waiting: these records were not acknowledged within its timeout, and each
    /// one's handle failed with [`Error::Closed`].
    #[error("close: {pending} record(s) not acknowledged within the close timeout of {} ms; they failed", timeout.as_millis())]
    CloseTimedOut {
        /// How many records were still waiting for their outcome.
        pending: usize,
        /// The timeout given to `close`.
        timeout: Duration,
    },

    /// A background task of the producer panicked (a bug). The producer closed itself: every
    /// record without an outcome failed with this error, and every later send fails with it at
    /// once. A record that was in flight may have been written.
    #[error("the producer's {task} task panicked ({message}); the producer is closed")]
    TaskPanicked {
        /// Which task: `sender`, `metadata`, `produce`, `connect` or `producer id`.
        task: &'static str,
        /// The panic's message.
        message: String,
    },

    /// The tokio runtime a [`crate::BlockingProducer`] runs on could not be started.
    #[error("could not start the blocking producer's runtime: {message}")]
    Runtime {
        /// What the operating system said.
        message: String,
    },

    /// A transaction coordinator or group coordinator answered a transactional request with an
    /// error code (the reason inside [`Error::TransactionAbortable`] and
    /// [`Error::TransactionFatal`], or on its own when retrying could help).
    #[error("{request}: coordinator error {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Coordinator {
        /// The request: `FindCoordinator`, `InitProducerId`, `AddPartitionsToTxn`,
        /// `AddOffsetsToTxn`, `TxnOffsetCommit` or `EndTxn`.
        request: &'static str,
        /// The Kafka error code, with its name.
        code: ErrorCode,
        /// The broker's message, or what the code means here.
        message: Option<String>,
    },

    /// A transactional call that the producer's state does not allow now: a send or
    /// `send_offsets_to_transaction` with no transaction begun, `begin_transaction` twice,
    /// anything before `init_transactions`, a non-transactional producer asked to commit.
    #[error("{operation}: {message}")]
    TransactionState {
        /// The call: `send`, `begin_transaction`, `commit_transaction`, ...
        operation: &'static str,
        /// Why it is not allowed, and what to do instead.
        message: String,
    },

    /// The open transaction failed and can only be aborted: a record in it failed, the
    /// brokers refused it (TRANSACTION_ABORTABLE, an authorization error for a topic or group),
    /// or the coordinator aborted it after `transaction.timeout.ms`. Call `abort_transaction`;
    /// the producer can then begin the next transaction.
    #[error("transaction of `{transactional_id}` failed and must be aborted (abort_transaction): {reason}")]
    TransactionAbortable {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// What failed.
        reason: Box<Error>,
    },

    /// The transactional producer can no longer be used and must be closed: another producer
    /// with the same `transactional.id` fenced it (PRODUCER_FENCED, or the coordinator's
    /// INVALID_PRODUCER_EPOCH), the principal may not use the transactional id, or the
    /// brokers do not support what it needs. Every pending record fails with this error, and
    /// so does every later call.
    #[error("transactional producer `{transactional_id}` can no longer be used: {reason}")]
    TransactionFatal {
        /// The producer's `transactional.id`.
        transactional_id: String,
        /// What happened.
        reason: Box<Error>,
    },

    /// A transactional call did not finish within its timeout. It goes on in the background:
    /// calling the same method again waits for the same outcome.
    #[error("{operation} did not finish within {} ms; it goes on, and calling it again waits for it", timeout.as_millis())]
    TransactionTimeout {
        /// The call.
        operation: &'static str,
        /// The timeout it was given.
        timeout: Duration,
    },

    /// The record was in a transaction that was aborted before it was sent.
    #[error("{topic}-{partition}: not sent: its transaction was aborted")]
    TransactionAborted {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },

    /// `flush` finished, but some records failed; each one's handle has its own error.
    #[error("flush: {failed} record batch(es) failed; first failure: {first}")]
    FlushFailed {
        /// How many batches failed.
        failed: usize,
        /// The first failure.
        first: Box<Error>,
    },
}

/// Which ACL an authorization error means is missing, as the Java client's messages say.
fn acl_hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TOPIC_AUTHORIZATION_FAILED => {
            "; the principal needs the Write and Describe ACLs on this topic"
        }
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED => {
            "; an idempotent producer's principal needs the IdempotentWrite ACL on the cluster \
             (or set enable.idempotence=false)"
        }
        _ => "",
    }
}

fn speaks(max: i16) -> String {
    if max < 0 {
        "not at all".to_string()
    } else {
        format!("only up to v{max}")
    }
}

fn partition_suffix(p: Option<i32>) -> String {
    p.map(|p| format!("-{p}")).unwrap_or_default()
}

fn reason_suffix(reason: &Option<ErrorCode>) -> String {
    reason
        .map(|c| format!(" (last error: {c})"))
        .unwrap_or_default()
}

fn last_error_suffix(e: &Option<Box<Error>>) -> String {
    e.as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

impl Error {
    /// The topic this error concerns, if any.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Error::Broker { topic, .. }
            | Error::Serialization { topic, .. }
            | Error::RecordTooLarge { topic, .. }
            | Error::UnknownTopic { topic, .. }
            | Error::InvalidPartition { topic, .. }
            | Error::BufferExhausted { topic, .. }
            | Error::DeliveryTimeout { topic, .. }
            | Error::TransactionAborted { topic, .. } => Some(topic),
            Error::Closed { topic } => topic.as_deref(),
            _ => None,
        }
    }

    /// The partition this error concerns, if any.
    pub fn partition(&self) -> Option<i32> {
        match self {
            Error::Broker { partition, .. } => *partition,
            Error::InvalidPartition { partition, .. }
            | Error::DeliveryTimeout { partition, .. }
            | Error::TransactionAborted { partition, .. } => Some(*partition),
            _ => None,
        }
    }

    /// The broker's error code, if a broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. }
            | Error::ProducerId { code }
            | Error::Coordinator { code, .. } => Some(*code),
            Error::TransactionAbortable { reason, .. } | Error::TransactionFatal { reason, .. } => {
                reason.code()
            }
            _ => None,
        }
    }

    /// Whether doing the same thing again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { code, .. }
            | Error::ProducerId { code }
            | Error::Coordinator { code, .. } => code.is_retriable(),
            Error::Network { .. }
            | Error::TransactionTimeout { .. }
            | Error::Bootstrap { .. }
            | Error::BufferExhausted { .. }
            | Error::DeliveryTimeout { .. }
            | Error::UnknownTopic { .. } => true,
            _ => false,
        }
    }

    /// Whether the broker may have written the record although it was reported as failed.
    ///
    /// True when a request carrying the record was sent and its answer was lost or timed out.
    /// An application that retries such a record itself may write it twice.
    pub fn possibly_persisted(&self) -> bool {
        match self {
            Error::DeliveryTimeout {
                possibly_persisted, ..
            } => *possibly_persisted,
            Error::Network { .. } | Error::TaskPanicked { .. } => true,
            _ => false,
        }
    }

    /// Whether the open transaction must be aborted before the producer can go on
    /// ([`Error::TransactionAbortable`]).
    pub fn requires_abort(&self) -> bool {
        matches!(self, Error::TransactionAbortable { .. })
    }

    /// Whether the producer can no longer be used and should be closed: a transactional
    /// producer that was fenced or refused for good ([`Error::TransactionFatal`]), or a
    /// producer that closed itself ([`Error::TaskPanicked`], [`Error::Authentication`]).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::TransactionFatal { .. }
                | Error::TaskPanicked { .. }
                | Error::Authentication { .. }
        )
    }

    pub(crate) fn config(key: &str, message: impl fmt::Display) -> Self {
        Error::Config {
            key: key.to_string(),
            message: message.to_string(),
        }
    }
}

/// The result type of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
