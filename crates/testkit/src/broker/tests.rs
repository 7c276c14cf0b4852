//! The fake broker over real sockets, driven with raw requests from the protocol crate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_producer_protocol::frame;
use kafka_producer_protocol::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_producer_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_producer_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use kafka_producer_protocol::kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey,
    ApiVersionsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_producer_protocol::kafka_protocol::protocol::{Request, StrBytes};
use kafka_producer_protocol::{BatchBuilder, BatchParams, Compression, DecodeError, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const PRODUCE_V: i16 = 9;
const WAIT: Duration = Duration::from_secs(5);

/// A bare client: frames requests, reads frames, nothing else.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    next_cid: i32,
}

impl Client {
    async fn connect(broker: &FakeBroker) -> Client {
        Client {
            stream: TcpStream::connect(broker.socket_addr()).await.unwrap(),
            buf: BytesMut::new(),
            next_cid: 1,
        }
    }

    /// Sends a request; returns its correlation id.
    async fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let cid = self.next_cid;
        self.next_cid += 1;
        let mut out = BytesMut::new();
        frame::encode_request(&mut out, version, cid, Some("test"), req).unwrap();
        self.stream.write_all(&out).await.unwrap();
        cid
    }

    /// The next response frame; `None` when the broker closed the connection or sent nothing
    /// within `within`.
    async fn frame(&mut self, within: Duration) -> Option<BytesMut> {
        let read = async {
            loop {
                if let Some(f) = frame::split_frame(&mut self.buf, 1 << 20).unwrap() {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, read).await.ok().flatten()
    }

    async fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let f = self.frame(WAIT).await.expect("a response");
        frame::decode_response::<R>(f, version).unwrap()
    }

    async fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let cid = self.send(version, req).await;
        let (got, resp) = self.recv::<R>(version).await;
        assert_eq!(got, cid);
        resp
    }

    /// True once the broker has closed the connection (within `WAIT`).
    async fn is_closed(&mut self) -> bool {
        let read = async {
            let mut byte = [0u8; 1];
            matches!(self.stream.read(&mut byte).await, Ok(0) | Err(_))
        };
        tokio::time::timeout(WAIT, read).await.unwrap_or(false)
    }
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

fn batch(values: &[&str], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(256);
    for v in values {
        b.try_append(
            1_700_000_000_000,
            Some(b"k"),
            Some(v.as_bytes()),
            &[],
            usize::MAX,
        )
        .unwrap();
    }
    b.finish(BatchParams {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchParams::default()
    })
}

fn produce(acks: i16, parts: &[(&str, i32, Bytes)]) -> ProduceRequest {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for (t, p, records) in parts {
        let data = PartitionProduceData::default()
            .with_index(*p)
            .with_records(Some(records.clone()));
        match topics.iter_mut().find(|d| *d.name.0 == **t) {
            Some(d) => d.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(topic_name(t))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(topics)
}

/// (error code, base offset) of each partition in the response, in order.
fn answers(resp: &ProduceResponse) -> Vec<(i16, i64)> {
    resp.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| (p.error_code, p.base_offset))
        .collect()
}

async fn broker(topics: &[(&str, u32)]) -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        ..FakeConfig::default()
    })
    .await
}

fn values(broker: &FakeBroker, topic: &str, partition: i32) -> Vec<String> {
    broker
        .records(topic, partition)
        .iter()
        .map(|r| r.value_str().unwrap().to_string())
        .collect()
}

fn metadata_request(topics: &[&str]) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect(),
    ))
}

#[tokio::test]
async fn api_versions_lists_what_it_speaks_and_answers_newer_versions_at_v0() {
    let b = broker(&[]).await;
    let mut c = Client::connect(&b).await;
    let resp = c.call(3, &ApiVersionsRequest::default()).await;
    assert_eq!(resp.error_code, 0);
    let mut keys: Vec<_> = resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    keys.sort();
    // Produce, Metadata, FindCoordinator, SaslHandshake, ApiVersions, InitProducerId,
    // AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, SaslAuthenticate: like a
    // Kafka broker, every listener lists the SASL APIs.
    assert_eq!(
        keys,
        [
            (0, 3, 12),
            (3, 4, 12),
            (10, 0, 6),
            (17, 1, 1),
            (18, 0, 3),
            (22, 0, 5),
            (24, 0, 3),
            (25, 0, 4),
            (26, 0, 5),
            (28, 0, 5),
            (36, 0, 2)
        ]
    );
    assert!(
        resp.finalized_features.is_empty(),
        "transaction.version 0 is not listed"
    );

    // KIP-511: v4 is beyond us, so the answer is a v0 body saying UNSUPPORTED_VERSION.
    let cid = c.send(4, &ApiVersionsRequest::default()).await;
    let f = c.frame(WAIT).await.unwrap();
    let (got, resp) = frame::decode_api_versions_response(f, 4).unwrap();
    assert_eq!(got, cid);
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(resp.api_keys.len(), 11);
    assert_eq!(b.request_count(ApiKey::ApiVersions), 2);
}

#[tokio::test]
async fn metadata_names_itself_leader_of_every_partition_under_each_node_id() {
    let b = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 3)],
        node_ids: vec![1, 2],
        ..FakeConfig::default()
    })
    .await;
    let mut c = Client::connect(&b).await;
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t", "nope"])).await;
    let brokers: Vec<_> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    assert_eq!(brokers, [(1, b.addr()), (2, b.addr())]);
    let t = &resp.topics[0];
    assert_eq!((t.error_code, t.partitions.len()), (0, 3));
    let leaders: Vec<_> = t.partitions.iter().map(|p| p.leader_id.0).collect();
    assert_eq!(leaders, [1, 2, 1]);
    assert_eq!(
        ErrorCode(resp.topics[1].error_code),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );

    // All topics (null list) at the oldest version spoken.
    let all: MetadataResponse = c
        .call(4, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(all.topics.len(), 1);
}

