//! One sensor: values recorded over time (a batch's size, a request's latency), measured the way
//! the Java client's `Sensor` and `SampledStat` measure them, so that a rate or an average here
//! means what the same name means on a Java client's dashboard.
//!
//! The windowed stats keep `metrics.num.samples` samples of `metrics.sample.window.ms` each: a
//! value goes into the current sample, a new sample starts when the current one is a window
//! old, and samples older than all the windows together are forgotten. A rate divides what the
//! samples hold by the time they cover, taken as at least `samples - 1` whole windows (Java's
//! `Rate.windowSize`), so a rate just after start is not inflated by a tiny denominator. Totals
//! are cumulative from the start.

use std::sync::Mutex;

/// Java's `MetricConfig`: how many samples, each how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) samples: usize,
    pub(crate) window_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// When this sample's window began (ms on the registry's clock).
    start_ms: u64,
    events: u64,
    sum: f64,
    max: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Self {
        Sample {
            start_ms: now_ms,
            events: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    samples: Vec<Sample>,
    current: usize,
    /// Every value recorded, summed, and how many there were.
    total: f64,
    count: u64,
}

/// Values recorded over time; every stat of one metric group entry is measured from it.
#[derive(Debug)]
pub(crate) struct Sensor {
    window: Window,
    state: Mutex<State>,
}

/// What a sensor holds at one moment (see [`Sensor::measure`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measured {
    /// Windowed sum per second.
    pub(crate) rate: f64,
    /// Windowed events per second.
    pub(crate) count_rate: f64,
    /// Windowed mean; NaN with no value in the windows (as Java's `Avg`).
    pub(crate) avg: f64,
    /// Windowed maximum; NaN with no value in the windows (as Java's `Max`).
    pub(crate) max: f64,
    /// Sum of every value since the start.
    pub(crate) total: f64,
    /// Number of values since the start.
    pub(crate) count: u64,
}

impl Sensor {
    pub(crate) fn new(window: Window) -> Self {
        Sensor {
            window: Window {
                samples: window.samples.max(1),
                window_ms: window.window_ms.max(1),
            },
            state: Mutex::new(State::default()),
        }
    }

    /// Records `value` at `now_ms`.
    pub(crate) fn record(&self, value: f64, now_ms: u64) {
        let w = self.window;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total += value;
        s.count += 1;
        if s.samples.is_empty() {
            s.samples.push(Sample::new(now_ms));
        }
        let mut current = s.current;
        if now_ms.saturating_sub(s.samples[current].start_ms) >= w.window_ms {
            current = (current + 1) % w.samples;
            if current >= s.samples.len() {
                s.samples.push(Sample::new(now_ms));
            } else {
                s.samples[current] = Sample::new(now_ms);
            }
            s.current = current;
        }
        let sample = &mut s.samples[current];
        sample.events += 1;
        sample.sum += value;
        sample.max = sample.max.max(value);
    }

    /// Every stat at `now_ms`.
    pub(crate) fn measure(&self, now_ms: u64) -> Measured {
        let w = self.window;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Forget samples older than every window together (Java's `purgeObsoleteSamples`).
        let expire = w.window_ms.saturating_mul(w.samples as u64);
        for sample in s.samples.iter_mut() {
            if now_ms.saturating_sub(sample.start_ms) >= expire {
                *sample = Sample::new(now_ms);
            }
        }
        let (mut events, mut sum, mut max) = (0u64, 0.0f64, f64::NEG_INFINITY);
        for sample in &s.samples {
            events += sample.events;
            sum += sample.sum;
            max = max.max(sample.max);
        }
        let oldest = s.samples.iter().map(|x| x.start_ms).min().unwrap_or(now_ms);
        // The time the samples cover, as at least `samples - 1` whole windows.
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / w.window_ms;
        let min_full = w.samples as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * w.window_ms;
        }
        let seconds = elapsed.max(1) as f64 / 1000.0;
        let (avg, max) = match events {
            0 => (f64::NAN, f64::NAN),
            n => (sum / n as f64, max),
        };
        Measured {
            rate: sum / seconds,
            count_rate: events as f64 / seconds,
            avg,
            max,
            total: s.total,
            count: s.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window = Window {
        samples: 2,
        window_ms: 30_000,
    };

    #[test]
    fn an_unused_sensor_measures_zero_rates_and_no_average_or_maximum() {
        let m = Sensor::new(WINDOW).measure(5_000);
        assert_eq!((m.rate, m.count_rate, m.total, m.count), (0.0, 0.0, 0.0, 0));
        assert!(m.avg.is_nan() && m.max.is_nan());
    }

    #[test]
    fn a_rate_early_on_is_over_at_least_one_whole_window() {
        let s = Sensor::new(WINDOW);
        // 300 in the first second: Java's Rate says 300 / (1 s + one 30 s window).
        s.record(100.0, 0);
        s.record(200.0, 1_000);
        let m = s.measure(1_000);
        assert!((m.rate - 300.0 / 31.0).abs() < 1e-9, "{}", m.rate);
        assert!((m.count_rate - 2.0 / 31.0).abs() < 1e-9, "{}", m.count_rate);
        assert_eq!((m.avg, m.max, m.total, m.count), (150.0, 200.0, 300.0, 2));
    }

    #[test]
    fn samples_roll_over_and_old_ones_are_forgotten_but_totals_are_not() {
        let s = Sensor::new(WINDOW);
        s.record(10.0, 0);
        s.record(20.0, 30_000); // second sample
        s.record(40.0, 60_000); // replaces the first
        let m = s.measure(60_000);
        assert_eq!((m.avg, m.max), (30.0, 40.0));
        // The samples cover 30 s (from 30 s to 60 s): 60 over 30 s.
        assert!((m.rate - 2.0).abs() < 1e-9, "{}", m.rate);
        assert_eq!((m.total, m.count), (70.0, 3));
        // Two windows later nothing is left in them.
        let m = s.measure(200_000);
        assert!(m.avg.is_nan() && m.max.is_nan());
        assert_eq!((m.rate, m.total, m.count), (0.0, 70.0, 3));
    }

    #[test]
    fn one_sample_means_the_rate_is_over_the_time_since_it_began() {
        let s = Sensor::new(Window {
            samples: 1,
            window_ms: 10_000,
        });
        s.record(50.0, 0);
        let m = s.measure(5_000);
        assert!((m.rate - 10.0).abs() < 1e-9, "{}", m.rate);
    }
}
