//! The checks against kafka-protocol's own encoders and decoders, and against hostile bytes.
//!
//! A test here that let kafka-protocol reserve memory from a corrupt count would not fail:
//! the allocation would abort the whole test binary. So these tests passing is the proof.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiVersionsRequest, ApiVersionsResponse, BrokerId, EndTxnRequest,
    EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::buf::NotEnoughBytesError;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Just, Strategy};

use super::Response;
use crate::error::DecodeError;
use crate::frame::{decode_api_versions_response, decode_response};

const ALL: [Response; 11] = [
    Response::ApiVersions,
    Response::Metadata,
    Response::Produce,
    Response::InitProducerId,
    Response::SaslHandshake,
    Response::SaslAuthenticate,
    Response::FindCoordinator,
    Response::AddPartitionsToTxn,
    Response::AddOffsetsToTxn,
    Response::EndTxn,
    Response::TxnOffsetCommit,
];

// ---- running a frame through every decoder ----

/// Decodes `frame` as the response `api` at `version` through the public entry point.
fn decode(api: Response, version: i16, frame: &[u8]) -> Result<(), DecodeError> {
    let frame = BytesMut::from(frame);
    match api {
        Response::ApiVersions => {
            let direct = decode_response::<ApiVersionsRequest>(frame.clone(), version).map(drop);
            let fallback = decode_api_versions_response(frame, version).map(drop);
            direct.and(fallback)
        }
        Response::Metadata => decode_response::<MetadataRequest>(frame, version).map(drop),
        Response::Produce => decode_response::<ProduceRequest>(frame, version).map(drop),
        Response::InitProducerId => {
            decode_response::<InitProducerIdRequest>(frame, version).map(drop)
        }
        Response::SaslHandshake => {
            decode_response::<SaslHandshakeRequest>(frame, version).map(drop)
        }
        Response::SaslAuthenticate => {
            decode_response::<SaslAuthenticateRequest>(frame, version).map(drop)
        }
        Response::FindCoordinator => {
            decode_response::<FindCoordinatorRequest>(frame, version).map(drop)
        }
        Response::AddPartitionsToTxn => {
            decode_response::<AddPartitionsToTxnRequest>(frame, version).map(drop)
        }
        Response::AddOffsetsToTxn => {
            decode_response::<AddOffsetsToTxnRequest>(frame, version).map(drop)
        }
        Response::EndTxn => decode_response::<EndTxnRequest>(frame, version).map(drop),
        Response::TxnOffsetCommit => {
            decode_response::<TxnOffsetCommitRequest>(frame, version).map(drop)
        }
    }
}

/// The API key of the requests `api` answers.
fn api_key(api: Response) -> i16 {
    match api {
        Response::ApiVersions => ApiVersionsRequest::KEY,
        Response::Metadata => MetadataRequest::KEY,
        Response::Produce => ProduceRequest::KEY,
        Response::InitProducerId => InitProducerIdRequest::KEY,
        Response::SaslHandshake => SaslHandshakeRequest::KEY,
        Response::SaslAuthenticate => SaslAuthenticateRequest::KEY,
        Response::FindCoordinator => FindCoordinatorRequest::KEY,
        Response::AddPartitionsToTxn => AddPartitionsToTxnRequest::KEY,
        Response::AddOffsetsToTxn => AddOffsetsToTxnRequest::KEY,
        Response::EndTxn => EndTxnRequest::KEY,
        Response::TxnOffsetCommit => TxnOffsetCommitRequest::KEY,
    }
}

fn header_version(api: Response, version: i16) -> i16 {
    match api {
        Response::ApiVersions => ApiVersionsResponse::header_version(version),
        Response::Metadata => MetadataResponse::header_version(version),
        Response::Produce => ProduceResponse::header_version(version),
        Response::InitProducerId => InitProducerIdResponse::header_version(version),
        Response::SaslHandshake => SaslHandshakeResponse::header_version(version),
        Response::SaslAuthenticate => SaslAuthenticateResponse::header_version(version),
        Response::FindCoordinator => FindCoordinatorResponse::header_version(version),
        Response::AddPartitionsToTxn => AddPartitionsToTxnResponse::header_version(version),
        Response::AddOffsetsToTxn => AddOffsetsToTxnResponse::header_version(version),
        Response::EndTxn => EndTxnResponse::header_version(version),
        Response::TxnOffsetCommit => TxnOffsetCommitResponse::header_version(version),
    }
}

/// What kafka-protocol alone makes of a frame: the bytes it leaves over, or whether it
/// ran out. Only ever called on frames the walk accepted.
fn raw_decode<M: Decodable + HeaderVersion>(frame: &[u8], version: i16) -> Result<usize, bool> {
    let mut bytes = Bytes::copy_from_slice(frame);
    ResponseHeader::decode(&mut bytes, M::header_version(version))
        .map_err(|e| e.is::<NotEnoughBytesError>() || e.is::<bytes::TryGetError>())?;
    M::decode(&mut bytes, version)
        .map_err(|e| e.is::<NotEnoughBytesError>() || e.is::<bytes::TryGetError>())?;
    Ok(bytes.remaining())
}

