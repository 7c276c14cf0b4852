//! One connection to one broker (TCP, or TLS over TCP): a writer task, a reader task, and a
//! cheap handle.
//!
//! Requests carry their own reply channel (tokio-postgres style). Responses are matched by
//! correlation id. When the socket fails, every pending request fails with a network error and the
//! handle reports itself closed, so the owner connects again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_protocol::kafka_protocol::protocol::{Request, VersionRange};
use kafka_producer_protocol::{frame, EncodeError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsConnector;
use tracing::Instrument;

use crate::error::Error;
use crate::metrics::{NodeMetrics, ProducerMetrics};
use crate::sasl::{Mechanism, SaslSettings};
use crate::task::CatchPanic;

use self::handshake::{
    authenticate_within, common_version, require_record_batch_v2, versions_within, BrokerVersions,
};

mod dns;
mod handshake;

pub(crate) use self::dns::canonical_servers;

/// The largest response frame accepted (the broker's own `socket.request.max.bytes` default).
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// The highest versions this client speaks, per API.
pub(crate) fn client_max_version(key: ApiKey) -> i16 {
    match key {
        ApiKey::ApiVersions => 3,
        ApiKey::Metadata => 12,
        // v13 names topics by id only (KIP-516); we name them.
        ApiKey::Produce => 12,
        // v5 adds TRANSACTION_ABORTABLE; v6 is KIP-939's two-phase commit, not used.
        ApiKey::InitProducerId => 5,
        // Transactions. v4+ of AddPartitionsToTxn is for brokers only (KIP-890's verification);
        // clients add partitions with v3, and under transaction.version 2 not at all.
        ApiKey::FindCoordinator => 6,
        ApiKey::AddPartitionsToTxn => 3,
        ApiKey::AddOffsetsToTxn => 4,
        ApiKey::EndTxn => 5,
        ApiKey::TxnOffsetCommit => 5,
        ApiKey::SaslHandshake => 1,
        ApiKey::SaslAuthenticate => 2,
        _ => -1,
    }
}

/// The lowest versions this client speaks: those of Kafka 0.11, the first broker with record
/// batch v2 (Kafka 4 brokers start at Produce v3 and Metadata v0).
fn client_min_version(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 3,
        ApiKey::Metadata => 4,
        // v0 finds a group's coordinator only; v1 (Kafka 0.11) a transaction's too.
        ApiKey::FindCoordinator => 1,
        // v0 sends the mechanism's tokens raw on the socket; v1 wraps them in SaslAuthenticate.
        ApiKey::SaslHandshake => 1,
        _ => 0,
    }
}

type Reply = oneshot::Sender<Result<BytesMut, Error>>;

struct Outgoing {
    /// The frame, in chunks for a vectored write (a Produce request's batches are not copied).
    chunks: Vec<Bytes>,
    /// Completed once the bytes are written (for requests with no response, acks=0).
    written: Option<oneshot::Sender<Result<(), Error>>>,
}

struct Shared {
    addr: String,
    pending: Mutex<Pending>,
    closed: AtomicBool,
    /// Tells both I/O tasks to stop.
    shutdown: watch::Sender<bool>,
    /// The producer's metrics, and this broker's.
    wire: Wire,
}

/// Counts what a connection sends and reads, in the producer's metrics and its broker's
/// (`producer-node-metrics`): from its first request (ApiVersions) on.
struct Wire {
    metrics: Arc<ProducerMetrics>,
    node: Arc<NodeMetrics>,
}

impl Wire {
    /// A request of `bytes`, with its size prefix, was queued for the wire.
    fn sent(&self, bytes: usize) {
        let now = self.metrics.now_ms();
        self.metrics.bytes_sent.record_at_ms(bytes as f64, now);
        self.node.bytes_sent.record_at_ms(bytes as f64, now);
    }

    /// A response frame (without its size prefix) was read.
    fn received(&self, frame: &[u8]) {
        // With its size prefix, as it came on the wire.
        let size = (frame.len() + 4) as f64;
        let now = self.metrics.now_ms();
        self.metrics.bytes_received.record_at_ms(size, now);
        self.node.bytes_received.record_at_ms(size, now);
    }
}

