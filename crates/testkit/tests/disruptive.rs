//! Node failure and recovery on the 3-node cluster. These tests stop nodes, so their names start with
//! `disruptive_`: scripts/test runs them after all other tests, one at a time.

use std::time::Duration;

use kafka_producer_testkit::{cluster, wait_until, Cluster};

#[test]
fn disruptive_hard_killed_node_leaves_and_rejoins() {
    let Some(cluster) = cluster() else { return };
    assert_eq!(
        cluster.broker_addresses().len(),
        3,
        "needs the 3-node cluster (scripts/kafka up --nodes 3)"
    );
    wait_until("3 brokers serve", Duration::from_secs(60), || {
        cluster.broker_count() == 3
    });
    let topic = Cluster::random_topic("disruptive");
    cluster.create_topic(&topic, 3, 3, &[]);

    let outage = cluster.outage(2, true);
    // A killed broker stays registered until its session times out; then the controller fences it, moves its
    // leaderships and drops it from every ISR.
    wait_until("node 2 is fenced", Duration::from_secs(60), || {
        cluster.broker_count() == 2
    });
    wait_until(
        "node 2 leads nothing and is in no ISR",
        Duration::from_secs(60),
        || {
            cluster
                .describe_topic(&topic)
                .iter()
                .all(|p| p.leader != 2 && p.leader >= 0 && !p.isr.contains(&2))
        },
    );
    // Two in-sync replicas still satisfy min.insync.replicas=2, so acks=all writes succeed.
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    cluster.java_produce_keys(&topic, &keys);

    outage.end();
    assert_eq!(cluster.broker_count(), 3);
    wait_until(
        "node 2 is back in every ISR",
        Duration::from_secs(60),
        || {
            cluster
                .describe_topic(&topic)
                .iter()
                .all(|p| p.isr.len() == 3)
        },
    );
    assert_eq!(cluster.read_topic(&topic).len(), keys.len());
}
