//! A Kafka broker in memory, for tests that need faults a real cluster cannot produce on demand,
//! and, in sink mode, for benchmarks that measure a client alone.

mod log;
mod script;
mod serve;
mod transaction;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_protocol::ErrorCode;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use log::{StoredRecord, TxnDetail, TxnRequest};
pub use script::{Corruption, Fault, Rule, RuleBuilder, RuleHandle};

use serve::{Shared, State};

/// What a [`FakeBroker`] serves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Topics that exist from the start, with their partition counts.
    pub topics: Vec<(String, u32)>,
    /// Node ids the broker calls itself; all of them have its address. Partition `p` is led by
    /// `node_ids[p % len]`, so with several ids a client opens one connection per id, as it
    /// would to several brokers. Default `[1]`.
    pub node_ids: Vec<i32>,
    /// Topics not in `topics` exist with this many partitions as soon as anyone names them
    /// (the sink's "every topic exists"); `None` (the default) makes them unknown:
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub default_partitions: Option<u32>,
    /// What Produce does with records. Default [`Storage::Keep`].
    pub storage: Storage,
    /// Speak TLS with this server configuration (see [`crate::TestPki`]), as a Kafka `SSL`
    /// listener does. Default `None`: plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Require SASL PLAIN (any credentials) on every connection, with sessions this long, as a
    /// Kafka listener with `connections.max.reauth.ms` (KIP-368): a request on a connection
    /// whose session ended closes it (see [`FakeBroker::expired_session_requests`]).
    pub sasl_session: Option<std::time::Duration>,
    /// The cluster's finalized `transaction.version` (KIP-1022) that ApiVersions v3 reports:
    /// 0 (the default) reports none, as Kafka 3 or a cluster formatted at level 0, and a
    /// producer uses transactions of version 1; 2 is KIP-890's transactions. Produce v12,
    /// EndTxn v5 and TxnOffsetCommit v5 are advertised either way, as by Kafka 4.
    pub transaction_version: i16,
    /// Caps on the versions ApiVersions advertises, to stand for an older Kafka: with
    /// `(ApiKey::Produce, 6)` the broker speaks Produce up to v6 (Kafka 2.0). A cap below the
    /// broker's lowest version advertises just the cap (`(ApiKey::Produce, 2)`: Kafka 0.10).
    /// Requests above a cap are refused like any version the broker does not speak. Default none.
    pub max_versions: Vec<(ApiKey, i16)>,
    /// Give each of [`node_ids`](Self::node_ids) a port of its own (the first id keeps
    /// [`FakeBroker::addr`]), so that the broker knows which node a request was sent to:
    /// [`ProduceAttempt::node_id`], [`FakeBroker::request_count_to`]. Default false: every id
    /// shares one address.
    pub port_per_node: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            topics: Vec::new(),
            node_ids: vec![1],
            default_partitions: None,
            storage: Storage::Keep,
            tls: None,
            sasl_session: None,
            transaction_version: 0,
            max_versions: Vec::new(),
            port_per_node: false,
        }
    }
}

impl FakeConfig {
    /// The sink: every topic exists with `partitions` partitions and Produce is acknowledged
    /// without decoding or keeping anything.
    pub fn sink(partitions: u32) -> Self {
        FakeConfig {
            default_partitions: Some(partitions),
            storage: Storage::Discard,
            ..FakeConfig::default()
        }
    }
}

/// What Produce does with the records it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// Decode every batch (CRC, decompression, record layout), enforce the idempotent
    /// producer's sequence rules, keep the records ([`FakeBroker::records`]) and log every
    /// attempt ([`FakeBroker::attempts`]).
    Keep,
    /// Read only each batch header's record count to assign offsets; keep nothing. For
    /// benchmarks: a client can be measured without a broker's cost.
    Discard,
}

/// One partition's data in one Produce request, as the broker saw and answered it (with
/// [`Storage::Keep`]). Retries show up as further attempts with the same sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceAttempt {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first batch's producer id (-1 without idempotence, or when the data was too short).
    pub producer_id: i64,
    /// The first batch's producer epoch.
    pub producer_epoch: i16,
    /// The first batch's base sequence.
    pub base_sequence: i32,
    /// The first batch's record count.
    pub record_count: usize,
    /// What the partition was answered (scripted or not); NONE when it was written (or was a
    /// duplicate), even if the answer was then dropped.
    pub error: ErrorCode,
    /// The base offset answered; -1 on error.
    pub base_offset: i64,
    /// A retry of a batch already written: answered with its first offset, not written again.
    pub duplicate: bool,
    /// The node the request was sent to, with [`FakeConfig::port_per_node`]; `None` when every
    /// node id shares one address.
    pub node_id: Option<i32>,
}