#[tokio::test]
async fn with_a_port_per_node_each_node_id_has_its_own_address_and_counts() {
    let b = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 2)],
        node_ids: vec![1, 2],
        port_per_node: true,
        ..FakeConfig::default()
    })
    .await;
    let (one, two) = (b.node_addr(1).unwrap(), b.node_addr(2).unwrap());
    assert_eq!(one, b.addr());
    assert_ne!(one, two);
    assert_eq!(b.node_addr(3), None);
    let mut c = Client::connect(&b).await;
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t"])).await;
    let brokers: Vec<_> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    assert_eq!(brokers, [(1, one), (2, two.clone())]);

    let mut to_two = Client {
        stream: TcpStream::connect(&two).await.unwrap(),
        buf: BytesMut::new(),
        next_cid: 1,
    };
    let req = produce(-1, &[("t", 1, batch(&["a"], -1, -1, -1))]);
    let resp: ProduceResponse = to_two.call(PRODUCE_V, &req).await;
    assert_eq!(answers(&resp), [(0, 0)]);
    assert_eq!(b.attempts("t", 1)[0].node_id, Some(2));
    assert_eq!(b.request_count_to(1, ApiKey::Metadata), 1);
    assert_eq!(b.request_count_to(2, ApiKey::Metadata), 0);
    assert_eq!(b.request_count_to(2, ApiKey::Produce), 1);
    assert_eq!(b.request_count(ApiKey::Produce), 1);
}

#[tokio::test]
async fn a_new_leader_is_named_in_produce_answers_from_v10() {
    let b = FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 2)],
        node_ids: vec![1, 2],
        ..FakeConfig::default()
    })
    .await;
    let moved = b.script(Rule::on_produce().partition("t", 0).respond_new_leader(
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        2,
        4,
    ));
    // Node 9 is not one of the broker's: named without an endpoint.
    b.script(Rule::on_produce().partition("t", 1).respond_new_leader(
        ErrorCode::FENCED_LEADER_EPOCH,
        9,
        1,
    ));
    let mut c = Client::connect(&b).await;
    let req = produce(
        -1,
        &[
            ("t", 0, batch(&["a"], -1, -1, -1)),
            ("t", 1, batch(&["b"], -1, -1, -1)),
        ],
    );
    for v in [9, 10, 12] {
        let resp: ProduceResponse = c.call(v, &req).await;
        assert_eq!(answers(&resp), [(6, -1), (74, -1)], "v{v}");
        let leaders: Vec<_> = resp.responses[0]
            .partition_responses
            .iter()
            .map(|p| (p.current_leader.leader_id.0, p.current_leader.leader_epoch))
            .collect();
        let endpoints: Vec<_> = resp
            .node_endpoints
            .iter()
            .map(|e| (e.node_id.0, format!("{}:{}", e.host, e.port)))
            .collect();
        if v >= 10 {
            assert_eq!(leaders, [(2, 4), (9, 1)], "v{v}");
            assert_eq!(endpoints, [(2, b.addr())], "v{v}");
        } else {
            assert_eq!(leaders, [(-1, -1), (-1, -1)], "v{v}");
            assert!(endpoints.is_empty(), "v{v}");
        }
    }
    assert_eq!(moved.fired(), 3);
    assert!(b.records("t", 0).is_empty());
    // Metadata does not hear of it.
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t"])).await;
    let p0 = &resp.topics[0].partitions[0];
    assert_eq!((p0.leader_id.0, p0.leader_epoch), (1, 0));
}

#[tokio::test]
async fn default_partitions_make_every_topic_exist() {
    let b = FakeBroker::start(FakeConfig {
        default_partitions: Some(4),
        ..FakeConfig::default()
    })
    .await;
    let mut c = Client::connect(&b).await;
    let resp: MetadataResponse = c.call(12, &metadata_request(&["anything"])).await;
    assert_eq!(resp.topics[0].partitions.len(), 4);
    let resp: ProduceResponse = c
        .call(
            PRODUCE_V,
            &produce(-1, &[("other", 3, batch(&["x"], -1, -1, -1))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 0)]);
}

#[tokio::test]
async fn init_producer_id_hands_out_new_ids_at_epoch_zero() {
    let b = broker(&[]).await;
    let mut c = Client::connect(&b).await;
    let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
    for (version, expected) in [(4, 1000), (0, 1001)] {
        let resp = c.call(version, &idempotent).await;
        assert_eq!(
            (resp.error_code, resp.producer_id.0, resp.producer_epoch),
            (0, expected, 0)
        );
    }
    // kafka-protocol's default is an empty transactional id, which Kafka refuses.
    let resp = c.call(4, &InitProducerIdRequest::default()).await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::INVALID_REQUEST);
}

#[tokio::test]
async fn produce_keeps_records_and_assigns_offsets_per_partition() {
    let b = broker(&[("t", 2)]).await;
    let mut c = Client::connect(&b).await;
    let req = produce(
        -1,
        &[
            ("t", 0, batch(&["a", "b"], -1, -1, -1)),
            ("t", 1, batch(&["c"], -1, -1, -1)),
            ("u", 0, batch(&["d"], -1, -1, -1)),
            ("t", 7, batch(&["e"], -1, -1, -1)),
        ],
    );
    let resp: ProduceResponse = c.call(PRODUCE_V, &req).await;
    assert_eq!(answers(&resp), [(0, 0), (0, 0), (3, -1), (3, -1)]);
    let resp: ProduceResponse = c
        .call(3, &produce(1, &[("t", 0, batch(&["f"], -1, -1, -1))]))
        .await;
    assert_eq!(answers(&resp), [(0, 2)]);

    assert_eq!(values(&b, "t", 0), ["a", "b", "f"]);
    assert_eq!(values(&b, "t", 1), ["c"]);
    let r = &b.records("t", 0)[1];
    assert_eq!(
        (r.offset, r.key_str(), r.timestamp),
        (1, Some("k"), 1_700_000_000_000)
    );
    assert_eq!(b.request_count(ApiKey::Produce), 2);
    assert_eq!(b.attempts("t", 0).len(), 2);
}

