//! `kprod._core.Producer`: the Rust producer for one `KafkaProducer`. It takes the Java
//! properties that `kprod.KafkaProducer` made from kafka-python's keywords; `send` takes
//! kafka-python's arguments, so the Python class can hand its callers this `send` directly.

use std::collections::hash_map::{Entry, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_producer::{
    BoxError, ConsumerGroupMetadata, Error, NotQueued, OAuthToken, OffsetAndMetadata,
    Producer as Core, ProducerConfig, ProducerRecord, TopicPartition,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PySet, PyString, PyTuple};

use crate::dispatch::Dispatcher;
use crate::future::{log_error, FutureRecordMetadata};
use crate::{errors, runtime, wait};

/// "No limit" for `close`: long enough, short enough for `Instant` arithmetic.
const NO_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `max.block.ms` when the properties do not set it (the core's default).
const DEFAULT_MAX_BLOCK: Duration = Duration::from_secs(60);

/// A token provider's token lives this long when it is not a JWT (kafka-python's providers
/// return a bare string).
const OPAQUE_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[pyclass(module = "kprod._core", frozen)]
pub(crate) struct Producer {
    core: Core,
    rt: Arc<tokio::runtime::Runtime>,
    /// The process that made it, and the fork count then ([`crate::forks`]): after `fork` the
    /// child cannot use it.
    pid: u32,
    forks: u64,
    dispatcher: Arc<Dispatcher>,
    key_serializer: Option<Py<PyAny>>,
    value_serializer: Option<Py<PyAny>>,
    /// `max.block.ms`: the time limit of each transactional call, as in kafka-python.
    max_block: Duration,
    closed: AtomicBool,
    /// The last topic `str` object and its text: a loop sends to the same object again and
    /// again, and reading a `str`'s UTF-8 copies it (the stable ABI of 3.9 has no borrowed view).
    last_topic: Mutex<Option<(Py<PyString>, Arc<str>)>>,
}

/// One partition's offset for `send_offsets_to_transaction`, as `kprod.producer._offsets` gives
/// it: topic, partition, offset, metadata, leader epoch.
type PartitionOffset = (String, i32, i64, Option<String>, Option<i32>);

/// Serialized key or value bytes: borrowed from a `bytes` object, else copied.
enum Data<'py> {
    Borrowed(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Data<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Data::Borrowed(b) => b.as_bytes(),
            Data::Owned(v) => v,
        }
    }
}

/// `obj` through `serializer` (if any), as bytes. A `str` without a serializer is UTF-8
/// (kafka-python raises `TypeError` there).
fn serialized<'py>(
    py: Python<'py>,
    serializer: Option<&Py<PyAny>>,
    obj: Option<Bound<'py, PyAny>>,
    part: &str,
) -> PyResult<Option<Data<'py>>> {
    let Some(obj) = obj else {
        return Ok(None);
    };
    let obj = match serializer {
        Some(s) => s.bind(py).call1((obj,))?,
        None => obj,
    };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(Data::Borrowed(b.clone())));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(Data::Owned(s.to_cow()?.as_bytes().to_vec())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Some(Data::Owned(b.to_vec())));
    }
    if obj.hasattr("tobytes")? {
        // memoryview (and anything else with the buffer's `tobytes`).
        let b = obj.call_method0("tobytes")?;
        if let Ok(b) = b.cast::<PyBytes>() {
            return Ok(Some(Data::Borrowed(b.clone())));
        }
    }
    Err(PyTypeError::new_err(format!(
        "Unsupported type for serialized {part}: {}",
        obj.get_type().name()?
    )))
}

impl Producer {
    /// The text of `topic`, from the cache when it is the same object as last time.
    fn topic_name(&self, topic: &Bound<'_, PyString>) -> PyResult<Arc<str>> {
        let mut last = self.last_topic.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((object, name)) = last.as_ref() {
            if object.as_ptr() == topic.as_ptr() {
                return Ok(name.clone());
            }
        }
        let name: Arc<str> = topic.to_cow()?.into();
        let previous = last.replace((topic.clone().unbind(), name.clone()));
        drop(last);
        // Dropped without the lock held: a `str` subclass's `__del__` may run.
        drop(previous);
        Ok(name)
    }

    fn in_child(&self) -> bool {
        crate::forks() != self.forks
    }