#[derive(Default)]
struct Pending {
    closed: bool,
    replies: HashMap<i32, Reply>,
}

impl Shared {
    /// Fails every pending request and refuses new ones.
    fn close(&self, why: &str) {
        let replies = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.closed = true;
            std::mem::take(&mut p.replies)
        };
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.wire.metrics.connection(false);
        }
        self.shutdown.send_replace(true);
        for (_, reply) in replies {
            let _ = reply.send(Err(Error::Network {
                broker: self.addr.clone(),
                message: why.to_string(),
            }));
        }
    }
}

/// A handle to one broker connection. Cloning it is cheap; the connection closes when the last
/// handle is dropped.
#[derive(Clone)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outgoing>,
    next_correlation_id: Arc<AtomicI32>,
    in_flight: Arc<AtomicUsize>,
    versions: Arc<HashMap<i16, VersionRange>>,
    /// The finalized `transaction.version` the broker reported (0: none).
    transaction_version: i16,
    client_id: Arc<str>,
    request_timeout: Duration,
    /// With a SASL session the broker limits (KIP-368): when to stop using this connection
    /// and authenticate afresh on a new one.
    renew_at: Option<Instant>,
}

/// How to connect: the settings every connection of a producer shares.
#[derive(Clone)]
pub(crate) struct ConnectSettings {
    pub(crate) client_id: String,
    /// `socket.connection.setup.timeout.ms`: for the TCP connection.
    pub(crate) setup_timeout: Duration,
    /// `request.timeout.ms`: for the TLS handshake and ApiVersions, as for any request.
    pub(crate) request_timeout: Duration,
    /// With `security.protocol` SSL or SASL_SSL.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    /// With `security.protocol` SASL_PLAINTEXT or SASL_SSL.
    pub(crate) sasl: Option<(SaslSettings, Mechanism)>,
    /// With SASL/OAUTHBEARER: the producer's token, shared by its connections.
    pub(crate) tokens: Option<Arc<crate::oauth::TokenCache>>,
    /// The producer's metrics: connections, bytes, requests, authentications.
    pub(crate) metrics: Arc<ProducerMetrics>,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("client_id", &self.client_id)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|(_, m)| m.name()))
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr`, broker `node` (negative for a bootstrap server not known by id yet:
    /// its metrics go under that id, as in the Java client), and, with TLS, completes the
    /// handshake; negotiates API versions, authenticates, and starts the I/O tasks. All of it
    /// runs in a `connect` span with the broker's `node` id (when known: not for a bootstrap
    /// server) and address (`broker`).
    pub(crate) async fn connect(
        addr: &str,
        node: i32,
        settings: &ConnectSettings,
    ) -> Result<Connection, Error> {
        let known = (node >= 0).then_some(node);
        let span = tracing::info_span!("connect", node = known, broker = addr);
        let m = &settings.metrics;
        let result = Self::open(addr, node, settings).instrument(span).await;
        match &result {
            Err(Error::Authentication { .. }) => m.record(&m.authentication_failed, 1.0),
            Ok(_) if settings.sasl.is_some() => m.record(&m.authenticated, 1.0),
            _ => {}
        }
        result
    }

    /// [`Connection::connect`]'s work.
    async fn open(addr: &str, node: i32, settings: &ConnectSettings) -> Result<Connection, Error> {
        // ApiVersions and SASL count too, as every request does in the Java client.
        let wire = Wire {
            metrics: settings.metrics.clone(),
            node: settings.metrics.node(node),
        };
        let (client_id, setup_timeout, request_timeout) = (
            settings.client_id.as_str(),
            settings.setup_timeout,
            settings.request_timeout,
        );
        let net = |message: String| Error::Network {
            broker: addr.to_string(),
            message,
        };
        let mut stream = dns::connect(addr, setup_timeout).await.map_err(net)?;
        stream.set_nodelay(true).ok();
        let Some(tls) = &settings.tls else {
            let versions =
                versions_within(request_timeout, &mut stream, addr, client_id, &wire).await?;
            require_record_batch_v2(&versions.apis, addr)?;
            let session =
                authenticate_within(&mut stream, addr, settings, &versions.apis, &wire).await?;
            let (read, write) = stream.into_split();
            return Ok(Connection::run(
                read, write, addr, wire, versions, session, settings,
            ));
        };
        let name = crate::tls::server_name(addr).map_err(net)?;
        let handshake = TlsConnector::from(tls.clone()).connect(name, stream);
        let mut stream = tokio::time::timeout(request_timeout, handshake)
            .await
            .map_err(|_| net("TLS handshake not done within request.timeout.ms".into()))?
            .map_err(|e| {
                let message = format!("TLS handshake failed: {e}");
                // rustls refusing a certificate (or the broker refusing ours) will not change
                // on a retry; a connection reset during the handshake may.
                if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                    Error::Authentication {
                        broker: addr.to_string(),
                        method: "TLS".into(),
                        message,
                    }
                } else {
                    net(message)
                }
            })?;
        let versions =
            versions_within(request_timeout, &mut stream, addr, client_id, &wire).await?;
        require_record_batch_v2(&versions.apis, addr)?;
        let session =
            authenticate_within(&mut stream, addr, settings, &versions.apis, &wire).await?;
        let (read, write) = tokio::io::split(stream);
        Ok(Connection::run(
            read, write, addr, wire, versions, session, settings,
        ))
    }

    /// Starts the writer and reader tasks on the two halves of a connected stream.
    fn run<R, W>(
        read: R,
        write: W,
        addr: &str,
        wire: Wire,
        versions: BrokerVersions,
        session: Option<Duration>,
        settings: &ConnectSettings,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        tracing::debug!(
            broker = addr,
            tls = settings.tls.is_some(),
            sasl = settings.sasl.as_ref().map(|(_, m)| m.name()),
            "connected to broker"
        );
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(Pending::default()),
            closed: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            wire,
        });
        settings.metrics.connection(true);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(close_on_panic(
            shared.clone(),
            write_loop(write, rx, shared.clone()),
        ));
        tokio::spawn(close_on_panic(
            shared.clone(),
            read_loop(read, shared.clone()),
        ));
        Connection {
            shared,
            tx,
            next_correlation_id: Arc::new(AtomicI32::new(1)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            versions: Arc::new(versions.apis),
            transaction_version: versions.transaction_version,
            client_id: settings.client_id.as_str().into(),
            request_timeout: settings.request_timeout,
            // As the Java client: at 85 to 95% of the session, so that many connections do not
            // renew at once, and in time for the requests in flight then to finish.
            renew_at: session.map(|lifetime| {
                let share = 0.85 + f64::from(jitter_per_mille()) / 10_000.0;
                Instant::now() + lifetime.mul_f64(share)
            }),
        }
    }

    /// Whether this connection's SASL session is close to its end: it should take no new
    /// requests, and be replaced once those in flight have finished.
    pub(crate) fn renewal_due(&self, now: Instant) -> bool {
        self.renew_at.is_some_and(|at| now >= at)
    }

    pub(crate) fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// The producer's metrics, and this broker's.
    pub(crate) fn metrics(&self) -> (&ProducerMetrics, &NodeMetrics) {
        (&self.shared.wire.metrics, &self.shared.wire.node)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Requests sent on this connection that are still waiting for their answer.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The cluster's finalized `transaction.version`, as this broker reported it when the
    /// connection was made (0: not finalized).
    pub(crate) fn transaction_version(&self) -> i16 {
        self.transaction_version
    }

    /// The version of `key` to use: the highest both sides speak.
    pub(crate) fn version(&self, key: ApiKey) -> Result<i16, Error> {
        common_version(&self.versions, key, self.addr())
    }

    /// Sends a request and waits for its response, at most `request.timeout.ms`.
    /// A timeout closes the connection, as the Java client does: its answer can no longer be trusted.
    pub(crate) async fn call<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, Error> {
        self.start(req, version)?.response::<R>().await
    }

    /// Queues a request for writing and returns at once. Requests go on the wire in the order
    /// of these calls, which is what keeps a partition's batches in order on one connection.
    pub(crate) fn start<R: Request>(&self, req: &R, version: i16) -> Result<PendingCall, Error> {
        self.start_frame(version, &api_name::<R>(), |cid| {
            self.encode(req, version, cid)
        })
    }

    /// [`Connection::start`] for a request already encoded as frame chunks by `encode`, which is
    /// given the correlation id.
    pub(crate) fn start_frame(
        &self,
        version: i16,
        what: &str,
        encode: impl FnOnce(i32) -> Result<Vec<Bytes>, EncodeError>,
    ) -> Result<PendingCall, Error> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let correlation_id = self.enqueue(what, version, encode, Some(reply_tx), None)?;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.shared.wire.metrics.in_flight(true);
        Ok(PendingCall {
            conn: self.clone(),
            correlation_id,
            version,
            reply: reply_rx,
        })
    }

    /// Queues a request that gets no response (Produce with acks=0), encoded by `encode`; the
    /// receiver tells when it was written.
    pub(crate) fn start_frame_send_only(
        &self,
        version: i16,
        what: &str,
        encode: impl FnOnce(i32) -> Result<Vec<Bytes>, EncodeError>,
    ) -> Result<oneshot::Receiver<Result<(), Error>>, Error> {
        let (written_tx, written_rx) = oneshot::channel();
        self.enqueue(what, version, encode, None, Some(written_tx))?;
        Ok(written_rx)
    }

    fn encode<R: Request>(
        &self,
        req: &R,
        version: i16,
        correlation_id: i32,
    ) -> Result<Vec<Bytes>, EncodeError> {
        let mut bytes = BytesMut::new();
        frame::encode_request(
            &mut bytes,
            version,
            correlation_id,
            Some(&self.client_id),
            req,
        )?;
        Ok(vec![bytes.freeze()])
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Takes a correlation id, encodes, registers the reply and hands the bytes to the writer,
    /// all under one lock: the wire order is the correlation id order, which the reader checks.
    fn enqueue(
        &self,
        what: &str,
        version: i16,
        encode: impl FnOnce(i32) -> Result<Vec<Bytes>, EncodeError>,
        reply: Option<Reply>,
        written: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> Result<i32, Error> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pending.closed {
            return Err(self.network_error("connection closed"));
        }
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let chunks = encode(correlation_id).map_err(|e| Error::Protocol {
            broker: self.addr().to_string(),
            message: format!("cannot encode {what} v{version}: {e}"),
        })?;
        if let Some(reply) = reply {
            pending.replies.insert(correlation_id, reply);
        }
        self.shared
            .wire
            .sent(chunks.iter().map(Bytes::len).sum::<usize>());
        self.tx
            .send(Outgoing { chunks, written })
            .map_err(|_| self.network_error("connection closed"))?;
        Ok(correlation_id)
    }

    fn network_error(&self, message: &str) -> Error {
        Error::Network {
            broker: self.addr().to_string(),
            message: message.to_string(),
        }
    }

    /// Closes the connection; pending requests fail.
    pub(crate) fn close(&self) {
        self.shared.close("closed by the client");
    }
}

/// A request on the wire, waiting for its answer. Dropping it forgets the answer.
pub(crate) struct PendingCall {
    conn: Connection,
    correlation_id: i32,
    version: i16,
    reply: oneshot::Receiver<Result<BytesMut, Error>>,
}

impl PendingCall {
    /// The response, at most `request.timeout.ms` after the request was queued.
    pub(crate) async fn response<R: Request>(mut self) -> Result<R::Response, Error> {
        let conn = &self.conn;
        let version = self.version;
        let frame = match tokio::time::timeout(conn.request_timeout, &mut self.reply).await {
            Ok(Ok(frame)) => frame?,
            Ok(Err(_)) => return Err(conn.network_error("connection closed")),
            Err(_) => {
                // Requests behind it on this connection fail with the same reason (a metadata
                // request's timeout can be what ends a produce request's wait).
                conn.shared.close(&format!(
                    "a request got no answer within request.timeout.ms ({} ms); connection closed",
                    conn.request_timeout.as_millis()
                ));
                return Err(conn.network_error(&format!(
                    "no answer within request.timeout.ms ({} ms); connection closed",
                    conn.request_timeout.as_millis()
                )));
            }
        };
        let (cid, response) = frame::decode_response::<R>(frame, version).map_err(|e| {
            conn.shared.close("undecodable response");
            Error::Protocol {
                broker: conn.addr().to_string(),
                message: format!("cannot decode {} response v{version}: {e}", api_name::<R>()),
            }
        })?;
        if cid != self.correlation_id {
            conn.shared.close("correlation id mismatch");
            return Err(Error::Protocol {
                broker: conn.addr().to_string(),
                message: format!("expected correlation id {}, got {cid}", self.correlation_id),
            });
        }
        Ok(response)
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.conn.shared.wire.metrics.in_flight(false);
    }
}

fn api_name<R: Request>() -> String {
    ApiKey::try_from(R::KEY).map_or_else(|_| format!("api {}", R::KEY), |k| format!("{k:?}"))
}

/// 0 to 999, from the clock: enough to spread renewals, with no random source to carry.
fn jitter_per_mille() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos % 1000) as u16
}

/// Runs one of a connection's loops. A panic in it closes the connection, which fails every
/// request waiting on it at once (they are then retried elsewhere) instead of at their timeout.
async fn close_on_panic(shared: Arc<Shared>, io: impl Future<Output = ()>) {
    if let Err(message) = CatchPanic::new(io).await {
        shared.close(&format!("connection task panicked: {message}"));
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let first = tokio::select! {
            o = rx.recv() => match o {
                Some(o) => o,
                None => break,
            },
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        batch.push(first);
        // Coalesce whatever else is queued into one write.
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let mut slices: Vec<Bytes> = batch
            .iter_mut()
            .flat_map(|o| std::mem::take(&mut o.chunks))
            .collect();
        let result = write_all_vectored(&mut write, &mut slices).await;
        let failed = result.is_err();
        for o in batch.drain(..) {
            if let Some(w) = o.written {
                let _ = w.send(result.as_ref().map(|_| ()).map_err(|e| Error::Network {
                    broker: shared.addr.clone(),
                    message: format!("write failed: {e}"),
                }));
            }
        }
        if failed || shared.closed.load(Ordering::Acquire) {
            shared.close("write failed");
            break;
        }
    }
    let _ = write.shutdown().await;
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    write: &mut W,
    bufs: &mut [Bytes],
) -> std::io::Result<()> {
    use bytes::Buf;
    let mut start = 0;
    while start < bufs.len() {
        // At most IOV_MAX (1024 on Linux) buffers a call, as many as writev takes (std would cut
        // there too): no need to build a longer list.
        let slices: Vec<std::io::IoSlice<'_>> = bufs[start..]
            .iter()
            .take(1024)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = write.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = bufs[start].len();
            if n >= len {
                n -= len;
                start += 1;
            } else {
                bufs[start].advance(n);
                n = 0;
            }
        }
        while start < bufs.len() && bufs[start].is_empty() {
            start += 1;
        }
    }
    Ok(())
}

async fn read_loop<R: AsyncRead + Unpin>(mut read: R, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut shutdown = shared.shutdown.subscribe();
    let why = loop {
        loop {
            match frame::split_frame(&mut buf, MAX_FRAME) {
                Ok(Some(f)) => {
                    shared.wire.received(&f);
                    let Ok(cid) = frame::correlation_id(&f) else {
                        shared.close("a response without a correlation id");
                        return;
                    };
                    // A broker answers in request order. An answer to nothing we asked, or one
                    // that skips an earlier request, means the stream can no longer be trusted:
                    // close at once (as the Java client does) instead of waiting for timeouts.
                    let reply = {
                        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
                        let skipped = pending.replies.keys().any(|&k| k < cid);
                        match pending.replies.remove(&cid) {
                            Some(reply) if !skipped => Some(reply),
                            _ => None,
                        }
                    };
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Ok(f));
                        }
                        None => {
                            shared.close(&format!(
                                "answer with unexpected correlation id {cid}; connection closed"
                            ));
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.close(&format!("bad frame: {e}"));
                    return;
                }
            }
        }
        let read = tokio::select! {
            r = read.read_buf(&mut buf) => r,
            _ = shutdown.wait_for(|&stop| stop) => break "closed".to_string(),
        };
        match read {
            Ok(0) => break "the broker closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    shared.close(&why);
}
