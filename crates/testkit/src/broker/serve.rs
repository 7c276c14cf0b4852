//! The server side: the accept loop, one task per connection, and the answer to each API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_producer_protocol::frame;
use kafka_producer_protocol::kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey,
};
use kafka_producer_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_producer_protocol::kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse, TopicName,
};
use kafka_producer_protocol::kafka_protocol::protocol::{
    Encodable, HeaderVersion, Message, StrBytes,
};
use kafka_producer_protocol::{decode_batches, DecodeError, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::log::{Appended, PartitionLog, TxnDetail, TxnRequest};
use super::script::{Corruption, Fault, Faults, Script};
use super::transaction::{self, Coordinator};
use super::{ProduceAttempt, Storage};

/// The largest request accepted: the broker's `socket.request.max.bytes` default.
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// The APIs and versions this broker speaks: the ones the producer needs. Like Kafka 4, it
/// advertises the versions of KIP-890's transactions (Produce v12, TxnOffsetCommit v5, EndTxn
/// v5) whatever the finalized `transaction.version`: a client below version 2 must not use
/// them. AddPartitionsToTxn v4+ is for brokers only.
pub(super) const SUPPORTED: [(ApiKey, i16, i16); 11] = [
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 4, 12),
    (ApiKey::Produce, 3, 12),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// What the broker and its connections share.
pub(super) struct Shared {
    /// With [`super::FakeConfig::sasl_session`]: SASL PLAIN is required, sessions last this long.
    pub(super) sasl_session: Option<Duration>,
    /// Requests that came on a connection whose SASL session had ended (each closed it).
    pub(super) expired_sessions: AtomicUsize,
    /// With [`super::FakeConfig::tls`]: connections speak TLS.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) host: String,
    pub(super) port: u16,
    /// Each node id's port, in the order of `node_ids` (all `port` unless
    /// [`super::FakeConfig::port_per_node`]).
    pub(super) node_ports: Vec<u16>,
    pub(super) node_ids: Vec<i32>,
    /// The finalized `transaction.version` ApiVersions reports (0: none).
    pub(super) transaction_version: i16,
    /// What ApiVersions advertises: [`SUPPORTED`] under [`super::FakeConfig::max_versions`].
    pub(super) versions: Vec<(ApiKey, i16, i16)>,
    pub(super) storage: Storage,
    pub(super) default_partitions: Option<u32>,
    pub(super) state: Mutex<State>,
    pub(super) script: Mutex<Script>,
    /// Whether any rule is scripted: the sink skips the script lock while none is.
    pub(super) scripted: AtomicBool,
    /// Requests received, by API key.
    pub(super) counts: Vec<AtomicUsize>,
    /// Requests received, by node id and API key ([`super::FakeConfig::port_per_node`]).
    pub(super) node_counts: Mutex<BTreeMap<(i32, i16), usize>>,
    pub(super) accepted: AtomicUsize,
    /// Bumped to make every open connection close.
    pub(super) disconnect: watch::Sender<u64>,
}

/// Topics, their logs, what was asked of them, and the coordinator's state.
#[derive(Default)]
pub(super) struct State {
    pub(super) topics: BTreeMap<String, Vec<PartitionLog>>,
    pub(super) attempts: Vec<ProduceAttempt>,
    pub(super) coordinator: Coordinator,
}

impl State {
    /// The partitions of `topic`, creating it with the default partition count if there is one.
    pub(super) fn topic(
        &mut self,
        name: &str,
        default_partitions: Option<u32>,
    ) -> Option<&mut [PartitionLog]> {
        if !self.topics.contains_key(name) {
            let n = default_partitions?;
            self.create_topic(name, n);
        }
        self.topics.get_mut(name).map(Vec::as_mut_slice)
    }

    /// Creates `name` with `partitions` partitions, or grows it to that many.
    pub(super) fn create_topic(&mut self, name: &str, partitions: u32) {
        let logs = self.topics.entry(name.to_string()).or_default();
        let n = partitions as usize;
        if logs.len() < n {
            logs.resize_with(n, PartitionLog::default);
        }
    }
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn request_count(&self, api: i16) -> usize {
        usize::try_from(api)
            .ok()
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    pub(super) fn request_count_to(&self, node: i32, api: i16) -> usize {
        let counts = self.node_counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&(node, api)).copied().unwrap_or(0)
    }

    fn count(&self, node: Option<i32>, api: i16) {
        if let Some(c) = usize::try_from(api).ok().and_then(|i| self.counts.get(i)) {
            c.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(node) = node {
            let mut counts = self.node_counts.lock().unwrap_or_else(|e| e.into_inner());
            *counts.entry((node, api)).or_default() += 1;
        }
    }

    /// The port node `node` listens on, if it is one of `node_ids`.
    pub(super) fn node_port(&self, node: i32) -> Option<u16> {
        let i = self.node_ids.iter().position(|&id| id == node)?;
        Some(self.node_ports[i])
    }

    /// The faults scripted for this request (none without a script, without locking).
    pub(super) fn faults(&self, api: ApiKey, carries: impl Fn(&str, i32) -> bool) -> Faults {
        if !self.scripted.load(Ordering::Acquire) {
            return Faults::default();
        }
        self.script().check(api as i16, carries)
    }

    /// The leader of `partition`: the node ids take turns.
    fn leader(&self, partition: usize) -> i32 {
        self.node_ids[partition % self.node_ids.len()]
    }
}

/// Accepts connections until `stop`; then ends them all. `node`: the node id the listener is
/// for, when each has its own.
pub(super) async fn accept_loop(
    listener: TcpListener,
    node: Option<i32>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.accepted.fetch_add(1, Ordering::AcqRel);
                    let _ = stream.set_nodelay(true);
                    let (shared, stop) = (shared.clone(), for_connections.clone());
                    match shared.tls.clone() {
                        None => connections.spawn(serve(stream, node, shared, stop)),
                        Some(tls) => connections.spawn(async move {
                            // A failed handshake ends the connection, as at a Kafka SSL listener.
                            if let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                                serve(stream, node, shared, stop).await;
                            }
                        }),
                    };
                }
                // Out of file descriptors and the like: let it pass rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    connections.shutdown().await;
}

