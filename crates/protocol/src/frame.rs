//! Kafka framing: an i32 big-endian size, then a request or response header, then the body.
//!
//! Messages and headers are kafka-protocol's, generated from Kafka's JSON schemas; this
//! module adds the size prefix, picks the header version each API and version needs,
//! and turns kafka-protocol's errors into [`DecodeError`] / [`EncodeError`].
//!
//! # Allocation safety
//!
//! kafka-protocol 0.18 pre-allocates arrays from the element count on the wire (its
//! `Array` decoders call `Vec::with_capacity(n)`), so a corrupt or hostile frame can make
//! it ask for a very large allocation, which aborts the process when it fails. The
//! responses the producer reads (ApiVersions, Metadata, Produce, InitProducerId, the SASL
//! ones and the transaction ones, every version kafka-protocol has) are therefore walked
//! by their schema first (the private `response` module) and reach kafka-protocol only
//! when every count fits in the frame.
//! Other responses, which only test tools decode, go to kafka-protocol unchecked, as do
//! request bodies (`decode_request_body`, `broker` feature, for test brokers).

use std::fmt;
use std::ops::Deref;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::buf::NotEnoughBytesError;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};

use crate::error::{DecodeError, EncodeError};
use crate::response::Response;

/// Bytes of the size prefix in front of every frame.
const SIZE_LEN: usize = 4;

/// Encodes size prefix + request header (header version from `R::header_version(version)`; client_id as given) + body.
///
/// Appends to `buf`; on error `buf` is left as it was. A version outside the ones
/// kafka-protocol knows for `R` is an error, as is a field set that `version` lacks.
pub fn encode_request<R: Request>(
    buf: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    req: &R,
) -> Result<(), EncodeError> {
    check_version::<R>(version).map_err(EncodeError)?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|id| StrBytes::from_string(id.to_owned())));
    encode_framed(buf, |buf| {
        header
            .encode(buf, R::header_version(version))
            .map_err(|e| {
                EncodeError(format!(
                    "request header for {} v{version}: {e:#}",
                    name::<R>()
                ))
            })?;
        req.encode(buf, version)
            .map_err(|e| EncodeError(format!("{} v{version}: {e:#}", name::<R>())))
    })
}

/// Takes one whole frame (without its 4-byte size) off the front of `buf` if it is all there; Ok(None) = need more bytes.
/// A size < 0 or > max_frame is an error.
pub fn split_frame(buf: &mut BytesMut, max_frame: usize) -> Result<Option<BytesMut>, DecodeError> {
    let Some(prefix) = buf.first_chunk::<SIZE_LEN>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    let len = usize::try_from(size).map_err(|_| DecodeError::InvalidLength(size.into()))?;
    if len > max_frame {
        return Err(DecodeError::InvalidLength(size.into()));
    }
    if buf.len() - SIZE_LEN < len {
        return Ok(None);
    }
    buf.advance(SIZE_LEN);
    Ok(Some(buf.split_to(len)))
}

/// Reads the correlation id at the start of a response frame.
///
/// Every response header version starts with it, so this works before the caller knows
/// which request the frame answers.
pub fn correlation_id(frame: &[u8]) -> Result<i32, DecodeError> {
    frame
        .first_chunk::<4>()
        .map(|id| i32::from_be_bytes(*id))
        .ok_or(DecodeError::Truncated)
}

/// Decodes a response frame: header (version from `R::Response::header_version(version)`)
/// then body; trailing bytes are an error. Returns the correlation id and the body.
///
/// Total for the responses the producer reads (ApiVersions, Metadata, Produce,
/// InitProducerId, SaslHandshake, SaslAuthenticate, FindCoordinator, AddPartitionsToTxn,
/// AddOffsetsToTxn, EndTxn, TxnOffsetCommit): any input gives a value or an error, and no
/// allocation is sized beyond what the frame holds (see the module docs). A count or
/// length that points past the end of the frame is [`DecodeError::Truncated`], like a
/// frame cut short.
///
/// ApiVersions responses always use header v0 (KIP-511), and kafka-protocol's
/// `ApiVersionsResponse::header_version` does return 0 for every version, so no special
/// case is needed here. For the body-version fallback ApiVersions also needs, use
/// [`decode_api_versions_response`].
pub fn decode_response<R: Request>(
    frame: BytesMut,
    version: i16,
) -> Result<(i32, R::Response), DecodeError> {
    decode_response_bytes::<R>(frame.freeze(), version)
}

/// Decodes an ApiVersions response frame, falling back to version 0 like the Java client.
///
/// A broker that does not support the requested ApiVersions version answers with a v0
/// body carrying `UNSUPPORTED_VERSION` and the versions it does support (KIP-511), so a
/// body that does not decode at `version` is tried again as v0. The error returned is the
/// one from `version`.
pub fn decode_api_versions_response(
    frame: BytesMut,
    version: i16,
) -> Result<(i32, ApiVersionsResponse), DecodeError> {
    let frame = frame.freeze();
    match decode_response_bytes::<ApiVersionsRequest>(frame.clone(), version) {
        Err(e) if version > 0 => {
            decode_response_bytes::<ApiVersionsRequest>(frame, 0).map_err(|_| e)
        }
        result => result,
    }
}

