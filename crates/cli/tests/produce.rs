//! `kprod produce` end to end: the built binary against the cluster named by `KAFKA_BOOTSTRAP`,
//! checked with the independent Java reader. Tests of the command line alone need no cluster.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_producer_testkit::{read_properties, secure_cluster, wait_until, Cluster, ReadRecord};
use serde_json::Value;

mod common;

use common::{kprod, spawn_kprod};

/// `kprod produce -b <cluster> -t <topic> EXTRA...`.
fn produce(cluster: &Cluster, topic: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["produce", "-b", cluster.bootstrap(), "-t", topic];
    args.extend_from_slice(extra);
    kprod(args.as_slice(), input)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_stderr_has(output: &Output, text: &str) {
    let err = stderr(output);
    assert!(err.contains(text), "{err}");
}

/// The `--report json` lines, checked to number the input lines 1, 2, ... once each, in order.
fn report(output: &Output, lines: usize) -> Vec<Value> {
    let text = std::str::from_utf8(&output.stdout).expect("report is UTF-8");
    let report: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("report line {l:?}: {e}")))
        .collect();
    let numbers: Vec<u64> = report.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=lines as u64).collect();
    assert_eq!(numbers, expected, "stderr: {}", stderr(output));
    report
}

/// A new topic, replicated as far as the cluster allows (3 nodes, or 1 for a one-node cluster).
fn new_topic(cluster: &Cluster, prefix: &str, partitions: i32) -> String {
    let topic = Cluster::random_topic(prefix);
    let replication = cluster.broker_addresses().len().min(3) as i16;
    cluster.create_topic(&topic, partitions, replication, &[]);
    topic
}

fn by_position(records: Vec<ReadRecord>) -> HashMap<(i64, i64), ReadRecord> {
    records
        .into_iter()
        .map(|r| ((i64::from(r.partition), r.offset), r))
        .collect()
}

#[test]
fn keyed_lines_are_reported_in_order_at_the_offsets_the_reader_finds() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-keyed", 3);
    let lines: Vec<(String, String)> = (0..300)
        .map(|i| (format!("city-{}", i % 7), format!("reading {i}: a=b")))
        .collect();
    let mut input = String::new();
    for (i, (key, value)) in lines.iter().enumerate() {
        input.push_str(&format!("{key}={value}"));
        // Both line endings are stripped.
        input.push_str(if i % 2 == 0 { "\n" } else { "\r\n" });
    }

    let output = produce(
        &cluster,
        &topic,
        &["--key-separator", "=", "--report", "json"],
        input.as_bytes(),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, "sent 300, delivered 300, failed 0");

    let report = report(&output, lines.len());
    let read = by_position(cluster.read_topic(&topic));
    assert_eq!(read.len(), lines.len());
    let mut last_offset: HashMap<i64, i64> = HashMap::new();
    for (entry, (key, value)) in report.iter().zip(&lines) {
        let partition = entry["partition"].as_i64().expect("partition");
        let offset = entry["offset"].as_i64().expect("offset");
        let record = &read[&(partition, offset)];
        assert_eq!(record.key_str(), Some(key.as_str()));
        assert_eq!(record.value_str(), Some(value.as_str()));
        assert_eq!(
            partition,
            i64::from(kafka_producer::partition_for_key(key.as_bytes(), 3))
        );
        // Input order is kept within each partition.
        if let Some(previous) = last_offset.insert(partition, offset) {
            assert!(offset > previous, "line {entry} after offset {previous}");
        }
    }
}

#[test]
fn unkeyed_lines_have_null_keys_and_whole_lines_as_values() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-unkeyed", 2);
    // An empty line is an empty value; the last line needs no newline.
    let input = "first: with a colon\n\nthird\r\nlast";
    let output = produce(&cluster, &topic, &["--report", "json"], input.as_bytes());
    assert!(output.status.success(), "stderr: {}", stderr(&output));

    let report = report(&output, 4);
    let read = by_position(cluster.read_topic(&topic));
    let values: Vec<&str> = report
        .iter()
        .map(|entry| {
            let position = (
                entry["partition"].as_i64().unwrap(),
                entry["offset"].as_i64().unwrap(),
            );
            let record = &read[&position];
            assert_eq!(record.key, None);
            record.value_str().unwrap()
        })
        .collect();
    assert_eq!(values, ["first: with a colon", "", "third", "last"]);
}

