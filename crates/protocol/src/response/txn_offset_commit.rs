//! `TxnOffsetCommitResponse.json`, versions 0-5; flexible from 3.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, _version: i16) -> Result<(), DecodeError> {
    r.int32()?; // ThrottleTimeMs
    r.array(|r| {
        r.string(Nullable::No)?; // Name
        r.array(|r| {
            r.int32()?; // PartitionIndex
            r.int16()?; // ErrorCode
            r.tagged_fields()
        })?; // Partitions
        r.tagged_fields()
    })?; // Topics
    r.tagged_fields()
}