#[tokio::test]
async fn compressed_batches_are_kept_decompressed() {
    let b = broker(&[("t", 1)]).await;
    let mut builder = BatchBuilder::new(256);
    for v in ["a", "b"] {
        builder
            .try_append(1, None, Some(v.as_bytes()), &[], usize::MAX)
            .unwrap();
    }
    let gzip = builder.finish(BatchParams {
        compression: Compression::Gzip { level: -1 },
        ..BatchParams::default()
    });
    let mut c = Client::connect(&b).await;
    let resp: ProduceResponse = c.call(PRODUCE_V, &produce(-1, &[("t", 0, gzip)])).await;
    assert_eq!(answers(&resp), [(0, 0)]);
    assert_eq!(values(&b, "t", 0), ["a", "b"]);
}

#[tokio::test]
async fn bad_batches_are_refused_like_kafka_refuses_them() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    let good = batch(&["a"], -1, -1, -1);
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xFF;
    let two = [good.clone(), good.clone()].concat();
    let resp: ProduceResponse = c
        .call(
            PRODUCE_V,
            &produce(
                -1,
                &[
                    ("t", 0, Bytes::from(bad_crc)),
                    ("t", 0, Bytes::from(two)),
                    ("t", 0, Bytes::new()),
                ],
            ),
        )
        .await;
    let codes: Vec<_> = answers(&resp).iter().map(|a| ErrorCode(a.0)).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::CORRUPT_MESSAGE,
            ErrorCode::INVALID_RECORD,
            ErrorCode::INVALID_RECORD
        ]
    );
    let resp: ProduceResponse = c.call(PRODUCE_V, &produce(2, &[("t", 0, good)])).await;
    assert_eq!(
        ErrorCode(answers(&resp)[0].0),
        ErrorCode::INVALID_REQUIRED_ACKS
    );
    assert!(b.records("t", 0).is_empty());
}

#[tokio::test]
async fn idempotent_sequences_are_enforced_and_retries_deduplicated() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    let mut send = async |records: Bytes| {
        let resp: ProduceResponse = c.call(PRODUCE_V, &produce(-1, &[("t", 0, records)])).await;
        let (code, offset) = answers(&resp)[0];
        (ErrorCode(code), offset)
    };
    let none = ErrorCode::NONE;
    assert_eq!(send(batch(&["a", "b"], 1000, 0, 0)).await, (none, 0));
    assert_eq!(send(batch(&["c"], 1000, 0, 2)).await, (none, 2));
    // A retry of the first batch: NONE with its original offset, nothing written.
    assert_eq!(send(batch(&["a", "b"], 1000, 0, 0)).await, (none, 0));
    assert_eq!(
        send(batch(&["e"], 1000, 0, 4)).await,
        (ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1)
    );
    assert_eq!(
        send(batch(&["f"], 1001, 0, 3)).await,
        (ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER, -1),
        "a new producer starts at 0"
    );
    assert_eq!(send(batch(&["g"], 1000, 1, 0)).await, (none, 3));
    assert_eq!(
        send(batch(&["h"], 1000, 0, 3)).await,
        (ErrorCode::INVALID_PRODUCER_EPOCH, -1)
    );

    assert_eq!(values(&b, "t", 0), ["a", "b", "c", "g"]);
    let seqs: Vec<_> = b
        .records("t", 0)
        .iter()
        .map(|r| (r.producer_id, r.producer_epoch, r.sequence))
        .collect();
    assert_eq!(
        seqs,
        [(1000, 0, 0), (1000, 0, 1), (1000, 0, 2), (1000, 1, 0)]
    );
    let attempts = b.attempts("t", 0);
    assert_eq!(attempts.len(), 7);
    assert!(attempts[2].duplicate && attempts[2].error.is_ok());
    assert_eq!(
        (
            attempts[2].base_sequence,
            attempts[2].record_count,
            attempts[2].base_offset
        ),
        (0, 2, 0)
    );
    assert_eq!(attempts[3].error, ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
}

#[tokio::test]
async fn scripted_errors_hit_the_chosen_requests_and_store_nothing() {
    let b = broker(&[("t", 2)]).await;
    let second = b.script(Rule::on_produce().nth(2).respond_error(ErrorCode(6)));
    let p1 = b.script(
        Rule::on_produce()
            .partition("t", 1)
            .times(1)
            .respond_error(ErrorCode::NOT_ENOUGH_REPLICAS),
    );
    let mut c = Client::connect(&b).await;
    let mut send = async |v: &str| {
        let req = produce(
            -1,
            &[
                ("t", 0, batch(&[v], -1, -1, -1)),
                ("t", 1, batch(&[v], -1, -1, -1)),
            ],
        );
        let resp: ProduceResponse = c.call(PRODUCE_V, &req).await;
        answers(&resp)
    };
    assert_eq!(send("a").await, [(0, 0), (19, -1)]);
    assert_eq!(send("b").await, [(6, -1), (6, -1)]);
    assert_eq!(send("c").await, [(0, 1), (0, 0)]);
    assert_eq!(values(&b, "t", 0), ["a", "c"]);
    assert_eq!(values(&b, "t", 1), ["c"]);
    assert_eq!((second.fired(), p1.fired()), (1, 1));
    let errors: Vec<_> = b.attempts("t", 1).iter().map(|a| a.error.0).collect();
    assert_eq!(errors, [19, 6, 0]);

    // Metadata errors: the whole topic, or one partition without a leader.
    b.script(
        Rule::on_metadata()
            .nth(1)
            .respond_error(ErrorCode::LEADER_NOT_AVAILABLE),
    );
    b.script(
        Rule::on_metadata()
            .partition("t", 1)
            .nth(2)
            .respond_error(ErrorCode::LEADER_NOT_AVAILABLE),
    );
    let mut c = Client::connect(&b).await;
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t"])).await;
    assert_eq!(resp.topics[0].error_code, 5);
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t"])).await;
    let parts: Vec<_> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.leader_id.0))
        .collect();
    assert_eq!(parts, [(0, 1), (5, -1)]);

    b.clear_script();
    let resp: MetadataResponse = c.call(12, &metadata_request(&["t"])).await;
    assert_eq!(resp.topics[0].partitions[1].leader_id.0, 1);
}