/// Resolves once `stop` is true or its sender is gone (the FakeBroker was dropped).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// What happens after a request is handled; its response (if any) is at the end of `out`.
pub(super) enum After {
    Send,
    SendLate(Duration),
    Discard,
    /// No response, and none to anything else on this connection.
    Silence,
    Close,
}

/// One connection: reads requests, answers them in order. Responses to requests that arrived
/// together go out in one write.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    node: Option<i32>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut disconnect = shared.disconnect.subscribe();
    let mut session = Session { ends: None, node };
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        loop {
            let frame = match frame::split_frame(&mut input, MAX_FRAME) {
                Ok(Some(frame)) => frame.freeze(),
                Ok(None) => break,
                // A size Kafka would refuse: it closes the connection, so do we.
                Err(_) => return,
            };
            let start = out.len();
            match handle(&shared, &mut session, frame, &mut out) {
                After::Send => {}
                After::SendLate(delay) => {
                    let reply = out.split_off(start);
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped(&mut stop) => return,
                        _ = disconnect.changed() => return,
                    }
                    out.unsplit(reply);
                }
                After::Discard => out.truncate(start),
                After::Silence => {
                    out.truncate(start);
                    if stream.write_all(&out).await.is_ok() {
                        silence(&mut stream, &mut stop, &mut disconnect).await;
                    }
                    return;
                }
                After::Close => {
                    out.truncate(start);
                    let _ = stream.write_all(&out).await;
                    return;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if input.capacity() - input.len() < 16 * 1024 {
            input.reserve(64 * 1024);
        }
        tokio::select! {
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stopped(&mut stop) => return,
            _ = disconnect.changed() => return,
        }
    }
}

/// Reads and ignores everything until the client closes the connection.
async fn silence<S: AsyncRead + Unpin>(
    stream: &mut S,
    stop: &mut watch::Receiver<bool>,
    disconnect: &mut watch::Receiver<u64>,
) {
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut sink) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stopped(stop) => return,
            _ = disconnect.changed() => return,
        }
    }
}