/// A scripted, fault-injecting Kafka broker on 127.0.0.1, for tests; also the sink for
/// benchmarks ([`FakeConfig::sink`], the `sink-broker` binary).
///
/// It speaks ApiVersions 0..=3, Metadata 4..=12, Produce 3..=12, InitProducerId 0..=5 and the
/// transaction APIs (FindCoordinator 0..=6, AddPartitionsToTxn 0..=3, AddOffsetsToTxn 0..=4,
/// TxnOffsetCommit 0..=5, EndTxn 0..=5), and closes the connection on anything else, as Kafka
/// does. Metadata names itself (under every id of [`FakeConfig::node_ids`]) as the leader of
/// every partition; InitProducerId hands out producer ids from 1000 at epoch 0; Produce
/// validates and keeps records per partition with Kafka's idempotence rules (see
/// [`Storage::Keep`]); `acks=0` gets no response.
///
/// **Transactions.** It is the coordinator of every transactional id and group, under its
/// first node id. InitProducerId with a transactional id gives the id a producer id (the
/// same one on every later init) and moves it to the next epoch on each init, or on the
/// producer's own bump (v3+, its current id and epoch given). AddPartitionsToTxn,
/// AddOffsetsToTxn and TxnOffsetCommit check the producer id and epoch and record what joins
/// the open transaction (offsets as pending); Produce below v12 may write transactional
/// batches only to partitions added so (Kafka 3.6+'s verification), v12 adds them itself
/// (KIP-890), and TxnOffsetCommit v5 its group. EndTxn commits (the pending offsets become
/// [`committed_offsets`](Self::committed_offsets)) or aborts; v5 answers with the next epoch.
/// It writes no transaction markers and keeps no `read_committed` view. Every transactional
/// request is logged with its answer ([`transaction_log`](Self::transaction_log));
/// [`FakeConfig::transaction_version`] sets the finalized `transaction.version` it reports.
///
/// Faults are scripted with [`Rule`]s:
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_producer_protocol::ErrorCode;
/// use kafka_producer_testkit::{FakeBroker, FakeConfig, Rule};
///
/// # async fn demo() {
/// let broker = FakeBroker::start(FakeConfig {
///     topics: vec![("t".into(), 3)],
///     ..FakeConfig::default()
/// })
/// .await;
/// broker.script(Rule::on_produce().nth(1).respond_error(ErrorCode::NOT_LEADER_OR_FOLLOWER));
/// broker.script(Rule::on_produce().nth(2).close_connection_after());
/// let slow = broker.script(Rule::on_produce().nth(3).delay(Duration::from_millis(500)));
/// // ... run a client against broker.addr() ...
/// let written = broker.records("t", 0);
/// assert_eq!(slow.fired(), 1);
/// broker.stop().await;
/// # let _ = written;
/// # }
/// ```
///
/// Everything runs on the caller's tokio runtime; dropping the broker stops it too.
pub struct FakeBroker {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// One accept loop per listener: one, or one per node id.
    accept: Vec<JoinHandle<()>>,
}

impl FakeBroker {
    /// Starts a broker on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    ///
    /// If it cannot listen (a test cannot go on without it), or outside a tokio runtime.
    pub async fn start(config: FakeConfig) -> FakeBroker {
        crate::time_limit::arm();
        FakeBroker::bind("127.0.0.1:0", config)
            .await
            .unwrap_or_else(|e| panic!("fake broker: cannot listen on 127.0.0.1: {e}"))
    }

