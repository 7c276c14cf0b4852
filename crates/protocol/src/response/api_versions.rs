//! `ApiVersionsResponse.json`, versions 0-4; flexible from 3, behind a v0 header (KIP-511).

use super::cursor::{Cursor, Nullable};
use crate::error::DecodeError;

pub(super) fn walk(r: &mut Cursor<'_>, version: i16) -> Result<(), DecodeError> {
    r.int16()?; // ErrorCode
    r.array(|r| {
        r.int16()?; // ApiKey
        r.int16()?; // MinVersion
        r.int16()?; // MaxVersion
        r.tagged_fields()
    })?;
    if version >= 1 {
        r.int32()?; // ThrottleTimeMs
    }
    r.tagged_fields_with(|tag, r| {
        match tag {
            0 => r.array(feature)?, // SupportedFeatures
            1 => r.int64()?,        // FinalizedFeaturesEpoch
            2 => r.array(feature)?, // FinalizedFeatures
            3 => r.boolean()?,      // ZkMigrationReady
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// SupportedFeatureKey (Name, MinVersion, MaxVersion) and FinalizedFeatureKey (Name,
/// MaxVersionLevel, MinVersionLevel) are laid out alike.
fn feature(r: &mut Cursor<'_>) -> Result<(), DecodeError> {
    r.string(Nullable::No)?;
    r.int16()?;
    r.int16()?;
    r.tagged_fields()
}
