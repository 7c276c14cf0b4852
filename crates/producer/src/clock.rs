//! The wall clock for record timestamps, cheap enough to read for every record.
//!
//! A record without a timestamp gets the current time in milliseconds, as the Java client's
//! `System.currentTimeMillis()`. Reading the system clock costs 25-35 ns here, 5-7% of `send`;
//! a millisecond only changes once per thousands of records. So each thread keeps the last
//! millisecond it read and the moment, on the CPU's time-stamp counter (through `quanta`, which
//! falls back to the OS's monotonic clock where the counter is not invariant), at which the next
//! millisecond starts; until then the cached value is the system clock's, to the microsecond.
//! After that moment the system clock is read again, so a clock that is set or slewed is
//! followed within a millisecond.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The end of a millisecond is taken this much early.
const MARGIN_NANOS: u64 = 50_000;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

thread_local! {
    /// This thread's last reading: the millisecond, and when (monotonic) the next one starts.
    static LAST: Cell<Option<(i64, quanta::Instant)>> = const { Cell::new(None) };
}

/// Milliseconds since the Unix epoch, as the system clock says now (0 before 1970).
pub(crate) fn now_millis() -> i64 {
    let now = CLOCK.get_or_init(quanta::Clock::new).now();
    LAST.with(|last| match last.get() {
        Some((ms, next)) if now < next => ms,
        _ => {
            let since_epoch = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            // `now` was read before the system clock, and the margin covers an error of up to
            // 5% in the counter's calibration: the cached value never outlives its millisecond.
            let left = 1_000_000 - since_epoch.subsec_nanos() % 1_000_000;
            let ms = since_epoch.as_millis() as i64;
            let valid = u64::from(left).saturating_sub(MARGIN_NANOS);
            last.set(Some((ms, now + Duration::from_nanos(valid))));
            ms
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_millis() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    #[test]
    fn agrees_with_the_system_clock_across_millisecond_boundaries() {
        let end = std::time::Instant::now() + Duration::from_millis(30);
        while std::time::Instant::now() < end {
            let before = system_millis();
            let t = now_millis();
            let after = system_millis();
            assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
        }
    }

    #[test]
    fn another_thread_reads_the_clock_too() {
        let check = || {
            let before = system_millis();
            let t = now_millis();
            assert!(before <= t && t <= system_millis());
        };
        check();
        std::thread::spawn(check).join().unwrap();
    }
}