/// Handles one request frame, appending its response (if any) to `out`.
/// A connection's SASL state (KIP-368): when its session ends, if it authenticated.
struct Session {
    ends: Option<Instant>,
    /// The node id the connection was made to, when each has its own port.
    node: Option<i32>,
}

fn handle(shared: &Shared, session: &mut Session, mut frame: Bytes, out: &mut BytesMut) -> After {
    let result = frame::decode_request_header(&mut frame)
        .map_err(|e| format!("undecodable request header: {e}"))
        .and_then(|header| {
            let (api, version) = (header.request_api_key, header.request_api_version);
            shared.count(session.node, api);
            let request = Request {
                version,
                correlation_id: header.correlation_id,
                body: frame,
            };
            let key = ApiKey::try_from(api);
            if let (Some(_), Ok(k)) = (shared.sasl_session, key) {
                let free = matches!(
                    k,
                    ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
                );
                match session.ends {
                    _ if free => {}
                    None => return Err(format!("{k:?} before SASL authentication")),
                    // A Kafka broker closes a connection whose session ended (KIP-368).
                    Some(end) if Instant::now() >= end => {
                        shared.expired_sessions.fetch_add(1, Ordering::AcqRel);
                        return Err(format!("{k:?} after the SASL session ended"));
                    }
                    Some(_) => {}
                }
            }
            match key {
                Ok(ApiKey::ApiVersions) => api_versions(shared, request, out),
                Ok(ApiKey::SaslHandshake) if shared.sasl_session.is_some() => {
                    sasl_handshake(request, out)
                }
                Ok(ApiKey::SaslAuthenticate) if shared.sasl_session.is_some() => {
                    sasl_authenticate(shared, session, request, out)
                }
                Ok(key) if shared.supports(key, version) => match key {
                    ApiKey::Metadata => metadata(shared, request, out),
                    ApiKey::Produce => produce(shared, session.node, request, out),
                    ApiKey::InitProducerId => init_producer_id(shared, request, out),
                    ApiKey::FindCoordinator => transaction::find_coordinator(shared, request, out),
                    ApiKey::AddPartitionsToTxn => {
                        transaction::add_partitions_to_txn(shared, request, out)
                    }
                    ApiKey::AddOffsetsToTxn => {
                        transaction::add_offsets_to_txn(shared, request, out)
                    }
                    ApiKey::TxnOffsetCommit => transaction::txn_offset_commit(shared, request, out),
                    ApiKey::EndTxn => transaction::end_txn(shared, request, out),
                    _ => Err(format!("API {api} v{version} has no handler")),
                },
                // A Kafka broker closes the connection on a request it cannot serve.
                _ => Err(format!("API {api} v{version} is not supported")),
            }
        });
    result.unwrap_or_else(|why| {
        eprintln!(
            "fake broker {}:{}: {why}; closing the connection",
            shared.host, shared.port
        );
        After::Close
    })
}

impl Shared {
    fn supports(&self, key: ApiKey, version: i16) -> bool {
        self.versions
            .iter()
            .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
    }
}

/// A request whose header has been read.
pub(super) struct Request {
    pub(super) version: i16,
    correlation_id: i32,
    body: Bytes,
}

impl Request {
    pub(super) fn decode<R: kafka_producer_protocol::kafka_protocol::protocol::Request>(
        &self,
    ) -> Result<R, String> {
        frame::decode_request_body(self.body.clone(), self.version)
            .map_err(|e| format!("undecodable request: {e}"))
    }

    /// Appends the response frame; returns where it starts.
    pub(super) fn respond<M: Encodable + HeaderVersion + Message>(
        &self,
        out: &mut BytesMut,
        version: i16,
        resp: &M,
    ) -> Result<Response, String> {
        let start = out.len();
        frame::encode_response(out, version, self.correlation_id, resp)
            .map_err(|e| format!("cannot encode the response: {e}"))?;
        Ok(Response {
            start,
            // Header v0 is the correlation id; v1 adds an empty tagged-field section.
            header_len: if M::header_version(version) >= 1 {
                5
            } else {
                4
            },
        })
    }
}

/// Where a response frame sits in the output buffer.
pub(super) struct Response {
    start: usize,
    header_len: usize,
}

