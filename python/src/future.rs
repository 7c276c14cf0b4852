//! `FutureRecordMetadata`: one record's outcome, with kafka-python's `Future` API (`get`,
//! `is_done`, `value`, `exception`, `add_callback`, `add_errback`, `add_both`, ...).
//!
//! It holds the core's `DeliveryFuture` until somebody needs the outcome. `is_done` polls it
//! without waiting; `get` waits on it without the GIL; the first callback hands it to a task on
//! the runtime, which records the outcome and passes the callbacks to the producer's callback
//! thread. Whoever holds the `DeliveryFuture` ([`Slot::Taken`]) is the one who records the
//! outcome; anybody else waits on the condition variable.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use kafka_producer::{DeliveryFuture, Error, RecordMetadata};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::dispatch::Dispatcher;
use crate::{errors, wait, SLICE};

enum Slot {
    /// Nobody waits on the outcome yet.
    Pending(DeliveryFuture),
    /// A `get` or a callback task waits on it, and will record it.
    Taken,
    Done(Result<RecordMetadata, Error>),
}

enum Callback {
    OnSuccess(Py<PyAny>),
    OnFailure(Py<PyAny>),
}

struct Inner {
    slot: Slot,
    callbacks: Vec<Callback>,
    /// The dispatcher's ticket for this record's callbacks, once it has some.
    ticket: Option<u64>,
    /// Whether the callback thread has taken the callbacks (later ones run at once, in the
    /// caller, as kafka-python runs a callback added to a finished future).
    ran: bool,
    /// The outcome as Python objects, made once (so `f.exception is f.exception`).
    value: Option<Py<PyAny>>,
    exception: Option<Py<PyAny>>,
}

/// What the Python object and the task waiting for the outcome share.
pub(crate) struct State {
    inner: Mutex<Inner>,
    done: Condvar,
    dispatcher: Arc<Dispatcher>,
    rt: Arc<tokio::runtime::Runtime>,
    topic: Py<PyString>,
    /// Serialized key, value and header sizes, -1 for none (kafka-python's fields).
    sizes: (i64, i64, i64),
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks at a pending outcome without waiting.
    fn poll_now(inner: &mut Inner) {
        if let Slot::Pending(f) = &mut inner.slot {
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(result) = std::pin::Pin::new(f).poll(&mut cx) {
                inner.slot = Slot::Done(result);
            }
        }
    }

    /// Records the outcome (by the one who held the `DeliveryFuture`), wakes the waiters and
    /// sends the callbacks on.
    fn complete(self: &Arc<Self>, result: Result<RecordMetadata, Error>) {
        let due = {
            let mut inner = self.lock();
            inner.slot = Slot::Done(result);
            self.done.notify_all();
            inner.ticket.is_some()
        };
        if due {
            self.dispatcher.submit(self.clone());
        }
    }

    /// Hands the `DeliveryFuture` to a task that records the outcome when it comes.
    fn watch(self: &Arc<Self>, delivery: DeliveryFuture) {
        let me = self.clone();
        self.rt.spawn(async move {
            let result = delivery.await;
            me.complete(result);
        });
    }

    /// The outcome as `(value, exception)`, one of them `None` (both before the outcome); made
    /// once. Python runs here (the namedtuples, the exception's class), so never under the
    /// lock: a thread waiting for the lock while holding the GIL would wait forever for one
    /// that needs the GIL to let go of it.
    fn outcome(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
        let result = {
            let mut inner = self.lock();
            State::poll_now(&mut inner);
            if let Some(made) = Self::made(py, &inner) {
                return Ok(made);
            }
            match &inner.slot {
                Slot::Done(result) => result.clone(),
                _ => return Ok((py.None(), py.None())),
            }
        };
        let (value, exception) = match &result {
            Ok(md) => (Some(self.metadata(py, md)?), None),
            Err(e) => (
                None,
                Some(errors::to_py(py, e).value(py).clone().into_any().unbind()),
            ),
        };
        let mut inner = self.lock();
        if Self::made(py, &inner).is_none() {
            inner.value = value;
            inner.exception = exception;
        }
        Ok(Self::made(py, &inner).expect("stored above"))
    }

    /// The outcome's Python objects, if made.
    fn made(py: Python<'_>, inner: &Inner) -> Option<(Py<PyAny>, Py<PyAny>)> {
        match (&inner.value, &inner.exception) {
            (Some(v), _) => Some((v.clone_ref(py), py.None())),
            (None, Some(e)) => Some((py.None(), e.clone_ref(py))),
            (None, None) => None,
        }
    }

