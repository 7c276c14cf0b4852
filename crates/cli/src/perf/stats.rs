//! The numbers `kafka-producer-perf-test` prints, computed the way it computes them.
//!
//! Shared by `kprod perf` and the peer programs in `bench/` (which include this file by path), so
//! that every Rust client in the comparison is measured and printed by the same code. It uses only
//! `std`, `hdrhistogram` and `quanta`.
//!
//! Kafka's tool (`org.apache.kafka.tools.ProducerPerformance`) counts a record when its callback
//! reports success; its latency is the time from `send` to that callback. Rates use elapsed time
//! from the first send; "MB" is MiB, as there. Two differences: percentiles come from an HDR
//! histogram of every record (Kafka samples) and are printed with two decimals, where Kafka
//! prints whole milliseconds.
//!
//! Times are [`Instant`]s of `quanta` (the CPU's time-stamp counter, 11 ns a reading here, where
//! `std::time::Instant` costs 26 ns through the vDSO). A record's latency needs two times, its
//! send and its acknowledgement; read for every record, even this clock was 8-9% of a 100-byte
//! record's measured client CPU, which is the measuring, not the client. So `kprod perf` and
//! `rdkafka-perf` read it through a [`RecentClock`]: once for a run of sends or acknowledgements
//! that happen together (at most [`RecentClock::REUSES`], and never across a wait), which moves
//! no latency by more than the few microseconds such a run takes, the same rule for both.
//! (`confluent-perf` reads it for every record: its callbacks run on the client's own tasks,
//! where nothing marks the end of a run; that costs it about 20 ns per record.)

use std::time::Duration;

pub use quanta::Instant;

use hdrhistogram::Histogram;

/// Longest latency the histogram tells apart, in microseconds (one hour); longer ones count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The time of one burst of events: read once, for the first event, and reused for the next
/// ones until [`RecentClock::REUSES`] events or [`RecentClock::stale`] (call it after anything
/// that may wait). An event's time is then at most one burst off: a send's is early (its latency
/// is overstated), an acknowledgement's is early too (understated), each by the time to handle
/// a burst, microseconds, where latencies are milliseconds.
#[derive(Default)]
pub struct RecentClock {
    now: Option<Instant>,
    uses: u32,
}

impl RecentClock {
    /// Events that share one reading, at most: a run of them takes a few microseconds even for
    /// the slowest client here (16 sends of librdkafka's, about 12 µs).
    pub const REUSES: u32 = 16;

    /// The time of the burst the caller's event is in.
    pub fn now(&mut self) -> Instant {
        match self.now {
            Some(now) if self.uses < Self::REUSES => {
                self.uses += 1;
                now
            }
            _ => {
                let now = Instant::now();
                self.now = Some(now);
                self.uses = 1;
                now
            }
        }
    }

    /// The burst ended (the caller may have waited): the next event reads the clock.
    pub fn stale(&mut self) {
        self.now = None;
    }
}

/// Running totals for a whole run and for the current reporting window.
pub struct Stats {
    start: Instant,
    interval: Duration,
    total: Window,
    window: Window,
    histogram: Histogram<u64>,
}

/// Counts over one stretch of time.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u64,
    bytes: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
}

impl Window {
    fn new(start: Instant) -> Self {
        Window {
            start,
            count: 0,
            bytes: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
        }
    }

    fn add(&mut self, latency_us: u64, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
        self.latency_sum_us += latency_us;
        self.latency_max_us = self.latency_max_us.max(latency_us);
    }

    /// Records/s, MiB/s, average and maximum latency in ms, over `elapsed`.
    fn rates(&self, elapsed: Duration) -> (f64, f64, f64, f64) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let avg_ms = if self.count == 0 {
            0.0
        } else {
            self.latency_sum_us as f64 / self.count as f64 / 1000.0
        };
        (
            self.count as f64 / secs,
            self.bytes as f64 / secs / (1024.0 * 1024.0),
            avg_ms,
            self.latency_max_us as f64 / 1000.0,
        )
    }
}