#[test]
fn a_line_without_the_separator_fails_alone() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-nosep", 1);
    let output = produce(
        &cluster,
        &topic,
        &["--key-separator", "::", "--report", "json"],
        b"a::1\nno separator here\nc::3\n",
    );
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, "sent 3, delivered 2, failed 1");

    let report = report(&output, 3);
    let error = report[1]["error"].as_str().expect("line 2 failed");
    assert_eq!(report[1]["line"], 2);
    assert_eq!(error, "no key separator \"::\" in the line");
    assert_eq!(report[0]["offset"], 0);
    assert_eq!(report[2]["offset"], 1);
    // Without a report, stderr names the line once.
    let output = produce(
        &cluster,
        &topic,
        &["--key-separator", "::"],
        b"no separator here\n",
    );
    assert_stderr_has(
        &output,
        "kprod: line 1: no key separator \"::\" in the line\n",
    );
    let read = cluster.read_topic(&topic);
    let pairs: Vec<(Option<&str>, Option<&str>)> =
        read.iter().map(|r| (r.key_str(), r.value_str())).collect();
    assert_eq!(pairs, [(Some("a"), Some("1")), (Some("c"), Some("3"))]);
}

#[test]
fn acks_0_reports_null_offsets() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-acks0", 3);
    let input: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    let output = produce(
        &cluster,
        &topic,
        &["--acks", "0", "--key-separator", ":", "--report", "json"],
        input.as_bytes(),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    for entry in report(&output, 20) {
        assert!(entry["offset"].is_null(), "{entry}");
        assert!(entry["partition"].is_i64(), "{entry}");
    }
    // Nobody acknowledged them, so give the brokers a moment to have written them all.
    wait_until(
        "the reader sees all 20 records",
        Duration::from_secs(30),
        || cluster.read_topic(&topic).len() == 20,
    );
}

#[test]
fn producer_config_file_applies_and_x_overrides_it() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-config", 1);
    // Removed when the test ends.
    let properties = temp_file(
        "producer.properties",
        "# a Java properties file\nacks = 0\nlinger.ms: 1\n",
    );
    let file = properties.to_str().unwrap();

    let output = produce(
        &cluster,
        &topic,
        &["--producer.config", file, "--report", "json"],
        b"from file\n",
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(
        report(&output, 1)[0]["offset"].is_null(),
        "acks=0 came from the file"
    );

    let output = produce(
        &cluster,
        &topic,
        &[
            "--producer.config",
            file,
            "-X",
            "acks=1",
            "--report",
            "json",
        ],
        b"from -X\n",
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert!(
        report(&output, 1)[0]["offset"].is_i64(),
        "-X acks=1 wins over the file"
    );
}

/// A Java client's file for the secure cluster, used as it is; and a refused password: exit 1
/// with the broker's reason, although max.block.ms and delivery.timeout.ms are 10 minutes (the
/// test's own time limit, 5 minutes, would end a wait for either).
#[test]
fn a_java_client_file_for_the_secure_cluster_works_and_a_refusal_exits_1() {
    let Some((cluster, dir)) =
        secure_cluster("a_java_client_file_for_the_secure_cluster_works_and_a_refusal_exits_1")
    else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-secure", 1);
    cluster.grant_write("User:alice", &topic);
    let bootstrap_of = |file: &std::path::Path| {
        read_properties(file)
            .into_iter()
            .find(|(k, _)| k == "bootstrap.servers")
            .map(|(_, v)| v)
            .expect("bootstrap.servers in the client file")
    };
    let file = dir.join("sasl_ssl-scram-sha-512-alice.properties");
    let (bootstrap, file_arg) = (bootstrap_of(&file), file.to_str().unwrap().to_string());
    let args = [
        "produce",
        "-b",
        &bootstrap,
        "-t",
        &topic,
        "--producer.config",
        &file_arg,
    ];
    // The ACLs reach every broker through the metadata log, a moment later.
    wait_until("alice may write", Duration::from_secs(60), || {
        kprod(&args, b"over SASL_SSL\n").status.success()
    });
    let values: Vec<String> = cluster
        .read_topic(&topic)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        !values.is_empty() && values.iter().all(|v| v == "over SASL_SSL"),
        "{values:?}"
    );

    let wrong = dir.join("negative/sasl_ssl-plain-alice-wrong-password.properties");
    let wrong_arg = wrong.to_str().unwrap();
    let output = kprod(
        &[
            "produce",
            "-b",
            &bootstrap_of(&wrong),
            "-t",
            &topic,
            "--producer.config",
            wrong_arg,
            "-X",
            "max.block.ms=600000",
            "-X",
            "delivery.timeout.ms=600000",
        ],
        b"refused\n",
    );
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("SASL_AUTHENTICATION_FAILED"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
}

#[test]
fn a_missing_topic_fails_at_once() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = Cluster::random_topic("kprod-missing");
    let output = produce(&cluster, &topic, &["-X", "max.block.ms=1000"], b"x\n");
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, &topic);
}

