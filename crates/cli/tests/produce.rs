//! `kprod produce` end to end: the built binary against the cluster named by `KAFKA_BOOTSTRAP`,
//! checked with the independent Java reader. Tests of the command line alone need no cluster.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kafka_producer_testkit::{read_properties, secure_cluster, wait_until, Cluster, ReadRecord};
use serde_json::Value;

/// Runs `kprod ARGS...` with `input` on stdin.
fn kprod(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kprod"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kprod");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // kprod may exit before reading everything (a bad argument); then the write fails, which is fine.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for kprod");
    writer.join().expect("stdin writer");
    output
}

/// `kprod produce -b <cluster> -t <topic> EXTRA...`.
fn produce(cluster: &Cluster, topic: &str, extra: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["produce", "-b", cluster.bootstrap(), "-t", topic];
    args.extend_from_slice(extra);
    kprod(args.as_slice(), input)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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
    assert!(
        stderr(&output).contains("sent 300, delivered 300, failed 0"),
        "{}",
        stderr(&output)
    );

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
    assert!(
        stderr(&output).contains("sent 3, delivered 2, failed 1"),
        "{}",
        stderr(&output)
    );

    let report = report(&output, 3);
    let error = report[1]["error"].as_str().expect("line 2 failed");
    assert!(error.contains("line 2") && error.contains("::"), "{error}");
    assert_eq!(report[0]["offset"], 0);
    assert_eq!(report[2]["offset"], 1);
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
    assert!(stderr(&output).contains(&topic), "{}", stderr(&output));
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
    assert!(
        stderr(&output).contains("not.a.property"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_command_line_exits_2() {
    for args in [
        &["produce", "-t", "t"][..],
        &["produce", "-b", "h:1", "-t", "t", "-X", "no-equals"],
        &["produce", "-b", "h:1", "-t", "t", "--acks", "2"],
        &["produce", "-b", "h:1", "-t", "t", "--report", "xml"],
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