    fn usable(&self) -> PyResult<()> {
        if self.in_child() {
            return Err(errors::state(format!(
                "this KafkaProducer was made in process {} and cannot be used after fork; make a \
                 new one in the child",
                self.pid
            )));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::state("KafkaProducer already closed!".into()));
        }
        Ok(())
    }

    /// The `DeliveryFailedError` for a failed flush.
    fn delivery_failed(py: Python<'_>, failed: usize, first: &Error) -> PyErr {
        let made = (|| -> PyResult<PyErr> {
            let first = errors::to_py(py, first).value(py).clone();
            let e = py
                .import("kprod.errors")?
                .getattr("DeliveryFailedError")?
                .call1((
                    format!(
                        "{failed} record batch(es) failed since the last flush; first: {first}"
                    ),
                    failed,
                    first,
                ))?;
            Ok(PyErr::from_value(e))
        })();
        made.unwrap_or_else(|e| e)
    }
}

/// A kafka-python token provider (an object with `token()`) as the core's provider: called on a
/// blocking thread with the GIL, its string read as a JWT for its lifetime.
fn token_provider(
    provider: Py<PyAny>,
) -> impl Fn() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<OAuthToken, BoxError>> + Send>,
> + Send
       + Sync
       + 'static {
    let provider = Arc::new(provider);
    move || {
        let provider = provider.clone();
        Box::pin(async move {
            let token = tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    provider
                        .bind(py)
                        .call_method0("token")
                        .and_then(|t| t.extract::<String>())
                        .map_err(|e| e.to_string())
                })
            })
            .await
            .map_err(|e| BoxError::from(e.to_string()))??;
            Ok(OAuthToken::from_jwt(token.clone())
                .unwrap_or_else(|_| OAuthToken::new(token, OPAQUE_TOKEN_LIFETIME)))
        })
    }
}

#[pymethods]
impl Producer {
    /// Connects with `properties` (Java names) and learns the cluster, waiting without the GIL.
    #[new]
    #[pyo3(signature = (properties, key_serializer=None, value_serializer=None, oauth_token_provider=None))]
    fn new(
        py: Python<'_>,
        properties: Vec<(String, String)>,
        key_serializer: Option<Py<PyAny>>,
        value_serializer: Option<Py<PyAny>>,
        oauth_token_provider: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        // The config checked it; the last one counts, as in `from_properties`.
        let max_block = properties
            .iter()
            .rev()
            .find(|(key, _)| key == "max.block.ms")
            .and_then(|(_, ms)| ms.trim().parse::<u64>().ok())
            .map_or(DEFAULT_MAX_BLOCK, |ms| {
                Duration::from_millis(ms).min(NO_LIMIT)
            });
        let mut config =
            ProducerConfig::from_properties(properties).map_err(|e| errors::to_py(py, &e))?;
        if let Some(provider) = oauth_token_provider {
            config = config.with_oauth_token_provider(token_provider(provider));
        }
        let rt = runtime()?;
        let core = wait(py, &rt, Core::new(config), None)?
            .expect("no time limit")
            .map_err(|e| errors::to_py(py, &e))?;
        Ok(Producer {
            core,
            rt,
            pid: std::process::id(),
            forks: crate::forks(),
            dispatcher: Arc::default(),
            key_serializer,
            value_serializer,
            max_block,
            closed: AtomicBool::new(false),
            last_topic: Mutex::new(None),
        })
    }