#[test]
fn a_bad_property_exits_2_naming_it() {
    // Checked before connecting, so no cluster is needed: nothing listens on port 1.
    let base = ["produce", "-b", "127.0.0.1:1", "-t", "t"];
    for (extra, named) in [
        (&["-X", "lingr.ms=5"][..], "lingr.ms"),
        (&["-X", "acks=2"][..], "acks"),
        (&["-X", "batch.size=big"][..], "batch.size"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let output = kprod(&args, b"x\n");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    let file = temp_file("bad.properties", "linger.ms=5\nnot.a.property=1\n");
    let args = [&base[..], &["--producer.config", file.to_str().unwrap()]].concat();
    let output = kprod(&args, b"");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_stderr_has(&output, "not.a.property");
}

#[test]
fn a_bad_command_line_exits_2() {
    for args in [
        &["produce", "-t", "t"][..],
        &["produce", "-b", "h:1", "-t", "t", "-X", "no-equals"],
        &["produce", "-b", "h:1", "-t", "t", "--acks", "2"],
        &["produce", "-b", "h:1", "-t", "t", "--report", "xml"],
        &[
            "produce",
            "-b",
            "h:1",
            "-t",
            "t",
            "--transaction-lines",
            "0",
        ],
        &[
            "produce",
            "-b",
            "h:1",
            "-t",
            "t",
            "-X",
            "transactional.id=x",
            "--transaction-lines",
            "ten",
        ],
    ] {
        let output = kprod(args, b"");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn transaction_lines_without_a_transactional_id_exits_2() {
    // Checked before connecting: nothing listens on port 1.
    let output = kprod(
        &[
            "produce",
            "-b",
            "127.0.0.1:1",
            "-t",
            "t",
            "--transaction-lines",
            "10",
        ],
        b"x\n",
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_stderr_has(&output, "transactional.id");
}

#[test]
fn help_and_version() {
    let output = kprod(&["--help"], b"");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("produce"));

    let output = kprod(&["produce", "--help"], b"");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    for flag in [
        "--bootstrap-server",
        "--topic",
        "--key-separator",
        "--acks",
        "-X",
        "--producer.config",
        "--report",
        "--transaction-lines",
        "--stats",
        "--stats-interval",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }

    let output = kprod(&["--version"], b"");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("kprod {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A file in a directory of its own, both removed when it is dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn to_str(&self) -> Option<&str> {
        self.0.to_str()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn temp_file(name: &str, contents: &str) -> TempFile {
    let dir = std::env::temp_dir().join(Cluster::random_topic("kprod-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    TempFile(path)
}

// Transactions. A transactional id of its own per run (the topic's name will do), so that runs
// fence only where a test means them to. The cluster's `transaction.version` may be 1 or 2 while
// these run (other tests switch it); what they check holds for both.

/// `kprod produce -b <cluster> -t <topic> --key-separator : -X transactional.id=<topic> EXTRA...`:
/// `key:value` lines, in transactions under the topic's own id.
fn transactional_args(cluster: &Cluster, topic: &str, extra: &[&str]) -> Vec<String> {
    let id = format!("transactional.id={topic}");
    let mut args = vec![
        "produce",
        "-b",
        cluster.bootstrap(),
        "-t",
        topic,
        "--key-separator",
        ":",
        "-X",
        &id,
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

/// Waits until `records` records of `topic`, committed or not, are in the log.
fn wait_for_log(cluster: &Cluster, topic: &str, records: usize, what: &str) {
    wait_until(what, Duration::from_secs(60), || {
        cluster.read_topic(topic).len() == records
    });
}

/// The error a `--report json` line gives, or "" for a delivered line.
fn report_error(entry: &Value) -> &str {
    entry["error"].as_str().unwrap_or_default()
}

/// What a `read_committed` consumer reads: (key, value) pairs in partition and offset order.
fn committed(cluster: &Cluster, topic: &str) -> Vec<(String, String)> {
    cluster
        .read_topic_committed(topic)
        .iter()
        .map(|r| {
            let key = r.key_str().unwrap_or_default().to_string();
            (key, r.value_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Lines `key:value` for the given pairs.
fn keyed_input(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect()
}

fn pairs(prefix: &str, range: std::ops::RangeInclusive<usize>) -> Vec<(String, String)> {
    range
        .map(|i| (format!("{prefix}{}", i % 5), format!("{prefix}-value-{i}")))
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn transactions_of_n_lines_commit_in_turn_and_every_line_is_reported_delivered() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-txn", 3);
    let lines = pairs("k", 1..=25);
    let output = kprod(
        &transactional_args(
            &cluster,
            &topic,
            &["--transaction-lines", "10", "--report", "json"],
        ),
        keyed_input(&lines).as_bytes(),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, "sent 25, delivered 25, failed 0");

    let report = report(&output, 25);
    let read = by_position(cluster.read_topic_committed(&topic));
    assert_eq!(read.len(), 25);
    // Each transaction ends with a marker in each of its partitions, which takes an offset: in a
    // partition, the records of one transaction have consecutive offsets and the next
    // transaction's first comes after a gap of one. So the offsets show lines 1-10, 11-20 and
    // 21-25 committed as three transactions.
    let mut last: HashMap<i64, (i64, usize)> = HashMap::new();
    for (i, (entry, (key, value))) in report.iter().zip(&lines).enumerate() {
        let partition = entry["partition"].as_i64().expect("partition");
        let offset = entry["offset"].as_i64().expect("offset");
        let record = &read[&(partition, offset)];
        assert_eq!(record.key_str(), Some(key.as_str()));
        assert_eq!(record.value_str(), Some(value.as_str()));
        let transaction = i / 10;
        if let Some((previous, previous_transaction)) =
            last.insert(partition, (offset, transaction))
        {
            let gap = if transaction == previous_transaction {
                1
            } else {
                2
            };
            assert_eq!(
                offset - previous,
                gap,
                "line {} in partition {partition}: {report:?}",
                i + 1
            );
        }
    }
}

#[test]
fn a_failing_line_aborts_its_transaction_and_ends_the_run() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    // Line 6, the last of the second transaction of three lines each, fails: refused by the
    // broker (larger than the topic's max.message.bytes, though within max.request.size), or
    // before it is sent (no key separator).
    let too_large = format!("k6:{}", "x".repeat(4000));
    for (case, bad_line, topic_config) in [
        (
            "broker refuses",
            too_large.as_str(),
            &[("max.message.bytes", "1024")][..],
        ),
        ("no separator", "no separator here", &[][..]),
    ] {
        let topic = Cluster::random_topic("kprod-txn-fail");
        let replication = cluster.broker_addresses().len().min(3) as i16;
        cluster.create_topic(&topic, 2, replication, topic_config);
        let first = pairs("a", 1..=5);
        let after = pairs("c", 7..=9);
        let input = format!("{}{bad_line}\n{}", keyed_input(&first), keyed_input(&after));
        let output = kprod(
            &transactional_args(
                &cluster,
                &topic,
                &["--transaction-lines", "3", "--report", "json"],
            ),
            input.as_bytes(),
        );
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{case}: {err}");
        assert!(
            err.contains("sent 6, delivered 3, failed 3"),
            "{case}: {err}"
        );
        assert!(
            err.contains("no input after line 6 was read"),
            "{case}: {err}"
        );

        // Lines 7-9 were not read, so not reported.
        let report = report(&output, 6);
        for entry in &report[..3] {
            assert!(entry["offset"].is_i64(), "{case}: {entry}");
        }
        for entry in &report[3..] {
            assert!(
                report_error(entry).starts_with("transaction aborted: line 6: "),
                "{case}: {entry}"
            );
        }
        // Lines 4 and 5 may have reached the log, but in the aborted transaction.
        assert_eq!(
            sorted(committed(&cluster, &topic)),
            sorted(first[..3].to_vec()),
            "{case}"
        );
    }
}

#[test]
fn a_signal_aborts_the_open_transaction_and_exits_1() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    for signal in ["TERM", "INT"] {
        let topic = new_topic(&cluster, "kprod-txn-signal", 2);
        let mut run = Running::start(&transactional_args(
            &cluster,
            &topic,
            &["--transaction-lines", "2", "--report", "json"],
        ));
        run.write("a:1\nb:2\n");
        // Reported once the first transaction committed.
        for line in 1..=2 {
            let entry = run.next_report(Duration::from_secs(60));
            assert_eq!(entry["line"], line, "SIG{signal}: {entry}");
            assert!(entry["offset"].is_i64(), "SIG{signal}: {entry}");
        }
        run.write("c:3\n");
        // Line 3 is in the log, in the open transaction, and not reported.
        wait_for_log(&cluster, &topic, 3, "line 3 is in the log");
        assert!(run.reports.try_recv().is_err(), "nothing reported yet");
        run.signal(signal);
        let (status, reports, err) = run.finish(Duration::from_secs(60));
        assert_eq!(status.code(), Some(1), "SIG{signal}: {err}");
        assert!(
            err.contains(&format!("interrupted by SIG{signal}")),
            "{err}"
        );
        assert_eq!(reports.len(), 1, "SIG{signal}: {reports:?}");
        assert_eq!(reports[0]["line"], 3);
        assert_eq!(
            reports[0]["error"],
            format!("transaction aborted: interrupted by SIG{signal}")
        );
        assert_eq!(
            sorted(committed(&cluster, &topic)),
            [("a".to_string(), "1".to_string()), ("b".into(), "2".into())],
            "SIG{signal}"
        );
    }
}

#[test]
fn a_second_run_with_the_same_id_fences_the_first() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-txn-fence", 2);
    let args = transactional_args(&cluster, &topic, &["--report", "json"]);
    // Run A: one transaction for its whole input, open while its stdin is.
    let mut first = Running::start(&args);
    first.write("a1:x\na2:x\n");
    wait_for_log(&cluster, &topic, 2, "run A's lines are in the log");

    // Run B, with the same id, takes over: its InitProducerId aborts A's transaction.
    let second = kprod(&args, b"b1:y\nb2:y\n");
    assert!(second.status.success(), "run B: {}", stderr(&second));
    assert!(report(&second, 2).iter().all(|e| e["offset"].is_i64()));

    // A learns of it when it commits, at the end of its input.
    first.close_stdin();
    let (status, reports, err) = first.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "run A: {err}");
    assert!(err.contains("fenced"), "run A: {err}");
    assert_eq!(reports.len(), 2, "{reports:?}");
    for entry in &reports {
        assert!(report_error(entry).contains("fenced"), "{entry}");
    }
    assert_eq!(
        sorted(committed(&cluster, &topic)),
        [
            ("b1".to_string(), "y".to_string()),
            ("b2".into(), "y".into())
        ]
    );
}

#[test]
fn a_killed_run_s_open_transaction_is_aborted_by_the_next_run_with_its_id() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-txn-killed", 1);
    let args = transactional_args(&cluster, &topic, &[]);
    let mut killed = Running::start(&args);
    killed.write("a1:x\n");
    wait_for_log(&cluster, &topic, 1, "the first run's line is in the log");
    killed.signal("KILL");
    let (status, _, _) = killed.finish(Duration::from_secs(60));
    assert!(!status.success());

    let output = kprod(&args, b"b1:y\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        committed(&cluster, &topic),
        [("b1".to_string(), "y".to_string())]
    );
}

/// A `kprod` run that the test feeds and watches as it goes: stdin stays open until
/// [`close_stdin`](Running::close_stdin), and each `--report` line arrives as it is printed.
/// Killed when dropped, so a failed test leaves no run behind.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    reports: mpsc::Receiver<Value>,
    /// Each stderr line as it is printed (the whole text also comes back from `finish`).
    stderr_lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    fn start<S: AsRef<OsStr>>(args: &[S]) -> Running {
        let mut child = spawn_kprod(args);
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("kprod's stdout");
                let entry = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("report line {line:?}: {e}"));
                if tx.send(entry).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, stderr_lines) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let mut stderr = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(stderr.read_line(&mut line), Ok(n) if n > 0) {
                text.push_str(&line);
                let _ = tx.send(line.trim_end().to_string());
                line.clear();
            }
            text
        });
        Running {
            stdin: child.stdin.take(),
            child,
            reports,
            stderr_lines,
            stderr: Some(stderr),
        }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("write to kprod");
        stdin.flush().expect("flush kprod's stdin");
    }

    fn next_report(&self, timeout: Duration) -> Value {
        self.reports
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no report line within {timeout:?}: {e}"))
    }

    /// The next `--stats json` line on stderr (skipping other lines).
    fn next_stats(&self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr_lines
                .recv_timeout(wait)
                .unwrap_or_else(|e| panic!("no --stats line within {timeout:?}: {e}"));
            if line.starts_with('{') {
                return serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stats line {line:?}: {e}"));
            }
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name}");
    }

    /// Waits for the run to exit; its status, the report lines not taken yet, and its stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<Value>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for kprod") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "kprod still runs after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let err = self
            .stderr
            .take()
            .expect("stderr is read once")
            .join()
            .expect("stderr reader");
        // The stdout reader ends with kprod's stdout, at exit.
        let reports = self.reports.iter().collect();
        (status, reports, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The header values of a record read back, by name, in order.
fn headers_of(record: &ReadRecord) -> Vec<(&str, Option<&str>)> {
    record
        .headers
        .iter()
        .map(|(name, value)| {
            let value = value.as_deref().map(|v| std::str::from_utf8(v).unwrap());
            (name.as_str(), value)
        })
        .collect()
}

/// kcat's -H (fixed headers, a null one too), -p, -D (with an escape) and -K, with
/// kafka-console-producer's per-record headers: the Java reader finds each record with its
/// headers in order, its key and its value (newlines and all) in the partition asked for.
#[test]
fn headers_partition_and_delimiter_as_kcat_users_write_them() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-kcat-flags", 3);
    // Records end at the ASCII record separator (0x1e); values hold newlines.
    let input = "trace:1,user:ann\tk1=first\nvalue\x1e\tk2=second\r\n\x1etrace:3\tk3=a=b\x1e";
    let output = produce(
        &cluster,
        &topic,
        &[
            "-H",
            "source=kprod",
            "-H",
            "flag",
            "-p",
            "2",
            "-D",
            "\\x1e",
            "-K",
            "=",
            "--parse-headers",
            "--report",
            "json",
        ],
        input.as_bytes(),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, "sent 3, delivered 3, failed 0");
    let report = report(&output, 3);
    assert!(report.iter().all(|r| r["partition"] == 2), "{report:?}");

    let read = cluster.read_topic(&topic);
    assert_eq!(read.len(), 3);
    assert!(read.iter().all(|r| r.partition == 2));
    let fixed = [("source", Some("kprod")), ("flag", None)];
    type Headers<'a> = &'a [(&'a str, Option<&'a str>)];
    let expected: [(&str, &str, Headers); 3] = [
        (
            "k1",
            "first\nvalue",
            &[("trace", Some("1")), ("user", Some("ann"))],
        ),
        // -D is taken exactly: the \r\n stays in the value.
        ("k2", "second\r\n", &[]),
        ("k3", "a=b", &[("trace", Some("3"))]),
    ];
    for (record, (key, value, own)) in read.iter().zip(expected) {
        assert_eq!(record.key_str(), Some(key));
        assert_eq!(record.value_str(), Some(value));
        let mut headers = fixed.to_vec();
        headers.extend_from_slice(own);
        assert_eq!(headers_of(record), headers, "record {key}");
    }
}

/// A record without the headers delimiter fails alone, as one without the key separator does.
#[test]
fn a_record_without_its_headers_fails_alone() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-noheaders", 1);
    let output = produce(
        &cluster,
        &topic,
        &[
            "--parse-headers",
            "--headers-delimiter",
            "|",
            "--report",
            "json",
        ],
        b"h:1|one\nno headers here\nh:3|three\n",
    );
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let report = report(&output, 3);
    let error = report[1]["error"].as_str().expect("line 2 failed");
    assert_eq!(report[1]["line"], 2);
    assert!(error.starts_with("no headers delimiter"), "{error}");
    let read = cluster.read_topic(&topic);
    let values: Vec<_> = read.iter().map(|r| r.value_str().unwrap()).collect();
    assert_eq!(values, ["one", "three"]);
    assert_eq!(headers_of(&read[1]), [("h", Some("3"))]);
}

/// FILE arguments and `-` (stdin) are read in turn; the end of a file ends its last line, and
/// lines are numbered across them. A transactional run reads them the same way.
#[test]
fn files_and_stdin_are_read_in_turn() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kprod-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first.txt");
    let second = dir.join("second.txt");
    std::fs::write(&first, "a:1\na:2").unwrap();
    std::fs::write(&second, "b:1\r\nb:2\n").unwrap();
    let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
    let expected = ["1", "2", "s", "1", "2"];

    for transactional in [false, true] {
        let topic = new_topic(&cluster, "kprod-files", 1);
        let transactional_id = format!("transactional.id=kprod-files-{topic}");
        let mut args = vec!["-K", ":", "--report", "json", first, "-", second];
        if transactional {
            args.extend(["-X", transactional_id.as_str()]);
        }
        let output = produce(&cluster, &topic, &args, b"s:s\n");
        assert!(output.status.success(), "stderr: {}", stderr(&output));
        let report = report(&output, 5);
        let offsets: Vec<i64> = report
            .iter()
            .map(|r| r["offset"].as_i64().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        let read = if transactional {
            cluster.read_topic_committed(&topic)
        } else {
            cluster.read_topic(&topic)
        };
        let pairs: Vec<(&str, &str)> = read
            .iter()
            .map(|r| (r.key_str().unwrap(), r.value_str().unwrap()))
            .collect();
        let keys = ["a", "a", "s", "b", "b"];
        assert_eq!(pairs, keys.into_iter().zip(expected).collect::<Vec<_>>());
    }

    // A file that does not exist: nothing is sent, exit status 1, the file named.
    let topic = new_topic(&cluster, "kprod-nofile", 1);
    let missing = dir.join("missing.txt");
    let output = produce(&cluster, &topic, &[first, missing.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_has(&output, "missing.txt");
    assert!(cluster.read_topic(&topic).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// -p beyond the topic's partitions is refused before anything is sent (exit status 2); bad
/// -H and -D values are usage errors.
#[test]
fn a_partition_the_topic_lacks_and_bad_flags_are_usage_errors() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-nopartition", 2);
    let output = produce(&cluster, &topic, &["-p", "2"], b"x\n");
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(&output));
    assert_stderr_has(&output, "-p 2");
    assert!(cluster.read_topic(&topic).is_empty());
    for bad in [
        &["-H", "=v"][..],
        &["-D", ""],
        &["-D", "\\xz"],
        &["-p", "-2"],
        &["--parse-headers", "--headers-separator", ":"],
    ] {
        let output = produce(&cluster, &topic, bad, b"x\n");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            stderr(&output)
        );
    }
    assert!(cluster.read_topic(&topic).is_empty());
}

/// The `--stats json` lines of a run's stderr, each checked to be a snapshot.
fn stats_lines(err: &str) -> Vec<Value> {
    err.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let stats: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("stats line {l:?}: {e}"));
            assert!(stats["time"].is_u64(), "{l}");
            assert!(stats["client-id"].is_string(), "{l}");
            assert!(stats["producer-metrics"].is_object(), "{l}");
            stats
        })
        .collect()
}

/// A snapshot's `producer-metrics` value `name`.
fn producer_metric(stats: &Value, name: &str) -> f64 {
    stats["producer-metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no producer-metrics {name} in {stats}"))
}

