//! `kprod partition` and `kprod metadata` end to end: the built binary, checked against the Java
//! client's placement of keys and the Java Admin client's view of the cluster (the testkit).

use std::process::Output;
use std::time::Duration;

use kafka_producer_testkit::{read_properties, secure_cluster, wait_until, Cluster};
use serde_json::Value;

mod common;

use common::kprod;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `PARTITION<TAB>KEY` lines as pairs.
fn placements(out: &Output) -> Vec<(String, i32)> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let (partition, key) = l.split_once('\t').unwrap_or_else(|| panic!("{l:?}"));
            (key.to_string(), partition.parse().expect("a partition"))
        })
        .collect()
}

#[test]
fn partition_gives_each_key_the_java_clients_partition() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = Cluster::random_topic("kprod-partition");
    cluster.create_topic(&topic, 7, 1, &[]);
    let keys: Vec<String> = (0..300)
        .map(|i| format!("user-{i}-{}", i * 7919))
        .chain(["".to_string(), "seoul".into(), "한국어 키".into()])
        .collect();
    let java = cluster.java_produce_keys(&topic, &keys);

    let mut args = vec!["partition", "--partitions", "7"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(placements(&kprod(&args, b"")), java);

    // The same keys as lines of stdin (\r\n too).
    let input: String = keys.iter().map(|k| format!("{k}\r\n")).collect();
    let out = kprod(&["partition", "--partitions", "7"], input.as_bytes());
    assert_eq!(placements(&out), java);
}

#[test]
fn partition_needs_a_partition_count() {
    assert_eq!(kprod(&["partition", "k"], b"").status.code(), Some(2));
    let out = kprod(&["partition", "--partitions", "0", "k"], b"");
    assert_eq!(out.status.code(), Some(2));
}

/// `kprod metadata ... --report json`, parsed.
fn metadata_json(cluster: &Cluster, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["metadata", "-b", cluster.bootstrap(), "--report", "json"];
    args.extend_from_slice(extra);
    let out = kprod(&args, b"");
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out, json)
}

fn ids(value: &Value) -> Vec<i32> {
    value
        .as_array()
        .expect("an array of node ids")
        .iter()
        .map(|v| v.as_i64().unwrap() as i32)
        .collect()
}

#[test]
fn metadata_lists_a_topic_as_the_admin_client_sees_it() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = Cluster::random_topic("kprod-metadata");
    let replication = cluster.replication_factor();
    cluster.create_topic(&topic, 4, replication, &[]);
    let java = cluster.describe_topic(&topic);

    let (out, json) = metadata_json(&cluster, &["-t", &topic]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let brokers: Vec<i32> = json["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(brokers.len(), cluster.broker_count(), "{json}");
    assert!(brokers.contains(&(json["controller"].as_i64().unwrap() as i32)));
    let topics = json["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 1, "{json}");
    assert_eq!(topics[0]["topic"], topic.as_str());
    assert!(topics[0]["error"].is_null(), "{json}");
    let partitions = topics[0]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 4, "{json}");
    for (p, j) in partitions.iter().zip(&java) {
        assert_eq!(p["partition"].as_i64().unwrap() as i32, j.partition);
        let leader = p["leader"].as_i64().expect("a leader") as i32;
        assert!(brokers.contains(&leader), "leader {leader} of {p}");
        assert_eq!(leader, j.leader, "{p}");
        assert_eq!(ids(&p["replicas"]), j.replicas, "{p}");
        let mut isr = ids(&p["isr"]);
        let mut java_isr = j.isr.clone();
        isr.sort_unstable();
        java_isr.sort_unstable();
        assert_eq!(isr, java_isr, "{p}");
        assert_eq!(ids(&p["replicas"]).len(), replication as usize);
    }

    // The text listing: a line per partition with the same leader and replicas.
    let out = kprod(&["metadata", "-b", cluster.bootstrap(), "-t", &topic], b"");
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        listing.contains(&format!("  topic {topic:?} with 4 partitions:\n")),
        "{listing}"
    );
    for j in &java {
        let replicas: Vec<String> = j.replicas.iter().map(i32::to_string).collect();
        let line = format!(
            "    partition {}, leader {}, replicas: {}, isr: ",
            j.partition,
            j.leader,
            replicas.join(",")
        );
        assert!(listing.contains(&line), "{line:?} in\n{listing}");
    }
    assert!(listing.starts_with("cluster "), "{listing}");
    assert!(listing.contains(" (controller)\n"), "{listing}");

    // Without -t: every topic, this one among them.
    let (out, json) = metadata_json(&cluster, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: Vec<&str> = json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert!(all.contains(&topic.as_str()), "{all:?}");
}

#[test]
fn metadata_of_a_missing_topic_names_the_error_creates_nothing_and_exits_1() {
    let Some(cluster) = kafka_producer_testkit::cluster() else {
        return;
    };
    let topic = Cluster::random_topic("kprod-metadata-missing");
    let (out, json) = metadata_json(&cluster, &["-t", &topic]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        json["topics"][0]["error"], "UNKNOWN_TOPIC_OR_PARTITION",
        "{json}"
    );
    let out = kprod(&["metadata", "-b", cluster.bootstrap(), "-t", &topic], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("error: UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        text(&out.stdout)
    );
    // Asking did not create it.
    let (_, again) = metadata_json(&cluster, &["-t", &topic]);
    assert_eq!(again["topics"][0]["error"], "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn metadata_without_a_broker_exits_1() {
    let out = kprod(
        &[
            "metadata",
            "-b",
            "127.0.0.1:1",
            "-X",
            "max.block.ms=2000",
            "-X",
            "socket.connection.setup.timeout.ms=500",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty());
}

/// Over SASL_SSL with a Java client's file: the listing comes through the producer's own TLS and
/// SASL settings, and shows alice's topic once she may describe it; a wrong password exits 1.
#[test]
fn metadata_over_sasl_ssl_with_a_java_client_file() {
    let Some((cluster, dir)) = secure_cluster("metadata_over_sasl_ssl_with_a_java_client_file")
    else {
        return;
    };
    let topic = Cluster::random_topic("kprod-metadata-secure");
    cluster.create_topic(&topic, 2, cluster.replication_factor(), &[]);
    cluster.grant_write("User:alice", &topic);
    let run = |file: &std::path::Path| {
        let bootstrap = read_properties(file)
            .into_iter()
            .find(|(k, _)| k == "bootstrap.servers")
            .map(|(_, v)| v)
            .expect("bootstrap.servers in the client file");
        let file = file.to_str().unwrap();
        let args = [
            "metadata",
            "-b",
            &bootstrap,
            "--producer.config",
            file,
            "-t",
            &topic,
            "--report",
            "json",
        ];
        kprod(&args, b"")
    };
    let file = dir.join("sasl_ssl-scram-sha-512-alice.properties");
    // The ACLs reach every broker through the metadata log, a moment later.
    let mut last = None;
    wait_until(
        "alice may describe the topic",
        Duration::from_secs(60),
        || {
            let out = run(&file);
            let ok = out.status.success();
            last = Some(out);
            ok
        },
    );
    let out = last.unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["topics"][0]["topic"], topic.as_str(), "{json}");
    assert_eq!(json["topics"][0]["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["brokers"].as_array().unwrap().len(),
        cluster.broker_count()
    );

    let wrong = dir.join("negative/sasl_ssl-scram-sha-512-alice-wrong-password.properties");
    let out = run(&wrong);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).to_lowercase().contains("authentication"),
        "{}",
        text(&out.stderr)
    );
}
