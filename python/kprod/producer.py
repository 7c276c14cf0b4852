"""``KafkaProducer``: kafka-python's producer API on the Rust core.

Keywords, defaults, methods and exceptions are kafka-python's. The keywords become the Java
client's properties (``linger_ms`` is ``linger.ms``), which the Rust core takes; anything the
keywords cannot say can be given as Java properties with ``properties={...}``.
"""

import atexit
import itertools
import logging
import weakref

from kprod import _core
from kprod.errors import KafkaConfigurationError

__all__ = ["KafkaProducer"]

log = logging.getLogger("kprod")

_CLIENT_IDS = itertools.count(1)

# kafka-python's keywords and defaults. Those in _IGNORED are taken and have no effect here
# (the Rust core decides these itself); the others become properties in _properties, but for
# metrics_enabled, which metrics() reads.
_DEFAULTS = {
    "bootstrap_servers": "localhost",
    "client_id": None,
    "key_serializer": None,
    "value_serializer": None,
    "enable_idempotence": True,
    "transactional_id": None,
    "transaction_timeout_ms": 60000,
    "delivery_timeout_ms": 120000,
    "acks": -1,
    "compression_type": None,
    "retries": 2147483647,
    "batch_size": 16384,
    "linger_ms": 0,
    "partitioner": None,
    "buffer_memory": 33554432,
    "connections_max_idle_ms": 9 * 60 * 1000,
    "max_block_ms": 60000,
    "max_request_size": 1048576,
    "allow_auto_create_topics": True,
    "metadata_max_age_ms": 300000,
    "retry_backoff_ms": 100,
    "retry_backoff_max_ms": 1000,
    "request_timeout_ms": 30000,
    "receive_buffer_bytes": None,
    "send_buffer_bytes": None,
    "socket_options": None,
    "sock_chunk_bytes": None,
    "sock_chunk_buffer_count": None,
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 30000,
    "max_in_flight_requests_per_connection": 5,
    "security_protocol": "PLAINTEXT",
    "ssl_context": None,
    "ssl_check_hostname": True,
    "ssl_cafile": None,
    "ssl_certfile": None,
    "ssl_keyfile": None,
    "ssl_crlfile": None,
    "ssl_password": None,
    "ssl_ciphers": None,
    "api_version": None,
    "api_version_auto_timeout_ms": 2000,
    "bootstrap_timeout_ms": 30000,
    "client_dns_lookup": "use_all_dns_ips",
    "metric_reporters": [],
    "metrics_enabled": True,
    "metrics_num_samples": 2,
    "metrics_sample_window_ms": 30000,
    "selector": None,
    "sasl_mechanism": None,
    "sasl_plain_username": None,
    "sasl_plain_password": None,
    "sasl_kerberos_name": None,
    "sasl_kerberos_service_name": "kafka",
    "sasl_kerberos_domain_name": None,
    "sasl_oauth_token_provider": None,
    "receive_message_max_bytes": None,
    "proxy_url": None,
    "socks5_proxy": None,
    "kafka_client": None,
    # kprod's own: Java properties for what the keywords above cannot say.
    "properties": None,
}

_IGNORED = frozenset([
    "connections_max_idle_ms", "allow_auto_create_topics",
    "receive_buffer_bytes", "send_buffer_bytes", "socket_options", "sock_chunk_bytes",
    "sock_chunk_buffer_count", "reconnect_backoff_max_ms", "api_version",
    "api_version_auto_timeout_ms", "bootstrap_timeout_ms", "client_dns_lookup",
    "metric_reporters", "selector", "receive_message_max_bytes", "kafka_client",
])

