//! `SaslAuthenticateResponse.json`, versions 0-2; flexible from 2.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int16()?; // ErrorCode
    r.string(Nullable::Yes)?; // ErrorMessage
    r.bytes()?; // AuthBytes
    if version >= 1 {
        r.int64()?; // SessionLifetimeMs (KIP-368)
    }
    r.tagged_fields()
}
