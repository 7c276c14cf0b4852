//! The command line of `kafka-producer-perf-test` (and `kprod perf`), for the peer programs in
//! `bench/`: each includes this file by path, so they all take the same flags.

use std::path::PathBuf;

use clap::Parser;

/// Send N records of a given size as fast as possible (or at a given rate) and print Kafka's
/// perf-test summary plus `client cpu: C ns/record, peak rss: R MiB`.
#[derive(Debug, Parser)]
pub struct PerfArgs {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(short = 'b', long = "bootstrap-server")]
    pub bootstrap_server: String,

    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,

    /// How many records to send.
    #[arg(long)]
    pub num_records: u64,

    /// Bytes per record value; no key.
    #[arg(long)]
    pub record_size: usize,

    /// At most this many records per second; -1 for no limit.
    #[arg(long, allow_negative_numbers = true)]
    pub throughput: f64,

    /// Producer properties, KEY=VALUE.
    #[arg(long = "producer-props", visible_alias = "command-property", num_args = 1..)]
    pub producer_props: Vec<String>,

    /// A Java .properties file of producer properties.
    #[arg(long = "producer.config", visible_alias = "command-config")]
    pub producer_config: Option<PathBuf>,

    /// Milliseconds between progress lines.
    #[arg(long = "reporting-interval", default_value_t = 5000)]
    pub reporting_interval: u64,
}

impl PerfArgs {
    /// The properties in Kafka's order, later ones winning: the file, --producer-props, then -b.
    pub fn properties(&self) -> Result<Vec<(String, String)>, String> {
        let mut props = Vec::new();
        if let Some(path) = &self.producer_config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                props.push(split(line)?);
            }
        }
        for p in &self.producer_props {
            props.push(split(p)?);
        }
        props.push(("bootstrap.servers".into(), self.bootstrap_server.clone()));
        Ok(props)
    }

    /// The time between sends for --throughput, if it limits.
    pub fn send_gap(&self) -> Option<std::time::Duration> {
        (self.throughput > 0.0).then(|| std::time::Duration::from_secs_f64(1.0 / self.throughput))
    }
}

fn split(p: &str) -> Result<(String, String), String> {
    match p.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{p}` is not KEY=VALUE")),
    }
}