/// Applies the scripted faults that act after processing to the response just encoded.
pub(super) fn deliver(faults: &Faults, out: &mut BytesMut, resp: Response) -> After {
    let send = |faults: &Faults| match faults.delay {
        Some(d) => After::SendLate(d),
        None => After::Send,
    };
    match &faults.transport {
        None => send(faults),
        Some(Fault::DropResponse) => After::Silence,
        Some(Fault::SkipResponse) => After::Discard,
        Some(Fault::CloseAfter | Fault::CloseBefore) => After::Close,
        Some(Fault::Corrupt(c)) => {
            corrupt(out, resp, c);
            send(faults)
        }
        Some(_) => send(faults),
    }
}

/// Damages the frame at `resp.start` as `corruption` says; the size prefix stays right.
fn corrupt(out: &mut BytesMut, resp: Response, corruption: &Corruption) {
    let Response { start, header_len } = resp;
    let content = start + 4;
    match corruption {
        Corruption::TruncatedBody => {
            let body = out.len() - content - header_len;
            out.truncate(content + header_len + body / 2);
        }
        Corruption::TrailingBytes => out.put_bytes(0xFF, 8),
        Corruption::WrongCorrelationId => {
            let cid = i32::from_be_bytes(out[content..content + 4].try_into().expect("4 bytes"));
            out[content..content + 4].copy_from_slice(&cid.wrapping_add(1_000_000).to_be_bytes());
        }
        Corruption::Body(bytes) => {
            out.truncate(content + header_len);
            out.extend_from_slice(bytes);
        }
        Corruption::Raw(bytes) => {
            out.truncate(content);
            out.extend_from_slice(bytes);
        }
    }
    let size = (out.len() - content) as i32;
    out[start..content].copy_from_slice(&size.to_be_bytes());
}

fn api_versions(shared: &Shared, req: Request, out: &mut BytesMut) -> Result<After, String> {
    let faults = shared.faults(ApiKey::ApiVersions, |_, _| false);
    if matches!(faults.transport, Some(Fault::CloseBefore)) {
        return Ok(After::Close);
    }
    let keys = shared
        .versions
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let unsupported = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UNSUPPORTED_VERSION.0)
        .with_api_keys(keys);
    // KIP-511: a version we do not speak gets a v0 answer with our versions.
    if !shared.supports(ApiKey::ApiVersions, req.version) {
        let resp = req.respond(out, 0, &unsupported)?;
        return Ok(deliver(&faults, out, resp));
    }
    let _: ApiVersionsRequest = req.decode()?;
    let answer = match faults.error {
        // KIP-584's finalized features (v3+); a feature at level 0 is not listed.
        None if req.version >= 3 && shared.transaction_version > 0 => unsupported
            .with_error_code(0)
            .with_finalized_features_epoch(1)
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str("transaction.version"))
                .with_min_version_level(shared.transaction_version)
                .with_max_version_level(shared.transaction_version)]),
        None => unsupported.with_error_code(0),
        Some(code) if code == ErrorCode::UNSUPPORTED_VERSION => unsupported,
        Some(code) => ApiVersionsResponse::default().with_error_code(code.0),
    };
    let resp = req.respond(out, req.version, &answer)?;
    Ok(deliver(&faults, out, resp))
}

