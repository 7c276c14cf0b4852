//! The Rust core's errors as `kprod.errors` exceptions: `kprod.errors._from_core` picks the
//! class (by Kafka error code where a broker sent one, else by the kind of error) and this module
//! hands it the kind, the code and the core's message.

use kafka_producer::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static FROM_CORE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The kind of a core error, as `_from_core` knows it.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::Config { .. } => "config",
        Error::Bootstrap { .. } => "bootstrap",
        Error::Broker { .. } => "broker",
        Error::Serialization { .. } => "serialization",
        Error::RecordTooLarge { .. } => "record_too_large",
        Error::UnknownTopic { .. } => "unknown_topic",
        Error::InvalidPartition { .. } => "invalid_partition",
        Error::BufferExhausted { .. } => "buffer_exhausted",
        Error::DeliveryTimeout { .. } => "delivery_timeout",
        Error::Network { .. } => "network",
        Error::ProducerId { .. } => "producer_id",
        Error::Authentication { .. } => "authentication",
        Error::Protocol { .. } => "protocol",
        Error::UnsupportedVersion { .. } => "unsupported_version",
        Error::Closed { .. } => "closed",
        Error::CloseTimedOut { .. } => "close_timed_out",
        Error::TaskPanicked { .. } => "task_panicked",
        Error::Runtime { .. } => "runtime",
        Error::FlushFailed { .. } => "flush_failed",
        Error::Coordinator { .. } => "coordinator",
        Error::TransactionState { .. } => "transaction_state",
        Error::TransactionAbortable { .. } => "transaction_abortable",
        Error::TransactionFatal { .. } => "transaction_fatal",
        Error::TransactionTimeout { .. } => "transaction_timeout",
        Error::TransactionAborted { .. } => "transaction_aborted",
        _ => "other",
    }
}

/// The exception for a core error.
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    // A broker's code decides the class, except where the core's kind says more: a delivery
    // timeout after retries of a retriable code is a timeout, an oversized record is too large.
    // A failed transaction's code is its reason's; the reason is also the exception's cause.
    let code = match e {
        Error::Broker { .. }
        | Error::ProducerId { .. }
        | Error::Coordinator { .. }
        | Error::TransactionAbortable { .. }
        | Error::TransactionFatal { .. } => e.code().map(|c| c.0),
        _ => None,
    };
    let cause = match e {
        Error::TransactionAbortable { reason, .. } | Error::TransactionFatal { reason, .. } => {
            Some(to_py(py, reason).value(py).clone().into_any().unbind())
        }
        _ => None,
    };
    make(
        py,
        kind(e),
        code,
        &e.to_string(),
        e.possibly_persisted(),
        cause,
    )
}

/// An `IllegalStateError` (a closed producer, a producer used after `fork`).
pub(crate) fn state(message: String) -> PyErr {
    Python::attach(|py| build(py, "state", None, &message, false))
}

/// A `KafkaTimeoutError`.
pub(crate) fn timeout(py: Python<'_>, message: String) -> PyErr {
    build(py, "timeout", None, &message, false)
}

pub(crate) fn build(
    py: Python<'_>,
    kind: &str,
    code: Option<i16>,
    message: &str,
    possibly_persisted: bool,
) -> PyErr {
    make(py, kind, code, message, possibly_persisted, None)
}

/// `kprod.errors._from_core(kind, code, message, possibly_persisted, cause)`.
fn make(
    py: Python<'_>,
    kind: &str,
    code: Option<i16>,
    message: &str,
    possibly_persisted: bool,
    cause: Option<Py<PyAny>>,
) -> PyErr {
    let from_core = FROM_CORE.get_or_try_init(py, || {
        py.import("kprod.errors")?
            .getattr("_from_core")
            .map(Bound::unbind)
    });
    let args = (kind, code, message, possibly_persisted, cause);
    match from_core.and_then(|f| f.bind(py).call1(args)) {
        Ok(exception) => PyErr::from_value(exception),
        Err(e) => e,
    }
}
