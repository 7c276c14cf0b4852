//! The thread that runs a producer's callbacks: records complete on the runtime's threads,
//! which never take the GIL; their callbacks come here, and run in completion order. It starts
//! with the first callback and ends when the producer closes.
//!
//! `flush` waits until every callback registered before it has run ([`Dispatcher::wait_idle`]),
//! so after `flush` a record's callbacks have run, as in kafka-python.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use pyo3::prelude::*;

use crate::future::State;

/// A record whose callbacks are due.
pub(crate) type Job = Arc<State>;

/// The running thread: its queue, its handle, its id.
type Running = (Sender<Job>, JoinHandle<()>, ThreadId);

#[derive(Default)]
pub(crate) struct Dispatcher {
    thread: Mutex<Option<Running>>,
    /// Records with callbacks whose callbacks have not run yet.
    pending: AtomicUsize,
    idle: (Mutex<()>, Condvar),
}

impl Dispatcher {
    /// A record now has callbacks that will need to run.
    pub(crate) fn expect(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Queues `job`'s callbacks for the thread, starting it if needed.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            let (tx, rx) = channel();
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("kprod-callbacks".into())
                .spawn(move || me.run(rx));
            match spawned {
                Ok(handle) => {
                    let id = handle.thread().id();
                    *thread = Some((tx, handle, id));
                }
                Err(e) => {
                    drop(thread);
                    // No thread: run them here, once the GIL is ours.
                    tracing_free_warning(&format!("cannot start the callback thread: {e}"));
                    Python::attach(|py| self.finish(py, &job));
                    return;
                }
            }
        }
        let (tx, _, _) = thread.as_ref().expect("started above");
        if let Err(returned) = tx.send(job) {
            drop(thread);
            Python::attach(|py| self.finish(py, &returned.0));
        }
    }

    fn run(&self, rx: Receiver<Job>) {
        // Python's name for this thread too, for `threading.current_thread()` in callbacks.
        Python::attach(|py| {
            let named = py
                .import("threading")
                .and_then(|t| t.call_method0("current_thread"))
                .and_then(|t| t.setattr("name", "kprod-callbacks"));
            if let Err(e) = named {
                e.print(py);
            }
        });
        while let Ok(job) = rx.recv() {
            Python::attach(|py| {
                self.finish(py, &job);
                // Whatever else is queued, under the same hold of the GIL.
                while let Ok(job) = rx.try_recv() {
                    self.finish(py, &job);
                }
            });
        }
    }

    fn finish(&self, py: Python<'_>, job: &Job) {
        job.run_callbacks(py);
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _guard = self.idle.0.lock().unwrap_or_else(|e| e.into_inner());
            self.idle.1.notify_all();
        }
    }

    /// Whether the caller is the callback thread (where waiting for callbacks would wait for
    /// itself).
    pub(crate) fn on_callback_thread(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        thread
            .as_ref()
            .is_some_and(|(_, _, id)| *id == std::thread::current().id())
    }

    /// Waits until every callback expected so far has run, or `deadline`; the GIL is released
    /// while waiting. Returns whether it got there.
    pub(crate) fn wait_idle(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        if self.on_callback_thread() {
            return Ok(true);
        }
        loop {
            if self.pending.load(Ordering::Acquire) == 0 {
                return Ok(true);
            }
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(crate::SLICE),
                None => crate::SLICE,
            };
            py.detach(|| {
                let guard = self.idle.0.lock().unwrap_or_else(|e| e.into_inner());
                if self.pending.load(Ordering::Acquire) != 0 {
                    let _ = self.idle.1.wait_timeout(guard, slice);
                }
            });
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(self.pending.load(Ordering::Acquire) == 0);
            }
        }
    }

    /// Stops the thread once its queue is empty, and waits for it (unless called from it).
    pub(crate) fn stop(&self, py: Python<'_>) {
        let taken = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((tx, handle, id)) = taken {
            drop(tx);
            if id != std::thread::current().id() {
                py.detach(|| {
                    let _ = handle.join();
                });
            }
        }
    }
}

/// A warning through Python's `logging`, for the rare failure with no exception to raise.
pub(crate) fn tracing_free_warning(message: &str) {
    Python::attach(|py| {
        if let Ok(logger) = py
            .import("logging")
            .and_then(|l| l.call_method1("getLogger", ("kprod",)))
        {
            let _ = logger.call_method1("warning", ("%s", message));
        }
    });
}
