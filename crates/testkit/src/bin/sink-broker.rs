//! `sink-broker`: a Kafka broker that acknowledges every Produce without decoding or keeping the
//! records, so that a client can be measured alone, without a JVM broker's cost.
//!
//! ```text
//! cargo run --release -p kafka-producer-testkit --bin sink-broker -- --partitions 6
//! ```
//!
//! Prints `SINK_BOOTSTRAP=127.0.0.1:PORT` on stdout as soon as it listens, then runs until it is
//! killed (SIGINT, SIGTERM). It is [`FakeConfig::sink`] behind a socket.

use std::io::Write;
use std::process::ExitCode;

use kafka_producer_testkit::{FakeBroker, FakeConfig};

const USAGE: &str = "\
usage: sink-broker [--port P] [--partitions N] [--nodes K]

  --port P        listen on 127.0.0.1:P (default 0: any free port)
  --partitions N  every topic asked about exists with N partitions (default 1)
  --nodes K       advertise itself under K node ids, partitions led in turn by each, so a
                  client opens K connections as it would to K brokers (default 1)

Prints SINK_BOOTSTRAP=127.0.0.1:PORT once listening; runs until killed.";

struct Args {
    port: u16,
    partitions: u32,
    nodes: i32,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        port: 0,
        partitions: 1,
        nodes: 1,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        if !["--port", "--partitions", "--nodes"].contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--port" => parsed.port = value.parse().map_err(bad)?,
            "--partitions" => parsed.partitions = value.parse().map_err(bad)?,
            _ => parsed.nodes = value.parse().map_err(bad)?,
        }
    }
    if parsed.partitions == 0 || parsed.nodes <= 0 {
        return Err("--partitions and --nodes must be at least 1".into());
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sink-broker: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = FakeConfig {
        node_ids: (1..=args.nodes).collect(),
        ..FakeConfig::sink(args.partitions)
    };
    let broker = match FakeBroker::bind(("127.0.0.1", args.port), config).await {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("sink-broker: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "SINK_BOOTSTRAP={}", broker.addr());
    let _ = stdout.flush();
    // SIGINT and SIGTERM end the process by default; there is nothing to clean up.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
