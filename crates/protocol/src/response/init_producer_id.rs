//! `InitProducerIdResponse.json`, versions 0-6; flexible from 2.

use super::cursor::Cursor;
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int32()?; // ThrottleTimeMs
    r.int16()?; // ErrorCode
    r.int64()?; // ProducerId
    r.int16()?; // ProducerEpoch
    if version >= 6 {
        r.int64()?; // OngoingTxnProducerId (KIP-939)
        r.int16()?; // OngoingTxnProducerEpoch
    }
    r.tagged_fields()
}
