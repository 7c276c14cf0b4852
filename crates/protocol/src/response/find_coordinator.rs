//! `FindCoordinatorResponse.json`, versions 0-6; flexible from 3.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    if version >= 1 {
        r.int32()?; // ThrottleTimeMs
    }
    if version >= 4 {
        // One answer per key asked for (KIP-699), in place of the single one below.
        r.array(coordinator)?; // Coordinators
    } else {
        r.int16()?; // ErrorCode
        if version >= 1 {
            r.string(Nullable::Yes)?; // ErrorMessage
        }
        r.int32()?; // NodeId
        r.string(Nullable::No)?; // Host
        r.int32()?; // Port
    }
    r.tagged_fields()
}

fn coordinator(r: &mut Cursor<'_>) -> Result<(), DecodeError> {
    r.string(Nullable::No)?; // Key
    r.int32()?; // NodeId
    r.string(Nullable::No)?; // Host
    r.int32()?; // Port
    r.int16()?; // ErrorCode
    r.string(Nullable::Yes)?; // ErrorMessage
    r.tagged_fields()
}
