//! The thread that runs a producer's callbacks: records complete on the runtime's threads,
//! which never take the GIL; their callbacks come here, and run in completion order. It starts
//! with the first callback, and ends once the producer is closing and no callback is due.
//!
//! Every record with callbacks has a ticket ([`Dispatcher::expect`]) until they have run;
//! `flush` waits until every ticket issued before it is done ([`Dispatcher::wait_idle`]), so
//! after `flush` the callbacks of the records sent before it have run, as in kafka-python, while
//! records sent meanwhile by other threads do not hold it up.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use pyo3::prelude::*;

use crate::future::State;
use crate::SLICE;

/// A record whose callbacks are due.
pub(crate) type Job = Arc<State>;

/// The running thread: its queue, its handle, its id.
type Running = (Sender<Job>, JoinHandle<()>, ThreadId);

#[derive(Default)]
struct Tickets {
    next: u64,
    /// Issued, callbacks not run yet.
    open: BTreeSet<u64>,
}

#[derive(Default)]
pub(crate) struct Dispatcher {
    thread: Mutex<Option<Running>>,
    tickets: Mutex<Tickets>,
    ran: Condvar,
    /// Set by `close`: the thread ends once no ticket is open.
    stopping: AtomicBool,
}

impl Dispatcher {
    fn tickets(&self) -> MutexGuard<'_, Tickets> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record now has callbacks that will need to run: its ticket.
    pub(crate) fn expect(&self) -> u64 {
        let mut t = self.tickets();
        let ticket = t.next;
        t.next += 1;
        t.open.insert(ticket);
        ticket
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
                    warn(&format!("cannot start the callback thread: {e}"));
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
        loop {
            match rx.recv_timeout(SLICE) {
                Ok(job) => Python::attach(|py| {
                    self.finish(py, &job);
                    // Whatever else is queued, under the same hold of the GIL.
                    while let Ok(job) = rx.try_recv() {
                        self.finish(py, &job);
                    }
                }),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping.load(Ordering::Acquire) && self.tickets().open.is_empty() {
                // Gone: a callback registered later (on a finished future) runs in its caller.
                self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
                return;
            }
        }
    }

    fn finish(&self, py: Python<'_>, job: &Job) {
        job.run_callbacks(py);
        if let Some(ticket) = job.ticket() {
            self.tickets().open.remove(&ticket);
            self.ran.notify_all();
        }
    }

    /// Whether the caller is the callback thread (where waiting for callbacks would wait for
    /// itself).
    fn on_callback_thread(&self) -> bool {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        thread
            .as_ref()
            .is_some_and(|(_, _, id)| *id == std::thread::current().id())
    }

    /// Waits until the callbacks of every ticket issued so far have run, or `deadline`; the GIL
    /// is released while waiting. Returns whether it got there.
    pub(crate) fn wait_idle(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        if self.on_callback_thread() {
            return Ok(true);
        }
        let before = self.tickets().next;
        let done = |t: &Tickets| t.open.first().is_none_or(|&first| first >= before);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
                None => SLICE,
            };
            let finished = py.detach(|| {
                let t = self.tickets();
                if done(&t) {
                    return true;
                }
                let (t, _) = self
                    .ran
                    .wait_timeout(t, slice)
                    .unwrap_or_else(|e| e.into_inner());
                done(&t)
            });
            if finished {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// The producer is closing: the thread ends once every due callback has run. Waits for that
    /// until `deadline` (not from the callback thread itself); after it, the thread finishes on
    /// its own.
    pub(crate) fn stop(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<()> {
        self.stopping.store(true, Ordering::Release);
        if self.on_callback_thread() {
            return Ok(());
        }
        loop {
            let finished = {
                let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
                thread.as_ref().is_none_or(|(_, h, _)| h.is_finished())
            };
            if finished || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            py.detach(|| std::thread::sleep(std::time::Duration::from_millis(10)));
            py.check_signals()?;
        }
    }
}

/// A warning through Python's `logging`, for the rare failure with no exception to raise.
pub(crate) fn warn(message: &str) {
    Python::attach(|py| {
        if let Ok(logger) = py
            .import("logging")
            .and_then(|l| l.call_method1("getLogger", ("kprod",)))
        {
            let _ = logger.call_method1("warning", ("%s", message));
        }
    });
}
