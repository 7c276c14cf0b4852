//! The harness checks itself: records written by Kafka's own tools come back through the independent reader.

use std::collections::HashMap;

use std::time::Duration;

use kafka_producer_testkit::{cluster, read_properties, secure_client_dir, wait_until, Cluster};

#[test]
fn console_producer_records_come_back_through_the_reader() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("smoke");
    cluster.create_topic(&topic, 3, 3, &[]);

    let partitions = cluster.describe_topic(&topic);
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    for p in &partitions {
        assert_eq!(p.replicas.len(), 3, "{p:?}");
        assert!(p.replicas.contains(&p.leader), "{p:?}");
    }

    let sent: Vec<(String, String)> = (0..30)
        .map(|i| (format!("key-{}", i % 10), format!("value {i}")))
        .collect();
    let input: String = sent.iter().map(|(k, v)| format!("{k}|{v}\n")).collect();
    let b = cluster.bootstrap().to_string();
    let output = cluster.tool_with_input(
        "kafka-console-producer",
        &[
            "--bootstrap-server",
            &b,
            "--topic",
            &topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=|",
            "--producer-property",
            "acks=all",
        ],
        input.as_bytes(),
    );
    assert!(
        output.status.success(),
        "console producer: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let records = cluster.read_topic(&topic);
    assert_eq!(records.len(), sent.len(), "{records:#?}");

    // Each key's records are in one partition, in the order sent; offsets in a partition are 0, 1, 2, ...
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut partition_of_key: HashMap<&str, i32> = HashMap::new();
    let mut next_offset = [0i64; 3];
    for r in &records {
        let key = r.key_str().expect("UTF-8 key");
        assert_eq!(
            *partition_of_key.entry(key).or_insert(r.partition),
            r.partition,
            "{r:?}"
        );
        by_key
            .entry(key)
            .or_default()
            .push(r.value_str().expect("UTF-8 value"));
        assert_eq!(r.offset, next_offset[r.partition as usize], "{r:?}");
        next_offset[r.partition as usize] += 1;
        assert_eq!(r.timestamp_type, "CreateTime");
        assert!(r.timestamp > 1_600_000_000_000, "{r:?}");
        assert!(r.headers.is_empty());
    }
    for (key, value) in &sent {
        let values = by_key.get_mut(key.as_str()).expect("key read back");
        assert_eq!(values.remove(0), value);
    }
}

#[test]
fn reader_returns_headers_and_null_values() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("smoke-headers");
    cluster.create_topic(&topic, 1, 3, &[]);
    let b = cluster.bootstrap().to_string();
    // Line format with parse.headers: "h1:v1,h2:v2<TAB>key<TAB>value"; NULL stands for null.
    let input = "trace:abc,empty:NULL\tk1\tv1\nNULL\tk2\tNULL\n";
    let output = cluster.tool_with_input(
        "kafka-console-producer",
        &[
            "--bootstrap-server",
            &b,
            "--topic",
            &topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "parse.headers=true",
            "--reader-property",
            "null.marker=NULL",
        ],
        input.as_bytes(),
    );
    assert!(
        output.status.success(),
        "console producer: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let records = cluster.read_topic(&topic);
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].key_str(), Some("k1"));
    assert_eq!(records[0].value_str(), Some("v1"));
    assert_eq!(
        records[0].headers,
        vec![
            ("trace".to_string(), Some(b"abc".to_vec())),
            ("empty".to_string(), None)
        ]
    );
    assert_eq!(records[1].key_str(), Some("k2"));
    assert_eq!(records[1].value, None);
    assert!(records[1].headers.is_empty());
}

#[test]
fn reference_producer_reports_where_each_key_went() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("smoke-ref");
    cluster.create_topic(&topic, 6, 3, &[]);
    let keys: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let sent = cluster.java_produce_keys(&topic, &keys);
    assert_eq!(
        sent.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        keys.iter().collect::<Vec<_>>()
    );
    assert!(sent.iter().all(|(_, p)| (0..6).contains(p)), "{sent:?}");
    // 40 keys over 6 partitions by murmur2: more than one partition is used.
    assert!(sent.iter().any(|(_, p)| *p != sent[0].1), "{sent:?}");

    let read: HashMap<String, i32> = cluster
        .read_topic(&topic)
        .into_iter()
        .map(|r| (r.key_str().unwrap().to_string(), r.partition))
        .collect();
    for (key, partition) in &sent {
        assert_eq!(read.get(key), Some(partition), "{key}");
    }
}