fn metadata(shared: &Shared, req: Request, out: &mut BytesMut) -> Result<After, String> {
    let request: MetadataRequest = req.decode()?;
    let asked = |topic: &str| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| *n.0 == *topic)),
    };
    let faults = shared.faults(ApiKey::Metadata, |t, _| asked(t));
    if matches!(faults.transport, Some(Fault::CloseBefore)) {
        return Ok(After::Close);
    }

    let mut state = shared.state();
    let names: Vec<Option<TopicName>> = match request.topics {
        None => state
            .topics
            .keys()
            .map(|t| Some(TopicName(StrBytes::from_string(t.clone()))))
            .collect(),
        Some(topics) => topics.into_iter().map(|t| t.name).collect(),
    };
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        // Asking by topic id (no name) is not supported: the producer names its topics.
        let Some(name) = name else {
            topics.push(
                MetadataResponseTopic::default().with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.0),
            );
            continue;
        };
        let topic = MetadataResponseTopic::default().with_name(Some(name.clone()));
        if let Some(code) = faults.error {
            topics.push(topic.with_error_code(code.0));
            continue;
        }
        let Some(logs) = state.topic(&name, shared.default_partitions) else {
            topics.push(topic.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0));
            continue;
        };
        let partitions = (0..logs.len())
            .map(|p| {
                let leader = shared.leader(p);
                let answer = MetadataResponsePartition::default().with_partition_index(p as i32);
                match faults.error_for(&name, p as i32) {
                    // A partition without a leader, as Kafka describes one.
                    Some(code) => answer
                        .with_error_code(code.0)
                        .with_leader_id(BrokerId(-1))
                        .with_replica_nodes(vec![BrokerId(leader)]),
                    None => answer
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![BrokerId(leader)])
                        .with_isr_nodes(vec![BrokerId(leader)]),
                }
            })
            .collect();
        topics.push(topic.with_partitions(partitions));
    }
    drop(state);

    let brokers = shared
        .node_ids
        .iter()
        .map(|&id| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(shared.host.clone()))
                .with_port(i32::from(shared.node_port(id).unwrap_or(shared.port)))
        })
        .collect();
    let answer = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str("fake-cluster")))
        .with_controller_id(BrokerId(shared.node_ids[0]))
        .with_topics(topics);
    let resp = req.respond(out, req.version, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// SaslHandshake: PLAIN is the one mechanism.
fn sasl_handshake(req: Request, out: &mut BytesMut) -> Result<After, String> {
    let request: SaslHandshakeRequest = req.decode()?;
    let code = if request.mechanism.as_str() == "PLAIN" {
        ErrorCode::NONE
    } else {
        ErrorCode::UNSUPPORTED_SASL_MECHANISM
    };
    let answer = SaslHandshakeResponse::default()
        .with_error_code(code.0)
        .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]);
    req.respond(out, req.version, &answer)?;
    Ok(After::Send)
}

/// SaslAuthenticate: any PLAIN credentials pass; the session lasts `sasl_session`.
fn sasl_authenticate(
    shared: &Shared,
    session: &mut Session,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let _: SaslAuthenticateRequest = req.decode()?;
    let lifetime = shared.sasl_session.unwrap_or_default();
    session.ends = Some(Instant::now() + lifetime);
    let answer = SaslAuthenticateResponse::default()
        .with_session_lifetime_ms(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX));
    req.respond(out, req.version, &answer)?;
    Ok(After::Send)
}

fn init_producer_id(shared: &Shared, req: Request, out: &mut BytesMut) -> Result<After, String> {
    let request: InitProducerIdRequest = req.decode()?;
    let faults = shared.faults(ApiKey::InitProducerId, |_, _| false);
    if matches!(faults.transport, Some(Fault::CloseBefore)) {
        return Ok(After::Close);
    }
    let failed = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.0)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let mut state = shared.state();
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    let result = match (faults.error, &transactional_id) {
        (Some(code), _) => Err(code),
        // Kafka refuses an empty transactional id (kafka-protocol's default) with
        // INVALID_REQUEST; see `Coordinator::init_producer_id`.
        (None, Some(id)) => state
            .coordinator
            .init_producer_id(req.version, id, &request),
        // Kafka answers a non-transactional InitProducerId with a new id at epoch 0, whatever
        // id and epoch the request carries.
        (None, None) => Ok((state.coordinator.new_producer_id(), 0)),
    };
    let answer = match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(code) => failed(code),
    };
    if transactional_id.is_some() {
        state.coordinator.log.push(TxnRequest {
            api: ApiKey::InitProducerId,
            version: req.version,
            transactional_id,
            producer: (request.producer_id.0, request.producer_epoch),
            detail: TxnDetail::InitProducerId {
                answered: (answer.producer_id.0, answer.producer_epoch),
            },
            error: ErrorCode(answer.error_code),
        });
    }
    drop(state);
    let resp = req.respond(out, req.version, &answer)?;
    Ok(deliver(&faults, out, resp))
}

