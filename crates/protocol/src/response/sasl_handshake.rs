//! `SaslHandshakeResponse.json`, versions 0-1; never flexible.

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, _version: i16) -> Result<(), DecodeError> {
    r.int16()?; // ErrorCode
    r.array(|r| r.string(Nullable::No)) // Mechanisms
}