# Keywords that map straight to a property, with an int or bool value.
_DIRECT = {
    "enable_idempotence": "enable.idempotence",
    "transactional_id": "transactional.id",
    "transaction_timeout_ms": "transaction.timeout.ms",
    "delivery_timeout_ms": "delivery.timeout.ms",
    "batch_size": "batch.size",
    "linger_ms": "linger.ms",
    "buffer_memory": "buffer.memory",
    "max_block_ms": "max.block.ms",
    "max_request_size": "max.request.size",
    "metadata_max_age_ms": "metadata.max.age.ms",
    "retry_backoff_ms": "retry.backoff.ms",
    "retry_backoff_max_ms": "retry.backoff.max.ms",
    "request_timeout_ms": "request.timeout.ms",
    "reconnect_backoff_ms": "reconnect.backoff.ms",
    "max_in_flight_requests_per_connection": "max.in.flight.requests.per.connection",
    "metrics_num_samples": "metrics.num.samples",
    "metrics_sample_window_ms": "metrics.sample.window.ms",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}

# Keywords whose features the Rust core does not have: set to anything but their default,
# they are an error naming them rather than silently doing nothing.
_UNSUPPORTED = {
    "ssl_context": "a Python SSLContext cannot configure the Rust TLS stack; use ssl_cafile, "
                   "ssl_certfile, ssl_keyfile and ssl_password (or Java ssl.* properties)",
    "ssl_crlfile": "certificate revocation lists are not supported",
    "ssl_ciphers": "cipher lists are not supported (rustls's defaults apply)",
    "sasl_kerberos_name": "GSSAPI (Kerberos) is not supported",
    "sasl_kerberos_domain_name": "GSSAPI (Kerberos) is not supported",
    "proxy_url": "proxies are not supported",
    "socks5_proxy": "proxies are not supported",
}


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bootstrap(servers):
    if isinstance(servers, str):
        servers = servers.split(",")
    out = []
    for s in servers:
        s = s.strip()
        if not s:
            continue
        # kafka-python's default port.
        host_has_port = s.rsplit(":", 1)[-1].isdigit() and (":" in s)
        out.append(s if host_has_port else s + ":9092")
    if not out:
        raise KafkaConfigurationError("bootstrap_servers: no servers given")
    return ",".join(out)


def _read(keyword, path):
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError as e:
        raise KafkaConfigurationError("{}: cannot read {}: {}".format(keyword, path, e)) from e


def _properties(config, given):
    """The Java properties for kafka-python keywords; ``given``: the keywords the caller set."""
    for keyword, why in _UNSUPPORTED.items():
        if config[keyword] is not None:
            raise KafkaConfigurationError("{}: {}".format(keyword, why))
    if config["sasl_mechanism"] == "GSSAPI":
        raise KafkaConfigurationError("sasl_mechanism: GSSAPI (Kerberos) is not supported")
    props = {
        "bootstrap.servers": _bootstrap(config["bootstrap_servers"]),
        "client.id": config["client_id"] or "kprod-producer-{}".format(next(_CLIENT_IDS)),
    }
    acks = config["acks"]
    if acks not in (0, 1, -1, "all", "0", "1", "-1"):
        raise KafkaConfigurationError("acks: {!r} is not 0, 1, 'all' or -1".format(acks))
    props["acks"] = "all" if acks in ("all", -1, "-1") else str(acks)
    compression = config["compression_type"]
    if compression not in (None, "none", "gzip", "snappy", "lz4", "zstd"):
        raise KafkaConfigurationError(
            "compression_type: {!r} is not None, 'gzip', 'snappy', 'lz4' or 'zstd'".format(
                compression))
    props["compression.type"] = compression or "none"
    retries = config["retries"]
    props["retries"] = str(2147483647 if retries == float("inf") else min(int(retries), 2147483647))
    for keyword, key in _DIRECT.items():
        value = config[keyword]
        # Idempotence only when asked for: left at its default, acks=0 or 1 turn it off quietly,
        # as in kafka-python and the Java client.
        if value is not None and (keyword != "enable_idempotence" or keyword in given):
            props[key] = _text(value)
    if config["ssl_cafile"]:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = config["ssl_cafile"]
    if config["ssl_certfile"]:
        chain = _read("ssl_certfile", config["ssl_certfile"])
        key = _read("ssl_keyfile", config["ssl_keyfile"] or config["ssl_certfile"])
        props["ssl.keystore.certificate.chain"] = chain
        props["ssl.keystore.key"] = key
    if config["ssl_password"]:
        props["ssl.key.password"] = config["ssl_password"]
    if not config["ssl_check_hostname"]:
        props["ssl.endpoint.identification.algorithm"] = ""
    extra = config["properties"] or {}
    if not isinstance(extra, dict):
        raise KafkaConfigurationError("properties: a dict of Java producer properties")
    for key, value in extra.items():
        props[str(key)] = _text(value)
    return list(props.items())


