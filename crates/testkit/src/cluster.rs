//! The cluster under test, driven through `scripts/kafka`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::record::ReadRecord;

/// How long one harness call (a JVM running a tool or a node start) may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// How long [`Cluster::set_transaction_version`] and [`Cluster::transaction_version`] wait for every broker to report
/// the same finalized level.
const FEATURE_TIMEOUT: Duration = Duration::from_secs(30);

/// The feature flag of the transactions protocol: 2 is KIP-890's (what a new Kafka 4 cluster runs), 1 and 0 the ones
/// before it.
const TRANSACTION_VERSION: &str = "transaction.version";

/// The cluster named by `KAFKA_BOOTSTRAP`.
///
/// Returns `None` after printing `SKIPPED: <test> needs KAFKA_BOOTSTRAP` to stderr when the variable is unset, so a
/// test can `let Some(cluster) = cluster() else { return };`. With `KPROD_REQUIRE_KAFKA=1` (set by `scripts/test` and
/// CI) it panics instead.
pub fn cluster() -> Option<Cluster> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_default();
    if !bootstrap.trim().is_empty() {
        crate::time_limit::arm();
        return Some(Cluster::new(bootstrap.trim().to_string()));
    }
    let test = thread::current().name().unwrap_or("this test").to_string();
    if std::env::var("KPROD_REQUIRE_KAFKA").as_deref() == Ok("1") {
        panic!(
            "{test} needs a Kafka cluster, and KPROD_REQUIRE_KAFKA=1 forbids skipping it, but KAFKA_BOOTSTRAP is not \
             set. Start one with `scripts/kafka up` and export the KAFKA_BOOTSTRAP=... line it prints, or run \
             `scripts/test`, which does both."
        );
    }
    // Straight to the stderr handle, not eprintln!: libtest captures the macros, and a skip must be visible.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test} needs KAFKA_BOOTSTRAP");
    None
}

/// The directory of the secure cluster's client properties files, from `KAFKA_SECURE_CLIENT_DIR`.
///
/// `scripts/kafka up --secure` (or with `KAFKA_SECURE=1`) prints `KAFKA_SECURE_CLIENT_DIR=<state dir>/client`, and
/// `scripts/test` exports it when the cluster it uses is secure. The directory holds one Java client properties file
/// per listener, mechanism and user, e.g. `ssl.properties`, `mtls-client.properties`,
/// `sasl_ssl-scram-sha-512-alice.properties` (see `scripts/kafka --help`); [`read_properties`] parses one. `None`
/// when the variable is unset or empty: the cluster has no TLS or SASL listeners, and a test that needs them should
/// skip.
pub fn secure_client_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KAFKA_SECURE_CLIENT_DIR")?;
    if dir.is_empty() {
        return None;
    }
    Some(PathBuf::from(dir))
}

/// The cluster and its secure client directory ([`secure_client_dir`]) for `test`. `scripts/test` starts the cluster
/// with `--secure`, so with `KPROD_REQUIRE_KAFKA=1` a cluster without the secure listeners is a failure (a panic
/// naming `test`), not a skip; otherwise the test prints `SKIPPED` and gets `None`.
pub fn secure_cluster(test: &str) -> Option<(Cluster, PathBuf)> {
    let cluster = cluster()?;
    match secure_client_dir() {
        Some(dir) => Some((cluster, dir)),
        None if std::env::var("KPROD_REQUIRE_KAFKA").as_deref() == Ok("1") => {
            panic!("{test} needs the secure listeners: scripts/kafka up --secure (KAFKA_SECURE=1)")
        }
        None => {
            eprintln!("SKIPPED: {test} needs KAFKA_SECURE_CLIENT_DIR (scripts/kafka up --secure)");
            None
        }
    }
}

