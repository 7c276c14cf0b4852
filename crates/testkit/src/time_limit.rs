//! A time limit for every integration test, so that a hang fails naming the test instead of
//! eating the whole CI run.
//!
//! libtest runs each test on a thread named after it. [`arm`] (called by [`crate::cluster`] and
//! [`crate::FakeBroker::start`], which every integration test goes through) registers that
//! thread's test with a watchdog; the registration ends with the thread, when the test ends. A test
//! still running at its limit gets its name printed and the test binary exits with status 101, as
//! a failed test would.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The default limit; `disruptive_` tests (which stop and restart nodes) get twice as long.
const DEFAULT_LIMIT: Duration = Duration::from_secs(300);

struct Armed {
    id: u64,
}

impl Drop for Armed {
    fn drop(&mut self) {
        deadlines()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

thread_local! {
    static ARMED: RefCell<Option<Armed>> = const { RefCell::new(None) };
}

type Deadlines = Mutex<HashMap<u64, (String, Instant, Duration)>>;

fn deadlines() -> &'static Deadlines {
    static DEADLINES: OnceLock<Deadlines> = OnceLock::new();
    DEADLINES.get_or_init(|| {
        thread::Builder::new()
            .name("test time limit".into())
            .spawn(watch)
            .expect("spawn the test watchdog");
        Mutex::new(HashMap::new())
    })
}

/// The limit for a test: `KPROD_TEST_TIME_LIMIT` seconds if set, else the default (doubled for
/// disruptive tests).
fn limit_for(test: &str) -> Duration {
    let base = std::env::var("KPROD_TEST_TIME_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_LIMIT, Duration::from_secs);
    let short_name = test.rsplit("::").next().unwrap_or(test);
    if short_name.starts_with("disruptive_") {
        base * 2
    } else {
        base
    }
}

/// Puts the current test under its time limit, once; outside a test thread (a benchmark's or a
/// binary's main thread, a runtime's worker) it does nothing.
pub(crate) fn arm() {
    let Some(test) = thread::current().name().map(str::to_string) else {
        return;
    };
    if test == "main" || test.starts_with("tokio-") || test == "test time limit" {
        return;
    }
    ARMED.with(|armed| {
        let mut armed = armed.borrow_mut();
        if armed.is_some() {
            return;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let limit = limit_for(&test);
        deadlines()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (test, Instant::now() + limit, limit));
        *armed = Some(Armed { id });
    });
}

fn watch() {
    loop {
        thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        let late: Vec<(String, Duration)> = deadlines()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(_, deadline, _)| *deadline <= now)
            .map(|(test, _, limit)| (test.clone(), *limit))
            .collect();
        if !late.is_empty() {
            let mut err = std::io::stderr();
            for (test, limit) in late {
                let _ = writeln!(
                    err,
                    "TIME LIMIT: test {test} still running after {} s (KPROD_TEST_TIME_LIMIT); \
                     ending the test binary",
                    limit.as_secs()
                );
            }
            std::process::exit(101);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disruptive_tests_get_twice_the_limit() {
        assert_eq!(limit_for("a::b"), limit_for("c"));
        assert_eq!(limit_for("a::disruptive_x"), limit_for("a::b") * 2);
    }
}
