//! `kprod perf` end to end: the built binary against the cluster named by `KAFKA_BOOTSTRAP`; the
//! records are counted with Kafka's own `kafka-get-offsets`. Output format only, no timing.

use std::process::{Command, Output};

use kafka_producer_testkit::Cluster;

fn kprod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kprod"))
        .args(args)
        .output()
        .expect("run kprod")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kprod perf -b <cluster> --topic <topic> --num-records N --record-size S EXTRA...`.
fn perf(cluster: &Cluster, topic: &str, records: u64, size: usize, extra: &[&str]) -> Output {
    let records = records.to_string();
    let size = size.to_string();
    let mut args = vec![
        "perf",
        "-b",
        cluster.bootstrap(),
        "--topic",
        topic,
        "--num-records",
        &records,
        "--record-size",
        &size,
    ];
    args.extend_from_slice(extra);
    kprod(&args)
}

/// The number in front of `suffix` in `part`, e.g. `12.5` in `12.5 ms 95th`.
fn number_before(part: &str, suffix: &str) -> f64 {
    let number = part
        .strip_suffix(suffix)
        .unwrap_or_else(|| panic!("{part:?} does not end with {suffix:?}"));
    number
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{number:?} in {part:?}: {e}"))
}

/// Checks Kafka's summary line and returns its fields: records, records/s, MB/s, avg, max,
/// p50, p95, p99, p99.9.
fn summary_fields(line: &str) -> Vec<f64> {
    let body = line
        .strip_suffix('.')
        .unwrap_or_else(|| panic!("no final period: {line:?}"));
    let (head, rest) = body
        .split_once(" records/sec (")
        .unwrap_or_else(|| panic!("no records/sec: {line:?}"));
    let (count, rate) = head
        .split_once(" records sent, ")
        .unwrap_or_else(|| panic!("no records sent: {line:?}"));
    let (mb, rest) = rest
        .split_once(" MB/sec), ")
        .unwrap_or_else(|| panic!("no MB/sec: {line:?}"));
    let parts: Vec<&str> = rest.split(", ").collect();
    let suffixes = [
        " ms avg latency",
        " ms max latency",
        " ms 50th",
        " ms 95th",
        " ms 99th",
        " ms 99.9th",
    ];
    assert_eq!(parts.len(), suffixes.len(), "latency fields of {line:?}");
    let mut fields = vec![
        count.parse().expect("record count"),
        rate.parse().expect("records/sec"),
        mb.parse().expect("MB/sec"),
    ];
    fields.extend(parts.iter().zip(suffixes).map(|(p, s)| number_before(p, s)));
    fields
}

/// Checks `client cpu: C ns/record, peak rss: R MiB` and returns C and R.
fn resource_fields(line: &str) -> (f64, f64) {
    let rest = line
        .strip_prefix("client cpu: ")
        .unwrap_or_else(|| panic!("not a resource line: {line:?}"));
    let (cpu, rss) = rest
        .split_once(", peak rss: ")
        .unwrap_or_else(|| panic!("no peak rss: {line:?}"));
    (number_before(cpu, " ns/record"), number_before(rss, " MiB"))
}

/// Records in the topic: the sum of its partitions' end offsets, from `kafka-get-offsets`.
fn records_in(cluster: &Cluster, topic: &str) -> u64 {
    let out = cluster.tool(
        "kafka-get-offsets",
        &["--bootstrap-server", cluster.bootstrap(), "--topic", topic],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum()
}

fn new_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = Cluster::random_topic(prefix);
    let replication = cluster.broker_addresses().len().min(3) as i16;
    cluster.create_topic(&topic, partitions, replication, &[]);
    topic
}

#[test]
fn prints_kafkas_summary_and_the_topic_holds_every_record() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-perf", 3);
    let out = perf(
        &cluster,
        &topic,
        5000,
        100,
        &[
            "--throughput",
            "-1",
            "--producer-props",
            "acks=all",
            "linger.ms=5",
            "--reporting-interval",
            "1",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 2, "{stdout}");
    let summary = summary_fields(lines[lines.len() - 2]);
    assert_eq!(summary[0], 5000.0, "{stdout}");
    assert!(summary[1] > 0.0 && summary[2] > 0.0, "{stdout}");
    // avg <= max, and the percentiles are ordered and within the max (histogram rounding aside).
    assert!(summary[3] <= summary[4], "{stdout}");
    assert!(summary[5] <= summary[6] && summary[6] <= summary[7] && summary[7] <= summary[8]);
    assert!(summary[8] <= summary[4] * 1.01 + 0.01, "{stdout}");
    let (cpu, rss) = resource_fields(lines[lines.len() - 1]);
    assert!(cpu > 0.0 && rss > 0.0, "{stdout}");
    // A 1 ms reporting interval: progress lines, in Kafka's window format, before the summary.
    for line in &lines[..lines.len() - 2] {
        assert!(
            line.contains(" records sent, ")
                && line.contains(" records/sec (")
                && line.ends_with(" ms max latency."),
            "progress line {line:?}"
        );
    }
    assert_eq!(records_in(&cluster, &topic), 5000);
}

#[test]
fn a_throttled_run_sends_every_record() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-perf-throttled", 1);
    let out = perf(
        &cluster,
        &topic,
        2000,
        1000,
        &[
            "--throughput",
            "4000",
            "--command-property",
            "acks=1",
            "linger.ms=0",
            "--stats",
            "json",
            "--stats-interval",
            "0.1",
        ],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(summary_fields(lines[lines.len() - 2])[0], 2000.0);
    resource_fields(lines[lines.len() - 1]);
    // --stats goes to stderr: its last snapshot, after the final flush, counts every record.
    let last: serde_json::Value = serde_json::from_str(
        stderr
            .lines()
            .rfind(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no --stats line: {stderr}")),
    )
    .expect("a --stats line is JSON");
    // (record-send-total counts a retried record again, as the Java client's does.)
    for group in [
        &last["producer-metrics"],
        &last["producer-topic-metrics"][&topic],
    ] {
        let value = |name: &str| group[name].as_f64().expect(name);
        assert_eq!(
            value("record-send-total") - value("record-retry-total"),
            2000.0,
            "{last}"
        );
    }
    assert_eq!(records_in(&cluster, &topic), 2000);
}

#[test]
fn a_missing_topic_fails_without_a_summary() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = Cluster::random_topic("kprod-perf-missing");
    let out = perf(
        &cluster,
        &topic,
        10,
        10,
        &[
            "--throughput",
            "-1",
            "--producer-props",
            "max.block.ms=2000",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn bad_flags_and_properties_are_usage_errors() {
    let base = [
        "perf",
        "-b",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--num-records",
        "1",
        "--record-size",
        "1",
    ];
    // --throughput is required, as in Kafka's tool.
    assert_eq!(kprod(&base).status.code(), Some(2));
    let mut args = base.to_vec();
    args.extend(["--throughput", "-1", "--producer-props", "lingr.ms=1"]);
    let out = kprod(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("lingr.ms"),
        "{}",
        text(&out.stderr)
    );
    let mut args = base.to_vec();
    args.extend(["--throughput", "-1", "--stats-interval", "1"]);
    let out = kprod(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--stats-interval needs --stats"),
        "{}",
        text(&out.stderr)
    );
}

/// With the default reporting interval (5 s, as Kafka's tool), a run of about 7 s (3500
/// records at 500/s) prints at least one window line in Kafka's exact format before the summary.
#[test]
fn a_run_longer_than_five_seconds_prints_kafkas_window_line() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-perf-window", 1);
    let out = perf(
        &cluster,
        &topic,
        3500,
        100,
        &["--throughput", "500", "--producer-props", "acks=all"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() >= 3,
        "no window line before the summary: {stdout}"
    );
    // ProducerPerformance's printWindow: "%d records sent, %.1f records/sec (%.2f MB/sec),
    // %.1f ms avg latency, %.1f ms max latency."
    let window = regex::Regex::new(
        r"^(\d+) records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), \d+\.\d ms avg latency, \d+\.\d ms max latency\.$",
    )
    .unwrap();
    let mut counted = 0;
    for line in &lines[..lines.len() - 2] {
        let fields = window
            .captures(line)
            .unwrap_or_else(|| panic!("not Kafka's window line: {line:?}\n{stdout}"));
        counted += fields[1].parse::<u64>().unwrap();
    }
    assert!(counted > 0 && counted <= 3500, "{stdout}");
    assert_eq!(
        summary_fields(lines[lines.len() - 2])[0],
        3500.0,
        "{stdout}"
    );
    resource_fields(lines[lines.len() - 1]);
    assert_eq!(records_in(&cluster, &topic), 3500);
}