impl Stats {
    /// Starts counting at `start` (the first send), with a progress line every `interval`.
    pub fn new(start: Instant, interval: Duration) -> Self {
        Stats {
            start,
            interval,
            total: Window::new(start),
            window: Window::new(start),
            // 3 significant digits: 0.1% resolution at any latency.
            histogram: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Counts one acknowledged record of `bytes` bytes acknowledged `latency` after its send, at `now`.
    ///
    /// Returns the progress line (Kafka's window line) when the reporting interval has passed.
    pub fn record(&mut self, latency: Duration, bytes: usize, now: Instant) -> Option<String> {
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(latency_us.clamp(1, MAX_LATENCY_US));
        self.total.add(latency_us, bytes as u64);
        self.window.add(latency_us, bytes as u64);
        let elapsed = now.saturating_duration_since(self.window.start);
        if elapsed < self.interval {
            return None;
        }
        let (rate, mib, avg, max) = self.window.rates(elapsed);
        let line = format!(
            "{} records sent, {rate:.1} records/sec ({mib:.2} MB/sec), {avg:.1} ms avg latency, {max:.1} ms max latency.",
            self.window.count
        );
        self.window = Window::new(now);
        Some(line)
    }

    /// Records acknowledged so far.
    pub fn count(&self) -> u64 {
        self.total.count
    }

    /// Kafka's closing line, over the time from the start to `now`.
    pub fn summary(&self, now: Instant) -> String {
        let (rate, mib, avg, max) = self.total.rates(now.saturating_duration_since(self.start));
        let p = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{} records sent, {rate:.6} records/sec ({mib:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency, \
             {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.total.count,
            p(0.50),
            p(0.95),
            p(0.99),
            p(0.999)
        )
    }
}

/// `client cpu: C ns/record, peak rss: R MiB` for this process so far, CPU divided over `records`.
///
/// CPU is user + system time of every thread, live or gone, from `/proc/self/stat` (in clock
/// ticks of 10 ms, so meaningful over runs of a few seconds and more); peak RSS is `VmHWM` from
/// `/proc/self/status`. Where `/proc` is missing, the numbers are printed as `?`.
pub fn resource_line(records: u64) -> String {
    let cpu = match process_cpu() {
        Some(cpu) if records > 0 => format!("{:.0}", cpu.as_nanos() as f64 / records as f64),
        _ => "?".to_string(),
    };
    let rss = match peak_rss_kib() {
        Some(kib) => format!("{:.1}", kib as f64 / 1024.0),
        None => "?".to_string(),
    };
    format!("client cpu: {cpu} ns/record, peak rss: {rss} MiB")
}

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, fixed at 100 in Linux's ABI.
const USER_HZ: u64 = 100;

/// User + system CPU time of this process.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// The most memory this process has had resident, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A payload of `size` random upper-case letters, as Kafka's tool makes when given `--record-size`.
pub fn payload(size: usize) -> Vec<u8> {
    // xorshift64*, seeded from the clock: the bytes need to vary, not to be good randomness.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    (0..size)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            b'A' + (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 59) as u8 % 26
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_clock_is_read_once_per_burst() {
        let mut clock = RecentClock::default();
        let first = clock.now();
        for _ in 1..RecentClock::REUSES {
            assert_eq!(clock.now(), first);
        }
        std::thread::sleep(Duration::from_millis(1));
        assert!(clock.now() > first, "read again after REUSES events");
        let second = clock.now();
        clock.stale();
        std::thread::sleep(Duration::from_millis(1));
        assert!(clock.now() > second, "read again after a wait");
    }

    #[test]
    fn summary_has_kafkas_shape() {
        let start = Instant::now();
        let mut stats = Stats::new(start, Duration::from_secs(5));
        for ms in 1..=100u64 {
            let line = stats.record(Duration::from_millis(ms), 100, start);
            assert!(line.is_none());
        }
        let s = stats.summary(start + Duration::from_secs(2));
        assert!(
            s.starts_with("100 records sent, 50.000000 records/sec (0.00 MB/sec), 50.50 ms avg latency, 100.00 ms max latency, 50."),
            "{s}"
        );
        assert!(s.ends_with(" ms 99.9th."), "{s}");
    }

    #[test]
    fn a_window_line_comes_after_the_interval() {
        let start = Instant::now();
        let mut stats = Stats::new(start, Duration::from_secs(5));
        assert!(stats
            .record(Duration::from_millis(2), 10, start + Duration::from_secs(1))
            .is_none());
        let line = stats
            .record(Duration::from_millis(4), 10, start + Duration::from_secs(5))
            .expect("interval passed");
        assert_eq!(
            line,
            "2 records sent, 0.4 records/sec (0.00 MB/sec), 3.0 ms avg latency, 4.0 ms max latency."
        );
        assert_eq!(stats.count(), 2);
    }

    #[test]
    fn payload_is_letters() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
    }

    #[test]
    fn resources_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu().is_some());
            assert!(peak_rss_kib().unwrap() > 0);
            assert!(resource_line(1).starts_with("client cpu: "));
        }
    }
}