    /// kafka-python's `send`: queues the record and returns its `FutureRecordMetadata`. Waits
    /// (without the GIL) only for the topic's metadata or buffer space, up to `max_block_ms`.
    #[pyo3(signature = (topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None))]
    #[allow(clippy::too_many_arguments)] // kafka-python's signature
    fn send<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyString>,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        partition: Option<i32>,
        timestamp_ms: Option<i64>,
    ) -> PyResult<FutureRecordMetadata> {
        self.send_inner(
            py,
            topic,
            value,
            key,
            headers,
            partition,
            timestamp_ms,
            true,
        )
        .map(|f| f.expect("waits when it must"))
    }

    /// As `send`, but returns `None` instead of waiting for metadata or buffer space (for
    /// asyncio, which then waits on an executor thread).
    #[pyo3(signature = (topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None))]
    #[allow(clippy::too_many_arguments)] // kafka-python's signature
    fn send_nowait<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyString>,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        partition: Option<i32>,
        timestamp_ms: Option<i64>,
    ) -> PyResult<Option<FutureRecordMetadata>> {
        self.send_inner(
            py,
            topic,
            value,
            key,
            headers,
            partition,
            timestamp_ms,
            false,
        )
    }

    /// Sends everything now and waits (without the GIL) until every record sent before has its
    /// outcome and its callbacks have run. `KafkaTimeoutError` after `timeout` seconds. With
    /// `raise_on_failure`, raises `DeliveryFailedError` if any of those records failed.
    #[pyo3(signature = (timeout=None, raise_on_failure=false))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>, raise_on_failure: bool) -> PyResult<()> {
        self.usable()?;
        let timeout = crate::seconds(timeout)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let timed_out = |py| {
            errors::timeout(
                py,
                format!(
                    "Failed to flush accumulated records within {:.1} secs",
                    timeout.map_or(f64::INFINITY, |t| t.as_secs_f64())
                ),
            )
        };
        let core = self.core.clone();
        let flushed = wait(py, &self.rt, async move { core.flush().await }, timeout)?;
        let failure = match flushed {
            None => return Err(timed_out(py)),
            Some(Ok(())) => None,
            Some(Err(Error::FlushFailed { failed, first })) => Some((failed, first)),
            Some(Err(e)) => return Err(errors::to_py(py, &e)),
        };
        if !self.dispatcher.wait_idle(py, deadline)? {
            return Err(timed_out(py));
        }
        if let Some((failed, first)) = failure {
            let e = Self::delivery_failed(py, failed, &first);
            if raise_on_failure {
                return Err(e);
            }
            log_error(py, "records failed since the last flush", &e);
        }
        Ok(())
    }

    /// Flushes and stops, waiting up to `timeout` seconds (`None`: until every record has its
    /// outcome, at most `delivery_timeout_ms`); records still pending then fail with
    /// `ProducerClosedError`. Idempotent.
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        if self.in_child() {
            // The parent's threads are not here; there is nothing to close in this process.
            self.closed.store(true, Ordering::Release);
            return Ok(());
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let timeout = crate::seconds(timeout)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let core = self.core.clone();
        let limit = timeout.unwrap_or(NO_LIMIT);
        let closed = wait(py, &self.rt, async move { core.close(limit).await }, None)?
            .expect("no time limit");
        match closed {
            Ok(()) => {}
            Err(e @ Error::CloseTimedOut { .. }) => {
                let e = errors::to_py(py, &e);
                log_error(py, "closed before every record had its outcome", &e);
            }
            // A transactional producer that failed for good (fenced): the call that met it
            // raised it and every pending record failed with it; closing is what the caller
            // must do then, and kafka-python's close does not raise it again.
            Err(Error::TransactionFatal { .. }) => {}
            Err(e) => {
                self.dispatcher.stop(py, deadline)?;
                return Err(errors::to_py(py, &e));
            }
        }
        // Until every due callback has run, within the same timeout.
        self.dispatcher.stop(py, deadline)
    }

    /// The topic's partition ids, waiting up to `max_block_ms` for its metadata.
    fn partitions_for<'py>(&self, py: Python<'py>, topic: &str) -> PyResult<Bound<'py, PySet>> {
        self.usable()?;
        let core = self.core.clone();
        let topic = topic.to_string();
        let partitions = wait(
            py,
            &self.rt,
            async move { core.partitions(&topic).await },
            None,
        )?
        .expect("no time limit")
        .map_err(|e| errors::to_py(py, &e))?;
        PySet::new(py, partitions.iter().map(|p| p.partition))
    }

    /// kafka-python's `init_transactions`: the producer id for `transactional.id`, fencing any
    /// earlier producer with the same id. The transactional calls wait without the GIL, each at
    /// most `max_block_ms` (then `KafkaTimeoutError`; calling again waits for the same call).
    fn init_transactions(&self, py: Python<'_>) -> PyResult<()> {
        self.usable()?;
        let (core, timeout) = (self.core.clone(), self.max_block);
        self.transactional(py, async move { core.init_transactions(timeout).await })
    }

    /// kafka-python's `begin_transaction`: needs no network.
    fn begin_transaction(&self, py: Python<'_>) -> PyResult<()> {
        self.usable()?;
        self.core
            .begin_transaction()
            .map_err(|e| errors::to_py(py, &e))
    }

    /// kafka-python's `send_offsets_to_transaction`, its arguments taken apart by
    /// `kprod.producer`: `(topic, partition, offset, metadata, leader_epoch)` per partition and
    /// the group's `ConsumerGroupMetadata` fields.
    #[pyo3(signature = (offsets, group_id, generation_id=-1, member_id=String::new(), group_instance_id=None))]
    fn send_offsets_to_transaction(
        &self,
        py: Python<'_>,
        offsets: Vec<PartitionOffset>,
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
    ) -> PyResult<()> {
        self.usable()?;
        let offsets: Vec<_> = offsets
            .into_iter()
            .map(|(topic, partition, offset, metadata, leader_epoch)| {
                let mut om = OffsetAndMetadata::new(offset);
                om.metadata = metadata;
                om.leader_epoch = leader_epoch;
                (TopicPartition::new(topic, partition), om)
            })
            .collect();
        let mut group = ConsumerGroupMetadata::new(group_id).with_member(generation_id, member_id);
        if let Some(id) = group_instance_id {
            group = group.with_group_instance_id(id);
        }
        let (core, timeout) = (self.core.clone(), self.max_block);
        self.transactional(py, async move {
            core.send_offsets_to_transaction(offsets, &group, timeout)
                .await
        })
    }

    /// kafka-python's `commit_transaction`: sends the transaction's records, waits for them,
    /// then commits.
    fn commit_transaction(&self, py: Python<'_>) -> PyResult<()> {
        self.usable()?;
        let (core, timeout) = (self.core.clone(), self.max_block);
        self.transactional(py, async move { core.commit_transaction(timeout).await })
    }

    /// kafka-python's `abort_transaction`.
    fn abort_transaction(&self, py: Python<'_>) -> PyResult<()> {
        self.usable()?;
        let (core, timeout) = (self.core.clone(), self.max_block);
        self.transactional(py, async move { core.abort_transaction(timeout).await })
    }

    /// The transaction protocol in use (1, or 2 for KIP-890); `None` before `init_transactions`
    /// or without `transactional_id`.
    fn transaction_version(&self) -> Option<i16> {
        self.core.transaction_version()
    }

    /// Records queued whose outcome is not known yet.
    fn pending_records(&self) -> usize {
        self.core.pending_records()
    }

    /// Whether the producer is open (it learnt the cluster from `bootstrap_servers` when made).
    fn bootstrap_connected(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.in_child()
    }

    /// The core's metrics (the Java client's names), as kafka-python's `metrics()` gives them:
    /// `{group: {name: value}}`, where a topic's group is `producer-topic-metrics.TOPIC` and a
    /// broker's `producer-node-metrics.node-ID`. With `raw`, a list of `{"group", "name",
    /// "tags", "description", "value"}` dicts, one per metric, `group` without the tag. Values
    /// are floats; one not known yet is NaN, as in kafka-python.
    #[pyo3(signature = (raw = false))]
    fn metrics<'py>(&self, py: Python<'py>, raw: bool) -> PyResult<Bound<'py, PyAny>> {
        if self.in_child() {
            // The parent's threads may have held the metrics' locks at the fork.
            self.usable()?;
        }
        let snapshot = self.core.metrics();
        if raw {
            let list = PyList::empty(py);
            for m in &snapshot {
                let tags = PyDict::new(py);
                for (key, value) in &m.tags {
                    tags.set_item(*key, value)?;
                }
                let metric = PyDict::new(py);
                metric.set_item("group", m.group)?;
                metric.set_item("name", m.name)?;
                metric.set_item("tags", tags)?;
                metric.set_item("description", m.description)?;
                metric.set_item("value", m.value)?;
                list.append(metric)?;
            }
            return Ok(list.into_any());
        }
        let groups = PyDict::new(py);
        let mut made: HashMap<String, Bound<'py, PyDict>> = HashMap::new();
        for m in &snapshot {
            let group = kafka_python_group(m);
            let names = match made.entry(group) {
                Entry::Occupied(names) => names.into_mut(),
                Entry::Vacant(entry) => {
                    let names = PyDict::new(py);
                    groups.set_item(entry.key(), &names)?;
                    entry.insert(names)
                }
            };
            names.set_item(m.name, m.value)?;
        }
        Ok(groups.into_any())
    }
}

