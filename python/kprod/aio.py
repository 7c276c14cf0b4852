"""``AIOKafkaProducer``: aiokafka's producer API on the same Rust core as ``KafkaProducer``.

``send`` queues the record without blocking the event loop (when it must wait for metadata or
buffer space, it waits on an executor thread) and returns an ``asyncio.Future`` of aiokafka's
``RecordMetadata``. ``start``, ``flush``, ``stop`` and the transactional calls (aiokafka's
``begin_transaction``, ``commit_transaction``, ``abort_transaction``,
``send_offsets_to_transaction`` and ``transaction()``) wait on executor threads; the Rust core
never holds the GIL while it works.
"""

import asyncio
import contextlib
import functools
from collections import namedtuple

from kprod import _core
from kprod.errors import IllegalStateError, KafkaConfigurationError
from kprod.producer import _DEFAULTS, _group, _offsets, _properties, _serializer
from kprod.structs import TopicPartition

__all__ = ["AIOKafkaProducer", "RecordMetadata"]

RecordMetadata = namedtuple(
    "RecordMetadata",
    ["topic", "partition", "topic_partition", "offset", "timestamp", "timestamp_type",
     "log_start_offset"],
)
RecordMetadata.__doc__ = """aiokafka's acknowledged record. ``timestamp_type`` is 0 for
CreateTime, 1 for the broker's LogAppendTime; ``log_start_offset`` is ``None`` (not reported)."""

_missing = object()

# aiokafka's keywords and defaults, and the kafka-python keyword each one is.
_AIO = {
    "bootstrap_servers": ("bootstrap_servers", "localhost"),
    "client_id": ("client_id", None),
    "metadata_max_age_ms": ("metadata_max_age_ms", 300000),
    "request_timeout_ms": ("request_timeout_ms", 40000),
    "api_version": ("api_version", None),
    "key_serializer": ("key_serializer", None),
    "value_serializer": ("value_serializer", None),
    "compression_type": ("compression_type", None),
    "max_batch_size": ("batch_size", 16384),
    "partitioner": ("partitioner", None),
    "max_request_size": ("max_request_size", 1048576),
    "linger_ms": ("linger_ms", 0),
    "retry_backoff_ms": ("retry_backoff_ms", 100),
    "security_protocol": ("security_protocol", "PLAINTEXT"),
    "ssl_context": ("ssl_context", None),
    "connections_max_idle_ms": ("connections_max_idle_ms", 540000),
    "enable_idempotence": ("enable_idempotence", False),
    "transactional_id": ("transactional_id", None),
    "transaction_timeout_ms": ("transaction_timeout_ms", 60000),
    "sasl_mechanism": ("sasl_mechanism", None),
    "sasl_plain_password": ("sasl_plain_password", None),
    "sasl_plain_username": ("sasl_plain_username", None),
    "sasl_kerberos_service_name": ("sasl_kerberos_service_name", "kafka"),
    "sasl_kerberos_domain_name": ("sasl_kerberos_domain_name", None),
    "sasl_oauth_token_provider": ("sasl_oauth_token_provider", None),
    # kprod's own, as for KafkaProducer.
    "properties": ("properties", None),
    "max_block_ms": ("max_block_ms", 60000),
    "delivery_timeout_ms": ("delivery_timeout_ms", 120000),
}