    /// kafka-python's `RecordMetadata` for an acknowledged record.
    fn metadata(&self, py: Python<'_>, md: &RecordMetadata) -> PyResult<Py<PyAny>> {
        static CLASSES: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
        let (record_metadata, topic_partition) = CLASSES.get_or_try_init(py, || {
            let structs = py.import("kprod.structs")?;
            PyResult::Ok((
                structs.getattr("RecordMetadata")?.unbind(),
                structs.getattr("TopicPartition")?.unbind(),
            ))
        })?;
        let topic = self.topic.bind(py);
        let tp = topic_partition.bind(py).call1((topic, md.partition))?;
        let (k, v, h) = self.sizes;
        record_metadata
            .bind(py)
            .call1((
                topic,
                md.partition,
                tp,
                md.offset.unwrap_or(-1),
                md.timestamp,
                py.None(),
                k,
                v,
                h,
            ))
            .map(Bound::unbind)
    }

    /// Runs the callbacks registered so far (on the callback thread).
    pub(crate) fn run_callbacks(&self, py: Python<'_>) {
        let callbacks = {
            let mut inner = self.lock();
            inner.ran = true;
            std::mem::take(&mut inner.callbacks)
        };
        match self.outcome(py) {
            Ok((value, exception)) => {
                for callback in callbacks {
                    call(py, &callback, &value, &exception);
                }
            }
            Err(e) => log_error(py, "cannot make a record's outcome for its callbacks", &e),
        }
    }

    /// The dispatcher's ticket for this record's callbacks.
    pub(crate) fn ticket(&self) -> Option<u64> {
        self.lock().ticket
    }
}

/// Calls `callback` if it is for this outcome; an exception in it is logged, not raised.
fn call(py: Python<'_>, callback: &Callback, value: &Py<PyAny>, exception: &Py<PyAny>) {
    let result = match callback {
        Callback::OnSuccess(f) if exception.is_none(py) => f.call1(py, (value.clone_ref(py),)),
        Callback::OnFailure(f) if !exception.is_none(py) => f.call1(py, (exception.clone_ref(py),)),
        _ => return,
    };
    if let Err(e) = result {
        log_error(py, "Error processing callback", &e);
    }
}

/// `logging.getLogger("kprod").error(message, exc_info=e)`.
pub(crate) fn log_error(py: Python<'_>, message: &str, e: &PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("kprod",))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("exc_info", e.value(py))?;
        logger.call_method("error", (message,), Some(&kwargs))?;
        Ok(())
    })();
    if logged.is_err() {
        e.clone_ref(py).print(py);
    }
}

/// The future of one record: kafka-python's `FutureRecordMetadata`.
#[pyclass(module = "kprod._core", frozen)]
pub(crate) struct FutureRecordMetadata {
    state: Arc<State>,
}

impl FutureRecordMetadata {
    pub(crate) fn new(
        delivery: DeliveryFuture,
        dispatcher: Arc<Dispatcher>,
        rt: Arc<tokio::runtime::Runtime>,
        topic: Py<PyString>,
        sizes: (i64, i64, i64),
    ) -> Self {
        FutureRecordMetadata {
            state: Arc::new(State {
                inner: Mutex::new(Inner {
                    slot: Slot::Pending(delivery),
                    callbacks: Vec::new(),
                    ticket: None,
                    ran: false,
                    value: None,
                    exception: None,
                }),
                done: Condvar::new(),
                dispatcher,
                rt,
                topic,
                sizes,
            }),
        }
    }

    /// Registers `callback`, or runs it now if the outcome is known and no earlier callback is
    /// still queued for the callback thread.
    fn register(&self, py: Python<'_>, callback: Callback) -> PyResult<()> {
        let state = &self.state;
        let mut inner = state.lock();
        State::poll_now(&mut inner);
        if matches!(inner.slot, Slot::Done(_)) && (inner.ticket.is_none() || inner.ran) {
            drop(inner);
            let (value, exception) = state.outcome(py)?;
            call(py, &callback, &value, &exception);
            return Ok(());
        }
        // Not done, or done with earlier callbacks still queued: this one goes after them.
        inner.callbacks.push(callback);
        if inner.ticket.is_none() {
            inner.ticket = Some(state.dispatcher.expect());
        }
        if matches!(inner.slot, Slot::Pending(_)) {
            let Slot::Pending(delivery) = std::mem::replace(&mut inner.slot, Slot::Taken) else {
                unreachable!("matched above")
            };
            drop(inner);
            state.watch(delivery);
        }
        Ok(())
    }

    /// `f` with `args` and `kwargs` bound, as `functools.partial` does.
    fn bind_args(
        py: Python<'_>,
        f: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if args.is_empty() && kwargs.is_none_or(|k| k.is_empty()) {
            return Ok(f);
        }
        let mut all = vec![f.into_bound(py)];
        all.extend(args.iter());
        py.import("functools")?
            .getattr("partial")?
            .call(PyTuple::new(py, all)?, kwargs)
            .map(Bound::unbind)
    }

    /// Registers `f` (with `args` bound) for success, failure or both: `(on_success, on_failure)`.
    fn add<'py>(
        slf: &Bound<'py, Self>,
        f: Py<PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        (on_success, on_failure): (bool, bool),
    ) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let f = Self::bind_args(py, f, args, kwargs)?;
        let this = slf.get();
        if on_success {
            this.register(py, Callback::OnSuccess(f.clone_ref(py)))?;
        }
        if on_failure {
            this.register(py, Callback::OnFailure(f))?;
        }
        Ok(slf.clone())
    }

    fn timed_out(py: Python<'_>, timeout: Option<Duration>) -> PyErr {
        errors::timeout(
            py,
            format!(
                "Timeout after waiting for {} secs.",
                timeout.map_or(f64::INFINITY, |t| t.as_secs_f64())
            ),
        )
    }
}