/// kafka-python's group name for a metric: the group, then `.TOPIC` for a topic's and
/// `.node-ID` for a broker's.
fn kafka_python_group(m: &kafka_producer::Metric) -> String {
    let tag = match m.group {
        kafka_producer::metrics::TOPIC_GROUP => m.tag("topic"),
        kafka_producer::metrics::NODE_GROUP => m.tag("node-id"),
        _ => None,
    };
    match tag {
        Some(tag) => format!("{}.{tag}", m.group),
        None => m.group.to_string(),
    }
}

impl Producer {
    /// Waits (without the GIL) for a transactional call, which keeps its own time limit.
    fn transactional<F>(&self, py: Python<'_>, call: F) -> PyResult<()>
    where
        F: std::future::Future<Output = kafka_producer::Result<()>> + Send,
    {
        wait(py, &self.rt, call, None)?
            .expect("no time limit")
            .map_err(|e| errors::to_py(py, &e))
    }

    #[allow(clippy::too_many_arguments)]
    fn send_inner<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyString>,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        partition: Option<i32>,
        timestamp_ms: Option<i64>,
        may_wait: bool,
    ) -> PyResult<Option<FutureRecordMetadata>> {
        self.usable()?;
        let value = value.filter(|v| !v.is_none());
        let key = key.filter(|k| !k.is_none());
        if value.is_none() && key.is_none() {
            return Err(PyValueError::new_err("Need at least one: key or value"));
        }
        if partition.is_some_and(|p| p < 0) {
            return Err(PyValueError::new_err("partition must be >= 0"));
        }
        let topic_str = self.topic_name(topic)?;
        let key = serialized(py, self.key_serializer.as_ref(), key, "key")?;
        let value = serialized(py, self.value_serializer.as_ref(), value, "value")?;
        let mut record: ProducerRecord<'_, &[u8], &[u8]> = ProducerRecord::new(&topic_str);
        record.key = key.as_ref().map(|k| k.as_ref());
        record.value = value.as_ref().map(|v| v.as_ref());
        record.partition = partition;
        record.timestamp = timestamp_ms;
        let mut header_size = -1i64;
        if let Some(headers) = headers.filter(|h| !h.is_none()) {
            let list = headers
                .cast::<PyList>()
                .map_err(|_| PyTypeError::new_err("headers must be list-type"))?;
            header_size = 0;
            for item in list.iter() {
                let pair = item.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
                let Some(pair) = pair else {
                    return Err(PyTypeError::new_err(
                        "All headers items must be (str, bytes) tuples",
                    ));
                };
                let (k, v) = (pair.get_item(0)?, pair.get_item(1)?);
                let (Ok(k), true) = (
                    k.cast::<PyString>(),
                    v.is_none() || v.is_instance_of::<PyBytes>(),
                ) else {
                    return Err(PyTypeError::new_err(
                        "All headers items must be (str, bytes) tuples",
                    ));
                };
                let k = k.to_cow()?;
                let v = v.cast::<PyBytes>().ok().map(|b| b.as_bytes());
                header_size += (k.len() + v.map_or(0, <[u8]>::len)) as i64;
                record = record.header(k.as_ref(), v);
            }
        }
        let size = |d: &Option<Data<'_>>| d.as_ref().map_or(-1, |d| d.as_ref().len() as i64);
        let sizes = (size(&key), size(&value), header_size);
        let delivery = match self.core.try_send(record) {
            Ok(d) => d,
            Err(not_queued) => match not_queued.reason {
                NotQueued::Failed(e) => return Err(errors::to_py(py, &e)),
                _ if !may_wait => return Ok(None),
                _ => {
                    let record = not_queued.record;
                    let core = &self.core;
                    wait(py, &self.rt, core.send(record), None)?
                        .expect("no time limit")
                        .map_err(|e| errors::to_py(py, &e))?
                }
            },
        };
        Ok(Some(FutureRecordMetadata::new(
            delivery,
            self.dispatcher.clone(),
            self.rt.clone(),
            topic.clone().unbind(),
            sizes,
        )))
    }
}