/// Whenever the walk accepts a frame, kafka-protocol must read exactly the bytes walked:
/// it never runs out and never leaves any over. (It may still refuse the contents, e.g.
/// a string that is not UTF-8.)
fn check_agrees(api: Response, version: i16, frame: &[u8]) {
    if api
        .check_frame(version, header_version(api, version), frame)
        .is_err()
    {
        return;
    }
    let raw = match api {
        Response::ApiVersions => raw_decode::<ApiVersionsResponse>(frame, version),
        Response::Metadata => raw_decode::<MetadataResponse>(frame, version),
        Response::Produce => raw_decode::<ProduceResponse>(frame, version),
        Response::InitProducerId => raw_decode::<InitProducerIdResponse>(frame, version),
        Response::SaslHandshake => raw_decode::<SaslHandshakeResponse>(frame, version),
        Response::SaslAuthenticate => raw_decode::<SaslAuthenticateResponse>(frame, version),
        Response::FindCoordinator => raw_decode::<FindCoordinatorResponse>(frame, version),
        Response::AddPartitionsToTxn => raw_decode::<AddPartitionsToTxnResponse>(frame, version),
        Response::AddOffsetsToTxn => raw_decode::<AddOffsetsToTxnResponse>(frame, version),
        Response::EndTxn => raw_decode::<EndTxnResponse>(frame, version),
        Response::TxnOffsetCommit => raw_decode::<TxnOffsetCommitResponse>(frame, version),
    };
    assert!(
        matches!(raw, Ok(0) | Err(false)),
        "{api:?} v{version}: walk accepted {frame:02x?}, kafka-protocol says {raw:?}"
    );
}

// ---- building frames with kafka-protocol ----

/// Header (with `header_tags` if its version has tagged fields) then `body` at `version`.
fn encode_frame<M: Encodable + HeaderVersion>(
    body: &M,
    version: i16,
    header_tags: BTreeMap<i32, Bytes>,
) -> Vec<u8> {
    let header_version = M::header_version(version);
    let mut header = ResponseHeader::default().with_correlation_id(7);
    if header_version >= 1 {
        header.unknown_tagged_fields = header_tags;
    }
    let mut frame = BytesMut::new();
    header.encode(&mut frame, header_version).unwrap();
    body.encode(&mut frame, version)
        .unwrap_or_else(|e| panic!("encoding v{version}: {e:#}"));
    frame.to_vec()
}

/// The round trip, every truncation, a trailing byte, and huge counts spliced in anywhere.
fn check_round_trip<R>(api: Response, resp: &R::Response, version: i16, frame: &[u8])
where
    R: Request,
    R::Response: PartialEq + Debug,
{
    let (id, decoded) = decode_response::<R>(BytesMut::from(frame), version)
        .unwrap_or_else(|e| panic!("{api:?} v{version}: {e} for {resp:?}"));
    assert_eq!(id, 7);
    assert_eq!(&decoded, resp, "{api:?} v{version}");

    for len in 0..frame.len() {
        assert!(
            decode(api, version, &frame[..len]).is_err(),
            "{api:?} v{version}: prefix of {len} of {} bytes decoded",
            frame.len()
        );
    }
    let mut trailing = frame.to_vec();
    trailing.push(0);
    assert!(matches!(
        decode_response::<R>(BytesMut::from(&trailing[..]), version),
        Err(DecodeError::TrailingBytes)
    ));

    // The largest compact count (2^32 - 2, the bug report's body) and the largest classic
    // one, over every position: wherever a count sits, the walk has to catch it.
    for pattern in [
        &[0xff, 0xff, 0xff, 0xff, 0x07][..],
        &[0x7f, 0xff, 0xff, 0xff],
    ] {
        for at in 0..frame.len() {
            let mut corrupt = frame.to_vec();
            let end = (at + pattern.len()).min(corrupt.len());
            corrupt.splice(at..end, pattern.iter().copied());
            let _ = decode(api, version, &corrupt);
            check_agrees(api, version, &corrupt);
        }
    }
}

/// A valid frame with `edits` made to it: an error or a value, never a panic or an abort,
/// and kafka-protocol reads exactly what the walk accepted.
fn check_mutated(
    api: Response,
    version: i16,
    mut frame: Vec<u8>,
    edits: &[(prop::sample::Index, u8)],
) {
    for (at, byte) in edits {
        let at = at.index(frame.len());
        frame[at] = *byte;
    }
    let _ = decode(api, version, &frame);
    check_agrees(api, version, &frame);
}

// ---- random responses, with only the fields each version has ----

fn text() -> impl Strategy<Value = StrBytes> {
    "[a-z0-9._ é-]{0,10}".prop_map(StrBytes::from_string)
}

fn nullable_text() -> impl Strategy<Value = Option<StrBytes>> {
    proptest::option::of(text())
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    text().prop_map(TopicName)
}

/// Unknown tagged fields for a flexible struct; none otherwise. Tags from 10 up stay
/// clear of the ones the schemas define.
fn tags(flexible: bool) -> impl Strategy<Value = BTreeMap<i32, Bytes>> {
    let count = if flexible { 0..3 } else { 0..1 };
    btree_map(
        10..200i32,
        vec(any::<u8>(), 0..5).prop_map(Bytes::from),
        count,
    )
}

/// `strategy` from version `first` on, `default` before (the field is not on the wire).
fn since<T: Clone + Debug + 'static>(
    version: i16,
    first: i16,
    default: T,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if version >= first {
        strategy.boxed()
    } else {
        Just(default).boxed()
    }
}