#[test]
fn kafka_tools_see_the_same_cluster() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("smoke-tools");
    cluster.create_topic(&topic, 2, 3, &[("cleanup.policy", "compact")]);
    cluster.java_produce_keys(&topic, &["a".to_string(), "b".to_string(), "c".to_string()]);

    let b = cluster.bootstrap().to_string();
    let offsets = cluster.tool(
        "kafka-get-offsets",
        &["--bootstrap-server", &b, "--topic", &topic],
    );
    assert!(
        offsets.status.success(),
        "{}",
        String::from_utf8_lossy(&offsets.stderr)
    );
    // One "topic:partition:end-offset" line per partition.
    let total: i64 = String::from_utf8_lossy(&offsets.stdout)
        .lines()
        .map(|l| l.rsplit(':').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 3);

    let configs = cluster.tool(
        "kafka-configs",
        &[
            "--bootstrap-server",
            &b,
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
        ],
    );
    assert!(
        configs.status.success(),
        "{}",
        String::from_utf8_lossy(&configs.stderr)
    );
    assert!(String::from_utf8_lossy(&configs.stdout).contains("cleanup.policy=compact"));

    assert_eq!(cluster.broker_count(), cluster.broker_addresses().len());

    // The cluster runs the transactions protocol of KIP-890 (`up --feature
    // transaction.version=1` formats one with the protocol before it).
    let features = cluster.tool("kafka-features", &["--bootstrap-server", &b, "describe"]);
    let text = String::from_utf8_lossy(&features.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Feature: transaction.version"))
        .unwrap_or_else(|| panic!("no transaction.version in: {text}"));
    assert!(line.contains("FinalizedVersionLevel: 2"), "{line}");
}

/// Only on a cluster started with `scripts/kafka up --secure`: admin writes over SASL_SSL with SCRAM, and alice, once
/// granted Read and Describe on the topic, reads the records back through the reader with her client file.
#[test]
fn secure_listeners_take_the_client_files_and_enforce_acls() {
    let Some(cluster) = cluster() else { return };
    let Some(dir) = secure_client_dir() else {
        eprintln!("SKIPPED: needs KAFKA_SECURE_CLIENT_DIR (scripts/kafka up --secure)");
        return;
    };
    let topic = Cluster::random_topic("secure");
    cluster.create_topic(&topic, 1, 3, &[]);

    let admin = dir.join("sasl_ssl-scram-sha-512-admin.properties");
    let props = read_properties(&admin);
    let bootstrap = props
        .iter()
        .find(|(k, _)| k == "bootstrap.servers")
        .map(|(_, v)| v.clone())
        .expect("bootstrap.servers");
    let output = cluster.tool_with_input(
        "kafka-console-producer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--command-config",
            &admin.to_string_lossy(),
            "--topic",
            &topic,
        ],
        b"one\ntwo\n",
    );
    assert!(
        output.status.success(),
        "console producer: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // No ACLs yet: alice may not read.
    let alice = dir.join("sasl_ssl-scram-sha-512-alice.properties");
    let alice_arg = alice.to_string_lossy().to_string();
    let reader_args = [
        "--consumer.config",
        alice_arg.as_str(),
        "--topic",
        topic.as_str(),
        "--timeout-ms",
        "10000",
    ];
    let denied = cluster.tool("reader", &reader_args);
    assert!(
        !denied.status.success()
            && String::from_utf8_lossy(&denied.stderr).contains("TopicAuthorizationException"),
        "reader without ACLs: {}",
        String::from_utf8_lossy(&denied.stderr)
    );

    // The PLAINTEXT listener's clients are the super user ANONYMOUS, so granting needs no client file.
    let b = cluster.bootstrap().to_string();
    let granted = cluster.tool(
        "kafka-acls",
        &[
            "--bootstrap-server",
            &b,
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            &topic,
        ],
    );
    assert!(
        granted.status.success(),
        "kafka-acls: {}",
        String::from_utf8_lossy(&granted.stderr)
    );
    // ACLs reach each broker through the metadata log.
    wait_until("alice may read the topic", Duration::from_secs(60), || {
        cluster.tool("reader", &reader_args).status.success()
    });
    let values: Vec<String> = cluster
        .read_topic_with(&topic, &alice)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(values, ["one", "two"]);
}

/// Sends `values` with the reference producer in one transaction of `transactional_id`, ended as `end` says (`commit`,
/// `abort` or `open`: the coordinator aborts it after `timeout_ms`); returns their offsets.
fn java_transaction(
    cluster: &Cluster,
    topic: &str,
    transactional_id: &str,
    end: &str,
    timeout_ms: u32,
    values: &[&str],
) -> Vec<i64> {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let b = cluster.bootstrap().to_string();
    let timeout = timeout_ms.to_string();
    let output = cluster.tool_with_input(
        "ref-producer",
        &[
            "--bootstrap",
            &b,
            "--topic",
            topic,
            "--transactional-id",
            transactional_id,
            "--end",
            end,
            "--transaction-timeout-ms",
            &timeout,
        ],
        input.as_bytes(),
    );
    assert!(
        output.status.success(),
        "ref-producer --end {end}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            let sent: serde_json::Value = serde_json::from_str(l).unwrap();
            sent["offset"].as_i64().unwrap()
        })
        .collect()
}