/// The `key=value` lines of a Java properties file such as the secure cluster's client files, in file order; blank
/// lines and `#` or `!` comments are skipped, whitespace around keys and values is trimmed. (Only the subset of the
/// format that `scripts/kafka` writes: no line continuations or escapes.) Panics if the file cannot be read.
pub fn read_properties(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Polls `condition` every 200 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A running Kafka cluster: its bootstrap servers and the repository whose `scripts/kafka` manages it.
#[derive(Debug, Clone)]
pub struct Cluster {
    bootstrap: String,
    root: PathBuf,
    /// Variables every `scripts/kafka` call gets on top of the process's own: empty for the shared cluster; the
    /// state dir, port offset and listeners of an [`OwnCluster`].
    env: Vec<(&'static str, String)>,
}

/// One partition of a topic, as the Java Admin client describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Node id of the leader, or -1 when the partition has none.
    pub leader: i32,
    /// Node ids of all replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Node ids of the in-sync replicas.
    pub isr: Vec<i32>,
}

impl Cluster {
    fn new(bootstrap: String) -> Cluster {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        Cluster {
            bootstrap,
            root,
            env: Vec::new(),
        }
    }

    /// Raises the partition count of `name` to `partitions` with Kafka's `kafka-topics --alter` and waits until
    /// every partition has a leader. Panics with the tool's stderr on failure (say, a count below the current one).
    pub fn add_partitions(&self, name: &str, partitions: i32) {
        let count = partitions.to_string();
        self.checked_tool(
            "kafka-topics",
            &[
                "--bootstrap-server",
                &self.bootstrap,
                "--alter",
                "--topic",
                name,
                "--partitions",
                &count,
            ],
            None,
        );
        let described = self.inspect_topic("wait-topic", name);
        assert_eq!(
            described.len(),
            partitions as usize,
            "topic {name} has {described:?}"
        );
    }

    /// The bootstrap servers, e.g. `127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The bootstrap servers one by one.
    pub fn broker_addresses(&self) -> Vec<String> {
        self.bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A topic name that no other test (or earlier run) uses: `prefix` (invalid characters replaced by `_`), then
    /// the time, the process id and a per-process counter.
    pub fn random_topic(prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix: String = prefix
            .chars()
            .take(100)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{prefix}-{:x}-{}-{n}",
            nanos & 0xffff_ffff_ffff,
            std::process::id()
        )
    }

    /// Creates a topic with Kafka's `kafka-topics` tool (`configs` become `--config k=v`) and waits until every
    /// partition has a leader. Panics with the tool's stderr on failure.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: &[(&str, &str)],
    ) {
        let partitions_arg = partitions.to_string();
        let replication_arg = replication.to_string();
        let config_args: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec![
            "--bootstrap-server",
            &self.bootstrap,
            "--create",
            "--topic",
            name,
            "--partitions",
            &partitions_arg,
            "--replication-factor",
            &replication_arg,
        ];
        for config in &config_args {
            args.extend(["--config", config]);
        }
        self.checked_tool("kafka-topics", &args, None);
        let described = self.inspect_topic("wait-topic", name);
        assert_eq!(
            described.len(),
            partitions as usize,
            "topic {name} has {described:?}"
        );
    }

    /// Leader, replicas and ISR of every partition of a topic, sorted by partition. Panics if the topic does not
    /// exist.
    pub fn describe_topic(&self, name: &str) -> Vec<PartitionInfo> {
        self.inspect_topic("topic", name)
    }

    /// Every record of the topic, from the beginning up to the end offsets at the time of the call, sorted by
    /// partition and offset, read by the independent Java reader.
    pub fn read_topic(&self, name: &str) -> Vec<ReadRecord> {
        let out = self.checked_tool(
            "reader",
            &["--bootstrap", &self.bootstrap, "--topic", name],
            None,
        );
        parse_reader_output(&out)
    }

    /// [`read_topic`](Cluster::read_topic) as a `read_committed` consumer (`isolation.level=read_committed`): the
    /// records of aborted transactions are left out, and so are the control records (transaction markers, which no
    /// consumer returns; their offsets are simply missing from the result, as are the aborted records').
    ///
    /// Each partition is read up to its *last stable offset* at the time of the call (read_committed's end offset),
    /// not its log end: while a transaction is open on a partition, neither its records nor any record after its
    /// first one (even of transactions committed since) are returned. They appear once it commits; its records never
    /// do if it aborts, whether the producer aborts it or the coordinator does when its `transaction.timeout.ms` has
    /// passed (`scripts/kafka` checks for that every second). So a test that expects records of a transaction it just
    /// committed gets them; one that leaves a transaction open on the partition does not get what follows it.
    pub fn read_topic_committed(&self, name: &str) -> Vec<ReadRecord> {
        let out = self.checked_tool(
            "reader",
            &[
                "--bootstrap",
                &self.bootstrap,
                "--topic",
                name,
                "--isolation",
                "read_committed",
            ],
            None,
        );
        parse_reader_output(&out)
    }

    /// The committed offsets of consumer group `group`, as the Java Admin client's `listConsumerGroupOffsets` returns
    /// them: `(topic, partition, offset)`, sorted by topic and partition. An offset is the next one to consume (what a
    /// consumer commits, or a transactional producer's `sendOffsetsToTransaction` sends). Empty when the group has
    /// committed nothing or does not exist. Offsets sent in a transaction count only once it commits: while it is
    /// open the group coordinator answers the offset committed before it (the Admin client does not ask for stable
    /// offsets, so it does not wait), and an aborted transaction's offsets never count. Panics with the tool's stderr
    /// on failure.
    pub fn group_offsets(&self, group: &str) -> Vec<(String, i32, i64)> {
        self.list_group_offsets(group, false)
    }

    /// [`group_offsets`](Cluster::group_offsets) as a consumer starting up sees them (KIP-447's `require_stable`): if a
    /// transaction holding offsets for the group is still being completed (committed, its markers not all written),
    /// the coordinator answers only once it is, so offsets committed by a transaction that has returned from its
    /// commit are always there. Waits at most 30 s (an open transaction holds it that long), then panics.
    pub fn stable_group_offsets(&self, group: &str) -> Vec<(String, i32, i64)> {
        self.list_group_offsets(group, true)
    }

    fn list_group_offsets(&self, group: &str, require_stable: bool) -> Vec<(String, i32, i64)> {
        #[derive(Deserialize)]
        struct Committed {
            topic: String,
            partition: i32,
            offset: i64,
        }
        #[derive(Deserialize)]
        struct Group {
            offsets: Vec<Committed>,
        }
        let out = self.checked_tool(
            "inspect",
            &[
                "group-offsets",
                "--bootstrap",
                &self.bootstrap,
                "--group",
                group,
                "--require-stable",
                if require_stable { "true" } else { "false" },
            ],
            None,
        );
        let parsed: Group = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("inspect group-offsets printed {out:?}: {e}"));
        parsed
            .offsets
            .into_iter()
            .map(|c| (c.topic, c.partition, c.offset))
            .collect()
    }

    /// The cluster's finalized `transaction.version` feature level: 2 for the transactions protocol of KIP-890 (the
    /// level a fresh Kafka 4 cluster formats with), 1 or 0 for the one before it (`scripts/kafka up --feature
    /// transaction.version=1`, or [`set_transaction_version`](Cluster::set_transaction_version)).
    ///
    /// Asks every broker itself (an ApiVersions request on a connection of its own to each bootstrap address, the
    /// response clients learn the level from), and waits until they agree, since each broker applies a change from
    /// the metadata log in its own time. Panics, with what each broker said, if they do not agree within 30 s.
    pub fn transaction_version(&self) -> i16 {
        self.feature_level(TRANSACTION_VERSION, None)
    }

    /// Sets the cluster's finalized `transaction.version` feature level to `level`, upgrading or downgrading it with
    /// Kafka's `kafka-features` tool (`upgrade` or `downgrade --feature transaction.version=LEVEL`; Kafka 4 changes
    /// this feature at run time, and a downgrade needs no `--unsafe`), and returns once every broker reports `level`
    /// in its ApiVersions response, as [`transaction_version`](Cluster::transaction_version) asks them. Nothing is
    /// changed when the cluster is at `level` already. Panics with the tool's stderr if the change is refused (say,
    /// a level the brokers do not support: they support 0 to 2), or with what each broker said if they do not all
    /// report `level` within 30 s.
    ///
    /// This changes the cluster for every test running beside: call it only from tests named `disruptive_*` (run one
    /// at a time, see the crate docs) and set the level back to 2, the level the other tests expect, before the test
    /// ends, also when it fails. A client learns the level from the ApiVersions response when it connects, so create
    /// the producer under test after this returns.
    ///
    /// ```no_run
    /// # fn main() {
    /// let Some(cluster) = kafka_producer_testkit::cluster() else { return };
    /// cluster.set_transaction_version(1);
    /// // ... a transactional producer against the protocol before KIP-890 ...
    /// cluster.set_transaction_version(2);
    /// # }
    /// ```
    pub fn set_transaction_version(&self, level: i16) {
        let current = self.transaction_version();
        if current != level {
            let command = if level > current {
                "upgrade"
            } else {
                "downgrade"
            };
            let feature = format!("{TRANSACTION_VERSION}={level}");
            self.checked_tool(
                "kafka-features",
                &[
                    "--bootstrap-server",
                    &self.bootstrap,
                    command,
                    "--feature",
                    &feature,
                ],
                None,
            );
        }
        let found = self.feature_level(TRANSACTION_VERSION, Some(level));
        assert_eq!(found, level, "{TRANSACTION_VERSION}");
    }

    /// The finalized level of feature `name` once every broker reports the same one (and, given `level`, that one);
    /// 0 when the feature is not finalized. Panics after [`FEATURE_TIMEOUT`].
    fn feature_level(&self, name: &str, level: Option<i16>) -> i16 {
        #[derive(Deserialize)]
        struct Node {
            finalized: std::collections::BTreeMap<String, i16>,
        }
        #[derive(Deserialize)]
        struct Features {
            nodes: Vec<Node>,
        }
        let timeout_ms = FEATURE_TIMEOUT.as_millis().to_string();
        let level_arg = level.map(|l| l.to_string());
        let mut args = vec![
            "features",
            "--bootstrap",
            &self.bootstrap,
            "--feature",
            name,
            "--timeout-ms",
            &timeout_ms,
        ];
        if let Some(level) = &level_arg {
            args.extend(["--level", level]);
        }
        let out = self.checked_tool("inspect", &args, None);
        let features: Features = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("inspect features printed {out:?}: {e}"));
        let levels: Vec<i16> = features
            .nodes
            .iter()
            .map(|n| n.finalized.get(name).copied().unwrap_or(0))
            .collect();
        // inspect features --feature returns only once all brokers agree.
        assert!(
            !levels.is_empty() && levels.iter().all(|l| *l == levels[0]),
            "brokers report {name} levels {levels:?}: {out}"
        );
        levels[0]
    }

    /// [`read_topic`](Cluster::read_topic) as the client that a Java properties file describes, e.g. one of the
    /// secure cluster's files in [`secure_client_dir`]: the reader takes its `security.protocol`, SASL and TLS
    /// settings and its `bootstrap.servers` (the listener the file is for, not [`bootstrap`](Cluster::bootstrap)).
    /// The reader assigns partitions and uses no group, so on a cluster with ACLs its principal needs Read and
    /// Describe on the topic only. Panics with the reader's stderr on failure (say, an authorization error).
    ///
    /// ```no_run
    /// # fn main() {
    /// let Some(cluster) = kafka_producer_testkit::cluster() else { return };
    /// let Some(dir) = kafka_producer_testkit::secure_client_dir() else { return };
    /// let records = cluster.read_topic_with("my-topic", &dir.join("sasl_ssl-scram-sha-512-admin.properties"));
    /// # let _ = records;
    /// # }
    /// ```
    pub fn read_topic_with(&self, name: &str, client_config: &Path) -> Vec<ReadRecord> {
        let out = self.checked_tool(
            "reader",
            &[
                "--consumer.config",
                &client_config.to_string_lossy(),
                "--topic",
                name,
            ],
            None,
        );
        parse_reader_output(&out)
    }

    /// Stops node `node` (SIGTERM and wait for it, or SIGKILL when `hard`). Its data stays for
    /// [`start_node`](Cluster::start_node). Only for tests named `disruptive_*`; prefer [`outage`](Cluster::outage).
    pub fn stop_node(&self, node: i32, hard: bool) {
        self.ensure_managed();
        let node = node.to_string();
        let mut args = vec!["stop-node", node.as_str()];
        if hard {
            args.push("--hard");
        }
        self.checked_script(&args, None);
    }

    /// Starts node `node` again on its data and waits until it serves metadata that lists all running nodes. While
    /// fewer than a majority of the nodes run there is no controller quorum, so it returns without waiting; the start
    /// that completes the majority waits for all of them. (Dropping several [`NodeOutage`]s in turn does just that.)
    pub fn start_node(&self, node: i32) {
        self.ensure_managed();
        self.checked_script(&["start-node", &node.to_string()], None);
    }

    /// Stops a node until the returned guard is ended or dropped; dropping it restarts the node even when the test
    /// panicked, so a failing disruptive test does not leave the cluster short of a node for later tests.
    pub fn outage(&self, node: i32, hard: bool) -> NodeOutage<'_> {
        self.stop_node(node, hard);
        NodeOutage {
            cluster: self,
            node,
            ended: false,
        }
    }

    /// How many brokers are registered and unfenced, as the Java Admin client's `describeCluster` reports them.
    /// A killed broker still counts until its session times out (6 s with `scripts/kafka`'s settings).
    pub fn broker_count(&self) -> usize {
        #[derive(Deserialize)]
        struct Brokers {
            brokers: Vec<serde_json::Value>,
        }
        let out = self.checked_tool(
            "inspect",
            &["brokers", "--bootstrap", &self.bootstrap],
            None,
        );
        let brokers: Brokers = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("inspect brokers printed {out:?}: {e}"));
        brokers.brokers.len()
    }

    /// The replication factor for a test topic: 3, or the number of brokers when the cluster has fewer (the 1-node
    /// clusters of other Kafka versions that `scripts/test` runs the producer's tests against). The brokers are
    /// counted once per test process, with [`broker_count`](Cluster::broker_count), so a node stopped later by a
    /// disruptive test does not change it.
    pub fn replication_factor(&self) -> i16 {
        static BROKERS: OnceLock<usize> = OnceLock::new();
        let brokers = *BROKERS.get_or_init(|| self.broker_count());
        assert!(
            brokers > 0,
            "the cluster at {} has no brokers",
            self.bootstrap
        );
        brokers.min(3) as i16
    }

    /// Sends one record per key (value = key) with the Java client's default partitioner and acks=all, and returns
    /// each key with the partition the Java client chose, in the order given.
    pub fn java_produce_keys(&self, topic: &str, keys: &[String]) -> Vec<(String, i32)> {
        #[derive(Deserialize)]
        struct Sent {
            key: String,
            partition: i32,
        }
        let mut input = String::new();
        for key in keys {
            assert!(
                !key.contains(['\n', '\r']),
                "ref-producer keys are lines; {key:?} has a line break"
            );
            input.push_str(key);
            input.push('\n');
        }
        let out = self.checked_tool(
            "ref-producer",
            &["--bootstrap", &self.bootstrap, "--topic", topic],
            Some(input.as_bytes()),
        );
        let sent: Vec<(String, i32)> = out
            .lines()
            .map(|l| {
                let s: Sent = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("ref-producer printed {l:?}: {e}"));
                (s.key, s.partition)
            })
            .collect();
        assert_eq!(sent.len(), keys.len(), "ref-producer printed {out:?}");
        sent
    }

    /// Runs `scripts/kafka tool NAME ARGS...` (a Kafka tool such as `kafka-topics`, or `reader`, `ref-producer`,
    /// `inspect`) and returns its output whatever the exit status. Tool logs are on stderr.
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        self.tool_inner(name, args, None)
    }

    /// [`tool`](Cluster::tool) with `input` on the tool's stdin, e.g. for `kafka-console-producer`.
    pub fn tool_with_input(&self, name: &str, args: &[&str], input: &[u8]) -> Output {
        self.tool_inner(name, args, Some(input))
    }

    /// Grants `principal` (e.g. `User:alice`) what an idempotent producer needs on `topic`: Write and Describe on
    /// the topic, IdempotentWrite on the cluster. Runs `kafka-acls` as the super user ANONYMOUS on the PLAINTEXT
    /// listener; the ACLs reach every broker through the metadata log, a moment later. Panics if the tool fails.
    pub fn grant_write(&self, principal: &str, topic: &str) {
        let bootstrap = self.bootstrap().to_string();
        for args in [
            vec![
                "--topic",
                topic,
                "--operation",
                "Write",
                "--operation",
                "Describe",
            ],
            vec!["--cluster", "--operation", "IdempotentWrite"],
        ] {
            let mut all = vec![
                "--bootstrap-server",
                &bootstrap,
                "--add",
                "--allow-principal",
                principal,
            ];
            all.extend(args);
            let out = self.tool("kafka-acls", &all);
            assert!(
                out.status.success(),
                "kafka-acls: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn tool_inner(&self, name: &str, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut command = self.script();
        command.arg("tool").arg(name).args(args);
        run(command, input, None).unwrap_or_else(|e| panic!("scripts/kafka tool {name}: {e}"))
    }

    fn inspect_topic(&self, command: &str, name: &str) -> Vec<PartitionInfo> {
        #[derive(Deserialize)]
        struct Topic {
            partitions: Vec<PartitionInfo>,
        }
        let out = self.checked_tool(
            "inspect",
            &[command, "--bootstrap", &self.bootstrap, "--topic", name],
            None,
        );
        let topic: Topic =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect printed {out:?}: {e}"));
        topic.partitions
    }

    fn checked_tool(&self, name: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut all = vec!["tool", name];
        all.extend_from_slice(args);
        self.checked_script(&all, stdin)
    }

    /// Runs `scripts/kafka ARGS...` with a time bound; panics with its stderr unless it succeeds; returns stdout.
    fn checked_script(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut command = self.script();
        command.args(args);
        let what = format!("scripts/kafka {}", args.join(" "));
        let output =
            run(command, stdin, Some(CALL_TIMEOUT)).unwrap_or_else(|e| panic!("{what}: {e}"));
        if !output.status.success() {
            panic!(
                "{what} failed ({})\n--- stderr ---\n{}\n--- stdout ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        String::from_utf8(output.stdout)
            .unwrap_or_else(|e| panic!("{what} printed invalid UTF-8: {e}"))
    }

    fn script(&self) -> Command {
        let mut command = Command::new(self.root.join("scripts/kafka"));
        // Relative KAFKA_STATE_DIR values mean the same here as in scripts/test, which runs from the repo root.
        command.current_dir(&self.root);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Where `scripts/kafka` keeps the cluster's state: `KAFKA_STATE_DIR` (relative to the repository root), or
    /// `target/kafka`.
    fn state_dir(&self) -> PathBuf {
        if let Some((_, dir)) = self.env.iter().find(|(k, _)| *k == "KAFKA_STATE_DIR") {
            return self.root.join(dir);
        }
        match std::env::var_os("KAFKA_STATE_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target/kafka"),
        }
    }

    /// The first log segment of a partition on node `node` (its leader, say), for `kafka-dump-log`.
    pub fn first_segment(&self, node: i32, topic: &str, partition: i32) -> PathBuf {
        self.state_dir().join(format!(
            "node{node}/data/{topic}-{partition}/00000000000000000000.log"
        ))
    }

    /// The record batches of a partition's first log segment on its leader, as Kafka's own `kafka-dump-log` reads
    /// them: `(records, bytes)` of each, in offset order.
    pub fn log_batches(&self, topic: &str, partition: i32) -> Vec<(usize, usize)> {
        let leader = self.describe_topic(topic)[partition as usize].leader;
        let segment = self.first_segment(leader, topic, partition);
        let dump = self.checked_tool(
            "kafka-dump-log",
            &["--files", &segment.to_string_lossy()],
            None,
        );
        let number = |line: &str, name: &str| -> usize {
            dump_log_field(line, name)
                .parse()
                .unwrap_or_else(|_| panic!("bad {name} in {line}"))
        };
        dump_log_batches(&dump)
            .into_iter()
            .map(|l| (number(l, "count"), number(l, "size")))
            .collect()
    }

    /// Node control works on the cluster that `scripts/kafka` started from this repository; refuse anything else
    /// rather than stop a node of a different cluster.
    fn ensure_managed(&self) {
        let state = self.state_dir();
        let managed = std::fs::read_to_string(state.join("bootstrap")).unwrap_or_default();
        assert_eq!(
            managed.trim(),
            self.bootstrap,
            "KAFKA_BOOTSTRAP is not the cluster that scripts/kafka runs from {} (its bootstrap file says {:?}); \
             stopping and starting nodes only works on that one",
            state.display(),
            managed.trim()
        );
    }
}

/// A cluster of a test's own, beside the shared one: `scripts/kafka up` with its own state dir and port offset, plain
/// listeners only (no proxy or secure listeners, whatever the environment asks of the shared cluster), and the
/// default Kafka version. For a test that would disturb every other test on the shared cluster, such as stopping all
/// of its nodes. Derefs to its [`Cluster`]; `scripts/kafka down` when dropped, also when the test panicked.
///
/// Its JVMs run beside the shared cluster's, so use it sparingly (one at a time, from a `disruptive_*` test).
#[derive(Debug)]
pub struct OwnCluster {
    cluster: Cluster,
}

impl OwnCluster {
    /// Starts a fresh `nodes`-node cluster (1 or 3) with its state in `state_dir` and every port shifted by
    /// `port_offset` (`KAFKA_PORT_OFFSET`, below 900, different from every other cluster's), and waits until it
    /// serves. Panics with the script's stderr if it does not come up.
    pub fn start(state_dir: &Path, port_offset: u32, nodes: u32) -> OwnCluster {
        crate::time_limit::arm();
        let mut cluster = Cluster::new(String::new());
        cluster.env = vec![
            ("KAFKA_STATE_DIR", state_dir.to_string_lossy().into_owned()),
            ("KAFKA_PORT_OFFSET", port_offset.to_string()),
            ("KAFKA_PROXY_LISTENER", "0".to_string()),
            ("KAFKA_SECURE", "0".to_string()),
            ("KAFKA_FEATURES", String::new()),
            ("KAFKA_VERSION", String::new()),
        ];
        let out = cluster.checked_script(&["up", "--nodes", &nodes.to_string()], None);
        let mut own = OwnCluster { cluster };
        own.take_bootstrap(&out);
        own
    }

    /// With every node stopped ([`Cluster::stop_node`]), moves each node's broker port (listened on and advertised)
    /// by `shift` from its usual one (`scripts/kafka move-broker-ports`); [`Cluster::start_node`] then starts the
    /// nodes there. [`bootstrap`](Cluster::bootstrap) gives the new addresses from then on.
    pub fn move_broker_ports(&mut self, shift: u32) {
        let out = self
            .cluster
            .checked_script(&["move-broker-ports", &shift.to_string()], None);
        self.take_bootstrap(&out);
    }

    /// Takes the bootstrap servers from the `KAFKA_BOOTSTRAP=...` line that `scripts/kafka` prints last.
    fn take_bootstrap(&mut self, out: &str) {
        let line = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("KAFKA_BOOTSTRAP="));
        self.cluster.bootstrap = line
            .unwrap_or_else(|| panic!("scripts/kafka printed no KAFKA_BOOTSTRAP=... line: {out:?}"))
            .trim()
            .to_string();
    }
}

impl std::ops::Deref for OwnCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // No panic here: this may run while the test is already unwinding.
        let mut command = self.cluster.script();
        command.arg("down");
        match run(command, None, Some(CALL_TIMEOUT)) {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "scripts/kafka down of the test's own cluster failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => eprintln!("scripts/kafka down of the test's own cluster failed: {e}"),
        }
    }
}