/// `strategy` up to version `last`, `default` after (the field is no longer on the wire).
fn until<T: Clone + Debug + 'static>(
    version: i16,
    last: i16,
    default: T,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if version <= last {
        strategy.boxed()
    } else {
        Just(default).boxed()
    }
}

/// A topic carrying `bytes` as its id. kafka-protocol does not re-export `uuid` and this
/// crate does not depend on it, so ids are made by decoding one.
fn uuid_carrier(bytes: [u8; 16]) -> MetadataResponseTopic {
    let mut wire = vec![0, 0, 1]; // ErrorCode, Name "" (compact)
    wire.extend_from_slice(&bytes);
    wire.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0]); // IsInternal, no partitions, ops, no tags
    MetadataResponseTopic::decode(&mut Bytes::from(wire), 10).unwrap()
}

fn api_versions_response(v: i16) -> impl Strategy<Value = ApiVersionsResponse> {
    let flexible = v >= 3;
    let api_version = (any::<[i16; 3]>(), tags(flexible)).prop_map(|([key, min, max], tags)| {
        ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
            .with_unknown_tagged_fields(tags)
    });
    let supported = (text(), any::<[i16; 2]>(), tags(true)).prop_map(|(name, [min, max], t)| {
        SupportedFeatureKey::default()
            .with_name(name)
            .with_min_version(min)
            .with_max_version(max)
            .with_unknown_tagged_fields(t)
    });
    let finalized = (text(), any::<[i16; 2]>(), tags(true)).prop_map(|(name, [max, min], t)| {
        FinalizedFeatureKey::default()
            .with_name(name)
            .with_max_version_level(max)
            .with_min_version_level(min)
            .with_unknown_tagged_fields(t)
    });
    (
        any::<i16>(),
        vec(api_version, 0..4),
        since(v, 1, 0, any::<i32>()),
        since(v, 3, vec![], vec(supported, 0..3)),
        since(v, 3, -1, any::<i64>()),
        since(v, 3, vec![], vec(finalized, 0..3)),
        since(v, 3, false, any::<bool>()),
        tags(flexible),
    )
        .prop_map(
            |(error, keys, throttle, supported, epoch, finalized, zk, tags)| {
                ApiVersionsResponse::default()
                    .with_error_code(error)
                    .with_api_keys(keys)
                    .with_throttle_time_ms(throttle)
                    .with_supported_features(supported)
                    .with_finalized_features_epoch(epoch)
                    .with_finalized_features(finalized)
                    .with_zk_migration_ready(zk)
                    .with_unknown_tagged_fields(tags)
            },
        )
}

fn metadata_response(v: i16) -> impl Strategy<Value = MetadataResponse> {
    let flexible = v >= 9;
    let broker = (
        any::<i32>(),
        text(),
        any::<i32>(),
        since(v, 1, None, nullable_text()),
        tags(flexible),
    )
        .prop_map(|(id, host, port, rack, tags)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
                .with_unknown_tagged_fields(tags)
        });
    let brokers = || vec(any::<i32>().prop_map(BrokerId), 0..4);
    let partition = (
        (any::<i16>(), any::<i32>(), any::<i32>()),
        since(v, 7, -1, any::<i32>()),
        brokers(),
        brokers(),
        since(v, 5, vec![], brokers()),
        tags(flexible),
    )
        .prop_map(
            |((error, index, leader), epoch, replicas, isr, offline, tags)| {
                MetadataResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)
                    .with_replica_nodes(replicas)
                    .with_isr_nodes(isr)
                    .with_offline_replicas(offline)
                    .with_unknown_tagged_fields(tags)
            },
        );
    let name = if v >= 12 {
        proptest::option::of(topic_name()).boxed()
    } else {
        topic_name().prop_map(Some).boxed()
    };
    let topic = (
        any::<i16>(),
        name,
        since(v, 10, None, any::<[u8; 16]>().prop_map(Some)),
        since(v, 1, false, any::<bool>()),
        vec(partition, 0..3),
        since(v, 8, i32::MIN, any::<i32>()),
        tags(flexible),
    )
        .prop_map(|(error, name, id, internal, partitions, ops, tags)| {
            let mut topic = MetadataResponseTopic::default()
                .with_error_code(error)
                .with_name(name)
                .with_is_internal(internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(ops)
                .with_unknown_tagged_fields(tags);
            if let Some(id) = id {
                topic.topic_id = uuid_carrier(id).topic_id;
            }
            topic
        });
    let cluster_ops = if (8..=10).contains(&v) {
        any::<i32>().boxed()
    } else {
        Just(i32::MIN).boxed()
    };
    (
        since(v, 3, 0, any::<i32>()),
        vec(broker, 0..3),
        since(v, 2, None, nullable_text()),
        since(v, 1, -1, any::<i32>()),
        vec(topic, 0..3),
        cluster_ops,
        since(v, 13, 0, any::<i16>()),
        tags(flexible),
    )
        .prop_map(
            |(throttle, brokers, cluster, controller, topics, ops, error, tags)| {
                MetadataResponse::default()
                    .with_throttle_time_ms(throttle)
                    .with_brokers(brokers)
                    .with_cluster_id(cluster)
                    .with_controller_id(BrokerId(controller))
                    .with_topics(topics)
                    .with_cluster_authorized_operations(ops)
                    .with_error_code(error)
                    .with_unknown_tagged_fields(tags)
            },
        )
}