fn produce(
    shared: &Shared,
    node: Option<i32>,
    req: Request,
    out: &mut BytesMut,
) -> Result<After, String> {
    let request: ProduceRequest = req.decode()?;
    let faults = shared.faults(ApiKey::Produce, |topic, partition| {
        request
            .topic_data
            .iter()
            .any(|t| *t.name.0 == *topic && t.partition_data.iter().any(|p| p.index == partition))
    });
    if matches!(faults.transport, Some(Fault::CloseBefore)) {
        return Ok(After::Close);
    }

    let acks_valid = matches!(request.acks, -1..=1);
    let transactional_id = request.transactional_id.as_ref().map(|t| t.0.to_string());
    // The sink keeps nothing, not even the log.
    let logging = transactional_id.is_some() && shared.storage == Storage::Keep;
    let transactional = Transactional {
        version: req.version,
        id: transactional_id.as_deref(),
    };
    let mut logged = Vec::new();
    let mut first_error = ErrorCode::NONE;
    let mut producer = None;
    let mut state = shared.state();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // The leaders named with errors (KIP-951, Produce v10+), for the answer's NodeEndpoints.
    let mut named = Vec::new();
    for topic in request.topic_data {
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let records = data.records.unwrap_or_default();
            let injected = faults.error_for(&topic.name, data.index);
            let error = injected.or((!acks_valid).then_some(ErrorCode::INVALID_REQUIRED_ACKS));
            let result = match error {
                Some(code) => Err(code),
                None => append(
                    shared,
                    &mut state,
                    &topic.name,
                    data.index,
                    &records,
                    transactional,
                ),
            };
            if logging {
                logged.push((topic.name.0.to_string(), data.index));
                producer.get_or_insert_with(|| batch_producer(&records));
                if first_error.is_ok() {
                    first_error = result.err().unwrap_or(ErrorCode::NONE);
                }
            }
            if shared.storage == Storage::Keep {
                let attempt = attempt(&topic.name, data.index, &records, result);
                state.attempts.push(ProduceAttempt {
                    node_id: node,
                    ..attempt
                });
            }
            let answer = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_log_append_time_ms(-1);
            partitions.push(match result {
                Ok(appended) => answer
                    .with_base_offset(appended.base_offset())
                    .with_log_start_offset(0),
                Err(code) => {
                    let answer = answer
                        .with_error_code(code.0)
                        .with_base_offset(-1)
                        .with_log_start_offset(-1);
                    let answer = match injected {
                        // The field exists from v8.
                        Some(_) if req.version >= 8 => answer.with_error_message(Some(
                            StrBytes::from_static_str("scripted by the fake broker"),
                        )),
                        _ => answer,
                    };
                    match faults.leader_for(&topic.name, data.index) {
                        // The tagged field exists from v10.
                        Some((leader, epoch)) if injected.is_some() && req.version >= 10 => {
                            if !named.contains(&leader) {
                                named.push(leader);
                            }
                            answer.with_current_leader(
                                LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch),
                            )
                        }
                        _ => answer,
                    }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if logging {
        state.coordinator.log.push(TxnRequest {
            api: ApiKey::Produce,
            version: req.version,
            transactional_id,
            producer: producer.unwrap_or((-1, -1)),
            detail: TxnDetail::Produce { partitions: logged },
            error: first_error,
        });
    }
    drop(state);

    if request.acks == 0 {
        // No response, whatever happened; only a cut connection is still visible.
        return Ok(match faults.transport {
            Some(Fault::CloseAfter) => After::Close,
            _ => After::Discard,
        });
    }
    let endpoints = named
        .into_iter()
        .filter_map(|id| {
            let port = shared.node_port(id)?;
            Some(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(shared.host.clone()))
                    .with_port(i32::from(port)),
            )
        })
        .collect();
    let answer = ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(endpoints);
    let resp = req.respond(out, req.version, &answer)?;
    Ok(deliver(&faults, out, resp))
}

/// What a Produce request says about transactions: its version and transactional id.
#[derive(Clone, Copy)]
struct Transactional<'a> {
    version: i16,
    id: Option<&'a str>,
}

/// Appends one partition's records. With [`Storage::Keep`], a transactional batch must belong
/// to the open transaction of its transactional id ([`Coordinator::verify_produce`]).
fn append(
    shared: &Shared,
    state: &mut State,
    topic: &str,
    partition: i32,
    records: &[u8],
    transactional: Transactional<'_>,
) -> Result<Appended, ErrorCode> {
    let index = usize::try_from(partition)
        .ok()
        .filter(|&p| {
            state
                .topic(topic, shared.default_partitions)
                .is_some_and(|l| p < l.len())
        })
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    fn log<'s>(state: &'s mut State, topic: &str, index: usize) -> &'s mut PartitionLog {
        &mut state.topics.get_mut(topic).expect("exists")[index]
    }
    match shared.storage {
        Storage::Discard => Ok(Appended::New(
            log(state, topic, index).skip(count_records(records)?),
        )),
        Storage::Keep => {
            let mut batches = decode_batches(records).map_err(|e| match e {
                DecodeError::UnsupportedCompression(_) => ErrorCode::UNSUPPORTED_COMPRESSION_TYPE,
                _ => ErrorCode::CORRUPT_MESSAGE,
            })?;
            // Since Produce v3 a partition's data is exactly one batch.
            let batch = match (batches.pop(), batches.is_empty()) {
                (Some(batch), true) => batch,
                _ => return Err(ErrorCode::INVALID_RECORD),
            };
            if batch.is_transactional() {
                state.coordinator.verify_produce(
                    transactional.version,
                    transactional.id,
                    topic,
                    partition,
                    &batch,
                )?;
            }
            log(state, topic, index).append(batch)
        }
    }
}