/// A node stopped by [`Cluster::outage`]; the node is started again by [`end`](NodeOutage::end) or on drop.
#[derive(Debug)]
pub struct NodeOutage<'a> {
    cluster: &'a Cluster,
    node: i32,
    ended: bool,
}

impl NodeOutage<'_> {
    /// Starts the node again and waits until it serves (panics if it does not).
    pub fn end(mut self) {
        self.ended = true;
        self.cluster.start_node(self.node);
    }
}

impl Drop for NodeOutage<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // No panic here: this may run while the test is already unwinding.
        let mut command = self.cluster.script();
        command.args(["start-node", &self.node.to_string()]);
        match run(command, None, Some(CALL_TIMEOUT)) {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "restarting node {} failed: {}",
                self.node,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => eprintln!("restarting node {} failed: {e}", self.node),
        }
    }
}

/// The records the Java reader printed, one JSON object a line.
fn parse_reader_output(out: &str) -> Vec<ReadRecord> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| ReadRecord::from_json_line(l).unwrap_or_else(|e| panic!("reader output: {e}")))
        .collect()
}

/// Runs a command to completion, feeding `stdin`, and kills it when it outlives `timeout`.
fn run(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Output, String> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    let input = stdin.map(<[u8]>::to_vec);
    let mut child_stdin = child.stdin.take();
    let writer = thread::spawn(move || {
        if let (Some(pipe), Some(input)) = (child_stdin.as_mut(), input) {
            // A tool that exits early closes the pipe; its exit status tells what went wrong.
            let _ = pipe.write_all(&input);
        }
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if timeout.is_some_and(|t| started.elapsed() > t) {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            return Err(format!(
                "killed after {:?}; stderr:\n{}",
                timeout.unwrap_or_default(),
                String::from_utf8_lossy(&stderr)
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// The batch lines of a `kafka-dump-log` output (one per batch; record lines start with `| offset:`).
pub fn dump_log_batches(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect()
}

/// The value of ` name: value` in a `kafka-dump-log` batch line; panics if the line has no such field.
pub fn dump_log_field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!(" {name}: "))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 3..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_topics_are_valid_and_distinct() {
        let a = Cluster::random_topic("smoke test/é");
        let b = Cluster::random_topic("smoke test/é");
        assert_ne!(a, b);
        assert!(a.starts_with("smoke_test__-"), "{a}");
        assert!(a.len() <= 249);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{a}"
        );
    }

    #[test]
    fn broker_addresses_split_the_bootstrap() {
        let cluster = Cluster::new("127.0.0.1:19092, 127.0.0.1:29092,".to_string());
        assert_eq!(
            cluster.broker_addresses(),
            ["127.0.0.1:19092", "127.0.0.1:29092"]
        );
    }

    #[test]
    fn finds_the_repository_scripts() {
        let cluster = Cluster::new(String::new());
        assert!(
            cluster.root.join("scripts/kafka").is_file(),
            "{}",
            cluster.root.display()
        );
    }

    #[test]
    fn read_properties_skips_comments_and_keeps_later_equals_signs() {
        let path =
            std::env::temp_dir().join(format!("kprod-props-{}.properties", std::process::id()));
        std::fs::write(
            &path,
            "# comment\n\nsecurity.protocol=SASL_SSL\n sasl.jaas.config = a required b=\"c\";\n",
        )
        .unwrap();
        let props = read_properties(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            props,
            [
                ("security.protocol".to_string(), "SASL_SSL".to_string()),
                (
                    "sasl.jaas.config".to_string(),
                    "a required b=\"c\";".to_string()
                )
            ]
        );
    }

    #[test]
    fn run_feeds_stdin_and_times_out() {
        let mut cat = Command::new("cat");
        cat.arg("-");
        let output = run(cat, Some(b"hello\n"), Some(Duration::from_secs(10))).unwrap();
        assert_eq!(output.stdout, b"hello\n");
        let mut sleep = Command::new("sleep");
        sleep.arg("10");
        assert!(run(sleep, None, Some(Duration::from_millis(100)))
            .unwrap_err()
            .contains("killed"));
    }
}