#[tokio::test]
async fn a_dropped_response_is_stored_and_the_connection_goes_silent() {
    let b = broker(&[("t", 1)]).await;
    b.script(Rule::on_produce().nth(1).drop_response());
    let mut c = Client::connect(&b).await;
    c.send(
        PRODUCE_V,
        &produce(-1, &[("t", 0, batch(&["a"], -1, -1, -1))]),
    )
    .await;
    c.send(
        PRODUCE_V,
        &produce(-1, &[("t", 0, batch(&["b"], -1, -1, -1))]),
    )
    .await;
    assert!(c.frame(Duration::from_millis(300)).await.is_none());
    assert_eq!(
        values(&b, "t", 0),
        ["a"],
        "the first is written, the second ignored"
    );
    // A new connection is served again.
    let mut c = Client::connect(&b).await;
    let resp: ProduceResponse = c
        .call(
            PRODUCE_V,
            &produce(-1, &[("t", 0, batch(&["c"], -1, -1, -1))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 1)]);
}

#[tokio::test]
async fn a_skipped_response_is_stored_and_later_requests_are_answered() {
    let b = broker(&[("t", 1)]).await;
    b.script(Rule::on_produce().nth(1).skip_response());
    let mut c = Client::connect(&b).await;
    c.send(
        PRODUCE_V,
        &produce(-1, &[("t", 0, batch(&["a"], -1, -1, -1))]),
    )
    .await;
    let second = c
        .send(
            PRODUCE_V,
            &produce(-1, &[("t", 0, batch(&["b"], -1, -1, -1))]),
        )
        .await;
    // The next thing on the connection is the answer to the second request.
    let (cid, resp) = c.recv::<ProduceRequest>(PRODUCE_V).await;
    assert_eq!((cid, answers(&resp)), (second, vec![(0, 1)]));
    assert_eq!(values(&b, "t", 0), ["a", "b"]);
    assert!(c.frame(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn a_connection_cut_before_processing_stores_nothing_and_after_stores() {
    let b = broker(&[("t", 1)]).await;
    b.script(Rule::on_produce().nth(1).close_connection_before());
    b.script(Rule::on_produce().nth(2).close_connection_after());
    for v in ["lost", "kept"] {
        let mut c = Client::connect(&b).await;
        c.send(
            PRODUCE_V,
            &produce(-1, &[("t", 0, batch(&[v], -1, -1, -1))]),
        )
        .await;
        assert!(c.is_closed().await, "{v}");
    }
    assert_eq!(values(&b, "t", 0), ["kept"]);
    let mut c = Client::connect(&b).await;
    let resp: ProduceResponse = c
        .call(
            PRODUCE_V,
            &produce(-1, &[("t", 0, batch(&["next"], -1, -1, -1))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 1)]);
    assert_eq!(b.connections_accepted(), 3);
}

#[tokio::test]
async fn corrupt_responses_fail_to_decode_in_the_chosen_way() {
    let b = broker(&[("t", 1)]).await;
    b.script(Rule::on_produce().nth(1).corrupt_response());
    b.script(
        Rule::on_produce()
            .nth(2)
            .corrupt_response_with(Corruption::TrailingBytes),
    );
    b.script(
        Rule::on_produce()
            .nth(3)
            .corrupt_response_with(Corruption::WrongCorrelationId),
    );
    b.script(
        Rule::on_produce()
            .nth(4)
            .corrupt_response_with(Corruption::Raw(Bytes::from_static(b"\0\0\0\x07junk"))),
    );
    b.script(
        Rule::on_produce()
            .nth(5)
            .corrupt_response_with(Corruption::Body(Bytes::from_static(b"\x01"))),
    );
    let mut c = Client::connect(&b).await;
    let mut results = Vec::new();
    for v in ["a", "b", "c", "d", "e"] {
        let cid = c
            .send(
                PRODUCE_V,
                &produce(-1, &[("t", 0, batch(&[v], -1, -1, -1))]),
            )
            .await;
        let f = c.frame(WAIT).await.unwrap();
        let got = frame::correlation_id(&f).unwrap();
        results.push((
            got - cid,
            frame::decode_response::<ProduceRequest>(f, PRODUCE_V),
        ));
    }
    assert!(
        matches!(results[0], (0, Err(DecodeError::Truncated))),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[1], (0, Err(DecodeError::TrailingBytes))),
        "{:?}",
        results[1]
    );
    assert!(matches!(results[2], (1_000_000, Ok(_))), "{:?}", results[2]);
    assert!(matches!(results[3], (3, Err(_))), "{:?}", results[3]);
    assert!(matches!(results[4], (0, Err(_))), "{:?}", results[4]);
    // Processed all the same.
    assert_eq!(values(&b, "t", 0), ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn a_delayed_response_comes_late_and_holds_up_the_connection() {
    let b = broker(&[("t", 1)]).await;
    b.script(Rule::on_produce().nth(1).delay(Duration::from_millis(300)));
    let mut c = Client::connect(&b).await;
    let start = Instant::now();
    c.send(
        PRODUCE_V,
        &produce(-1, &[("t", 0, batch(&["a"], -1, -1, -1))]),
    )
    .await;
    c.send(
        PRODUCE_V,
        &produce(-1, &[("t", 0, batch(&["b"], -1, -1, -1))]),
    )
    .await;
    assert!(c.frame(Duration::from_millis(100)).await.is_none());
    let (first, _) = c.recv::<ProduceRequest>(PRODUCE_V).await;
    let (second, _) = c.recv::<ProduceRequest>(PRODUCE_V).await;
    assert_eq!((first, second), (1, 2));
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn acks_zero_gets_no_response() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    c.send(
        PRODUCE_V,
        &produce(0, &[("t", 0, batch(&["a"], -1, -1, -1))]),
    )
    .await;
    c.send(
        PRODUCE_V,
        &produce(0, &[("nope", 0, batch(&["a"], -1, -1, -1))]),
    )
    .await;
    let resp: ProduceResponse = c
        .call(
            PRODUCE_V,
            &produce(1, &[("t", 0, batch(&["b"], -1, -1, -1))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 1)]);
    assert_eq!(values(&b, "t", 0), ["a", "b"]);
}

#[tokio::test]
async fn unsupported_requests_close_the_connection() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    c.send(4, &FetchRequest::default()).await;
    assert!(c.is_closed().await);
    let mut c = Client::connect(&b).await;
    // Produce v13 names topics by id; not spoken here.
    c.send(13, &ProduceRequest::default()).await;
    assert!(c.is_closed().await);
    assert_eq!(b.request_count(ApiKey::Fetch), 1);
}

#[tokio::test]
async fn the_sink_counts_records_from_batch_headers_and_keeps_nothing() {
    let b = FakeBroker::start(FakeConfig::sink(3)).await;
    let mut c = Client::connect(&b).await;
    let resp: MetadataResponse = c.call(12, &metadata_request(&["bench"])).await;
    assert_eq!(resp.topics[0].partitions.len(), 3);
    let two_batches = [
        batch(&["a", "b", "c"], -1, -1, -1),
        batch(&["d", "e"], -1, -1, -1),
    ]
    .concat();
    let req = produce(
        -1,
        &[
            ("bench", 0, Bytes::from(two_batches)),
            ("bench", 2, batch(&["x"], -1, -1, -1)),
        ],
    );
    let resp: ProduceResponse = c.call(PRODUCE_V, &req).await;
    assert_eq!(answers(&resp), [(0, 0), (0, 0)]);
    let resp: ProduceResponse = c.call(PRODUCE_V, &req).await;
    assert_eq!(answers(&resp), [(0, 5), (0, 1)]);
    let short = produce(-1, &[("bench", 1, Bytes::from_static(&[0; 20]))]);
    let resp: ProduceResponse = c.call(PRODUCE_V, &short).await;
    assert_eq!(ErrorCode(answers(&resp)[0].0), ErrorCode::CORRUPT_MESSAGE);
    assert!(b.records("bench", 0).is_empty());
    assert!(b.attempts("bench", 0).is_empty());
}

#[tokio::test]
async fn disconnect_all_and_stop_end_connections() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    let _ = c.call(3, &ApiVersionsRequest::default()).await;
    b.disconnect_all();
    assert!(c.is_closed().await);
    let mut c = Client::connect(&b).await;
    let _ = c.call(3, &ApiVersionsRequest::default()).await;
    let addr = b.socket_addr();
    b.stop().await;
    assert!(c.is_closed().await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

// Transactions.

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

fn init_txn(id: &str) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
}

/// A transactional batch of `values`.
fn txn_batch(values: &[&str], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(256);
    for v in values {
        b.try_append(1, None, Some(v.as_bytes()), &[], usize::MAX)
            .unwrap();
    }
    b.finish(BatchParams {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        transactional: true,
        ..BatchParams::default()
    })
}

fn add_partitions(
    id: &str,
    (pid, epoch): (i64, i16),
    parts: &[(&str, i32)],
) -> AddPartitionsToTxnRequest {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        match topics.iter_mut().find(|x| *x.name.0 == **t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics)
}

fn partition_codes(resp: &AddPartitionsToTxnResponse) -> Vec<ErrorCode> {
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter())
        .map(|p| ErrorCode(p.partition_error_code))
        .collect()
}

fn offset_commit(
    id: &str,
    group: &str,
    (pid, epoch): (i64, i16),
    offsets: &[(&str, i32, i64)],
) -> TxnOffsetCommitRequest {
    let topics = offsets
        .iter()
        .map(|(t, p, o)| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(t))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)])
        })
        .collect();
    TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_topics(topics)
}

