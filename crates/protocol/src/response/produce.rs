//! `ProduceResponse.json`, versions 3-13 (kafka-protocol has no 0-2); flexible from 9.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.array(|r| topic(r, version))?; // Responses
    r.int32()?; // ThrottleTimeMs
    r.tagged_fields_with(|tag, r| match tag {
        // NodeEndpoints (KIP-951)
        0 if version >= 10 => r.array(node_endpoint).map(|()| true),
        _ => Ok(false),
    })
}

fn topic(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    if version >= 13 {
        r.uuid()?; // TopicId (KIP-516), in place of Name
    } else {
        r.string(Nullable::No)?; // Name
    }
    r.array(|r| partition(r, version))?; // PartitionResponses
    r.tagged_fields()
}

fn partition(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int32()?; // Index
    r.int16()?; // ErrorCode
    r.int64()?; // BaseOffset
    r.int64()?; // LogAppendTimeMs (v2+)
    if version >= 5 {
        r.int64()?; // LogStartOffset
    }
    if version >= 8 {
        r.array(|r| {
            r.int32()?; // BatchIndex
            r.string(Nullable::Yes)?; // BatchIndexErrorMessage
            r.tagged_fields()
        })?; // RecordErrors
        r.string(Nullable::Yes)?; // ErrorMessage
    }
    r.tagged_fields_with(|tag, r| match tag {
        // CurrentLeader (KIP-951): LeaderId, LeaderEpoch
        0 if version >= 10 => {
            r.int32()?;
            r.int32()?;
            r.tagged_fields().map(|()| true)
        }
        _ => Ok(false),
    })
}

fn node_endpoint(r: &mut Cursor<'_>) -> Result<(), DecodeError> {
    r.int32()?; // NodeId
    r.string(Nullable::No)?; // Host
    r.int32()?; // Port
    r.string(Nullable::Yes)?; // Rack
    r.tagged_fields()
}
