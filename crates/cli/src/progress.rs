//! `kprod produce`'s progress line on a terminal: records sent, acknowledged and failed, and the
//! rate, redrawn once a second on stderr after the first second (a short run shows nothing).
//! Nothing is drawn when stderr is not a terminal, so pipes and logs get only the summary.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The counts of the run (one per process: kprod produces once per run).
static SENT: AtomicU64 = AtomicU64::new(0);
static ACKNOWLEDGED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
/// Whether a progress line is on the screen now, to be cleared before other output.
static DRAWN: AtomicBool = AtomicBool::new(false);
/// Serializes stderr between the progress thread and other lines.
static STDERR: Mutex<()> = Mutex::new(());

/// How often the line is redrawn, and when first: a second, or `KPROD_PROGRESS_INTERVAL_MS`
/// (for tests, which then need no long input).
fn every() -> Duration {
    std::env::var("KPROD_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// A record was handed to the producer (or failed before it could be).
pub(crate) fn sent() {
    SENT.fetch_add(1, Ordering::Relaxed);
}

/// A record's outcome is known.
pub(crate) fn settled(acknowledged: bool) {
    match acknowledged {
        true => ACKNOWLEDGED.fetch_add(1, Ordering::Relaxed),
        false => FAILED.fetch_add(1, Ordering::Relaxed),
    };
}

/// `count` records failed at once (an aborted transaction).
pub(crate) fn failed(count: u64) {
    FAILED.fetch_add(count, Ordering::Relaxed);
}

/// Writes a line to stderr (an error, a `--stats` snapshot), clearing the progress line first if
/// one is drawn (it is redrawn later), so the two never share a line.
pub(crate) fn stderr_line(line: &str) {
    let _guard = STDERR.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = io::stderr().lock();
    if DRAWN.swap(false, Ordering::Relaxed) {
        let _ = write!(err, "\r\x1b[K");
    }
    let _ = writeln!(err, "{line}");
}

/// The progress line's thread, while it runs.
pub(crate) struct Progress {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing when stderr is a terminal; otherwise does nothing.
    pub(crate) fn start() -> Progress {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kprod-progress".into())
                .spawn(move || draw_until_stopped(&stop))
                .ok()
        });
        Progress {
            stop,
            thread: thread.flatten(),
        }
    }

    /// Stops drawing and clears the line, before the summary is printed.
    pub(crate) fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _guard = STDERR.lock().unwrap_or_else(|e| e.into_inner());
        if DRAWN.swap(false, Ordering::Relaxed) {
            let _ = write!(io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn draw_until_stopped(stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let every = every();
    let mut last = (Instant::now(), 0u64);
    let mut guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        guard = wake
            .wait_timeout(guard, every)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *guard {
            return;
        }
        let now = Instant::now();
        let acknowledged = ACKNOWLEDGED.load(Ordering::Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64();
        let rate = if secs > 0.0 {
            (acknowledged - last.1) as f64 / secs
        } else {
            0.0
        };
        last = (now, acknowledged);
        let line = status_line(
            SENT.load(Ordering::Relaxed),
            acknowledged,
            FAILED.load(Ordering::Relaxed),
            rate,
        );
        let _stderr = STDERR.lock().unwrap_or_else(|e| e.into_inner());
        let _ = write!(io::stderr().lock(), "\r\x1b[K{line}");
        DRAWN.store(true, Ordering::Relaxed);
    }
}

/// What the progress line says.
fn status_line(sent: u64, acknowledged: u64, failed: u64, rate: f64) -> String {
    format!("kprod: sent {sent}, acknowledged {acknowledged}, failed {failed}, {rate:.0} records/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_the_counts_and_the_rate() {
        assert_eq!(
            status_line(1200, 1000, 3, 998.6),
            "kprod: sent 1200, acknowledged 1000, failed 3, 999 records/s"
        );
    }
}