fn offset_codes(resp: &TxnOffsetCommitResponse) -> Vec<ErrorCode> {
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| ErrorCode(p.error_code))
        .collect()
}

fn end_txn(id: &str, (pid, epoch): (i64, i16), commit: bool) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

fn txn_produce(id: &str, parts: &[(&str, i32, Bytes)]) -> ProduceRequest {
    produce(-1, parts).with_transactional_id(Some(txn_id(id)))
}

#[tokio::test]
async fn find_coordinator_names_the_first_node_at_every_version() {
    let b = FakeBroker::start(FakeConfig {
        node_ids: vec![5, 6],
        ..FakeConfig::default()
    })
    .await;
    let port = i32::from(b.socket_addr().port());
    let mut c = Client::connect(&b).await;
    let key = StrBytes::from_static_str("tx");
    for v in 0..=3 {
        let resp = c
            .call(
                v,
                &FindCoordinatorRequest::default()
                    .with_key(key.clone())
                    .with_key_type(if v == 0 { 0 } else { 1 }),
            )
            .await;
        assert_eq!(
            (resp.error_code, resp.node_id.0, resp.port),
            (0, 5, port),
            "v{v}"
        );
        assert_eq!(&*resp.host, "127.0.0.1");
    }
    for v in 4..=6 {
        let resp = c
            .call(
                v,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![key.clone(), StrBytes::from_static_str("g")]),
            )
            .await;
        let found: Vec<_> = resp
            .coordinators
            .iter()
            .map(|c| (c.key.to_string(), c.error_code, c.node_id.0, c.port))
            .collect();
        assert_eq!(
            found,
            [("tx".into(), 0, 5, port), ("g".into(), 0, 5, port)],
            "v{v}"
        );
    }
    // An unknown key type, and a scripted error: no node named.
    let resp = c
        .call(
            3,
            &FindCoordinatorRequest::default()
                .with_key(key.clone())
                .with_key_type(7),
        )
        .await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::INVALID_REQUEST);
    b.script(
        Rule::on_api(ApiKey::FindCoordinator)
            .times(1)
            .respond_error(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    );
    let resp = c
        .call(
            6,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![key.clone()]),
        )
        .await;
    let c0 = &resp.coordinators[0];
    assert_eq!(
        (ErrorCode(c0.error_code), c0.node_id.0, c0.port),
        (ErrorCode::COORDINATOR_NOT_AVAILABLE, -1, -1)
    );
    let log = b.transaction_log();
    assert_eq!(log.len(), 9);
    assert_eq!(
        log[8].detail,
        TxnDetail::FindCoordinator {
            key_type: 1,
            keys: vec!["tx".into()]
        }
    );
    assert_eq!(
        (log[8].transactional_id.as_deref(), log[8].error),
        (Some("tx"), ErrorCode::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(log[4].transactional_id, None, "key type 0: a group");
}

#[tokio::test]
async fn api_versions_reports_the_configured_transaction_version() {
    for level in [1, 2] {
        let b = FakeBroker::start(FakeConfig {
            transaction_version: level,
            ..FakeConfig::default()
        })
        .await;
        let mut c = Client::connect(&b).await;
        let resp = c.call(3, &ApiVersionsRequest::default()).await;
        let features: Vec<_> = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        assert_eq!(features, [("transaction.version".to_string(), level)]);
        let resp = c.call(2, &ApiVersionsRequest::default()).await;
        assert!(resp.finalized_features.is_empty(), "no features before v3");
    }
}

#[tokio::test]
async fn init_producer_id_gives_a_transactional_id_one_producer_and_bumps_its_epoch() {
    let b = broker(&[]).await;
    let mut c = Client::connect(&b).await;
    let init = async |c: &mut Client, v: i16, req: &InitProducerIdRequest| {
        let resp = c.call(v, req).await;
        (
            ErrorCode(resp.error_code),
            resp.producer_id.0,
            resp.producer_epoch,
        )
    };
    let none = ErrorCode::NONE;
    assert_eq!(init(&mut c, 4, &init_txn("a")).await, (none, 1000, 0));
    assert_eq!(init(&mut c, 0, &init_txn("b")).await, (none, 1001, 0));
    // A new producer with the same id: the next epoch, fencing the last.
    assert_eq!(init(&mut c, 4, &init_txn("a")).await, (none, 1000, 1));
    // The producer's own bump (KIP-360): its current id and epoch.
    let own = init_txn("a")
        .with_producer_id(ProducerId(1000))
        .with_producer_epoch(1);
    assert_eq!(init(&mut c, 3, &own).await, (none, 1000, 2));
    // The epoch it had before is fenced: PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before.
    assert_eq!(init(&mut c, 4, &own).await.0, ErrorCode::PRODUCER_FENCED);
    assert_eq!(
        init(&mut c, 3, &own).await.0,
        ErrorCode::INVALID_PRODUCER_EPOCH
    );
    let unknown = init_txn("c")
        .with_producer_id(ProducerId(77))
        .with_producer_epoch(0);
    assert_eq!(
        init(&mut c, 4, &unknown).await.0,
        ErrorCode::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        init(&mut c, 4, &init_txn("d").with_transaction_timeout_ms(0))
            .await
            .0,
        ErrorCode::INVALID_TRANSACTION_TIMEOUT
    );
    b.script(
        Rule::on_api(ApiKey::InitProducerId)
            .times(1)
            .respond_error(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
    );
    assert_eq!(
        init(&mut c, 4, &init_txn("a")).await,
        (ErrorCode::COORDINATOR_LOAD_IN_PROGRESS, -1, -1)
    );
    // The idempotent producers' ids come from the same sequence.
    let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
    assert_eq!(init(&mut c, 4, &idempotent).await, (none, 1002, 0));

    let log: Vec<_> = b
        .transaction_log()
        .iter()
        .map(|r| {
            (
                r.version,
                r.transactional_id.clone().unwrap(),
                r.error,
                r.detail.clone(),
            )
        })
        .collect();
    assert_eq!(log.len(), 9, "the idempotent one is not logged: {log:?}");
    assert_eq!(
        log[3],
        (
            3,
            "a".to_string(),
            none,
            TxnDetail::InitProducerId {
                answered: (1000, 2)
            }
        )
    );
    assert_eq!(
        b.transaction_log()[3].producer,
        (1000, 1),
        "what the request carried"
    );
}

#[tokio::test]
async fn a_version_1_transaction_adds_partitions_and_groups_before_it_writes_and_commits() {
    let b = broker(&[("t", 2)]).await;
    let mut c = Client::connect(&b).await;
    let resp = c.call(4, &init_txn("tx")).await;
    let producer = (resp.producer_id.0, resp.producer_epoch);
    let (pid, epoch) = producer;

    // A partition not added yet: Kafka 3.6+'s verification refuses its transactional batch.
    let write = txn_produce("tx", &[("t", 0, txn_batch(&["a"], pid, epoch, 0))]);
    let resp: ProduceResponse = c.call(11, &write).await;
    assert_eq!(ErrorCode(answers(&resp)[0].0), ErrorCode::INVALID_TXN_STATE);
    // Committing with nothing open.
    let resp = c.call(3, &end_txn("tx", producer, true)).await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::INVALID_TXN_STATE);

    let resp = c
        .call(3, &add_partitions("tx", producer, &[("t", 0), ("t", 1)]))
        .await;
    assert_eq!(partition_codes(&resp), [ErrorCode::NONE; 2]);
    let resp: ProduceResponse = c.call(11, &write).await;
    assert_eq!(answers(&resp), [(0, 0)]);
    // Transactional records need the transactional id in the request.
    let resp: ProduceResponse = c
        .call(
            11,
            &produce(-1, &[("t", 1, txn_batch(&["x"], pid, epoch, 0))]),
        )
        .await;
    assert_eq!(
        ErrorCode(answers(&resp)[0].0),
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );

    // Offsets: the group must join first (AddOffsetsToTxn) below TxnOffsetCommit v5.
    let resp = c
        .call(3, &offset_commit("tx", "g", producer, &[("in", 0, 42)]))
        .await;
    assert_eq!(offset_codes(&resp), [ErrorCode::INVALID_TXN_STATE]);
    let add_group = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("tx"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(StrBytes::from_static_str("g")));
    assert_eq!(c.call(3, &add_group).await.error_code, 0);
    let resp = c
        .call(3, &offset_commit("tx", "g", producer, &[("in", 0, 42)]))
        .await;
    assert_eq!(offset_codes(&resp), [ErrorCode::NONE]);
    assert!(b.committed_offsets("g").is_empty(), "pending until EndTxn");

    let resp = c.call(3, &end_txn("tx", producer, true)).await;
    assert_eq!(
        (resp.error_code, resp.producer_id.0),
        (0, -1),
        "no next epoch below v5"
    );
    assert_eq!(
        b.committed_offsets("g"),
        BTreeMap::from([(("in".to_string(), 0), 42)])
    );
    // A retry of that EndTxn (its answer lost) is answered as before; an abort is not.
    assert_eq!(
        c.call(3, &end_txn("tx", producer, true)).await.error_code,
        0
    );
    let resp = c.call(3, &end_txn("tx", producer, false)).await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::INVALID_TXN_STATE);

    // The next transaction must add its partitions again.
    let resp: ProduceResponse = c
        .call(
            11,
            &txn_produce("tx", &[("t", 0, txn_batch(&["b"], pid, epoch, 1))]),
        )
        .await;
    assert_eq!(ErrorCode(answers(&resp)[0].0), ErrorCode::INVALID_TXN_STATE);

    // A newer producer fences this one everywhere.
    c.call(4, &init_txn("tx")).await;
    let resp = c
        .call(3, &add_partitions("tx", producer, &[("t", 0)]))
        .await;
    assert_eq!(partition_codes(&resp), [ErrorCode::PRODUCER_FENCED]);
    let resp = c
        .call(1, &add_partitions("tx", producer, &[("t", 0)]))
        .await;
    assert_eq!(partition_codes(&resp), [ErrorCode::INVALID_PRODUCER_EPOCH]);
    assert_eq!(
        ErrorCode(c.call(3, &end_txn("tx", producer, false)).await.error_code),
        ErrorCode::PRODUCER_FENCED
    );
    let other = (pid + 1, epoch);
    assert_eq!(
        ErrorCode(c.call(3, &end_txn("tx", other, false)).await.error_code),
        ErrorCode::INVALID_PRODUCER_ID_MAPPING
    );

    let summary: Vec<_> = b
        .transaction_log()
        .iter()
        .map(|r| (r.api, r.version, r.error))
        .collect();
    assert_eq!(
        summary[..6],
        [
            (ApiKey::InitProducerId, 4, ErrorCode::NONE),
            (ApiKey::Produce, 11, ErrorCode::INVALID_TXN_STATE),
            (ApiKey::EndTxn, 3, ErrorCode::INVALID_TXN_STATE),
            (ApiKey::AddPartitionsToTxn, 3, ErrorCode::NONE),
            (ApiKey::Produce, 11, ErrorCode::NONE),
            (ApiKey::TxnOffsetCommit, 3, ErrorCode::INVALID_TXN_STATE),
        ],
        "the Produce without a transactional id is not logged"
    );
}