fn values(records: &[kafka_producer_testkit::ReadRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect()
}

/// read_topic sees every record written; read_topic_committed leaves out aborted ones, and stops at the first record
/// of an open transaction until it ends (here: until the coordinator aborts it at its timeout).
#[test]
fn committed_reader_leaves_out_aborted_and_open_transactions() {
    let Some(cluster) = cluster() else { return };
    let topic = Cluster::random_topic("smoke-committed");
    cluster.create_topic(&topic, 1, 3, &[]);
    let id = format!("{topic}-txn");
    let open_id = format!("{topic}-open");

    let committed = java_transaction(&cluster, &topic, &id, "commit", 60_000, &["a", "b"]);
    let aborted = java_transaction(&cluster, &topic, &id, "abort", 60_000, &["c"]);
    let open = java_transaction(&cluster, &topic, &open_id, "open", 20_000, &["d"]);
    let later = java_transaction(&cluster, &topic, &id, "commit", 60_000, &["e"]);
    // Each transaction's end is a control record (marker) that takes an offset of its own.
    assert_eq!(committed, [0, 1]);
    assert_eq!(aborted, [3]);
    assert_eq!(open, [5]);
    assert_eq!(later, [6]);

    assert_eq!(
        values(&cluster.read_topic(&topic)),
        ["a", "b", "c", "d", "e"]
    );
    // The open transaction holds the last stable offset at "d": "e" is committed but not read yet. (Its timeout leaves
    // time for the JVMs above and this read on a busy machine.)
    let read = cluster.read_topic_committed(&topic);
    assert_eq!(values(&read), ["a", "b"]);
    assert_eq!(read.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
    // Once the coordinator aborts it (20 s after it began), "e" is read and "d" never is.
    wait_until(
        "the open transaction is aborted at its timeout",
        Duration::from_secs(60),
        || values(&cluster.read_topic_committed(&topic)) == ["a", "b", "e"],
    );
}

#[test]
fn group_offsets_are_what_the_group_committed() {
    let Some(cluster) = cluster() else { return };
    let group = Cluster::random_topic("smoke-group");
    assert_eq!(cluster.group_offsets(&group), []);

    let topic = Cluster::random_topic("smoke-group");
    cluster.create_topic(&topic, 2, 3, &[]);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    cluster.java_produce_keys(&topic, &keys);
    let mut ends = [0i64; 2];
    for r in cluster.read_topic(&topic) {
        ends[r.partition as usize] = r.offset + 1;
    }
    // Commit the end offsets for the (inactive) group with Kafka's own tool.
    let b = cluster.bootstrap().to_string();
    let reset = cluster.tool(
        "kafka-consumer-groups",
        &[
            "--bootstrap-server",
            &b,
            "--group",
            &group,
            "--topic",
            &topic,
            "--reset-offsets",
            "--to-latest",
            "--execute",
        ],
    );
    assert!(
        reset.status.success(),
        "kafka-consumer-groups: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(
        cluster.group_offsets(&group),
        [(topic.clone(), 0, ends[0]), (topic.clone(), 1, ends[1])]
    );
}

/// Puts the cluster back at its `transaction.version` when the test fails (no panic: it may run while unwinding).
struct RestoreTransactionVersion<'a>(&'a Cluster, i16);

impl Drop for RestoreTransactionVersion<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let b = self.0.bootstrap().to_string();
        let feature = format!("transaction.version={}", self.1);
        // Whichever applies: the level is not known here.
        for command in ["upgrade", "downgrade"] {
            let out = self.0.tool(
                "kafka-features",
                &["--bootstrap-server", &b, command, "--feature", &feature],
            );
            if out.status.success() {
                return;
            }
        }
        eprintln!("could not set {feature} back");
    }
}

/// Changes the whole cluster's transactions protocol, so it runs with the disruptive tests, alone. On the default
/// cluster: 2, 1, 2.
#[test]
fn disruptive_transaction_version_goes_down_and_back_up() {
    let Some(cluster) = cluster() else { return };
    let original = cluster.transaction_version();
    let _restore = RestoreTransactionVersion(&cluster, original);
    let other = if original == 1 { 2 } else { 1 };
    let b = cluster.bootstrap().to_string();
    let described = || {
        let out = cluster.tool("kafka-features", &["--bootstrap-server", &b, "describe"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.contains("Feature: transaction.version"))
            .unwrap_or_else(|| panic!("no transaction.version in: {text}"))
            .to_string()
    };

    cluster.set_transaction_version(other);
    assert_eq!(cluster.transaction_version(), other);
    let line = described();
    assert!(
        line.contains(&format!("FinalizedVersionLevel: {other}")),
        "{line}"
    );
    // Already there: nothing to change.
    cluster.set_transaction_version(other);

    cluster.set_transaction_version(original);
    assert_eq!(cluster.transaction_version(), original);
    let line = described();
    assert!(
        line.contains(&format!("FinalizedVersionLevel: {original}")),
        "{line}"
    );
}
