//! `EndTxnResponse.json`, versions 0-5; flexible from 3.

use super::cursor::Cursor;
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int32()?; // ThrottleTimeMs
    r.int16()?; // ErrorCode
    if version >= 5 {
        r.int64()?; // ProducerId (KIP-890: the epoch is bumped at every transaction's end)
        r.int16()?; // ProducerEpoch
    }
    r.tagged_fields()
}