/// Records sent, each once, by a group of metrics (`producer-metrics`, or a topic's):
/// record-send-total counts a retried record again, as the Java client's does (a new topic's
/// leader may not know it yet at the first attempt).
fn records_sent(group: &Value) -> f64 {
    let value = |name: &str| {
        group[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name} in {group}"))
    };
    value("record-send-total") - value("record-retry-total")
}

#[test]
fn stats_json_ends_with_a_snapshot_counting_every_record() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-stats", 3);
    let input: String = (0..500).map(|i| format!("record {i}\n")).collect();
    let output = produce(
        &cluster,
        &topic,
        &["--stats", "json", "--report", "json", "-X", "linger.ms=5"],
        input.as_bytes(),
    );
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    // Stdout has the report, and only the report.
    report(&output, 500);
    let err = stderr(&output);
    let stats = stats_lines(&err);
    assert_eq!(stats.len(), 1, "one snapshot, at the end: {err}");
    let last = &stats[0];
    assert_eq!(records_sent(&last["producer-metrics"]), 500.0, "{last}");
    assert_eq!(producer_metric(last, "record-error-total"), 0.0, "{last}");
    let by_topic = &last["producer-topic-metrics"][&topic];
    assert_eq!(records_sent(by_topic), 500.0, "{last}");
    let nodes = last["producer-node-metrics"].as_object().expect("nodes");
    assert!(
        nodes.iter().any(|(id, m)| id.starts_with("node-")
            && m["request-total"].as_f64().is_some_and(|n| n > 0.0)),
        "{last}"
    );
    // The summary is still the last line.
    let summary = err.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("sent 500, delivered 500, failed 0"),
        "{err}"
    );
    assert_eq!(cluster.read_topic(&topic).len(), 500);
}

