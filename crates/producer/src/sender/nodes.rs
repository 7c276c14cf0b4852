//! Broker connections: one per broker, opened in the background, with backoff after failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_producer_protocol::kafka_protocol::messages::ApiKey;
use kafka_producer_protocol::kafka_protocol::protocol::Request;

use crate::config::{DnsLookup, MetadataRecoveryStrategy};
use crate::connection::{canonical_servers, Connection};
use crate::error::Error;
use crate::shared::Shared;

/// Each broker's connection, or why it has none now.
#[derive(Default)]
pub(crate) struct Nodes(Mutex<HashMap<i32, NodeState>>);

enum NodeState {
    Ready(Connection),
    /// `last_error`: why the attempt before this one failed, if it did.
    Connecting {
        last_error: Option<Error>,
    },
    Backoff {
        until: Instant,
        failures: u32,
        /// Why the last attempt failed: a record that expires waiting for this broker says so.
        error: Error,
    },
}

impl NodeState {
    /// Why the node's last connection attempt failed, while it has no connection.
    fn error(&self) -> Option<Error> {
        match self {
            NodeState::Backoff { error, .. } => Some(error.clone()),
            NodeState::Connecting { last_error } => last_error.clone(),
            NodeState::Ready(_) => None,
        }
    }
}

impl Shared {
    /// The connection to `node` if it is up; otherwise starts connecting (in the background,
    /// so one unreachable broker never holds up the others) and returns `None`.
    pub(super) fn connection(self: &Arc<Self>, node: i32, now: Instant) -> Option<Connection> {
        let mut nodes = self.nodes().lock();
        let failures = match nodes.get(&node) {
            Some(NodeState::Ready(c)) if !c.is_closed() && !c.renewal_due(now) => {
                return Some(c.clone())
            }
            // The SASL session is about to end (KIP-368): nothing new goes on this connection;
            // once its requests in flight are answered it is replaced by a fresh one, which
            // authenticates again. One connection per broker at a time keeps partitions in order.
            Some(NodeState::Ready(c)) if !c.is_closed() && c.in_flight() > 0 => return None,
            Some(NodeState::Ready(c)) if !c.is_closed() => {
                tracing::debug!(
                    node,
                    "SASL session ending; reconnecting to authenticate again"
                );
                c.close();
                0
            }
            Some(NodeState::Connecting { .. }) => return None,
            Some(NodeState::Backoff { until, .. }) if *until > now => return None,
            Some(NodeState::Backoff { failures, .. }) => *failures,
            _ => 0,
        };
        let last_error = nodes.get(&node).and_then(NodeState::error);
        let Some(addr) = self.metadata().snapshot().brokers.get(&node).cloned() else {
            self.metadata().request_refresh();
            return None;
        };
        nodes.insert(node, NodeState::Connecting { last_error });
        let shared = self.clone();
        self.spawn("connect", async move {
            let c = shared.config();
            let result = Connection::connect(&addr, node, shared.connect_settings()).await;
            let state = match result {
                Ok(conn) => NodeState::Ready(conn),
                // Credentials or certificates the broker refuses (or we refuse its): no retry
                // changes that, so every record fails now, not at delivery.timeout.ms.
                Err(e @ Error::Authentication { .. }) => {
                    tracing::error!(node, %addr, error = %e, "authentication failed");
                    shared.fail(e);
                    return;
                }
                // A broker older than this client's oldest (Kafka 0.11): likewise for good.
                Err(e @ Error::UnsupportedVersion { .. }) => {
                    tracing::error!(node, %addr, error = %e, "broker too old");
                    shared.fail(e);
                    return;
                }
                Err(e) => {
                    tracing::warn!(node, %addr, error = %e, "cannot connect to broker");
                    shared.metadata().request_refresh();
                    NodeState::Backoff {
                        until: Instant::now() + reconnect_backoff(c.reconnect_backoff, failures),
                        failures: failures + 1,
                        error: e,
                    }
                }
            };
            shared.nodes().set(node, state);
            shared.wake_sender();
        });
        None
    }

    /// Sends `req` (an `api` request) to one broker after another until one answers, at the
    /// highest version both sides speak (see [`Shared::on_any_broker`]).
    pub(crate) async fn call_any_broker<R: Request>(
        &self,
        api: ApiKey,
        req: &R,
    ) -> Result<R::Response, Error> {
        self.on_any_broker(|conn| async move {
            let version = conn.version(api)?;
            conn.call(req, version).await
        })
        .await
    }