fn produce_response(v: i16) -> impl Strategy<Value = ProduceResponse> {
    let flexible = v >= 9;
    let record_error = (any::<i32>(), nullable_text(), tags(flexible)).prop_map(|(i, m, t)| {
        BatchIndexAndErrorMessage::default()
            .with_batch_index(i)
            .with_batch_index_error_message(m)
            .with_unknown_tagged_fields(t)
    });
    let leader = (any::<[i32; 2]>(), tags(true)).prop_map(|([id, epoch], tags)| {
        LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(id))
            .with_leader_epoch(epoch)
            .with_unknown_tagged_fields(tags)
    });
    let partition = (
        (any::<i32>(), any::<i16>(), any::<i64>(), any::<i64>()),
        since(v, 5, -1, any::<i64>()),
        since(v, 8, vec![], vec(record_error, 0..3)),
        since(v, 8, None, nullable_text()),
        since(v, 10, LeaderIdAndEpoch::default(), leader),
        tags(flexible),
    )
        .prop_map(
            |((index, error, base, append), start, errors, message, leader, tags)| {
                PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(error)
                    .with_base_offset(base)
                    .with_log_append_time_ms(append)
                    .with_log_start_offset(start)
                    .with_record_errors(errors)
                    .with_error_message(message)
                    .with_current_leader(leader)
                    .with_unknown_tagged_fields(tags)
            },
        );
    let name = if v <= 12 {
        topic_name().boxed()
    } else {
        Just(TopicName::default()).boxed()
    };
    let topic = (
        name,
        since(v, 13, None, any::<[u8; 16]>().prop_map(Some)),
        vec(partition, 0..3),
        tags(flexible),
    )
        .prop_map(|(name, id, partitions, tags)| {
            let mut topic = TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
                .with_unknown_tagged_fields(tags);
            if let Some(id) = id {
                topic.topic_id = uuid_carrier(id).topic_id;
            }
            topic
        });
    let endpoint = (
        any::<i32>(),
        text(),
        any::<i32>(),
        nullable_text(),
        tags(true),
    )
        .prop_map(|(id, host, port, rack, tags)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_rack(rack)
                .with_unknown_tagged_fields(tags)
        });
    (
        vec(topic, 0..3),
        any::<i32>(),
        since(v, 10, vec![], vec(endpoint, 0..3)),
        tags(flexible),
    )
        .prop_map(|(topics, throttle, endpoints, tags)| {
            ProduceResponse::default()
                .with_responses(topics)
                .with_throttle_time_ms(throttle)
                .with_node_endpoints(endpoints)
                .with_unknown_tagged_fields(tags)
        })
}

fn init_producer_id_response(v: i16) -> impl Strategy<Value = InitProducerIdResponse> {
    (
        (any::<i32>(), any::<i16>(), any::<i64>(), any::<i16>()),
        since(v, 6, -1, any::<i64>()),
        since(v, 6, -1, any::<i16>()),
        tags(v >= 2),
    )
        .prop_map(
            |((throttle, error, id, epoch), ongoing_id, ongoing_epoch, tags)| {
                InitProducerIdResponse::default()
                    .with_throttle_time_ms(throttle)
                    .with_error_code(error)
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
                    .with_ongoing_txn_producer_id(ProducerId(ongoing_id))
                    .with_ongoing_txn_producer_epoch(ongoing_epoch)
                    .with_unknown_tagged_fields(tags)
            },
        )
}

fn sasl_handshake_response(_v: i16) -> impl Strategy<Value = SaslHandshakeResponse> {
    (any::<i16>(), vec(text(), 0..4)).prop_map(|(error, mechanisms)| {
        SaslHandshakeResponse::default()
            .with_error_code(error)
            .with_mechanisms(mechanisms)
    })
}

fn sasl_authenticate_response(v: i16) -> impl Strategy<Value = SaslAuthenticateResponse> {
    (
        any::<i16>(),
        nullable_text(),
        vec(any::<u8>(), 0..40).prop_map(Bytes::from),
        since(v, 1, 0, any::<i64>()),
        tags(v >= 2),
    )
        .prop_map(|(error, message, auth, lifetime, tags)| {
            SaslAuthenticateResponse::default()
                .with_error_code(error)
                .with_error_message(message)
                .with_auth_bytes(auth)
                .with_session_lifetime_ms(lifetime)
                .with_unknown_tagged_fields(tags)
        })
}

fn find_coordinator_response(v: i16) -> impl Strategy<Value = FindCoordinatorResponse> {
    let coordinator = (
        text(),
        any::<[i32; 2]>(),
        text(),
        any::<i16>(),
        nullable_text(),
        tags(true),
    )
        .prop_map(|(key, [id, port], host, error, message, tags)| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(id))
                .with_host(host)
                .with_port(port)
                .with_error_code(error)
                .with_error_message(message)
                .with_unknown_tagged_fields(tags)
        });
    // Before v4 one coordinator is the body itself; from v4 they are in Coordinators.
    let message = if (1..=3).contains(&v) {
        nullable_text().boxed()
    } else {
        Just(Some(StrBytes::default())).boxed()
    };
    (
        since(v, 1, 0, any::<i32>()),
        until(v, 3, 0, any::<i16>()),
        message,
        until(v, 3, [0, 0], any::<[i32; 2]>()),
        until(v, 3, StrBytes::default(), text()),
        since(v, 4, vec![], vec(coordinator, 0..3)),
        tags(v >= 3),
    )
        .prop_map(
            |(throttle, error, message, [id, port], host, coordinators, tags)| {
                FindCoordinatorResponse::default()
                    .with_throttle_time_ms(throttle)
                    .with_error_code(error)
                    .with_error_message(message)
                    .with_node_id(BrokerId(id))
                    .with_host(host)
                    .with_port(port)
                    .with_coordinators(coordinators)
                    .with_unknown_tagged_fields(tags)
            },
        )
}