    /// Starts a broker listening on `addr`; it advertises the address it got.
    pub async fn bind(addr: impl ToSocketAddrs, config: FakeConfig) -> io::Result<FakeBroker> {
        assert!(
            !config.node_ids.is_empty(),
            "FakeConfig::node_ids must not be empty"
        );
        assert!(
            (0..=2).contains(&config.transaction_version),
            "FakeConfig::transaction_version is 0, 1 or 2"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // The other nodes' listeners, on the same interface.
        let mut listeners = vec![(listener, None)];
        if config.port_per_node {
            listeners[0].1 = Some(config.node_ids[0]);
            for &node in &config.node_ids[1..] {
                let listener = TcpListener::bind((addr.ip(), 0)).await?;
                listeners.push((listener, Some(node)));
            }
        }
        let node_ports = match config.port_per_node {
            true => listeners
                .iter()
                .map(|(l, _)| l.local_addr().map(|a| a.port()))
                .collect::<io::Result<_>>()?,
            false => vec![addr.port(); config.node_ids.len()],
        };
        let mut state = State::default();
        for (topic, partitions) in &config.topics {
            state.create_topic(topic, *partitions);
        }
        let shared = Arc::new(Shared {
            sasl_session: config.sasl_session,
            expired_sessions: AtomicUsize::new(0),
            tls: config.tls,
            host: addr.ip().to_string(),
            port: addr.port(),
            node_ports,
            node_ids: config.node_ids,
            transaction_version: config.transaction_version,
            versions: serve::SUPPORTED
                .iter()
                .map(
                    |&(key, min, max)| match config.max_versions.iter().find(|(k, _)| *k == key) {
                        Some(&(_, cap)) => (key, min.min(cap), max.min(cap)),
                        None => (key, min, max),
                    },
                )
                .collect(),
            storage: config.storage,
            default_partitions: config.default_partitions,
            state: Mutex::new(state),
            script: Mutex::default(),
            scripted: AtomicBool::new(false),
            counts: (0..128).map(|_| AtomicUsize::new(0)).collect(),
            node_counts: Mutex::default(),
            accepted: AtomicUsize::new(0),
            disconnect: watch::channel(0).0,
        });
        let (stop, stopped) = watch::channel(false);
        let accept = listeners
            .into_iter()
            .map(|(listener, node)| {
                let (shared, stopped) = (shared.clone(), stopped.clone());
                tokio::spawn(serve::accept_loop(listener, node, shared, stopped))
            })
            .collect();
        Ok(FakeBroker {
            shared,
            addr,
            stop,
            accept,
        })
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The address it listens on.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` of node `node` (one of [`FakeConfig::node_ids`]), as its Metadata answers
    /// give it: its own with [`FakeConfig::port_per_node`], else [`FakeBroker::addr`].
    pub fn node_addr(&self, node: i32) -> Option<String> {
        let port = self.shared.node_port(node)?;
        Some(SocketAddr::new(self.addr.ip(), port).to_string())
    }

    /// Adds a rule; it counts requests from now on. Rules apply in the order they were added
    /// (see [`Fault`] for how several rules firing on one request combine).
    pub fn script(&self, rule: Rule) -> RuleHandle {
        let handle = self.shared.script().add(rule);
        self.shared.scripted.store(true, Ordering::Release);
        handle
    }

    /// Removes every rule: from now on requests are served normally.
    pub fn clear_script(&self) {
        let mut script = self.shared.script();
        script.clear();
        self.shared
            .scripted
            .store(!script.is_empty(), Ordering::Release);
    }

    /// Creates a topic, or grows it to `partitions`.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.shared.state().create_topic(topic, partitions);
    }

    /// The records stored in `topic`-`partition`, in offset order (empty if there is none).
    pub fn records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        let state = self.shared.state();
        usize::try_from(partition)
            .ok()
            .and_then(|p| state.topics.get(topic)?.get(p))
            .map(|log| log.records().to_vec())
            .unwrap_or_default()
    }

    /// Every Produce attempt for `topic`-`partition`, in arrival order.
    pub fn attempts(&self, topic: &str, partition: i32) -> Vec<ProduceAttempt> {
        self.shared
            .state()
            .attempts
            .iter()
            .filter(|a| a.topic == topic && a.partition == partition)
            .cloned()
            .collect()
    }

    /// The transactional requests that arrived so far, in order, with their answers (see
    /// [`TxnRequest`]).
    pub fn transaction_log(&self) -> Vec<TxnRequest> {
        self.shared.state().coordinator.log.clone()
    }

    /// The offsets `group` has committed through committed transactions, by (topic,
    /// partition).
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        self.shared.state().coordinator.committed(group)
    }

    /// How many requests of `api` arrived so far (including those a rule then faulted).
    pub fn request_count(&self, api: ApiKey) -> usize {
        self.shared.request_count(api as i16)
    }

    /// How many requests of `api` were sent to node `node`, with [`FakeConfig::port_per_node`]
    /// (0 without: the broker cannot tell the nodes apart).
    pub fn request_count_to(&self, node: i32, api: ApiKey) -> usize {
        self.shared.request_count_to(node, api as i16)
    }

    /// Requests that arrived on a connection after its SASL session had ended: a client that
    /// re-authenticates in time sends none.
    pub fn expired_session_requests(&self) -> usize {
        self.shared.expired_sessions.load(Ordering::Acquire)
    }

    /// How many connections were accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Closes every open connection now, as a broker restart would; new ones are accepted.
    pub fn disconnect_all(&self) {
        self.shared.disconnect.send_modify(|n| *n += 1);
    }

    /// Stops listening and closes every connection; returns once all of them have ended.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        for accept in std::mem::take(&mut self.accept) {
            let _ = accept.await;
        }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl std::fmt::Debug for FakeBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBroker")
            .field("addr", &self.addr)
            .field("storage", &self.shared.storage)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