#[test]
fn stats_interval_prints_snapshots_while_the_run_lasts() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = new_topic(&cluster, "kprod-stats-interval", 1);
    let mut args = vec!["produce", "-b", cluster.bootstrap(), "-t", &topic];
    args.extend(["--stats", "json", "--stats-interval", "1"]);
    let mut run = Running::start(&args);
    // Stdin stays open: the run lasts until the test has seen two periodic snapshots.
    run.write("first\n");
    let early = [
        run.next_stats(Duration::from_secs(60)),
        run.next_stats(Duration::from_secs(60)),
    ];
    for stats in &early {
        assert!(records_sent(&stats["producer-metrics"]) <= 1.0, "{stats}");
    }
    run.write("second\nthird\n");
    run.close_stdin();
    let (status, _, err) = run.finish(Duration::from_secs(60));
    assert!(status.success(), "{err}");
    let stats = stats_lines(&err);
    assert!(
        stats.len() >= 3,
        "two periodic snapshots and the last: {err}"
    );
    assert_eq!(&stats[..2], &early);
    let times: Vec<u64> = stats.iter().map(|s| s["time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let last = stats.last().unwrap();
    assert_eq!(records_sent(&last["producer-metrics"]), 3.0, "{last}");
    let by_topic = &last["producer-topic-metrics"][&topic];
    assert_eq!(records_sent(by_topic), 3.0, "{last}");
    assert_eq!(cluster.read_topic(&topic).len(), 3);
}

#[test]
fn bad_stats_flags_exit_2_naming_them() {
    // Checked before connecting: nothing listens on port 1.
    let base = ["produce", "-b", "127.0.0.1:1", "-t", "t"];
    for (extra, named) in [
        (
            &["--stats-interval", "1"][..],
            &["--stats-interval", "--stats "][..],
        ),
        (&["--stats", "xml"], &["--stats", "xml", "json"]),
        (
            &["--stats", "json", "--stats-interval", "0"],
            &["--stats-interval", "more than 0"],
        ),
        (
            &["--stats", "json", "--stats-interval", "-1"],
            &["--stats-interval", "more than 0"],
        ),
        (
            &["--stats", "json", "--stats-interval", "soon"],
            &["--stats-interval", "soon"],
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let output = kprod(&args, b"x\n");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        for text in named {
            assert!(
                stderr(&output).contains(text),
                "{args:?}: {text:?} missing: {}",
                stderr(&output)
            );
        }
    }
}