fn add_partitions_to_txn_response(v: i16) -> impl Strategy<Value = AddPartitionsToTxnResponse> {
    let flexible = v >= 3;
    let topic = move || {
        let partition = (any::<i32>(), any::<i16>(), tags(flexible)).prop_map(|(i, e, t)| {
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(i)
                .with_partition_error_code(e)
                .with_unknown_tagged_fields(t)
        });
        (topic_name(), vec(partition, 0..3), tags(flexible)).prop_map(|(name, partitions, t)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(name)
                .with_results_by_partition(partitions)
                .with_unknown_tagged_fields(t)
        })
    };
    let transaction = (text(), vec(topic(), 0..3), tags(true)).prop_map(|(id, topics, tags)| {
        AddPartitionsToTxnResult::default()
            .with_transactional_id(TransactionalId(id))
            .with_topic_results(topics)
            .with_unknown_tagged_fields(tags)
    });
    (
        any::<i32>(),
        since(v, 4, 0, any::<i16>()),
        since(v, 4, vec![], vec(transaction, 0..3)),
        until(v, 3, vec![], vec(topic(), 0..3)),
        tags(flexible),
    )
        .prop_map(|(throttle, error, transactions, topics, tags)| {
            AddPartitionsToTxnResponse::default()
                .with_throttle_time_ms(throttle)
                .with_error_code(error)
                .with_results_by_transaction(transactions)
                .with_results_by_topic_v3_and_below(topics)
                .with_unknown_tagged_fields(tags)
        })
}

fn add_offsets_to_txn_response(v: i16) -> impl Strategy<Value = AddOffsetsToTxnResponse> {
    (any::<i32>(), any::<i16>(), tags(v >= 3)).prop_map(|(throttle, error, tags)| {
        AddOffsetsToTxnResponse::default()
            .with_throttle_time_ms(throttle)
            .with_error_code(error)
            .with_unknown_tagged_fields(tags)
    })
}

fn end_txn_response(v: i16) -> impl Strategy<Value = EndTxnResponse> {
    (
        any::<i32>(),
        any::<i16>(),
        since(v, 5, -1, any::<i64>()),
        since(v, 5, -1, any::<i16>()),
        tags(v >= 3),
    )
        .prop_map(|(throttle, error, id, epoch, tags)| {
            EndTxnResponse::default()
                .with_throttle_time_ms(throttle)
                .with_error_code(error)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch)
                .with_unknown_tagged_fields(tags)
        })
}

fn txn_offset_commit_response(v: i16) -> impl Strategy<Value = TxnOffsetCommitResponse> {
    let flexible = v >= 3;
    let partition =
        (any::<i32>(), any::<i16>(), tags(flexible)).prop_map(|(index, error, tags)| {
            TxnOffsetCommitResponsePartition::default()
                .with_partition_index(index)
                .with_error_code(error)
                .with_unknown_tagged_fields(tags)
        });
    let topic = (topic_name(), vec(partition, 0..3), tags(flexible)).prop_map(
        |(name, partitions, tags)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
                .with_unknown_tagged_fields(tags)
        },
    );
    (any::<i32>(), vec(topic, 0..3), tags(flexible)).prop_map(|(throttle, topics, tags)| {
        TxnOffsetCommitResponse::default()
            .with_throttle_time_ms(throttle)
            .with_topics(topics)
            .with_unknown_tagged_fields(tags)
    })
}

