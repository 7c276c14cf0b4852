//! Test support: the real local Kafka cluster and the independent reader.
//!
//! Integration tests get the cluster that `scripts/kafka up` started from the `KAFKA_BOOTSTRAP` environment variable:
//!
//! ```no_run
//! # fn main() {
//! let Some(cluster) = kafka_producer_testkit::cluster() else { return };
//! let topic = kafka_producer_testkit::Cluster::random_topic("smoke");
//! cluster.create_topic(&topic, 3, 3, &[]);
//! // ... produce with the client under test ...
//! let records = cluster.read_topic(&topic);
//! # let _ = records;
//! # }
//! ```
//!
//! Without `KAFKA_BOOTSTRAP` such a test prints `SKIPPED: <test> needs KAFKA_BOOTSTRAP` and passes, so `cargo test`
//! works on a machine without Java. `scripts/test` and CI set `KPROD_REQUIRE_KAFKA=1`, which turns a missing cluster
//! into a failure: a CI run never goes green without having talked to Kafka.
//!
//! Everything that checks what reached the broker goes through Kafka's own Java client and tools (`scripts/kafka
//! tool ...`), never through this project's code, so a bug in our protocol layer cannot hide itself.
//!
//! # Disruptive tests
//!
//! A test that stops or restarts nodes, or changes the whole cluster (such as [`Cluster::set_transaction_version`]),
//! would break tests running beside it. Such tests have names starting with `disruptive_`; `scripts/test` runs
//! everything else first (`--skip disruptive_`) and then the disruptive ones alone (`--test-threads=1`). Use
//! [`Cluster::outage`] in them so that the node comes back even when the test fails, and put a changed cluster back
//! the same way.
//!
//! # Secure cluster
//!
//! `scripts/kafka up --secure` adds SSL, SASL_PLAINTEXT, SASL_SSL and mutual-TLS listeners, SCRAM/PLAIN/OAUTHBEARER
//! users and an authorizer, and writes one Java client properties file per listener and user into a directory it
//! prints as `KAFKA_SECURE_CLIENT_DIR` ([`secure_client_dir`]; `scripts/kafka --help` lists the files). Tests grant
//! ACLs with [`Cluster::tool`] (`kafka-acls`; the PLAINTEXT bootstrap is a super user) and check what arrived with
//! [`Cluster::read_topic_with`].
//!
//! # Transactions
//!
//! [`Cluster::read_topic_committed`] reads as a `read_committed` consumer (no aborted records, nothing from the first
//! open transaction on); [`Cluster::read_topic`] shows every record in the log. [`Cluster::group_offsets`] gives the
//! offsets a group has committed, e.g. through `sendOffsetsToTransaction`. A fresh cluster runs `transaction.version`
//! 2 (KIP-890); [`Cluster::set_transaction_version`] changes it at run time, in a disruptive test.
//!
//! # Time limits
//!
//! A test that calls [`cluster`] or [`FakeBroker::start`] runs under a time limit (300 s, twice that for disruptive
//! tests; `KPROD_TEST_TIME_LIMIT` sets it in seconds). A test still running at its limit is named on stderr and
//! its test binary exits with status 101, so a hang fails fast instead of eating the CI budget.

mod broker;
mod cluster;
mod idp;
mod pki;
mod proxy;
mod record;
mod time_limit;

pub use broker::{
    Corruption, FakeBroker, FakeConfig, Fault, ProduceAttempt, Rule, RuleBuilder, RuleHandle,
    Storage, StoredRecord, TxnDetail, TxnRequest,
};
pub use cluster::{
    cluster, dump_log_batches, dump_log_field, read_properties, secure_client_dir, secure_cluster,
    wait_until, Cluster, NodeOutage, OwnCluster, PartitionInfo,
};
pub use idp::{unsecured_jwt, TokenEndpoint, TokenRequest};
pub use pki::TestPki;
pub use proxy::{Cut, FaultProxy};
pub use record::ReadRecord;