/// Decodes the header of a request frame and leaves `frame` at the start of the body.
///
/// The header version depends on the API key and version, read from the first 4 bytes.
/// For test brokers; needs the `broker` feature.
// Compiled for unit tests too, so `cargo test` covers both sides without flags.
#[cfg(any(test, feature = "broker"))]
pub fn decode_request_header(frame: &mut Bytes) -> Result<RequestHeader, DecodeError> {
    use kafka_protocol::messages::ApiKey;

    let Some(&[k0, k1, v0, v1]) = frame.first_chunk::<4>() else {
        return Err(DecodeError::Truncated);
    };
    let api_key = i16::from_be_bytes([k0, k1]);
    let api_version = i16::from_be_bytes([v0, v1]);
    let key = ApiKey::try_from(api_key)
        .map_err(|()| DecodeError::Message(format!("unknown API key {api_key}")))?;
    RequestHeader::decode(frame, key.request_header_version(api_version))
        .map_err(|e| decode_error(&format!("request header for {key:?} v{api_version}"), e))
}

/// Decodes a request body of type `R` at `version`; trailing bytes are an error.
///
/// Use after [`decode_request_header`], with the version from the header.
/// For test brokers; needs the `broker` feature.
#[cfg(any(test, feature = "broker"))]
pub fn decode_request_body<R: Request>(mut body: Bytes, version: i16) -> Result<R, DecodeError> {
    check_version::<R>(version).map_err(DecodeError::Message)?;
    let req = R::decode(&mut body, version)
        .map_err(|e| decode_error(&format!("{} v{version}", name::<R>()), e))?;
    if body.has_remaining() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(req)
}

/// Encodes size prefix + response header (version from `M::header_version(version)`) + body.
///
/// Appends to `buf`; on error `buf` is left as it was.
/// For test brokers; needs the `broker` feature.
#[cfg(any(test, feature = "broker"))]
pub fn encode_response<M: Encodable + HeaderVersion + Message>(
    buf: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    resp: &M,
) -> Result<(), EncodeError> {
    check_version::<M>(version).map_err(EncodeError)?;
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_framed(buf, |buf| {
        header
            .encode(buf, M::header_version(version))
            .map_err(|e| {
                EncodeError(format!(
                    "response header for {} v{version}: {e:#}",
                    name::<M>()
                ))
            })?;
        resp.encode(buf, version)
            .map_err(|e| EncodeError(format!("{} v{version}: {e:#}", name::<M>())))
    })
}

/// Decodes the response to an `R` request, checking it first if [`Response`] covers it.
fn decode_response_bytes<R: Request>(
    mut frame: Bytes,
    version: i16,
) -> Result<(i32, R::Response), DecodeError> {
    check_version::<R::Response>(version).map_err(DecodeError::Message)?;
    let header_version = R::Response::header_version(version);
    if let Some(response) = Response::for_api_key(R::KEY) {
        response.check_frame(version, header_version, &frame)?;
    }
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| {
        decode_error(
            &format!("response header for {} v{version}", name::<R::Response>()),
            e,
        )
    })?;
    let body = R::Response::decode(&mut frame, version)
        .map_err(|e| decode_error(&format!("{} v{version}", name::<R::Response>()), e))?;
    if frame.has_remaining() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok((header.correlation_id, body))
}

/// Appends a size placeholder, runs `encode`, then fills in the size; undoes it all on error.
fn encode_framed(
    buf: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_i32(0);
    let result = encode(buf).and_then(|()| {
        let len = buf.len() - start - SIZE_LEN;
        i32::try_from(len)
            .map_err(|_| EncodeError(format!("frame of {len} bytes is over i32::MAX")))
    });
    match result {
        Ok(size) => {
            buf[start..start + SIZE_LEN].copy_from_slice(&size.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Rejects versions kafka-protocol has no schema for, with a message naming the type.
fn check_version<M: Message>(version: i16) -> Result<(), String> {
    let range = M::VERSIONS;
    if version < range.min || version > range.max {
        return Err(format!(
            "{} v{version} is not supported (versions {range})",
            name::<M>()
        ));
    }
    Ok(())
}

/// Maps kafka-protocol's errors (`anyhow::Error`, which derefs to the error it wraps);
/// running out of input becomes `Truncated`.
fn decode_error<E>(what: &str, e: E) -> DecodeError
where
    E: Deref<Target = dyn std::error::Error + Send + Sync + 'static> + fmt::Display,
{
    if e.is::<NotEnoughBytesError>() || e.is::<bytes::TryGetError>() {
        DecodeError::Truncated
    } else {
        DecodeError::Message(format!("{what}: {e:#}"))
    }
}

/// The message type's own name, without its module path.
fn name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests;
