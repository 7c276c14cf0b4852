//! A new connection before it is shared: ApiVersions, then SASL when configured. These run on
//! the stream itself, one request at a time, before the writer and reader tasks start.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_producer_protocol::kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use kafka_producer_protocol::{frame, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{api_name, client_max_version, client_min_version, ConnectSettings, Wire, MAX_FRAME};
use crate::error::Error;
use crate::oauth::{self, TokenCache, TokenError};
use crate::sasl::{Mechanism, SaslSettings};

/// The highest version of `key` both this client and the broker speak.
pub(super) fn common_version(
    versions: &HashMap<i16, VersionRange>,
    key: ApiKey,
    addr: &str,
) -> Result<i16, Error> {
    let ours = (client_min_version(key), client_max_version(key));
    match versions.get(&(key as i16)) {
        Some(theirs) if theirs.max >= ours.0 && theirs.min <= ours.1 => Ok(theirs.max.min(ours.1)),
        theirs => Err(Error::Protocol {
            broker: addr.to_string(),
            message: format!(
                "no common version of {key:?}: we speak {}..={}, the broker {}",
                ours.0,
                ours.1,
                theirs.map_or("does not support it".to_string(), |v| format!(
                    "speaks {}..={}",
                    v.min, v.max
                ))
            ),
        }),
    }
}

/// Refuses a broker older than Kafka 0.11: this client writes record batch v2 only, which
/// Produce v3 brought (with Metadata v4, in the same release), as the Java client 4 and
/// librdkafka need too. A broker that speaks Produce but not v3 says it is 0.10; one older than
/// that does not answer ApiVersions at all (see [`negotiate_versions`]).
pub(super) fn require_record_batch_v2(
    versions: &HashMap<i16, VersionRange>,
    addr: &str,
) -> Result<(), Error> {
    for (key, api) in [(ApiKey::Produce, "Produce"), (ApiKey::Metadata, "Metadata")] {
        let needed = client_min_version(key);
        let max = versions.get(&(key as i16)).map_or(-1, |v| v.max);
        if max < needed {
            return Err(Error::UnsupportedVersion {
                broker: addr.to_string(),
                feature: "this client".into(),
                kafka: "0.11",
                api,
                needed,
                max,
            });
        }
    }
    Ok(())
}

/// SASL, when configured, within `request.timeout.ms` for the whole exchange. Returns the
/// session's lifetime when the broker limits it (`connections.max.reauth.ms`, KIP-368).
pub(super) async fn authenticate_within<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: &str,
    settings: &ConnectSettings,
    versions: &HashMap<i16, VersionRange>,
    wire: &Wire,
) -> Result<Option<Duration>, Error> {
    let Some((sasl, mechanism)) = &settings.sasl else {
        return Ok(None);
    };
    let exchange = authenticate(
        stream,
        (addr, wire),
        &settings.client_id,
        versions,
        sasl,
        *mechanism,
        settings.tokens.as_deref(),
    );
    tokio::time::timeout(settings.request_timeout, exchange)
        .await
        .map_err(|_| Error::Network {
            broker: addr.to_string(),
            message: format!(
                "SASL/{} not done within request.timeout.ms",
                mechanism.name()
            ),
        })?
}

/// SaslHandshake, then SaslAuthenticate rounds until the mechanism is done (KIP-152), with the
/// broker at `addr`, counted in `wire`.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    (addr, wire): (&str, &Wire),
    client_id: &str,
    versions: &HashMap<i16, VersionRange>,
    sasl: &SaslSettings,
    mechanism: Mechanism,
    tokens: Option<&TokenCache>,
) -> Result<Option<Duration>, Error> {
    let refused = |message: String| Error::Authentication {
        broker: addr.to_string(),
        method: format!("SASL/{}", mechanism.name()),
        message,
    };
    let mut rbuf = BytesMut::with_capacity(1024);
    let version = common_version(versions, ApiKey::SaslHandshake, addr)?;
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let resp = call_raw(
        stream,
        &mut rbuf,
        (addr, wire),
        client_id,
        1,
        version,
        &handshake,
    )
    .await?;
    match ErrorCode(resp.error_code) {
        ErrorCode::NONE => {}
        ErrorCode::UNSUPPORTED_SASL_MECHANISM => {
            let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "the broker does not enable {}; it enables: {}",
                mechanism.name(),
                enabled.join(", ")
            )));
        }
        code => return Err(refused(format!("SaslHandshake: {code}"))),
    }
    let version = common_version(versions, ApiKey::SaslAuthenticate, addr)?;
    let oauth_first = match tokens {
        Some(tokens) => match tokens.token().await {
            Ok((token, extensions)) => oauth::client_first(&token, extensions),
            Err(TokenError::Refused(why)) => return Err(refused(why)),
            Err(TokenError::Unavailable(why)) => {
                return Err(Error::Network {
                    broker: addr.to_string(),
                    message: format!("no OAUTHBEARER token: {why}"),
                })
            }
        },
        None => Vec::new(),
    };
    let mut exchange = sasl.exchange(mechanism, oauth_first);
    let mut message = exchange.first();
    for correlation_id in 2.. {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        let resp = call_raw(
            stream,
            &mut rbuf,
            (addr, wire),
            client_id,
            correlation_id,
            version,
            &req,
        )
        .await?;
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            let detail = resp.error_message.as_ref().map(|m| format!(": {m}"));
            return Err(refused(format!("{code}{}", detail.unwrap_or_default())));
        }
        match exchange.next(&resp.auth_bytes).map_err(refused)? {
            Some(next) => message = next,
            None => {
                let lifetime = u64::try_from(resp.session_lifetime_ms).unwrap_or(0);
                tracing::debug!(
                    broker = addr,
                    mechanism = mechanism.name(),
                    session_lifetime_ms = lifetime,
                    "SASL authenticated"
                );
                return Ok((lifetime > 0).then(|| Duration::from_millis(lifetime)));
            }
        }
    }
    unreachable!("correlation ids run out only after i32::MAX rounds")
}

