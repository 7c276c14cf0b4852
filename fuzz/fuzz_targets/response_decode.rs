//! Arbitrary bytes as each response the producer reads, at each version.
//!
//! The first byte picks the response and version, the rest is the frame (without its
//! size). Decoding must give an error or a value, never panic, and never allocate past
//! libFuzzer's malloc limit (scripts/fuzz-smoke lowers it to 16 MB). A value must survive
//! kafka-protocol's encoder and decode again to itself.
#![no_main]

use std::fmt::Debug;

use bytes::BytesMut;
use kafka_producer_protocol::frame::{
    decode_api_versions_response, decode_response, encode_response,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiVersionsRequest, EndTxnRequest,
    FindCoordinatorRequest, InitProducerIdRequest, MetadataRequest, ProduceRequest,
    SaslAuthenticateRequest, SaslHandshakeRequest, TxnOffsetCommitRequest,
};
use kafka_producer_protocol::kafka_protocol::protocol::{
    Encodable, HeaderVersion, Message, Request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    // 5 ApiVersions + 14 Metadata + 11 Produce + 7 InitProducerId + 2 SaslHandshake
    // + 3 SaslAuthenticate versions, then the transaction responses: 7 FindCoordinator
    // + 6 AddPartitionsToTxn + 5 AddOffsetsToTxn + 6 EndTxn + 6 TxnOffsetCommit. New
    // responses go at the end, so selectors below 37 keep their meaning in the corpus.
    match selector % 72 {
        v @ 0..=4 => {
            let v = i16::from(v);
            check::<ApiVersionsRequest>(frame, v);
            let _ = decode_api_versions_response(BytesMut::from(frame), v);
        }
        v @ 5..=18 => check::<MetadataRequest>(frame, i16::from(v - 5)),
        v @ 19..=29 => check::<ProduceRequest>(frame, i16::from(v - 19 + 3)),
        v @ 30..=36 => check::<InitProducerIdRequest>(frame, i16::from(v - 30)),
        v @ 37..=38 => check::<SaslHandshakeRequest>(frame, i16::from(v - 37)),
        v @ 39..=41 => check::<SaslAuthenticateRequest>(frame, i16::from(v - 39)),
        v @ 42..=48 => check::<FindCoordinatorRequest>(frame, i16::from(v - 42)),
        v @ 49..=54 => check::<AddPartitionsToTxnRequest>(frame, i16::from(v - 49)),
        v @ 55..=59 => check::<AddOffsetsToTxnRequest>(frame, i16::from(v - 55)),
        v @ 60..=65 => check::<EndTxnRequest>(frame, i16::from(v - 60)),
        v => check::<TxnOffsetCommitRequest>(frame, i16::from(v - 66)),
    }
});

fn check<R>(frame: &[u8], version: i16)
where
    R: Request,
    R::Response: Encodable + HeaderVersion + Message + PartialEq + Debug,
{
    let Ok((id, resp)) = decode_response::<R>(BytesMut::from(frame), version) else {
        return;
    };
    let mut again = BytesMut::new();
    if encode_response(&mut again, version, id, &resp).is_err() {
        return;
    }
    let _size = again.split_to(4);
    let (id2, resp2) = decode_response::<R>(again, version)
        .unwrap_or_else(|e| panic!("v{version}: re-encoded {resp:?} does not decode: {e}"));
    assert_eq!(id2, id);
    assert_eq!(resp2, resp, "v{version}");
}