#[pymethods]
impl FutureRecordMetadata {
    /// Waits up to `timeout` seconds (`None`: as long as it takes) for the outcome: returns the
    /// `RecordMetadata`, or raises the record's exception, or `KafkaTimeoutError`.
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = crate::seconds(timeout)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let state = &self.state;
        loop {
            let mut inner = state.lock();
            State::poll_now(&mut inner);
            match &inner.slot {
                Slot::Done(_) => {
                    drop(inner);
                    let (value, exception) = state.outcome(py)?;
                    if exception.is_none(py) {
                        return Ok(value);
                    }
                    return Err(PyErr::from_value(exception.into_bound(py)));
                }
                Slot::Pending(_) => {
                    let Slot::Pending(mut delivery) =
                        std::mem::replace(&mut inner.slot, Slot::Taken)
                    else {
                        unreachable!("matched above")
                    };
                    drop(inner);
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    match wait(py, &state.rt, &mut delivery, left) {
                        Ok(Some(result)) => state.complete(result),
                        outcome => {
                            // Not done: the next waiter, or a callback task, takes it over.
                            let mut inner = state.lock();
                            if inner.ticket.is_some() {
                                drop(inner);
                                state.watch(delivery);
                            } else {
                                inner.slot = Slot::Pending(delivery);
                                state.done.notify_all();
                            }
                            outcome?;
                            return Err(Self::timed_out(py, timeout));
                        }
                    }
                }
                Slot::Taken => {
                    let slice = deadline.map_or(SLICE, |d| {
                        d.saturating_duration_since(Instant::now()).min(SLICE)
                    });
                    drop(inner);
                    py.detach(|| {
                        let inner = state.lock();
                        if matches!(inner.slot, Slot::Taken) {
                            let _ = state.done.wait_timeout(inner, slice);
                        }
                    });
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d)
                        && !matches!(state.lock().slot, Slot::Done(_))
                    {
                        return Err(Self::timed_out(py, timeout));
                    }
                }
            }
        }
    }

    /// Whether the outcome is known.
    #[getter]
    fn is_done(&self) -> bool {
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        matches!(inner.slot, Slot::Done(_))
    }

    /// The `RecordMetadata` once acknowledged, else `None`.
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.outcome(py)?.0)
    }

    /// The exception once failed, else `None`.
    #[getter]
    fn exception(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.outcome(py)?.1)
    }

    /// For an acknowledged record, 1 if its timestamp is the broker's LogAppendTime, else 0
    /// (CreateTime); `None` before (aiokafka's `timestamp_type`).
    #[getter]
    fn timestamp_type(&self) -> Option<i32> {
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        match &inner.slot {
            Slot::Done(Ok(md)) => Some(i32::from(md.log_append_time)),
            _ => None,
        }
    }

    fn succeeded(&self) -> bool {
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        matches!(inner.slot, Slot::Done(Ok(_)))
    }

    fn failed(&self) -> bool {
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        matches!(inner.slot, Slot::Done(Err(_)))
    }

    fn retriable(&self) -> bool {
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        matches!(&inner.slot, Slot::Done(Err(e)) if e.is_retriable())
    }

    /// Calls `f(*args, record_metadata, **kwargs)` once the record is acknowledged (on the
    /// producer's callback thread; at once if it already is). Returns this future.
    #[pyo3(signature = (f, *args, **kwargs))]
    fn add_callback<'py>(
        slf: &Bound<'py, Self>,
        f: Py<PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        Self::add(slf, f, args, kwargs, (true, false))
    }

    /// Calls `f(*args, exception, **kwargs)` if the record fails. Returns this future.
    #[pyo3(signature = (f, *args, **kwargs))]
    fn add_errback<'py>(
        slf: &Bound<'py, Self>,
        f: Py<PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        Self::add(slf, f, args, kwargs, (false, true))
    }

    /// `add_callback` and `add_errback` with the same function.
    #[pyo3(signature = (f, *args, **kwargs))]
    fn add_both<'py>(
        slf: &Bound<'py, Self>,
        f: Py<PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        Self::add(slf, f, args, kwargs, (true, true))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let topic = self.state.topic.bind(py).to_string();
        let mut inner = self.state.lock();
        State::poll_now(&mut inner);
        match &inner.slot {
            Slot::Done(Ok(md)) => format!(
                "<FutureRecordMetadata {topic}-{} offset={} done>",
                md.partition,
                md.offset.unwrap_or(-1)
            ),
            Slot::Done(Err(e)) => format!("<FutureRecordMetadata {topic} failed: {e}>"),
            _ => format!("<FutureRecordMetadata {topic} pending>"),
        }
    }
}
