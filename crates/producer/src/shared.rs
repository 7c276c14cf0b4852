//! The state the producer handles and the background tasks share, behind one `Arc`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::futures::Notified;
use tokio::sync::{watch, Notify};

use crate::accumulator::{Accumulator, Settings};
use crate::config::ProducerConfig;
use crate::connection::ConnectSettings;
use crate::error::Error;
use crate::metadata::Metadata;
use crate::metrics::{Gauges, Metrics, ProducerMetrics, Window};
use crate::partitioner::Partitioner;
use crate::sasl::Mechanism;
use crate::sender::{Idempotence, Nodes};
use crate::task::CatchPanic;
use crate::transaction::Transactions;

/// Everything the producer handles and the background tasks share.
pub(crate) struct Shared {
    config: ProducerConfig,
    accumulator: Accumulator,
    metadata: Metadata,
    partitioner: Option<Arc<dyn Partitioner>>,
    /// Wakes the sender: a batch was started or closed, an answer came, metadata changed.
    wake: Notify,
    /// No new records; send what is queued, then stop.
    closing: AtomicBool,
    /// Set when the sender task has ended.
    stopped: watch::Sender<bool>,
    nodes: Nodes,
    /// With idempotence: the producer id and epoch.
    idempotence: Option<Idempotence>,
    /// With a `transactional.id`: the transaction state.
    transactions: Option<Transactions>,
    /// Set once if the producer failed for good (a task panicked, authentication failed).
    failure: OnceLock<Error>,
    /// How every connection is made (client id, timeouts, TLS).
    connect: ConnectSettings,
}

impl Shared {
    /// Builds the state; reads the TLS files the configuration names (so fails with
    /// [`Error::Config`] naming the key and the file when one is missing or does not parse).
    pub(crate) fn new(
        config: ProducerConfig,
        partitioner: Option<Arc<dyn Partitioner>>,
    ) -> Result<Self, Error> {
        let sasl = match config.tls.protocol.uses_sasl() {
            true => Some((config.sasl.clone(), config.sasl.validate()?)),
            false => None,
        };
        let client_id = client_id(&config);
        let metrics = Arc::new(ProducerMetrics::new(
            &client_id,
            Window {
                samples: config.metrics_samples,
                window_ms: config.metrics_window.as_millis() as u64,
            },
            config.buffer_memory,
        ));
        let connect = ConnectSettings {
            metrics: metrics.clone(),
            client_id,
            setup_timeout: config.connection_setup_timeout,
            request_timeout: config.request_timeout,
            tls: config.tls.client_config()?,
            sasl: sasl.clone(),
            tokens: match sasl {
                Some((sasl, Mechanism::OAuthBearer)) => {
                    Some(Arc::new(sasl.oauth.cache(&config.tls)?))
                }
                _ => None,
            },
        };
        Ok(Shared {
            accumulator: Accumulator::with_metrics(
                Settings {
                    batch_size: config.batch_size,
                    batch_max_size: config.batch_max_size,
                    max_request_size: config.max_request_size,
                    linger: config.linger,
                    delivery_timeout: config.delivery_timeout,
                    buffer_memory: config.buffer_memory,
                    compression: config.compression.codec(),
                    transactional: config.transactional_id.is_some(),
                    adaptive_partitioning: config.partitioner_adaptive,
                    availability_timeout: config.partitioner_availability_timeout,
                    in_flight_per_partition: if config.idempotent() {
                        config.max_in_flight
                    } else {
                        1
                    },
                },
                metrics,
            ),
            metadata: Metadata::new(),
            partitioner,
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            stopped: watch::channel(false).0,
            nodes: Nodes::default(),
            idempotence: config.idempotent().then(Default::default),
            transactions: config.transactional_id.clone().map(Transactions::new),
            failure: OnceLock::new(),
            connect,
            config,
        })
    }

    /// How to connect to a broker.
    pub(crate) fn connect_settings(&self) -> &ConnectSettings {
        &self.connect
    }

    /// Runs a background task. If it panics, the producer fails as a whole ([`Shared::fail`]):
    /// a task that died holding batches or the sender loop would otherwise leave records
    /// without an outcome and sends waiting for `max.block.ms`.
    pub(crate) fn spawn<F>(self: &Arc<Self>, task: &'static str, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shared = self.clone();
        tokio::spawn(async move {
            if let Err(message) = CatchPanic::new(future).await {
                shared.fail(Error::TaskPanicked { task, message });
            }
        });
    }

    /// Closes the producer for good with `error` (a background task's panic, or an
    /// authentication the brokers refuse): every record without an outcome (queued or in
    /// flight) fails with it, sends waiting for metadata or memory wake and fail with it, later
    /// sends fail with it at once, and `close` returns it. The first failure wins.
    pub(crate) fn fail(&self, error: Error) {
        if self.failure.set(error.clone()).is_err() {
            return;
        }
        tracing::error!(%error, "the producer failed and closed itself");
        self.closing.store(true, Ordering::Release);
        self.accumulator.close_memory();
        self.accumulator.abort_all(&error);
        self.metadata.bump();
        self.nodes.close_all();
        self.set_stopped();
        self.wake_sender();
    }

    /// The error the producer closed itself with ([`Shared::fail`]), if it did.
    pub(crate) fn failure(&self) -> Option<&Error> {
        self.failure.get()
    }

    #[inline]
    pub(crate) fn config(&self) -> &ProducerConfig {
        &self.config
    }

