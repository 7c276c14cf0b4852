//! `kprod`: produce to Kafka from the command line.
//!
//! ```text
//! printf 'seoul:{"temp":10}\n' | kprod produce -b localhost:9092 -t weather_realtime --key-separator :
//! kprod produce -b localhost:9092 -t events -H source=import -D '\x1e' events.rs
//! kprod perf -b localhost:9092 --topic bench --num-records 1000000 --record-size 100 --throughput -1
//! kprod metadata -b localhost:9092 -t weather_realtime
//! kprod partition --partitions 6 seoul busan
//! ```
//!
//! Exit status: 0 when every record was delivered, 1 when any failed (or the cluster could not be
//! used, or the run was interrupted), 2 for a bad command line or producer property.

mod input;
mod metadata;
mod partition;
mod perf;
mod produce;
mod progress;
mod report;
mod settings;
mod stats;
mod transactional;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Produce records to Kafka from the command line, measure the producer, and look at the
/// cluster.
#[derive(Debug, Parser)]
#[command(name = "kprod", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Produce(produce::ProduceArgs),
    Perf(perf::PerfArgs),
    Metadata(metadata::MetadataArgs),
    Partition(partition::PartitionArgs),
}

/// Exit status for a bad command line or configuration, as clap uses for usage errors.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce(args) => produce::run(args).map(|summary| summary.all_delivered()),
        Command::Perf(args) => perf::run(args),
        Command::Metadata(args) => metadata::run(args),
        Command::Partition(args) => partition::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kprod: {e:#}");
            if is_config_error(&e) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_config_error(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<UsageError>()
            || matches!(
                cause.downcast_ref::<kafka_producer::Error>(),
                Some(kafka_producer::Error::Config { .. })
            )
    })
}

/// Options that parse but do not go together (exit status 2, as clap's usage errors).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
