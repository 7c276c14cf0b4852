//! Checks the responses the producer reads before kafka-protocol decodes them: ApiVersions,
//! Metadata, Produce, InitProducerId, SaslHandshake and SaslAuthenticate, and for
//! transactions FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
//! TxnOffsetCommit.
//!
//! kafka-protocol 0.18 sizes each array with `Vec::with_capacity(count)` straight from the
//! count on the wire, so five corrupt bytes can make it ask for hundreds of gigabytes and
//! abort the process. This module walks a whole response frame by its schema (Kafka's
//! JSON message definitions, one module per message) without building anything: every
//! string length and array count must fit in the bytes left, known tagged fields must
//! fill their size exactly, and nothing may follow the message. A frame that passes is
//! one kafka-protocol reads along the same path, so every capacity it reserves is backed
//! by elements actually present.
//!
//! The walk is total: it returns an error for any input, allocates nothing and loops at
//! most once per byte.
//!
//! Why check and then decode, instead of decoding here: `frame::decode_response` is
//! generic over kafka-protocol's `Request` and callers hold only that bound, so the value
//! they get back can only come from kafka-protocol's own decoder.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod api_versions;
mod cursor;
mod end_txn;
mod find_coordinator;
mod init_producer_id;
mod metadata;
mod produce;
mod sasl_authenticate;
mod sasl_handshake;
mod txn_offset_commit;

use std::ops::RangeInclusive;

use kafka_protocol::messages::ApiKey;

use crate::error::DecodeError;
use cursor::Cursor;

/// A response this module can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Response {
    ApiVersions,
    Metadata,
    Produce,
    InitProducerId,
    SaslHandshake,
    SaslAuthenticate,
    FindCoordinator,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
    TxnOffsetCommit,
}

impl Response {
    /// The response to requests with this API key, if it is one of those checked here.
    pub(crate) fn for_api_key(api_key: i16) -> Option<Self> {
        match ApiKey::try_from(api_key) {
            Ok(ApiKey::ApiVersions) => Some(Response::ApiVersions),
            Ok(ApiKey::Metadata) => Some(Response::Metadata),
            Ok(ApiKey::Produce) => Some(Response::Produce),
            Ok(ApiKey::InitProducerId) => Some(Response::InitProducerId),
            Ok(ApiKey::SaslHandshake) => Some(Response::SaslHandshake),
            Ok(ApiKey::SaslAuthenticate) => Some(Response::SaslAuthenticate),
            Ok(ApiKey::FindCoordinator) => Some(Response::FindCoordinator),
            Ok(ApiKey::AddPartitionsToTxn) => Some(Response::AddPartitionsToTxn),
            Ok(ApiKey::AddOffsetsToTxn) => Some(Response::AddOffsetsToTxn),
            Ok(ApiKey::EndTxn) => Some(Response::EndTxn),
            Ok(ApiKey::TxnOffsetCommit) => Some(Response::TxnOffsetCommit),
            _ => None,
        }
    }

    /// The versions walked here: all those kafka-protocol 0.18 decodes.
    pub(crate) fn versions(self) -> RangeInclusive<i16> {
        match self {
            Response::ApiVersions => 0..=4,
            Response::Metadata => 0..=13,
            Response::Produce => 3..=13,
            Response::InitProducerId => 0..=6,
            Response::SaslHandshake => 0..=1,
            Response::SaslAuthenticate => 0..=2,
            Response::FindCoordinator => 0..=6,
            Response::AddPartitionsToTxn => 0..=5,
            Response::AddOffsetsToTxn => 0..=4,
            Response::EndTxn => 0..=5,
            Response::TxnOffsetCommit => 0..=5,
        }
    }

    /// Whether `version` of the body is flexible (`flexibleVersions` in the schema).
    fn is_flexible(self, version: i16) -> bool {
        let first = match self {
            Response::ApiVersions => 3,
            Response::Metadata | Response::Produce => 9,
            Response::InitProducerId | Response::SaslAuthenticate => 2,
            Response::FindCoordinator
            | Response::AddPartitionsToTxn
            | Response::AddOffsetsToTxn
            | Response::EndTxn
            | Response::TxnOffsetCommit => 3,
            Response::SaslHandshake => i16::MAX,
        };
        version >= first
    }

    /// Walks a response frame (no size prefix): the header at `header_version`, then the
    /// body at `version`, then nothing.
    pub(crate) fn check_frame(
        self,
        version: i16,
        header_version: i16,
        frame: &[u8],
    ) -> Result<(), DecodeError> {
        if !self.versions().contains(&version) {
            return Err(DecodeError::Message(format!(
                "{self:?} response v{version} is not supported"
            )));
        }
        let mut r = Cursor::new(frame, header_version >= 1);
        r.int32()?; // CorrelationId
        r.tagged_fields()?;
        r.set_flexible(self.is_flexible(version));
        match self {
            Response::ApiVersions => api_versions::walk(&mut r, version)?,
            Response::Metadata => metadata::walk(&mut r, version)?,
            Response::Produce => produce::walk(&mut r, version)?,
            Response::InitProducerId => init_producer_id::walk(&mut r, version)?,
            Response::SaslHandshake => sasl_handshake::walk(&mut r, version)?,
            Response::SaslAuthenticate => sasl_authenticate::walk(&mut r, version)?,
            Response::FindCoordinator => find_coordinator::walk(&mut r, version)?,
            Response::AddPartitionsToTxn => add_partitions_to_txn::walk(&mut r, version)?,
            Response::AddOffsetsToTxn => add_offsets_to_txn::walk(&mut r, version)?,
            Response::EndTxn => end_txn::walk(&mut r, version)?,
            Response::TxnOffsetCommit => txn_offset_commit::walk(&mut r, version)?,
        }
        r.finish()
    }
}

#[cfg(test)]
mod tests;