    #[inline]
    pub(crate) fn accumulator(&self) -> &Accumulator {
        &self.accumulator
    }

    #[inline]
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The user's partitioner, consulted before the built-in one.
    #[inline]
    pub(crate) fn partitioner(&self) -> Option<&Arc<dyn Partitioner>> {
        self.partitioner.as_ref()
    }

    /// Makes the sender look again at once: there is something to send or to handle.
    #[inline]
    pub(crate) fn wake_sender(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next [`Shared::wake_sender`], or at once if one came since the last.
    pub(crate) fn sender_woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Takes no new records from now on: the sender sends what is queued, then stops. Returns
    /// false if closing had begun already.
    pub(crate) fn begin_close(&self) -> bool {
        !self.closing.swap(true, Ordering::AcqRel)
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Sees `true` once the sender task has ended.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// The sender task has ended.
    pub(crate) fn set_stopped(&self) {
        self.stopped.send_replace(true);
    }

    pub(crate) fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// `None` without idempotence.
    pub(crate) fn idempotence(&self) -> Option<&Idempotence> {
        self.idempotence.as_ref()
    }

    /// The producer's metrics (the accumulator holds them; so does every connection).
    #[inline]
    pub(crate) fn metrics(&self) -> &ProducerMetrics {
        &self.accumulator.metrics
    }

    /// A snapshot of every metric.
    pub(crate) fn metrics_snapshot(&self) -> Metrics {
        let updated = self.metadata.snapshot().updated;
        self.metrics().snapshot(Gauges {
            buffer_total: self.accumulator.buffer_memory(),
            buffer_available: self.accumulator.buffer_available(),
            metadata_age: updated.map(|u| u.elapsed()),
        })
    }

    /// `None` without a `transactional.id`.
    #[inline]
    pub(crate) fn transactions(&self) -> Option<&Transactions> {
        self.transactions.as_ref()
    }
}

/// The producer's client id: `client.id`, or when it is empty, as the Java client makes one,
/// `producer-` and the `transactional.id`, or `producer-N` (N counting the producers this process
/// made from 1). Brokers log it and apply quotas by it, and it tells one producer's metrics from
/// another's.
fn client_id(config: &ProducerConfig) -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    match (&config.client_id, &config.transactional_id) {
        (id, _) if !id.is_empty() => id.clone(),
        (_, Some(txn)) => format!("producer-{txn}"),
        _ => format!("producer-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kafka_producer_testkit::{FakeBroker, FakeConfig};

    use crate::{Error, Producer, ProducerConfig, ProducerRecord};

    /// Far shorter than `max.block.ms` and `delivery.timeout.ms` (60 s, 120 s): an outcome within
    /// it came from the failure, not from a timeout.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn is_injected(e: &Error, task: &str) -> bool {
        matches!(e, Error::TaskPanicked { task: t, message } if *t == task && message.contains("injected"))
    }

    #[test]
    fn an_empty_client_id_becomes_javas_generated_one() {
        let mut c = ProducerConfig::new("localhost:9092");
        c.set("client.id", "billing").unwrap();
        assert_eq!(super::client_id(&c), "billing");
        c.set("client.id", "").unwrap();
        let (a, b) = (super::client_id(&c), super::client_id(&c));
        let n = |id: &str| {
            id.strip_prefix("producer-")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(n(&b) > n(&a), "{a} then {b}");
        c.set("transactional.id", "orders-1").unwrap();
        assert_eq!(super::client_id(&c), "producer-orders-1");
    }

    #[tokio::test]
    async fn a_panicking_background_task_fails_pending_records_and_every_later_send() {
        for task in ["sender", "produce"] {
            let broker = FakeBroker::start(FakeConfig {
                topics: vec![("t".into(), 2)],
                ..FakeConfig::default()
            })
            .await;
            let mut config = ProducerConfig::new(&broker.addr());
            config
                .set("client.id", &format!("test-panic-in-{task}"))
                .unwrap();
            let producer = Producer::new(config).await.unwrap();
            let record = || ProducerRecord::new("t").key("k").value("v");
            let delivery = producer.send(record()).await.unwrap();
            let outcome = tokio::time::timeout(PATIENCE, delivery).await;
            let error = outcome.expect("the record's outcome").unwrap_err();
            assert!(is_injected(&error, task), "{task}: {error}");
            assert!(error.possibly_persisted());

            let later = tokio::time::timeout(PATIENCE, producer.send(record())).await;
            let error = later.expect("a send after the panic returns").unwrap_err();
            assert!(is_injected(&error, task), "{task}: {error}");
            // A topic never seen would wait for its metadata up to max.block.ms.
            let new_topic = ProducerRecord::new("never-seen").key("k").value("v");
            let later = tokio::time::timeout(PATIENCE, producer.send(new_topic)).await;
            let error = later.expect("a send after the panic returns").unwrap_err();
            assert!(is_injected(&error, task), "{task}: {error}");
            match producer.try_send(record()).unwrap_err().reason {
                crate::NotQueued::Failed(error) => {
                    assert!(is_injected(&error, task), "{task}: {error}")
                }
                other => panic!("{task}: {other}"),
            }

            let closed =
                tokio::time::timeout(PATIENCE, producer.close(Duration::from_secs(60))).await;
            let error = closed.expect("close returns").unwrap_err();
            assert!(is_injected(&error, task), "{task}: {error}");
            assert_eq!(producer.pending_records(), 0);
        }
    }
}
