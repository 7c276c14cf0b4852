//! `kprod partition`: where the Java client's default partitioner puts each key.

use std::io::{BufRead, Write};

use anyhow::Context as _;
use clap::Args;

/// Print the partition the Java client's partitioner gives each key.
///
/// The Java client's default partitioner: murmur2 of the key's UTF-8 bytes, as kprod produce
/// and the kafka-producer library place keyed records; no broker is contacted. One line per key, in order: `PARTITION<TAB>KEY`. The keys are the arguments, or the lines
/// of stdin (without their `\n` or `\r\n`) when there are none.
#[derive(Debug, Args)]
pub(crate) struct PartitionArgs {
    /// The topic's partition count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,

    /// The keys.
    #[arg(value_name = "KEY")]
    keys: Vec<String>,
}

/// Prints each key's partition.
pub(crate) fn run(args: PartitionArgs) -> anyhow::Result<bool> {
    let count = args.partitions;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut print = |key: &[u8]| -> std::io::Result<()> {
        let partition = kafka_producer::partition_for_key(key, count);
        write!(out, "{partition}\t")?;
        out.write_all(key)?;
        out.write_all(b"\n")
    };
    if args.keys.is_empty() {
        for line in std::io::stdin().lock().split(b'\n') {
            let line = line.context("cannot read stdin")?;
            print(line.strip_suffix(b"\r").unwrap_or(&line)).context("cannot write to stdout")?;
        }
    } else {
        for key in &args.keys {
            print(key.as_bytes()).context("cannot write to stdout")?;
        }
    }
    out.flush().context("cannot write to stdout")?;
    Ok(true)
}
