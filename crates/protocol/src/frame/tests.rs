use std::fmt::Debug;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

use super::*;
use crate::batch::{decode_batches, BatchBuilder, BatchParams};
use crate::error::ErrorCode;

const MAX_FRAME: usize = 1 << 20;

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

/// Encodes with the client side, decodes with the broker side, and compares.
fn request_round_trip<R: Request + PartialEq + Debug>(req: &R, version: i16) {
    let mut buf = BytesMut::new();
    encode_request(&mut buf, version, 77, Some("kprod"), req).unwrap();
    let mut frame = split_frame(&mut buf, MAX_FRAME).unwrap().unwrap().freeze();
    assert!(buf.is_empty());
    let header = decode_request_header(&mut frame).unwrap();
    assert_eq!(header.request_api_key, R::KEY);
    assert_eq!(header.request_api_version, version);
    assert_eq!(header.correlation_id, 77);
    assert_eq!(header.client_id.as_deref(), Some("kprod"));
    let decoded: R = decode_request_body(frame, version).unwrap();
    assert_eq!(&decoded, req, "v{version}");
}

fn sample_batch() -> Bytes {
    let mut builder = BatchBuilder::new(0);
    builder
        .try_append(1, Some(b"key"), Some(b"value"), &[], usize::MAX)
        .unwrap();
    builder.try_append(2, None, None, &[], usize::MAX).unwrap();
    builder.finish(BatchParams::default())
}

#[test]
fn api_versions_request_v3_round_trips_with_the_expected_bytes() {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kprod"))
        .with_client_software_version(StrBytes::from_static_str("0.1"));
    request_round_trip(&req, 3);

    let mut buf = BytesMut::new();
    encode_request(&mut buf, 3, 1, Some("c"), &req).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 23,            // size
        0, 18, 0, 3,            // ApiVersions (18) v3
        0, 0, 0, 1,             // correlation id
        0, 1, b'c',             // client id: a plain nullable string even in header v2
        0,                      // header v2 tagged fields
        6, b'k', b'p', b'r', b'o', b'd', // compact string: length + 1
        4, b'0', b'.', b'1',
        0,                      // body tagged fields
    ];
    assert_eq!(&buf[..], expected);
}

#[test]
fn metadata_request_v12_round_trips() {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
            MetadataRequestTopic::default().with_name(Some(topic("payments"))),
        ]))
        .with_allow_auto_topic_creation(false);
    request_round_trip(&req, 12);
    // Null topics means "all topics".
    request_round_trip(&MetadataRequest::default().with_topics(None), 12);
}

#[test]
fn produce_request_round_trips_with_our_batches() {
    let batch = sample_batch();
    for version in 3..=12 {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.clone())),
                    PartitionProduceData::default()
                        .with_index(3)
                        .with_records(Some(batch.clone())),
                ])]);
        request_round_trip(&req, version);
    }
}

#[test]
fn init_producer_id_request_round_trips() {
    let req = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    request_round_trip(&req, 4);
}

#[test]
fn encode_request_errors_leave_the_buffer_alone() {
    let mut buf = BytesMut::from(&b"earlier frame"[..]);
    let err = encode_request(&mut buf, 2, 1, None, &ProduceRequest::default()).unwrap_err();
    assert!(err.to_string().contains("ProduceRequest v2"), "{err}");
    assert_eq!(&buf[..], b"earlier frame");
}

#[test]
fn split_frame_waits_for_the_whole_frame() {
    let mut wire = BytesMut::new();
    encode_request(&mut wire, 12, 5, None, &MetadataRequest::default()).unwrap();
    let whole = wire.clone();
    for len in 0..whole.len() {
        let mut partial = BytesMut::from(&whole[..len]);
        assert!(
            split_frame(&mut partial, MAX_FRAME).unwrap().is_none(),
            "len {len}"
        );
        assert_eq!(partial.len(), len, "nothing consumed");
    }
    // Two frames back to back come out one at a time.
    wire.extend_from_slice(&whole);
    let first = split_frame(&mut wire, MAX_FRAME).unwrap().unwrap();
    assert_eq!(&first[..], &whole[4..]);
    assert_eq!(&wire[..], &whole[..]);
    let second = split_frame(&mut wire, MAX_FRAME).unwrap().unwrap();
    assert_eq!(first, second);
    assert!(wire.is_empty());
    assert!(split_frame(&mut wire, MAX_FRAME).unwrap().is_none());
}

#[test]
fn split_frame_rejects_bad_sizes() {
    let mut negative = BytesMut::from(&(-1i32).to_be_bytes()[..]);
    assert!(matches!(
        split_frame(&mut negative, MAX_FRAME),
        Err(DecodeError::InvalidLength(-1))
    ));
    let mut too_big = BytesMut::from(&1025i32.to_be_bytes()[..]);
    assert!(matches!(
        split_frame(&mut too_big, 1024),
        Err(DecodeError::InvalidLength(1025))
    ));
    let mut empty_frame = BytesMut::from(&0i32.to_be_bytes()[..]);
    assert_eq!(
        split_frame(&mut empty_frame, 1024).unwrap().unwrap().len(),
        0
    );
}

#[test]
fn correlation_id_reads_the_first_four_bytes() {
    assert_eq!(correlation_id(&[0, 0, 1, 2, 0xff]).unwrap(), 258);
    assert!(matches!(
        correlation_id(&[0, 0, 1]),
        Err(DecodeError::Truncated)
    ));
}

