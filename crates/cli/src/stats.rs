//! `--stats json` and `--stats-interval`, shared by `kprod produce` and `kprod perf`: snapshots of
//! the producer's metrics ([`Producer::metrics`]) as JSON Lines on stderr, every interval while
//! the run lasts and once at its end, after the final flush.
//!
//! A snapshot is [`Metrics::to_json`](kafka_producer::Metrics::to_json) with a `"time"` field
//! added: milliseconds since the Unix epoch when it was taken. Lines go through
//! [`progress::stderr_line`], so a progress line on a terminal is cleared first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use kafka_producer::Producer;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::progress;
use crate::UsageError;

/// The `--stats` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatsArgs {
    /// Print the producer's metrics on stderr, in FORMAT, once every record's outcome is known
    /// (and every --stats-interval): one line per snapshot, `{"time": MS_SINCE_EPOCH,
    /// "client-id": ..., "producer-metrics": {NAME: VALUE}, "producer-topic-metrics": {TOPIC:
    /// {NAME: VALUE}}, "producer-node-metrics": {"node-ID": {NAME: VALUE}}}`, under the Java
    /// client's names (record-send-total, request-latency-avg, ...); a value not known yet is
    /// null. Pipe it to jq: `2> >(grep '^{' | jq .)`.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) stats: Option<StatsFormat>,

    /// With --stats: also print a snapshot every SECONDS while the run lasts (fractions allowed,
    /// e.g. 0.5).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = seconds)]
    pub(crate) stats_interval: Option<Duration>,
}

/// What `--stats` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatsFormat {
    /// One JSON object per snapshot (JSON Lines).
    Json,
}

/// `--stats-interval`'s value: a number of seconds above 0.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be more than 0 seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` seconds is too long"))
}

impl StatsArgs {
    /// Refuses flags that do not go together (before anything connects).
    pub(crate) fn check(&self) -> Result<(), UsageError> {
        if self.stats_interval.is_some() && self.stats.is_none() {
            return Err(UsageError(
                "--stats-interval needs --stats (--stats json --stats-interval SECONDS)".into(),
            ));
        }
        Ok(())
    }

    /// Starts printing a snapshot every `--stats-interval`, if asked to. Call inside the runtime,
    /// once the producer exists; end with [`Stats::finish`].
    pub(crate) fn start(&self, producer: &Producer) -> Stats {
        let ticker = match (self.stats, self.stats_interval) {
            (Some(format), Some(every)) => {
                let producer = producer.clone();
                Some(tokio::spawn(async move {
                    let start = tokio::time::Instant::now() + every;
                    let mut ticks = tokio::time::interval_at(start, every);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        print(&producer, format);
                    }
                }))
            }
            _ => None,
        };
        Stats {
            format: self.stats,
            ticker,
        }
    }
}

/// The snapshots of one run, while it lasts.
pub(crate) struct Stats {
    format: Option<StatsFormat>,
    ticker: Option<JoinHandle<()>>,
}

impl Stats {
    /// Stops the periodic snapshots and prints the last one. Call after the final flush, so that
    /// it counts every record.
    pub(crate) async fn finish(mut self, producer: &Producer) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            // Once it has ended, no periodic snapshot can follow the last one.
            let _ = ticker.await;
        }
        if let Some(format) = self.format {
            print(producer, format);
        }
    }
}

impl Drop for Stats {
    fn drop(&mut self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

/// Takes a snapshot and writes it to stderr.
fn print(producer: &Producer, format: StatsFormat) {
    match format {
        StatsFormat::Json => progress::stderr_line(&json_line(producer, SystemTime::now())),
    }
}

/// A snapshot of `producer`'s metrics as one line of JSON, with `"time"` (ms since the epoch).
fn json_line(producer: &Producer, now: SystemTime) -> String {
    let mut json = producer.metrics().to_json();
    if let Value::Object(fields) = &mut json {
        let millis = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        fields.insert("time".into(), Value::from(millis));
    }
    json.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_seconds_above_zero() {
        assert_eq!(seconds("1").unwrap(), Duration::from_secs(1));
        assert_eq!(seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "-0.5", "NaN", "soon", "", "1e300"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert!(seconds("0").unwrap_err().contains("more than 0"));
    }
}
