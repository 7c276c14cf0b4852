//! `AddPartitionsToTxnResponse.json`, versions 0-5; flexible from 3.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int32()?; // ThrottleTimeMs
    if version >= 4 {
        // Results grouped by transaction, for brokers batching verifications (KIP-890).
        r.int16()?; // ErrorCode
        r.array(|r| {
            r.string(Nullable::No)?; // TransactionalId
            r.array(topic)?; // TopicResults
            r.tagged_fields()
        })?; // ResultsByTransaction
    } else {
        r.array(topic)?; // ResultsByTopicV3AndBelow
    }
    r.tagged_fields()
}

/// AddPartitionsToTxnTopicResult.
fn topic(r: &mut Cursor<'_>) -> Result<(), DecodeError> {
    r.string(Nullable::No)?; // Name
    r.array(|r| {
        r.int32()?; // PartitionIndex
        r.int16()?; // PartitionErrorCode
        r.tagged_fields()
    })?; // ResultsByPartition
    r.tagged_fields()
}