/// A response frame (without size) built by hand: correlation id, then for header v1 an
/// empty tagged-field section, then the body.
fn response_frame<M: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &M,
    version: i16,
) -> BytesMut {
    let mut frame = BytesMut::new();
    frame.put_i32(correlation_id);
    if header_version >= 1 {
        frame.put_u8(0);
    }
    body.encode(&mut frame, version).unwrap();
    frame
}

/// Decodes a hand-built frame, checks `encode_response` builds the same bytes, and
/// checks that every strict prefix and any trailing byte are rejected.
fn response_round_trip<R>(resp: &R::Response, version: i16, header_version: i16)
where
    R: Request,
    R::Response: PartialEq + Debug,
{
    let frame = response_frame(99, header_version, resp, version);
    let (id, decoded) = decode_response::<R>(frame.clone(), version).unwrap();
    assert_eq!(id, 99);
    assert_eq!(&decoded, resp, "v{version}");
    assert_eq!(correlation_id(&frame).unwrap(), 99);

    let mut encoded = BytesMut::new();
    encode_response(&mut encoded, version, 99, resp).unwrap();
    assert_eq!(&encoded[4..], &frame[..], "encode_response v{version}");
    assert_eq!(&encoded[..4], &(frame.len() as i32).to_be_bytes());

    for len in 0..frame.len() {
        assert!(
            decode_response::<R>(BytesMut::from(&frame[..len]), version).is_err(),
            "prefix {len}"
        );
    }
    let mut trailing = frame.clone();
    trailing.put_u8(0);
    assert!(matches!(
        decode_response::<R>(trailing, version),
        Err(DecodeError::TrailingBytes)
    ));
}

#[test]
fn api_versions_response_v3_uses_header_v0() {
    // KIP-511: the response header stays v0 so any client can read the error code.
    for version in 0..=4 {
        assert_eq!(
            <ApiVersionsResponse as HeaderVersion>::header_version(version),
            0
        );
    }
    let resp = ApiVersionsResponse::default()
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(0)
                .with_min_version(3)
                .with_max_version(12),
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(4),
        ])
        .with_throttle_time_ms(0);
    response_round_trip::<ApiVersionsRequest>(&resp, 3, 0);
    let (_, via_fallback_helper) =
        decode_api_versions_response(response_frame(99, 0, &resp, 3), 3).unwrap();
    assert_eq!(via_fallback_helper, resp);
}

#[test]
fn api_versions_falls_back_to_v0_for_unsupported_version_answers() {
    let v0 = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UNSUPPORTED_VERSION.0)
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(18)
            .with_max_version(2)]);
    let frame = response_frame(4, 0, &v0, 0);
    assert!(decode_response::<ApiVersionsRequest>(frame.clone(), 3).is_err());
    let (id, resp) = decode_api_versions_response(frame, 3).unwrap();
    assert_eq!(id, 4);
    assert_eq!(resp, v0);
    assert_eq!(ErrorCode(resp.error_code), ErrorCode::UNSUPPORTED_VERSION);
}

#[test]
fn metadata_response_v12_round_trips() {
    let resp = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("kafka-1"))
                .with_port(9092),
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("kafka-2"))
                .with_port(9092)
                .with_rack(Some(StrBytes::from_static_str("r2"))),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(topic("orders")))
            .with_partitions(vec![MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(5)
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(2)])])]);
    response_round_trip::<MetadataRequest>(&resp, 12, 1);
}

#[test]
fn produce_response_round_trips() {
    let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(topic("orders"))
        .with_partition_responses(vec![
            PartitionProduceResponse::default()
                .with_index(0)
                .with_base_offset(1234)
                .with_log_append_time_ms(-1),
            PartitionProduceResponse::default()
                .with_index(3)
                .with_error_code(ErrorCode::NOT_LEADER_OR_FOLLOWER.0)
                .with_base_offset(-1)
                .with_error_message(Some(StrBytes::from_static_str("moved"))),
        ])]);
    for version in 9..=12 {
        response_round_trip::<ProduceRequest>(&resp, version, 1);
    }
}

#[test]
fn init_producer_id_response_v4_round_trips() {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(4000))
        .with_producer_epoch(2);
    response_round_trip::<InitProducerIdRequest>(&resp, 4, 1);
}

#[test]
fn batches_survive_the_produce_request() {
    let batch = sample_batch();
    let req = ProduceRequest::default().with_topic_data(vec![TopicProduceData::default()
        .with_name(topic("t"))
        .with_partition_data(vec![
            PartitionProduceData::default().with_records(Some(batch.clone()))
        ])]);
    let mut buf = BytesMut::new();
    encode_request(&mut buf, 11, 1, None, &req).unwrap();
    let mut frame = split_frame(&mut buf, MAX_FRAME).unwrap().unwrap().freeze();
    let header = decode_request_header(&mut frame).unwrap();
    let decoded: ProduceRequest = decode_request_body(frame, header.request_api_version).unwrap();
    let records = decoded.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    assert_eq!(
        decode_batches(&records).unwrap(),
        decode_batches(&batch).unwrap()
    );
}

#[test]
fn unsupported_versions_and_bad_headers_are_errors() {
    let frame = response_frame(1, 1, &InitProducerIdResponse::default(), 4);
    let err = decode_response::<InitProducerIdRequest>(frame, 99).unwrap_err();
    assert!(
        err.to_string().contains("InitProducerIdResponse v99"),
        "{err}"
    );

    let mut short = Bytes::from_static(&[0, 3, 0]);
    assert!(matches!(
        decode_request_header(&mut short),
        Err(DecodeError::Truncated)
    ));
    let mut unknown = Bytes::from_static(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    let err = decode_request_header(&mut unknown).unwrap_err();
    assert!(err.to_string().contains("unknown API key 9999"), "{err}");
}
