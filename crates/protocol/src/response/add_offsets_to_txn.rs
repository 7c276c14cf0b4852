//! `AddOffsetsToTxnResponse.json`, versions 0-4; flexible from 3.

use super::cursor::Cursor;
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, _version: i16) -> Result<(), DecodeError> {
    r.int32()?; // ThrottleTimeMs
    r.int16()?; // ErrorCode
    r.tagged_fields()
}