class AIOKafkaProducer:
    """aiokafka's ``AIOKafkaProducer`` on kprod's Rust core.

    Takes aiokafka's keywords (``max_batch_size`` is ``batch.size``; ``acks`` defaults to 1, or
    ``'all'`` with ``enable_idempotence=True``, as in aiokafka); an unknown one raises
    ``KafkaConfigurationError``. Call ``await start()`` before sending, or use
    ``async with``.
    """

    def __init__(self, *, loop=None, acks=_missing, **configs):
        unknown = sorted(set(configs) - set(_AIO))
        if unknown:
            raise KafkaConfigurationError("Unrecognized configs: {}".format(", ".join(unknown)))
        config = dict(_DEFAULTS)
        for name, (keyword, default) in _AIO.items():
            config[keyword] = configs.get(name, default)
        if config["sasl_mechanism"] is None and config["sasl_plain_username"]:
            config["sasl_mechanism"] = "PLAIN"
        if config["transactional_id"] is not None:
            config["enable_idempotence"] = True  # as in aiokafka
        if acks is _missing:
            acks = "all" if config["enable_idempotence"] else 1
        config["acks"] = acks
        self._properties = _properties(config, {"enable_idempotence"})
        self._key_serializer = _serializer("key_serializer", config["key_serializer"])
        self._value_serializer = _serializer("value_serializer", config["value_serializer"])
        self._token_provider = config["sasl_oauth_token_provider"]
        self._transactional = bool(config["transactional_id"])
        self._loop = loop
        self._core = None
        self._closed = False

    async def start(self):
        """Connects and learns the cluster; with ``transactional_id``, also gets the producer id
        for it (fencing any earlier producer with the same id), as aiokafka does before the
        first transaction."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        core = await loop.run_in_executor(None, functools.partial(
            _core.Producer, self._properties, self._key_serializer, self._value_serializer,
            self._token_provider))
        if self._transactional:
            try:
                await loop.run_in_executor(None, core.init_transactions)
            except BaseException:
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(None, core.close, 0)
                raise
        self._core = core

    def _started(self):
        if self._core is None:
            raise IllegalStateError("AIOKafkaProducer: call and await start() first")
        return self._core

    async def send(self, topic, value=None, key=None, partition=None, timestamp_ms=None,
                   headers=None):
        """Queues a record; returns an ``asyncio.Future`` of its ``RecordMetadata``."""
        core = self._started()
        future = core.send_nowait(topic, value, key, headers, partition, timestamp_ms)
        if future is None:
            future = await self._loop.run_in_executor(None, functools.partial(
                core.send, topic, value, key, headers, partition, timestamp_ms))
        return self._bridge(future)

    async def send_and_wait(self, topic, value=None, key=None, partition=None,
                            timestamp_ms=None, headers=None):
        """``send``, then waits for the record's ``RecordMetadata``."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        return await future

    def _bridge(self, record_future):
        """An asyncio future, resolved on the loop when the record's outcome comes."""
        loop = self._loop
        result = loop.create_future()

        def done(outcome, failed):
            if result.cancelled():
                return
            if failed:
                result.set_exception(outcome)
            else:
                result.set_result(_aio_metadata(outcome, record_future.timestamp_type))

        def on_success(md):
            loop.call_soon_threadsafe(done, md, False)

        def on_failure(e):
            loop.call_soon_threadsafe(done, e, True)

        record_future.add_callback(on_success)
        record_future.add_errback(on_failure)
        return result

    async def flush(self):
        """Waits until every record sent so far has its outcome."""
        core = self._started()
        await self._loop.run_in_executor(None, core.flush)

    async def stop(self):
        """Flushes and closes."""
        if self._core is None or self._closed:
            return
        self._closed = True
        await self._loop.run_in_executor(None, self._core.close)

    async def partitions_for(self, topic):
        """The set of the topic's partition ids."""
        core = self._started()
        return await self._loop.run_in_executor(None, core.partitions_for, topic)

    async def begin_transaction(self):
        """Begins a transaction (with ``transactional_id``): every record sent until it is
        committed or aborted belongs to it. Sends outside a transaction raise
        ``IllegalStateError``."""
        self._started().begin_transaction()

    async def commit_transaction(self):
        """Commits the transaction once its records are acknowledged. Raises
        ``TransactionAbortableError`` when it failed and must be aborted,
        ``ProducerFencedError`` when a newer producer took over the ``transactional_id``."""
        core = self._started()
        await self._loop.run_in_executor(None, core.commit_transaction)

    async def abort_transaction(self):
        """Aborts the transaction; ``read_committed`` consumers skip what it wrote."""
        core = self._started()
        await self._loop.run_in_executor(None, core.abort_transaction)

    async def send_offsets_to_transaction(self, offsets, group_id):
        """Adds consumed offsets (``{TopicPartition: offset or OffsetAndMetadata}``) to the
        transaction: ``group_id`` (or a ``ConsumerGroupMetadata``) sees them committed only if
        the transaction commits."""
        core = self._started()
        await self._loop.run_in_executor(None, functools.partial(
            core.send_offsets_to_transaction, _offsets(offsets), *_group(group_id)))

    def transaction(self):
        """``async with producer.transaction():`` begins a transaction, commits it when the
        block ends, aborts it when the block raises (unless the producer can no longer be used,
        as after ``ProducerFencedError``)."""
        return _Transaction(self)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        await self.stop()


class _Transaction:
    """aiokafka's ``TransactionContext``."""

    def __init__(self, producer):
        self._producer = producer

    async def __aenter__(self):
        await self._producer.begin_transaction()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self._producer.commit_transaction()
        elif not getattr(exc, "fatal", False):
            # The block's exception goes on; an abort that fails too is chained to it.
            await self._producer.abort_transaction()


def _aio_metadata(md, timestamp_type):
    return RecordMetadata(md.topic, md.partition, TopicPartition(md.topic, md.partition),
                          md.offset, md.timestamp, timestamp_type or 0, None)