#[tokio::test]
async fn a_version_2_transaction_joins_through_produce_and_ends_at_a_new_epoch() {
    let b = broker(&[("t", 1)]).await;
    let mut c = Client::connect(&b).await;
    let resp = c.call(5, &init_txn("tx")).await;
    let (pid, epoch) = (resp.producer_id.0, resp.producer_epoch);

    // Produce v12 adds the partition, TxnOffsetCommit v5 the group.
    let resp: ProduceResponse = c
        .call(
            12,
            &txn_produce("tx", &[("t", 0, txn_batch(&["a", "b"], pid, epoch, 0))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 0)]);
    let resp = c
        .call(5, &offset_commit("tx", "g", (pid, epoch), &[("in", 2, 7)]))
        .await;
    assert_eq!(offset_codes(&resp), [ErrorCode::NONE]);
    let resp = c.call(5, &end_txn("tx", (pid, epoch), true)).await;
    assert_eq!(
        (resp.error_code, resp.producer_id.0, resp.producer_epoch),
        (0, pid, epoch + 1)
    );
    assert_eq!(
        b.committed_offsets("g").get(&("in".to_string(), 2)),
        Some(&7)
    );
    // Its retry, at the epoch it had, gets the same answer.
    let resp = c.call(5, &end_txn("tx", (pid, epoch), true)).await;
    assert_eq!((resp.error_code, resp.producer_epoch), (0, epoch + 1));

    // The next transaction's batches: the new epoch, sequences from 0; the old epoch is fenced.
    let next = epoch + 1;
    let resp: ProduceResponse = c
        .call(
            12,
            &txn_produce("tx", &[("t", 0, txn_batch(&["old"], pid, epoch, 2))]),
        )
        .await;
    assert_eq!(
        ErrorCode(answers(&resp)[0].0),
        ErrorCode::INVALID_PRODUCER_EPOCH
    );
    let resp: ProduceResponse = c
        .call(
            12,
            &txn_produce("tx", &[("t", 0, txn_batch(&["c"], pid, next, 0))]),
        )
        .await;
    assert_eq!(answers(&resp), [(0, 2)]);
    let resp = c.call(5, &end_txn("tx", (pid, next), false)).await;
    assert_eq!((resp.error_code, resp.producer_epoch), (0, next + 1));
    // An abort with nothing open (the producer cannot know whether its Produce joined the
    // partition) moves to the next epoch too; a commit is refused.
    let resp = c.call(5, &end_txn("tx", (pid, next + 1), false)).await;
    assert_eq!((resp.error_code, resp.producer_epoch), (0, next + 2));
    let resp = c.call(5, &end_txn("tx", (pid, next + 2), true)).await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::INVALID_TXN_STATE);

    assert_eq!(
        values(&b, "t", 0),
        ["a", "b", "c"],
        "no markers, no read_committed view"
    );
    let ends: Vec<_> = b
        .transaction_log()
        .iter()
        .filter_map(|r| match r.detail {
            TxnDetail::EndTxn { commit, answered } => Some((commit, answered, r.error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            (true, Some((pid, epoch + 1)), ErrorCode::NONE),
            (true, Some((pid, epoch + 1)), ErrorCode::NONE),
            (false, Some((pid, next + 1)), ErrorCode::NONE),
            (false, Some((pid, next + 2)), ErrorCode::NONE),
            (true, None, ErrorCode::INVALID_TXN_STATE),
        ]
    );
}

#[tokio::test]
async fn scripted_errors_on_the_transaction_apis() {
    let b = broker(&[("t", 2)]).await;
    let mut c = Client::connect(&b).await;
    let resp = c.call(4, &init_txn("tx")).await;
    let producer = (resp.producer_id.0, resp.producer_epoch);

    // One partition's error: the others are not attempted, and none joins.
    b.script(
        Rule::on_api(ApiKey::AddPartitionsToTxn)
            .partition("t", 1)
            .times(1)
            .respond_error(ErrorCode::TRANSACTION_ABORTABLE),
    );
    let both = add_partitions("tx", producer, &[("t", 0), ("t", 1)]);
    let resp = c.call(3, &both).await;
    assert_eq!(
        partition_codes(&resp),
        [
            ErrorCode::OPERATION_NOT_ATTEMPTED,
            ErrorCode::TRANSACTION_ABORTABLE
        ]
    );
    // So does an unknown partition.
    let resp = c
        .call(3, &add_partitions("tx", producer, &[("t", 0), ("t", 9)]))
        .await;
    assert_eq!(
        partition_codes(&resp),
        [
            ErrorCode::OPERATION_NOT_ATTEMPTED,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    let resp = c.call(3, &end_txn("tx", producer, false)).await;
    assert_eq!(
        ErrorCode(resp.error_code),
        ErrorCode::INVALID_TXN_STATE,
        "nothing joined"
    );

    // Whole-request errors.
    b.script(
        Rule::on_api(ApiKey::AddPartitionsToTxn)
            .nth(1)
            .respond_error(ErrorCode::CONCURRENT_TRANSACTIONS),
    );
    b.script(
        Rule::on_api(ApiKey::EndTxn)
            .times(1)
            .respond_error(ErrorCode::NOT_COORDINATOR),
    );
    b.script(
        Rule::on_api(ApiKey::AddOffsetsToTxn)
            .times(1)
            .respond_error(ErrorCode::GROUP_AUTHORIZATION_FAILED),
    );
    let resp = c.call(3, &both).await;
    assert_eq!(
        partition_codes(&resp),
        [ErrorCode::CONCURRENT_TRANSACTIONS; 2]
    );
    let resp = c.call(3, &both).await;
    assert_eq!(partition_codes(&resp), [ErrorCode::NONE; 2]);
    let add_group = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("tx"))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(StrBytes::from_static_str("g")));
    let resp = c.call(3, &add_group).await;
    assert_eq!(
        ErrorCode(resp.error_code),
        ErrorCode::GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(c.call(3, &add_group).await.error_code, 0);

    // TxnOffsetCommit: the rule's partition fails, the other's offset is taken.
    b.script(
        Rule::on_api(ApiKey::TxnOffsetCommit)
            .partition("in", 1)
            .times(1)
            .respond_error(ErrorCode::UNKNOWN_MEMBER_ID),
    );
    let resp = c
        .call(
            3,
            &offset_commit("tx", "g", producer, &[("in", 0, 10), ("in", 1, 11)]),
        )
        .await;
    assert_eq!(
        offset_codes(&resp),
        [ErrorCode::NONE, ErrorCode::UNKNOWN_MEMBER_ID]
    );
    let resp = c.call(3, &end_txn("tx", producer, true)).await;
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::NOT_COORDINATOR);
    assert!(
        b.committed_offsets("g").is_empty(),
        "the faulted EndTxn did nothing"
    );
    assert_eq!(
        c.call(3, &end_txn("tx", producer, true)).await.error_code,
        0
    );
    assert_eq!(
        b.committed_offsets("g"),
        BTreeMap::from([(("in".to_string(), 0), 10)])
    );
    let errors: Vec<_> = b
        .transaction_log()
        .iter()
        .skip(1)
        .map(|r| (r.api, r.error))
        .collect();
    assert_eq!(
        errors,
        [
            (
                ApiKey::AddPartitionsToTxn,
                ErrorCode::OPERATION_NOT_ATTEMPTED
            ),
            (
                ApiKey::AddPartitionsToTxn,
                ErrorCode::OPERATION_NOT_ATTEMPTED
            ),
            (ApiKey::EndTxn, ErrorCode::INVALID_TXN_STATE),
            (
                ApiKey::AddPartitionsToTxn,
                ErrorCode::CONCURRENT_TRANSACTIONS
            ),
            (ApiKey::AddPartitionsToTxn, ErrorCode::NONE),
            (
                ApiKey::AddOffsetsToTxn,
                ErrorCode::GROUP_AUTHORIZATION_FAILED
            ),
            (ApiKey::AddOffsetsToTxn, ErrorCode::NONE),
            (ApiKey::TxnOffsetCommit, ErrorCode::UNKNOWN_MEMBER_ID),
            (ApiKey::EndTxn, ErrorCode::NOT_COORDINATOR),
            (ApiKey::EndTxn, ErrorCode::NONE),
        ]
    );
}
