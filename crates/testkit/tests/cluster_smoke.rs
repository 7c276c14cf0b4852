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
