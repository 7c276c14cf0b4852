//! `MetadataResponse.json`, versions 0-13; flexible from 9.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    if version >= 3 {
        r.int32()?; // ThrottleTimeMs
    }
    r.array(|r| broker(r, version))?;
    if version >= 2 {
        r.string(Nullable::Yes)?; // ClusterId
    }
    if version >= 1 {
        r.int32()?; // ControllerId
    }
    r.array(|r| topic(r, version))?;
    // Dropped in v11: DescribeCluster reports it instead (KIP-700).
    if (8..=10).contains(&version) {
        r.int32()?; // ClusterAuthorizedOperations
    }
    if version >= 13 {
        r.int16()?; // ErrorCode (KIP-1102)
    }
    r.tagged_fields()
}

fn broker(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int32()?; // NodeId
    r.string(Nullable::No)?; // Host
    r.int32()?; // Port
    if version >= 1 {
        r.string(Nullable::Yes)?; // Rack
    }
    r.tagged_fields()
}

fn topic(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int16()?; // ErrorCode
    r.string(Nullable::since(12, version))?; // Name
    if version >= 10 {
        r.uuid()?; // TopicId
    }
    if version >= 1 {
        r.boolean()?; // IsInternal
    }
    r.array(|r| partition(r, version))?;
    if version >= 8 {
        r.int32()?; // TopicAuthorizedOperations
    }
    r.tagged_fields()
}

fn partition(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int16()?; // ErrorCode
    r.int32()?; // PartitionIndex
    r.int32()?; // LeaderId
    if version >= 7 {
        r.int32()?; // LeaderEpoch
    }
    r.int32_array()?; // ReplicaNodes
    r.int32_array()?; // IsrNodes
    if version >= 5 {
        r.int32_array()?; // OfflineReplicas
    }
    r.tagged_fields()
}