def _serializer(keyword, serializer):
    """A callable taking the value, from a callable or a kafka-python ``Serializer``."""
    if serializer is None or callable(serializer):
        return serializer
    serialize = getattr(serializer, "serialize", None)
    if serialize is None:
        raise KafkaConfigurationError("{}: not callable and has no serialize()".format(keyword))
    return lambda data: serialize(None, data)


class KafkaProducer:
    """A Kafka producer with kafka-python's API; the work happens in the Rust core.

    Takes kafka-python's keywords (``bootstrap_servers``, ``acks``, ``linger_ms``, ...); an
    unknown one raises ``KafkaConfigurationError`` naming it. ``properties`` takes Java producer
    properties for the rest (``{"sasl.oauthbearer.token.endpoint.url": ...}``).

    ``send`` returns a ``FutureRecordMetadata`` at once; batching and the network run in the
    background without the GIL. Many threads may share one producer. Callbacks run on one
    thread of the producer. ``close`` (also at interpreter exit, and leaving a ``with`` block)
    waits until every record has its outcome.

    With ``transactional_id``, records are sent in transactions (``init_transactions``, then
    ``begin_transaction`` ... ``commit_transaction`` or ``abort_transaction``), as in
    kafka-python.

    Where kprod differs from kafka-python: a ``str`` key or value with no serializer is sent as
    UTF-8 (kafka-python raises ``TypeError``); ``buffer_memory`` bounds the memory records wait
    in; ``flush(raise_on_failure=True)`` raises ``DeliveryFailedError`` when records failed,
    which ``flush()`` logs; at exit ``close`` waits for every record, not one second; a
    transaction that failed and must be aborted raises ``TransactionAbortableError``, a
    ``KafkaError`` (kafka-python raises a plain ``KafkaError``).
    """

    DEFAULT_CONFIG = _DEFAULTS

    def __init__(self, **configs):
        unknown = sorted(set(configs) - set(_DEFAULTS))
        if unknown:
            raise KafkaConfigurationError("Unrecognized configs: {}".format(", ".join(unknown)))
        self.config = dict(_DEFAULTS)
        self.config.update(configs)
        for keyword in _IGNORED & set(configs):
            log.debug("%s has no effect in kprod; the Rust core sets its own", keyword)
        self._closed = True
        properties = _properties(self.config, set(configs))
        key_serializer = _serializer("key_serializer", self.config["key_serializer"])
        value_serializer = _serializer("value_serializer", self.config["value_serializer"])
        partitioner = self.config["partitioner"]
        self._partitioner = None
        if partitioner is not None and not _is_default_partitioner(partitioner):
            if not callable(partitioner):
                raise KafkaConfigurationError("partitioner: not callable")
            self._partitioner = partitioner
            self._key_serializer = key_serializer
            key_serializer = None
        self._core = _core.Producer(
            properties, key_serializer, value_serializer, self.config["sasl_oauth_token_provider"])
        self._closed = False
        if self._partitioner is None and type(self).send is KafkaProducer.send:
            # The core's send, with kafka-python's signature: no Python frame per record.
            self.send = self._core.send
        ref = weakref.ref(self)
        self._cleanup = lambda: _close_at_exit(ref)
        atexit.register(self._cleanup)

    def send(self, topic, value=None, key=None, headers=None, partition=None, timestamp_ms=None):
        """Queues a record; returns its ``FutureRecordMetadata``.

        Raises ``KafkaTimeoutError`` when the topic's metadata or buffer space is not there
        within ``max_block_ms``, ``MessageSizeTooLargeError`` for a record over
        ``max_request_size``, the serializer's own exception if it raises, ``TypeError`` or
        ``ValueError`` for bad arguments, ``IllegalStateError`` once closed.
        """
        if self._partitioner is not None:
            return self._send_partitioned(topic, value, key, headers, partition, timestamp_ms)
        return self._core.send(topic, value, key, headers, partition, timestamp_ms)

    def _send_partitioned(self, topic, value, key, headers, partition, timestamp_ms):
        # The key is serialized here (the core has no key serializer then), for the partitioner:
        # kafka-python 2's, called with (key bytes, all partitions, available partitions).
        key_bytes = self._key_serializer(key) if self._key_serializer and key is not None else key
        if isinstance(key_bytes, str):
            key_bytes = key_bytes.encode("utf-8")
        if partition is None:
            partitions = sorted(self._core.partitions_for(topic))
            partition = self._partitioner(key_bytes, partitions, partitions)
        return self._core.send(topic, value, key_bytes, headers, partition, timestamp_ms)

    def flush(self, timeout=None, raise_on_failure=False):
        """Sends everything now and waits until every record sent before has its outcome and
        its callbacks have run; ``KafkaTimeoutError`` after ``timeout`` seconds.

        Failed records are logged; with ``raise_on_failure=True`` they raise
        ``DeliveryFailedError`` (kprod's; kafka-python has no such argument).
        """
        self._core.flush(timeout, raise_on_failure)

    def close(self, timeout=None):
        """Flushes and stops, waiting up to ``timeout`` seconds (``None``: until every record
        has its outcome); records still pending then fail with ``ProducerClosedError``."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            atexit.unregister(cleanup)
            self._cleanup = None
        self._core.close(timeout)

    def init_transactions(self):
        """Gets the producer id for ``transactional_id``, once, before the first transaction.
        Any earlier producer with the same id is fenced from then on, and a transaction it left
        open is completed or aborted first.

        Raises ``IllegalStateError`` without ``transactional_id``, ``KafkaTimeoutError`` after
        ``max_block_ms`` (calling it again waits for the same initialization), the
        authorization error if the principal may not use the id.
        """
        self._core.init_transactions()

    def begin_transaction(self):
        """Begins a transaction: every record sent until ``commit_transaction`` or
        ``abort_transaction`` belongs to it. A transactional producer's sends outside a
        transaction raise ``IllegalStateError``."""
        self._core.begin_transaction()

    def send_offsets_to_transaction(self, offsets, group_metadata):
        """Adds consumed offsets to the transaction: the group sees them committed only if the
        transaction commits.

        ``offsets``: ``{TopicPartition: OffsetAndMetadata}``, each offset the next one to read
        (the last processed plus one); an ``int`` may stand for an ``OffsetAndMetadata``.
        ``group_metadata``: the consumer's ``group_metadata()`` (a ``ConsumerGroupMetadata``;
        its generation and member id let the group coordinator refuse a consumer that has left
        the group), or the group id as a ``str``. Waits at most ``max_block_ms``.
        """
        self._core.send_offsets_to_transaction(_offsets(offsets), *_group(group_metadata))

    def commit_transaction(self):
        """Commits the transaction: sends its records, waits until each is acknowledged, then
        has the coordinator commit, which makes records and offsets visible to
        ``read_committed`` consumers at once.

        Raises ``TransactionAbortableError`` if a record of it failed or the brokers aborted it
        (call ``abort_transaction``, then go on), ``ProducerFencedError`` if a newer producer
        took over the ``transactional_id`` (close this one), ``KafkaTimeoutError`` after
        ``max_block_ms`` (the commit goes on; calling this again waits for its outcome).
        """
        self._core.commit_transaction()

    def abort_transaction(self):
        """Aborts the transaction: its records not sent yet fail with
        ``TransactionAbortedError``, and ``read_committed`` consumers skip those written. The
        producer is then ready for the next transaction. Waits at most ``max_block_ms``."""
        self._core.abort_transaction()

    def partitions_for(self, topic):
        """The set of the topic's partition ids (waiting up to ``max_block_ms`` for them)."""
        return self._core.partitions_for(topic)

    def bootstrap_connected(self):
        """Whether the producer reached the cluster (it does when made) and is open."""
        return self._core.bootstrap_connected()

    def metrics(self, raw=False):
        """The producer's metrics under the Java client's names, as kafka-python gives them:
        ``{"producer-metrics": {"record-send-total": 10.0, ...}, "producer-topic-metrics.TOPIC":
        {...}, "producer-node-metrics.node-ID": {...}}``, every value a float (``nan`` for an
        average or maximum with nothing recorded yet). Rates, averages and maxima cover the last
        ``metrics_num_samples`` windows of ``metrics_sample_window_ms``.

        With ``raw=True``, a list with one dict per metric: ``group`` (without the topic or node),
        ``name``, ``tags`` (``client-id``, and ``topic`` or ``node-id``), ``description`` and
        ``value`` (kafka-python returns its internal ``MetricName`` objects). ``None`` with
        ``metrics_enabled=False``, as in kafka-python.
        """
        if not self.config["metrics_enabled"]:
            return None
        return self._core.metrics(raw)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def __del__(self):
        # Not at interpreter exit (atexit closes first): a producer dropped while the program
        # runs gets its records' outcomes before it goes, within delivery_timeout_ms.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing can be raised from __del__
            log.exception("closing a KafkaProducer that was dropped")

    def __repr__(self):
        return "<KafkaProducer client_id={}>".format(self.config.get("client_id"))