    /// Runs `op` on one broker after another until it succeeds: open connections first, then
    /// the known brokers, then each bootstrap server (resolved again each time, as
    /// `client.dns.lookup` says: a rebootstrap, KIP-899), unless `metadata.recovery.strategy` is
    /// `none` and metadata has come already. A broker that accepts the connection but fails the
    /// request does not stop the search; one that refuses our credentials or certificate does,
    /// with its [`Error::Authentication`], and so does one too old for this client
    /// ([`Error::UnsupportedVersion`]). Otherwise fails with [`Error::Bootstrap`] naming every
    /// address tried and what happened there.
    pub(crate) async fn on_any_broker<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let open = self.nodes().open();
        let mut failures = Vec::new();
        for conn in open {
            match op(conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => failures.push(format!("{}: {e}", conn.addr())),
            }
        }
        let snapshot = self.metadata().snapshot();
        let mut known: Vec<(Option<i32>, String)> = snapshot
            .brokers
            .iter()
            .map(|(&id, a)| (Some(id), a.clone()))
            .collect();
        known.sort();
        let rebootstrap = snapshot.updated.is_none()
            || self.config().metadata_recovery == MetadataRecoveryStrategy::Rebootstrap;
        let bootstrap = match rebootstrap {
            true => self.bootstrap_servers().await,
            false => Vec::new(),
        };
        let bootstrap = bootstrap.into_iter().map(|a| (None, a));
        // A bootstrap server's metrics go under a negative id, in order, as in the Java client.
        let mut bootstrap_index = 0;
        for (node, addr) in known.into_iter().chain(bootstrap) {
            let id = node.unwrap_or_else(|| {
                bootstrap_index -= 1;
                bootstrap_index
            });
            let conn = match Connection::connect(&addr, id, self.connect_settings()).await {
                Ok(conn) => match node {
                    Some(node) => self
                        .nodes()
                        .set(node, NodeState::Ready(conn))
                        .expect("a Ready state yields its connection"),
                    None => conn,
                },
                // The same credentials go to every broker: a refusal is the answer. So is a
                // broker too old for this client: its cluster is.
                Err(e @ (Error::Authentication { .. } | Error::UnsupportedVersion { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    failures.push(format!("{addr}: {e}"));
                    continue;
                }
            };
            match op(conn.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if node.is_none() {
                        conn.close();
                    }
                    failures.push(format!("{addr}: {e}"));
                }
            }
        }
        if !rebootstrap {
            failures.push(
                "not tried again: metadata.recovery.strategy=none asks only the brokers of the \
                 last metadata"
                    .to_string(),
            );
        }
        Err(Error::Bootstrap {
            servers: self.config().bootstrap_servers.join(","),
            details: failures.join("; "),
        })
    }
}

impl Shared {
    /// `bootstrap.servers`, as `client.dns.lookup` says to reach them: resolved afresh at each
    /// use, so a bootstrap name that points elsewhere now is followed.
    async fn bootstrap_servers(&self) -> Vec<String> {
        let servers = &self.config().bootstrap_servers;
        match self.config().dns_lookup {
            DnsLookup::UseAllDnsIps => servers.clone(),
            DnsLookup::CanonicalBootstrap => canonical_servers(servers).await,
        }
    }

    /// The connection to `node` (at `addr`, as a coordinator lookup gave it): the open one, or
    /// a new one made now and kept as the node's.
    pub(crate) async fn connection_to(&self, node: i32, addr: &str) -> Result<Connection, Error> {
        let open = match self.nodes().lock().get(&node) {
            Some(NodeState::Ready(c)) if !c.is_closed() && !c.renewal_due(Instant::now()) => {
                Some(c.clone())
            }
            _ => None,
        };
        if let Some(c) = open {
            return Ok(c);
        }
        let conn = Connection::connect(addr, node, self.connect_settings()).await?;
        Ok(self
            .nodes()
            .set(node, NodeState::Ready(conn))
            .expect("a Ready state yields its connection"))
    }
}

impl Nodes {
    /// Why the last connection to `node` failed, while it has none.
    pub(crate) fn connection_error(&self, node: i32) -> Option<Error> {
        self.lock().get(&node)?.error()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, NodeState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a node's new state, keeping an open connection that is already there: one
    /// connection per broker, so a partition's requests are never reordered across two sockets.
    /// Returns the node's open connection, if it has one now.
    fn set(&self, node: i32, state: NodeState) -> Option<Connection> {
        let mut nodes = self.lock();
        if let Some(NodeState::Ready(open)) = nodes.get(&node) {
            if !open.is_closed() {
                if let NodeState::Ready(extra) = state {
                    extra.close();
                }
                return Some(open.clone());
            }
        }
        let open = match &state {
            NodeState::Ready(c) => Some(c.clone()),
            _ => None,
        };
        nodes.insert(node, state);
        open
    }

    /// The connections that are open.
    fn open(&self) -> Vec<Connection> {
        self.lock()
            .values()
            .filter_map(|s| match s {
                NodeState::Ready(c) if !c.is_closed() && !c.renewal_due(Instant::now()) => {
                    Some(c.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Ends every connection.
    pub(crate) fn close_all(&self) {
        let nodes = std::mem::take(&mut *self.lock());
        for state in nodes.into_values() {
            if let NodeState::Ready(c) = state {
                c.close();
            }
        }
    }
}

fn reconnect_backoff(initial: Duration, failures: u32) -> Duration {
    initial
        .saturating_mul(1u32 << failures.min(10))
        .min(Duration::from_secs(1))
}