/// Sums the record counts of the batch headers in `records` without decoding anything else.
fn count_records(records: &[u8]) -> Result<i64, ErrorCode> {
    // Offsets in a v2 batch header: batch length at 8, record count at 57, header 61 bytes.
    const LENGTH: usize = 8;
    const RECORD_COUNT: usize = 57;
    const HEADER: usize = 61;
    let mut rest = records;
    let mut count = 0i64;
    if rest.is_empty() {
        return Err(ErrorCode::INVALID_RECORD);
    }
    while !rest.is_empty() {
        let header = rest.get(..HEADER).ok_or(ErrorCode::CORRUPT_MESSAGE)?;
        let be = |at: usize| i32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let length = usize::try_from(be(LENGTH)).map_err(|_| ErrorCode::CORRUPT_MESSAGE)?;
        let n = be(RECORD_COUNT);
        let total = length.checked_add(12).ok_or(ErrorCode::CORRUPT_MESSAGE)?;
        if n < 0 || total < HEADER || total > rest.len() {
            return Err(ErrorCode::CORRUPT_MESSAGE);
        }
        count += i64::from(n);
        rest = &rest[total..];
    }
    Ok(count)
}

/// The producer id and epoch in the header of the first batch of `records` (-1 if too short).
fn batch_producer(records: &[u8]) -> (i64, i16) {
    let id = records
        .get(43..51)
        .map_or(-1, |b| i64::from_be_bytes(b.try_into().expect("8")));
    let epoch = records
        .get(51..53)
        .map_or(-1, |b| i16::from_be_bytes(b.try_into().expect("2")));
    (id, epoch)
}

/// What the broker saw of one partition's data, for [`super::FakeBroker::attempts`].
fn attempt(
    topic: &str,
    partition: i32,
    records: &[u8],
    result: Result<Appended, ErrorCode>,
) -> ProduceAttempt {
    // The producer fields sit at fixed places in the first batch's header.
    let at = |range: std::ops::Range<usize>| records.get(range);
    let (producer_id, producer_epoch) = batch_producer(records);
    let base_sequence = at(53..57).map_or(-1, |b| i32::from_be_bytes(b.try_into().expect("4")));
    let record_count = at(57..61).map_or(0, |b| i32::from_be_bytes(b.try_into().expect("4")));
    ProduceAttempt {
        topic: topic.to_string(),
        partition,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count: record_count.max(0) as usize,
        error: result.err().unwrap_or(ErrorCode::NONE),
        base_offset: result.map_or(-1, Appended::base_offset),
        duplicate: matches!(result, Ok(Appended::Duplicate(_))),
        node_id: None,
    }
}