/// One request and its answer on a stream not shared yet (SASL, before the I/O tasks start),
/// to the broker at `addr`, counted in `wire`.
async fn call_raw<R: Request, S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    (addr, wire): (&str, &Wire),
    client_id: &str,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<R::Response, Error> {
    let name = api_name::<R>();
    let protocol = |message: String| Error::Protocol {
        broker: addr.to_string(),
        message,
    };
    let io = |e: std::io::Error| Error::Network {
        broker: addr.to_string(),
        message: format!("during {name}: {e}"),
    };
    let mut buf = BytesMut::new();
    frame::encode_request(&mut buf, version, correlation_id, Some(client_id), req)
        .map_err(|e| protocol(format!("cannot encode {name}: {e}")))?;
    stream.write_all(&buf).await.map_err(io)?;
    wire.sent(buf.len());
    let frame = loop {
        if let Some(f) = frame::split_frame(rbuf, MAX_FRAME)
            .map_err(|e| protocol(format!("bad {name} frame: {e}")))?
        {
            break f;
        }
        if stream.read_buf(rbuf).await.map_err(io)? == 0 {
            return Err(Error::Network {
                broker: addr.to_string(),
                message: format!("closed the connection during {name}"),
            });
        }
    };
    wire.received(&frame);
    let (id, resp) = frame::decode_response::<R>(frame, version)
        .map_err(|e| protocol(format!("cannot decode {name}: {e}")))?;
    if id != correlation_id {
        return Err(protocol(format!(
            "{name} answer with correlation id {id}, expected {correlation_id}"
        )));
    }
    Ok(resp)
}

/// What a broker's ApiVersions answer says.
pub(super) struct BrokerVersions {
    /// Per API key, the versions the broker speaks.
    pub(super) apis: HashMap<i16, VersionRange>,
    /// The cluster's finalized `transaction.version` (KIP-1022) as this broker knows it: 2 or
    /// more for KIP-890's transactions, 0 when not finalized (Kafka before 4.0, or a
    /// cluster formatted at level 0).
    pub(super) transaction_version: i16,
}

/// [`negotiate_versions`] within `request.timeout.ms`.
pub(super) async fn versions_within<S: AsyncRead + AsyncWrite + Unpin>(
    timeout: Duration,
    stream: &mut S,
    addr: &str,
    client_id: &str,
    wire: &Wire,
) -> Result<BrokerVersions, Error> {
    tokio::time::timeout(timeout, negotiate_versions(stream, addr, client_id, wire))
        .await
        .map_err(|_| Error::Network {
            broker: addr.to_string(),
            message: "no ApiVersions answer within request.timeout.ms".into(),
        })?
}

/// ApiVersions, before the connection is shared. A broker that does not speak our version answers
/// with UNSUPPORTED_VERSION and its own range (KIP-511); we then retry at v0.
async fn negotiate_versions<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: &str,
    client_id: &str,
    wire: &Wire,
) -> Result<BrokerVersions, Error> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kafka-producer-rs"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    for version in [3, 0] {
        let mut buf = BytesMut::new();
        frame::encode_request(&mut buf, version, 0, Some(client_id), &req).map_err(|e| {
            Error::Protocol {
                broker: addr.to_string(),
                message: format!("cannot encode ApiVersions: {e}"),
            }
        })?;
        let io = |e: std::io::Error| Error::Network {
            broker: addr.to_string(),
            message: format!("during ApiVersions: {e}"),
        };
        stream.write_all(&buf).await.map_err(io)?;
        wire.sent(buf.len());
        let mut rbuf = BytesMut::with_capacity(4096);
        let frame = loop {
            if let Some(f) =
                frame::split_frame(&mut rbuf, MAX_FRAME).map_err(|e| Error::Protocol {
                    broker: addr.to_string(),
                    message: format!("bad ApiVersions frame: {e}"),
                })?
            {
                break f;
            }
            if stream.read_buf(&mut rbuf).await.map_err(io)? == 0 {
                return Err(Error::Network {
                    broker: addr.to_string(),
                    message: "closed the connection during ApiVersions (is this a Kafka listener, \
                              PLAINTEXT? A broker older than Kafka 0.10 does this too: this client \
                              needs Kafka 0.11 or later)"
                        .into(),
                });
            }
        };
        wire.received(&frame);
        let (_, resp) =
            frame::decode_api_versions_response(frame, version).map_err(|e| Error::Protocol {
                broker: addr.to_string(),
                message: format!("cannot decode ApiVersions: {e}"),
            })?;
        // Try the version every broker speaks.
        if ErrorCode(resp.error_code) == ErrorCode::UNSUPPORTED_VERSION && version != 0 {
            continue;
        }
        if resp.error_code != 0 {
            return Err(Error::Protocol {
                broker: addr.to_string(),
                message: format!("ApiVersions failed: {}", ErrorCode(resp.error_code)),
            });
        }
        let apis = resp
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        // KIP-584's finalized features (v3+): the level the cluster runs a feature at.
        let transaction_version = resp
            .finalized_features
            .iter()
            .find(|f| &*f.name == "transaction.version")
            .map_or(0, |f| f.max_version_level);
        return Ok(BrokerVersions {
            apis,
            transaction_version,
        });
    }
    unreachable!("the v0 attempt returns")
}