def _offsets(offsets):
    """``send_offsets_to_transaction``'s offsets as the core takes them: ``(topic, partition,
    offset, metadata, leader_epoch)``. A value is kafka-python's ``OffsetAndMetadata`` (offset,
    metadata, leader_epoch), aiokafka's (offset, metadata), or an offset."""
    if not isinstance(offsets, dict):
        raise TypeError("offsets must be a dict of TopicPartition: OffsetAndMetadata")
    out = []
    for tp, value in offsets.items():
        topic, partition = tp
        metadata, leader_epoch = None, None
        if isinstance(value, int):
            offset = value
        elif isinstance(value, tuple) and len(value) in (2, 3):
            offset, metadata = value[0], value[1]
            leader_epoch = value[2] if len(value) == 3 else None
        else:
            raise TypeError("offsets values must be OffsetAndMetadata, not {!r}".format(value))
        if leader_epoch is not None and leader_epoch < 0:
            leader_epoch = None  # kafka-python's -1: unknown
        out.append((topic, partition, offset, metadata, leader_epoch))
    return out


def _group(group_metadata):
    """The consumer group's ``(group_id, generation_id, member_id, group_instance_id)`` from a
    group id or a ``ConsumerGroupMetadata`` (kafka-python's or kprod's)."""
    if isinstance(group_metadata, str):
        return group_metadata, -1, "", None
    if not hasattr(group_metadata, "group_id"):
        raise TypeError(
            "send_offsets_to_transaction expects group_metadata to be a ConsumerGroupMetadata or "
            "a group_id str, got {!r}".format(type(group_metadata)))
    generation_id = getattr(group_metadata, "generation_id", -1)
    member_id = getattr(group_metadata, "member_id", "") or ""
    if generation_id > 0 and not member_id:
        raise ValueError(
            "Invalid ConsumerGroupMetadata: generation_id={} implies a joined group but member_id "
            "is empty".format(generation_id))
    return (group_metadata.group_id, generation_id, member_id,
            getattr(group_metadata, "group_instance_id", None))


def _is_default_partitioner(partitioner):
    return type(partitioner).__name__ == "DefaultPartitioner"


def _close_at_exit(ref):
    producer = ref()
    if producer is not None:
        try:
            producer.close()
        except Exception:  # noqa: BLE001 - at exit, say what failed and go on
            log.exception("closing a KafkaProducer at exit")

