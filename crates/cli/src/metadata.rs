//! `kprod metadata`: the cluster's brokers and topics, as `kcat -L` lists them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kafka_producer::{ClusterDescription, Producer, TopicDescription};
use serde_json::{json, Value};

use crate::produce::ReportFormat;

/// List the brokers, and each topic's partitions with their leader, replicas and in-sync
/// replicas (like kcat -L).
///
/// Every topic by default (internal ones too), or those named with -t. One Metadata request,
/// which creates no topic: a topic that does not exist is listed with its error
/// (UNKNOWN_TOPIC_OR_PARTITION). The connection takes the producer properties (-X,
/// --producer.config), so TLS and SASL work as for produce.
///
/// Text by default: a line per broker (the controller marked), then per topic and per
/// partition: `partition 0, leader 1, replicas: 1,2,3, isr: 1,2,3` (leader `none` while it has
/// none; offline replicas and errors follow when there are any). --report json prints one JSON
/// object instead: {"cluster_id", "controller", "brokers": [{"id", "host", "port", "rack"}],
/// "topics": [{"topic", "error", "internal", "partitions": [{"partition", "leader",
/// "replicas", "isr", "offline", "error"}]}]}, with null for no leader, rack or error.
///
/// The exit status is 0 when every topic was listed without error, 1 otherwise (or when no
/// broker answered), 2 for a bad argument or property.
#[derive(Debug, Args)]
pub(crate) struct MetadataArgs {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    bootstrap_server: String,

    /// Only this topic (repeatable); every topic without it.
    #[arg(short = 't', long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,

    /// Set a producer property by its Kafka name, e.g. -X security.protocol=SSL (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = crate::produce::property)]
    properties: Vec<(String, String)>,

    /// Read producer properties from a Java .properties file.
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,

    /// Print the listing as one JSON object rather than text.
    #[arg(long, value_enum, value_name = "FORMAT")]
    report: Option<ReportFormat>,
}

/// Only the goodbye: nothing was sent.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints the listing; `Ok(true)` when no topic had an error.
pub(crate) fn run(args: MetadataArgs) -> anyhow::Result<bool> {
    let config = crate::settings::producer_config(
        &args.bootstrap_server,
        args.producer_config.as_deref(),
        &args.properties,
    )?;
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let cluster = runtime.block_on(async {
        let producer = Producer::new(config).await?;
        let names: Vec<&str> = args.topics.iter().map(String::as_str).collect();
        let wanted = (!names.is_empty()).then_some(&names[..]);
        let described = producer.describe_cluster(wanted).await;
        let _ = producer.close(CLOSE_TIMEOUT).await;
        described
    })?;
    match args.report {
        Some(ReportFormat::Json) => println!("{}", to_json(&cluster)),
        None => print!("{}", to_text(&cluster)),
    }
    Ok(cluster
        .topics
        .iter()
        .all(|t| t.error.is_ok() && t.partitions.iter().all(|p| p.error.is_ok())))
}

/// The text listing, one line per broker, topic and partition.
fn to_text(cluster: &ClusterDescription) -> String {
    let mut out = String::new();
    let cluster_id = cluster.cluster_id.as_deref().unwrap_or("(none)");
    out.push_str(&format!("cluster {cluster_id}\n"));
    out.push_str(&format!(" {} brokers:\n", cluster.brokers.len()));
    for b in &cluster.brokers {
        out.push_str(&format!("  broker {} at {}:{}", b.node, b.host, b.port));
        if let Some(rack) = &b.rack {
            out.push_str(&format!(" (rack {rack})"));
        }
        if cluster.controller == Some(b.node) {
            out.push_str(" (controller)");
        }
        out.push('\n');
    }
    out.push_str(&format!(" {} topics:\n", cluster.topics.len()));
    for t in &cluster.topics {
        out.push_str(&topic_text(t));
    }
    out
}

fn topic_text(t: &TopicDescription) -> String {
    let mut out = format!("  topic {:?}", t.name);
    if !t.error.is_ok() {
        out.push_str(&format!(
            " error: {} ({})\n",
            t.error.name(),
            t.error.description()
        ));
        return out;
    }
    let internal = if t.internal { " (internal)" } else { "" };
    out.push_str(&format!(
        " with {} partitions{internal}:\n",
        t.partitions.len()
    ));
    for p in &t.partitions {
        let leader = p.leader.map_or("none".into(), |l| l.to_string());
        out.push_str(&format!(
            "    partition {}, leader {leader}, replicas: {}, isr: {}",
            p.partition,
            ids(&p.replicas),
            ids(&p.isr)
        ));
        if !p.offline.is_empty() {
            out.push_str(&format!(", offline: {}", ids(&p.offline)));
        }
        if !p.error.is_ok() {
            out.push_str(&format!(", error: {}", p.error.name()));
        }
        out.push('\n');
    }
    out
}

/// `1,2,3`.
fn ids(nodes: &[i32]) -> String {
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The JSON listing (see [`MetadataArgs`]).
fn to_json(cluster: &ClusterDescription) -> Value {
    let error = |code: kafka_producer::ErrorCode| (!code.is_ok()).then(|| code.name());
    json!({
        "cluster_id": cluster.cluster_id,
        "controller": cluster.controller,
        "brokers": cluster.brokers.iter().map(|b| json!({
            "id": b.node,
            "host": b.host,
            "port": b.port,
            "rack": b.rack,
        })).collect::<Vec<_>>(),
        "topics": cluster.topics.iter().map(|t| json!({
            "topic": t.name,
            "error": error(t.error),
            "internal": t.internal,
            "partitions": t.partitions.iter().map(|p| json!({
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
                "offline": p.offline,
                "error": error(p.error),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