/// A version of `api` and a response at it, plus header tags.
fn versioned<S: Strategy + 'static>(
    api: Response,
    response: impl Fn(i16) -> S + 'static,
) -> impl Strategy<Value = (i16, S::Value, BTreeMap<i32, Bytes>)> {
    api.versions()
        .prop_flat_map(move |v| (Just(v), response(v), tags(true)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn api_versions_round_trips((v, resp, header_tags) in versioned(Response::ApiVersions, api_versions_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<ApiVersionsRequest>(Response::ApiVersions, &resp, v, &frame);
        let (_, via_fallback) = decode_api_versions_response(BytesMut::from(&frame[..]), v).unwrap();
        prop_assert_eq!(via_fallback, resp);
    }

    #[test]
    fn metadata_round_trips((v, resp, header_tags) in versioned(Response::Metadata, metadata_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<MetadataRequest>(Response::Metadata, &resp, v, &frame);
    }

    #[test]
    fn produce_round_trips((v, resp, header_tags) in versioned(Response::Produce, produce_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<ProduceRequest>(Response::Produce, &resp, v, &frame);
    }

    #[test]
    fn init_producer_id_round_trips((v, resp, header_tags) in versioned(Response::InitProducerId, init_producer_id_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<InitProducerIdRequest>(Response::InitProducerId, &resp, v, &frame);
    }

    #[test]
    fn sasl_handshake_round_trips((v, resp, header_tags) in versioned(Response::SaslHandshake, sasl_handshake_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<SaslHandshakeRequest>(Response::SaslHandshake, &resp, v, &frame);
    }

    #[test]
    fn sasl_authenticate_round_trips((v, resp, header_tags) in versioned(Response::SaslAuthenticate, sasl_authenticate_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<SaslAuthenticateRequest>(Response::SaslAuthenticate, &resp, v, &frame);
    }

    #[test]
    fn find_coordinator_round_trips((v, resp, header_tags) in versioned(Response::FindCoordinator, find_coordinator_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<FindCoordinatorRequest>(Response::FindCoordinator, &resp, v, &frame);
    }

    #[test]
    fn add_partitions_to_txn_round_trips((v, resp, header_tags) in versioned(Response::AddPartitionsToTxn, add_partitions_to_txn_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<AddPartitionsToTxnRequest>(Response::AddPartitionsToTxn, &resp, v, &frame);
    }

    #[test]
    fn add_offsets_to_txn_round_trips((v, resp, header_tags) in versioned(Response::AddOffsetsToTxn, add_offsets_to_txn_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<AddOffsetsToTxnRequest>(Response::AddOffsetsToTxn, &resp, v, &frame);
    }

    #[test]
    fn end_txn_round_trips((v, resp, header_tags) in versioned(Response::EndTxn, end_txn_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<EndTxnRequest>(Response::EndTxn, &resp, v, &frame);
    }

    #[test]
    fn txn_offset_commit_round_trips((v, resp, header_tags) in versioned(Response::TxnOffsetCommit, txn_offset_commit_response)) {
        let frame = encode_frame(&resp, v, header_tags);
        check_round_trip::<TxnOffsetCommitRequest>(Response::TxnOffsetCommit, &resp, v, &frame);
    }

    /// Random bytes as every response at every version: an error or a value, never a
    /// panic or an abort.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        for api in ALL {
            for v in api.versions() {
                let _ = decode(api, v, &bytes);
                check_agrees(api, v, &bytes);
            }
        }
    }

    /// Valid frames with a few bytes changed reach much deeper than random bytes.
    #[test]
    fn mutated_frames_never_panic(
        (v, resp, header_tags) in versioned(Response::Produce, produce_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::Produce, v, encode_frame(&resp, v, header_tags), &edits);
    }

    #[test]
    fn mutated_metadata_never_panics(
        (v, resp, header_tags) in versioned(Response::Metadata, metadata_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::Metadata, v, encode_frame(&resp, v, header_tags), &edits);
    }

    #[test]
    fn mutated_api_versions_never_panics(
        (v, resp, header_tags) in versioned(Response::ApiVersions, api_versions_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::ApiVersions, v, encode_frame(&resp, v, header_tags), &edits);
    }

    #[test]
    fn mutated_find_coordinator_never_panics(
        (v, resp, header_tags) in versioned(Response::FindCoordinator, find_coordinator_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::FindCoordinator, v, encode_frame(&resp, v, header_tags), &edits);
    }

    #[test]
    fn mutated_add_partitions_to_txn_never_panics(
        (v, resp, header_tags) in versioned(Response::AddPartitionsToTxn, add_partitions_to_txn_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::AddPartitionsToTxn, v, encode_frame(&resp, v, header_tags), &edits);
    }

    #[test]
    fn mutated_txn_offset_commit_never_panics(
        (v, resp, header_tags) in versioned(Response::TxnOffsetCommit, txn_offset_commit_response),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_mutated(Response::TxnOffsetCommit, v, encode_frame(&resp, v, header_tags), &edits);
    }
}

// ---- the bug report, and the edges of the walk ----

/// Correlation id 7, then an empty tagged-field section if the header has one.
fn header(api: Response, version: i16) -> Vec<u8> {
    let mut frame = vec![0, 0, 0, 7];
    if header_version(api, version) >= 1 {
        frame.push(0);
    }
    frame
}

#[test]
fn the_reported_produce_body_is_truncated_not_an_abort() {
    // A compact array count of 2^32 - 2 topics: kafka-protocol alone reserves ~200 GB.
    for v in 9..=13 {
        let mut frame = header(Response::Produce, v);
        frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(
            matches!(
                decode_response::<ProduceRequest>(BytesMut::from(&frame[..]), v),
                Err(DecodeError::Truncated)
            ),
            "v{v}"
        );
    }
    // Before v9 the same bytes are a null array (-1), which Responses may not be.
    for v in 3..=8 {
        let mut frame = header(Response::Produce, v);
        frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        assert!(
            matches!(
                decode_response::<ProduceRequest>(BytesMut::from(&frame[..]), v),
                Err(DecodeError::InvalidLength(-1))
            ),
            "v{v}"
        );
    }
}

#[test]
fn the_largest_count_in_each_first_array_is_truncated() {
    for api in ALL {
        for v in api.versions() {
            let flexible = api.is_flexible(v);
            let mut frame = header(api, v);
            // The fields in front of each body's first array or, in FindCoordinator before
            // v4, its first string. InitProducerId, AddOffsetsToTxn and EndTxn have none:
            // their only count is the tagged-field one.
            let fixed = match api {
                Response::ApiVersions => 2,
                Response::Metadata if v >= 3 => 4,
                Response::Metadata | Response::Produce => 0,
                Response::InitProducerId if v >= 6 => 24,
                Response::InitProducerId => 14,
                Response::SaslHandshake => 2,
                // ErrorCode, then an empty ErrorMessage (compact: null), then AuthBytes.
                Response::SaslAuthenticate if v >= 2 => 3,
                Response::SaslAuthenticate => 4,
                // ThrottleTimeMs, then Coordinators.
                Response::FindCoordinator if v >= 4 => 4,
                // ThrottleTimeMs, ErrorCode, then ErrorMessage.
                Response::FindCoordinator if v >= 1 => 6,
                // ErrorCode, NodeId, then Host.
                Response::FindCoordinator => 6,
                Response::AddPartitionsToTxn if v >= 4 => 6,
                Response::AddPartitionsToTxn | Response::TxnOffsetCommit => 4,
                Response::AddOffsetsToTxn => 6,
                Response::EndTxn if v >= 5 => 16,
                Response::EndTxn => 6,
            };
            frame.resize(frame.len() + fixed, 0);
            if flexible {
                frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
            } else {
                frame.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
            }
            let no_array = matches!(
                api,
                Response::InitProducerId | Response::AddOffsetsToTxn | Response::EndTxn
            );
            let expected = if no_array && !flexible {
                "TrailingBytes"
            } else {
                "Truncated"
            };
            let got = decode(api, v, &frame);
            assert_eq!(
                got.map_err(|e| format!("{e:?}")),
                Err(expected.to_owned()),
                "{api:?} v{v}"
            );
        }
    }
}

#[test]
fn lengths_and_varints_are_checked() {
    let api = Response::Produce;
    let decode9 = |body: &[u8]| {
        let mut frame = header(api, 9);
        frame.extend_from_slice(body);
        decode(api, 9, &frame)
    };
    // One topic whose name claims 5 bytes of the 2 left.
    assert!(matches!(
        decode9(&[2, 6, b'a', b'b']),
        Err(DecodeError::Truncated)
    ));
    // A null name (compact length 0) where the schema has no null.
    assert!(matches!(
        decode9(&[2, 0, 1, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::InvalidLength(-1))
    ));
    // A count whose varint runs past 32 bits.
    assert!(matches!(
        decode9(&[0xff, 0xff, 0xff, 0xff, 0x10]),
        Err(DecodeError::VarintOverflow)
    ));
    // Tagged fields claiming more entries than could fit.
    assert!(matches!(
        decode9(&[1, 0, 0, 0, 0, 5, 0, 0]),
        Err(DecodeError::Truncated)
    ));
    // A tag number beyond i32 (kafka-protocol could not encode it back).
    assert!(matches!(
        decode9(&[1, 0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x08, 0]),
        Err(DecodeError::Message(_))
    ));
    // A classic string of negative length other than -1.
    let mut frame = header(api, 8);
    frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xfe]);
    assert!(matches!(
        decode(api, 8, &frame),
        Err(DecodeError::InvalidLength(-2))
    ));
}

#[test]
fn a_known_tagged_field_must_fill_its_size() {
    let api = Response::Produce;
    let resp = ProduceResponse::default().with_node_endpoints(vec![NodeEndpoint::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_static_str("h"))
        .with_port(9092)]);
    let frame = encode_frame(&resp, 10, BTreeMap::new());
    // After the header: Responses (empty), ThrottleTimeMs, one tagged field, tag 0, size.
    let size_at = header(api, 10).len() + 7;
    assert_eq!(&frame[size_at - 7..size_at], &[1, 0, 0, 0, 0, 1, 0]);
    let with_size = |delta: i8, after: &[u8]| {
        let mut frame = frame.clone();
        frame[size_at] = frame[size_at].wrapping_add_signed(delta);
        frame.extend_from_slice(after);
        decode(api, 10, &frame)
    };
    assert!(with_size(0, &[]).is_ok());
    // Smaller than its contents: they run out.
    assert!(matches!(with_size(-1, &[]), Err(DecodeError::Truncated)));
    // Past the end of the frame.
    assert!(matches!(with_size(1, &[]), Err(DecodeError::Truncated)));
    // Taking in the next byte too: left over inside the field.
    assert!(matches!(
        with_size(1, &[0]),
        Err(DecodeError::TrailingBytes)
    ));
}

#[test]
fn versions_and_flexibility_match_kafka_protocol() {
    fn range<M: Message>() -> std::ops::RangeInclusive<i16> {
        M::VERSIONS.min..=M::VERSIONS.max
    }
    assert_eq!(
        Response::ApiVersions.versions(),
        range::<ApiVersionsResponse>()
    );
    assert_eq!(Response::Metadata.versions(), range::<MetadataResponse>());
    assert_eq!(Response::Produce.versions(), range::<ProduceResponse>());
    assert_eq!(
        Response::InitProducerId.versions(),
        range::<InitProducerIdResponse>()
    );
    assert_eq!(
        Response::SaslHandshake.versions(),
        range::<SaslHandshakeResponse>()
    );
    assert_eq!(
        Response::SaslAuthenticate.versions(),
        range::<SaslAuthenticateResponse>()
    );
    assert_eq!(
        Response::FindCoordinator.versions(),
        range::<FindCoordinatorResponse>()
    );
    assert_eq!(
        Response::AddPartitionsToTxn.versions(),
        range::<AddPartitionsToTxnResponse>()
    );
    assert_eq!(
        Response::AddOffsetsToTxn.versions(),
        range::<AddOffsetsToTxnResponse>()
    );
    assert_eq!(Response::EndTxn.versions(), range::<EndTxnResponse>());
    assert_eq!(
        Response::TxnOffsetCommit.versions(),
        range::<TxnOffsetCommitResponse>()
    );
    // Flexible responses use header v1, except ApiVersions (KIP-511).
    for api in ALL {
        for v in api.versions() {
            let expected = i16::from(api.is_flexible(v) && api != Response::ApiVersions);
            assert_eq!(header_version(api, v), expected, "{api:?} v{v}");
        }
    }
    assert!(Response::ApiVersions.is_flexible(3));
}

#[test]
fn unsupported_versions_are_errors() {
    for api in ALL {
        let below = *api.versions().start() - 1;
        let above = *api.versions().end() + 1;
        for v in [below, above] {
            assert!(matches!(
                api.check_frame(v, 0, &[0, 0, 0, 7]),
                Err(DecodeError::Message(_))
            ));
        }
    }
    assert_eq!(Response::for_api_key(1), None); // Fetch
    assert_eq!(Response::for_api_key(-5), None);
    for api in ALL {
        assert_eq!(Response::for_api_key(api_key(api)), Some(api));
    }
}

#[test]
fn a_null_where_the_schema_has_none_is_refused() {
    // FindCoordinator v4: one coordinator whose Key is null (compact length 0).
    let mut frame = header(Response::FindCoordinator, 4);
    frame.extend_from_slice(&[0, 0, 0, 0, 2, 0]);
    assert!(matches!(
        decode(Response::FindCoordinator, 4, &frame),
        Err(DecodeError::InvalidLength(-1))
    ));
    // AddPartitionsToTxn v4: one transaction whose TransactionalId is null.
    let mut frame = header(Response::AddPartitionsToTxn, 4);
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 2, 0]);
    assert!(matches!(
        decode(Response::AddPartitionsToTxn, 4, &frame),
        Err(DecodeError::InvalidLength(-1))
    ));
    // TxnOffsetCommit v2: one topic whose Name is null (classic length -1).
    let mut frame = header(Response::TxnOffsetCommit, 2);
    frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(matches!(
        decode(Response::TxnOffsetCommit, 2, &frame),
        Err(DecodeError::InvalidLength(-1))
    ));
    // FindCoordinator v1-3 may carry a null ErrorMessage, though.
    let mut frame = header(Response::FindCoordinator, 2);
    frame.extend_from_slice(&[
        0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1, 0, 1, b'h', 0, 0, 0, 9,
    ]);
    assert!(decode(Response::FindCoordinator, 2, &frame).is_ok());
}

// ---- KIP-951's leader hints in Produce answers ----

/// One partition refused with NOT_LEADER_OR_FOLLOWER, with or without the hints.
fn refused(v: i16, hinted: bool) -> ProduceResponse {
    let mut partition = PartitionProduceResponse::default()
        .with_index(3)
        .with_error_code(6)
        .with_base_offset(-1)
        .with_log_start_offset(-1);
    let mut resp = ProduceResponse::default();
    if hinted {
        partition = partition.with_current_leader(
            LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(7),
        );
        resp = resp.with_node_endpoints(vec![NodeEndpoint::default()
            .with_node_id(BrokerId(2))
            .with_host(StrBytes::from_static_str("broker-2"))
            .with_port(9093)
            .with_rack(Some(StrBytes::from_static_str("rack-b")))]);
    }
    let name = if v <= 12 { "t" } else { "" };
    resp.with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str(name)))
        .with_partition_responses(vec![partition])])
}

#[test]
fn produce_leader_hints_pass_the_walk_and_decode() {
    for v in 10..=13 {
        let frame = encode_frame(&refused(v, true), v, BTreeMap::new());
        let (_, resp) = decode_response::<ProduceRequest>(BytesMut::from(&frame[..]), v)
            .unwrap_or_else(|e| panic!("v{v}: {e}"));
        let leader = &resp.responses[0].partition_responses[0].current_leader;
        assert_eq!((leader.leader_id.0, leader.leader_epoch), (2, 7), "v{v}");
        let endpoint = &resp.node_endpoints[..];
        assert_eq!(endpoint.len(), 1, "v{v}");
        assert_eq!(endpoint[0].node_id.0, 2);
        assert_eq!((&*endpoint[0].host, endpoint[0].port), ("broker-2", 9093));
        assert_eq!(endpoint[0].rack.as_deref(), Some("rack-b"));
    }
}

#[test]
fn produce_answers_without_hints_decode_to_no_leader() {
    for v in Response::Produce.versions() {
        let frame = encode_frame(&refused(v, false), v, BTreeMap::new());
        if (10..=12).contains(&v) {
            // Neither tagged field is on the wire: the frame is v9's, byte for byte.
            let v9 = encode_frame(&refused(9, false), 9, BTreeMap::new());
            assert_eq!(frame, v9, "v{v}");
        }
        let (_, resp) = decode_response::<ProduceRequest>(BytesMut::from(&frame[..]), v)
            .unwrap_or_else(|e| panic!("v{v}: {e}"));
        let leader = &resp.responses[0].partition_responses[0].current_leader;
        assert_eq!((leader.leader_id.0, leader.leader_epoch), (-1, -1), "v{v}");
        assert!(resp.node_endpoints.is_empty(), "v{v}");
    }
}
