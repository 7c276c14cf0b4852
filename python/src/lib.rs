//! `kprod._core`, the extension module behind the `kprod` Python package: the Rust producer
//! (`kafka-producer`) with a Python face. The package's Python code (`kprod/`) gives it
//! kafka-python's and aiokafka's API; this module does the work that must not cost a Python
//! frame per record (`send`, the futures) and everything that waits.
//!
//! Threads: the producer's batching and network run on a tokio runtime shared by the process's
//! producers, never holding the GIL. Waits (`get`, `flush`, `close`, a full buffer, metadata)
//! release the GIL and wake every 100 ms to run Python's signal handlers, so Ctrl-C interrupts
//! them. Callbacks run on one thread per producer ([`dispatch`]), never on a runtime thread.

mod dispatch;
mod errors;
mod future;
mod producer;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Forks so far in this process's line: `kprod/__init__.py` registers [`forked`] to run in every
/// child (`os.register_at_fork`). A producer remembers the count it was made at; a different
/// count means it runs in a child, without the parent's threads. (One atomic load per `send`,
/// where `getpid` would be a system call.)
static FORKS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn forks() -> u64 {
    FORKS.load(Ordering::Acquire)
}

/// Called in the child after `fork`.
#[pyfunction]
fn forked() {
    FORKS.fetch_add(1, Ordering::AcqRel);
}

/// How long a wait runs without the GIL before it checks for signals.
const SLICE: Duration = Duration::from_millis(100);

/// The process's runtime, and the process it was made in: after `fork` the child has none of
/// its threads, so a child makes its own (the parent's is leaked there, never dropped).
static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);

/// The runtime for this process, made on first use.
pub(crate) fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    match slot.as_ref() {
        Some((p, rt)) if *p == pid => return Ok(rt.clone()),
        Some(_) => {
            if let Some((_, stale)) = slot.take() {
                // Its threads live in the parent; dropping it here would wait for them forever.
                std::mem::forget(stale);
            }
        }
        None => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kprod-io")
        .enable_all()
        .build()
        .map_err(|e| errors::state(format!("cannot start the producer's threads: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// Runs `fut` on `rt` without the GIL until it finishes or `timeout` passes (`None`: never),
/// checking for signals between slices; `Ok(None)` when the time ran out.
pub(crate) fn wait<F>(
    py: Python<'_>,
    rt: &tokio::runtime::Runtime,
    fut: F,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        let step =
            py.detach(|| rt.block_on(async { tokio::time::timeout(slice, fut.as_mut()).await }));
        match step {
            Ok(out) => return Ok(Some(out)),
            Err(_) => {
                py.check_signals()?;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
        }
    }
}

/// A timeout in seconds from Python (`None`: no limit), checked.
pub(crate) fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t.min(1e9)))),
        Some(t) => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "Invalid timeout: {t}"
        ))),
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<producer::Producer>()?;
    m.add_class::<future::FutureRecordMetadata>()?;
    m.add_function(wrap_pyfunction!(forked, m)?)?;
    Ok(())
}
