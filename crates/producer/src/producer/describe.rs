//! [`Producer::describe_cluster`]: one Metadata request, answered as it came, for tools that
//! show the cluster (`kprod metadata`). The producer's own metadata is neither read nor changed.

use kafka_producer_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_producer_protocol::kafka_protocol::protocol::StrBytes;
use kafka_producer_protocol::ErrorCode;

use super::Producer;
use crate::error::Result;

/// The cluster as one broker described it in a Metadata response: what
/// [`Producer::describe_cluster`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id, when the broker gives one.
    pub cluster_id: Option<String>,
    /// The node id of the active controller, when the broker names one.
    pub controller: Option<i32>,
    /// The live brokers, by node id.
    pub brokers: Vec<BrokerDescription>,
    /// The topics asked for (every topic when none were named), by name.
    pub topics: Vec<TopicDescription>,
}

/// One broker of a [`ClusterDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerDescription {
    /// The node id.
    pub node: i32,
    /// The host it advertises.
    pub host: String,
    /// The port it advertises.
    pub port: i32,
    /// Its `broker.rack`, if set.
    pub rack: Option<String>,
}

/// One topic of a [`ClusterDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// The topic's error: [`ErrorCode::NONE`], or e.g. `UNKNOWN_TOPIC_OR_PARTITION` for a topic
    /// named that does not exist (no topic is created for the asking).
    pub error: ErrorCode,
    /// Whether it is an internal topic (`__consumer_offsets`, `__transaction_state`).
    pub internal: bool,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionDescription {
    /// The partition id.
    pub partition: i32,
    /// The partition's error, e.g. `LEADER_NOT_AVAILABLE`; [`ErrorCode::NONE`] when it has none.
    pub error: ErrorCode,
    /// The leader's node id, or `None` while it has none.
    pub leader: Option<i32>,
    /// The node ids of its replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The node ids of its in-sync replicas.
    pub isr: Vec<i32>,
    /// The node ids of its replicas that are offline.
    pub offline: Vec<i32>,
}

impl Producer {
    /// Asks a broker for the cluster's metadata: its brokers, and `topics` (every topic when
    /// `None`) with each partition's leader, replicas and in-sync replicas, like the Java Admin
    /// client's `describeCluster` and `describeTopics` together (or `kcat -L`).
    ///
    /// One Metadata request, sent as the producer sends its own (to a broker it is connected to,
    /// else to the known brokers and bootstrap servers in turn, with its TLS and SASL settings),
    /// that does not create topics: a topic that does not exist comes back with the error
    /// `UNKNOWN_TOPIC_OR_PARTITION`. The producer's own view of the cluster is left as it is.
    /// Fails as the producer's metadata requests do when no broker answers.
    pub async fn describe_cluster(&self, topics: Option<&[&str]>) -> Result<ClusterDescription> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                })
                .collect()
        });
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        let resp = self.shared.call_any_broker(ApiKey::Metadata, &req).await?;
        Ok(describe(resp))
    }
}

/// The response in the public types, brokers, topics and partitions sorted.
fn describe(resp: MetadataResponse) -> ClusterDescription {
    let node = |id: i32| (id >= 0).then_some(id);
    let ids = |nodes: Vec<BrokerId>| nodes.into_iter().map(|n| *n).collect::<Vec<i32>>();
    let mut brokers: Vec<BrokerDescription> = resp
        .brokers
        .into_iter()
        .map(|b| BrokerDescription {
            node: *b.node_id,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.map(|r| r.to_string()),
        })
        .collect();
    brokers.sort_by_key(|b| b.node);
    let mut topics: Vec<TopicDescription> = resp
        .topics
        .into_iter()
        .map(|t| {
            let mut partitions: Vec<PartitionDescription> = t
                .partitions
                .into_iter()
                .map(|p| PartitionDescription {
                    partition: p.partition_index,
                    error: ErrorCode(p.error_code),
                    leader: node(*p.leader_id),
                    replicas: ids(p.replica_nodes),
                    isr: ids(p.isr_nodes),
                    offline: ids(p.offline_replicas),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            TopicDescription {
                name: t.name.map(|n| n.to_string()).unwrap_or_default(),
                error: ErrorCode(t.error_code),
                internal: t.is_internal,
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterDescription {
        cluster_id: resp.cluster_id.map(|id| id.to_string()),
        controller: node(*resp.controller_id),
        brokers,
        topics,
    }
}
