"""The real cluster for the Python tests, and an independent reader.

The cluster is the one ``scripts/kafka up`` started: ``KAFKA_BOOTSTRAP`` names it. Without it the
tests are skipped, visibly; with ``KPROD_REQUIRE_KAFKA=1`` (``scripts/test``, CI) a missing
cluster is a failure. Topics are made and records read back with kafka-python, which shares no
code with kprod.
"""

import os
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import GroupIdNotFoundError, TopicAlreadyExistsError


@pytest.fixture(scope="session")
def bootstrap():
    servers = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if not servers:
        if os.environ.get("KPROD_REQUIRE_KAFKA") == "1":
            pytest.fail("KAFKA_BOOTSTRAP is not set: start the cluster with scripts/kafka up")
        pytest.skip("SKIPPED: needs KAFKA_BOOTSTRAP (scripts/kafka up)")
    return servers.split(",")


@pytest.fixture(scope="session")
def admin(bootstrap):
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


@pytest.fixture
def topic(admin):
    """A new topic with 3 partitions, replicated 3 times."""
    return make_topic(admin)


def make_topic(admin, partitions=3, configs=None, name=None):
    name = name or "py-" + uuid.uuid4().hex[:12]
    try:
        admin.create_topics([NewTopic(name, partitions, 3, topic_configs=configs or {})])
    except TopicAlreadyExistsError:
        pass
    # The topic is usable once every broker knows it; kprod waits for its metadata anyway.
    return name


def _partitions(consumer, topic, deadline):
    """The topic's partition ids, once the consumer's metadata has the topic (until ``deadline``)."""
    partitions = None
    while partitions is None and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            time.sleep(0.2)
    assert partitions, "topic {} not found".format(topic)
    return partitions


def read_back(bootstrap, topic, count=None, timeout=60, until=None):
    """The topic's records, read by kafka-python from the start, until ``count`` arrived or
    ``until(records)`` holds (or ``timeout`` seconds, then whatever arrived: the caller's
    assertion says what is missing)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=2000)
    try:
        deadline = time.monotonic() + timeout
        partitions = _partitions(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records = []
        def enough():
            if until is not None:
                return until(records)
            return len(records) >= count

        while not enough() and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def read_committed(bootstrap, topic, timeout=60):
    """The topic's committed records, read by kafka-python with
    ``isolation_level='read_committed'`` from the start to each partition's end offset, which
    for such a consumer is the last stable offset (LSO): aborted records are skipped, and
    nothing from an open transaction on is read.

    First waits until no transaction is open on the topic (each partition's LSO has reached its
    high watermark): a commit or abort returns once the coordinator has decided it, and its
    markers, which move the LSO, are written just after."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             isolation_level="read_committed", consumer_timeout_ms=2000)
    uncommitted = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        partitions = _partitions(consumer, topic, deadline)
        tps = [TopicPartition(topic, p) for p in partitions]
        while True:
            end, high = consumer.end_offsets(tps), uncommitted.end_offsets(tps)
            if end == high:
                break
            assert time.monotonic() < deadline, "{}: a transaction stays open: LSO {}, high " \
                "watermark {}".format(topic, end, high)
            time.sleep(0.1)
        consumer.assign(tps)
        consumer.seek_to_beginning()
        records = []
        # The position passes the transaction markers too, so it reaches the end offset.
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "read_committed: {} not read to {} in time".format(
                topic, end)
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
        uncommitted.close()


def group_offsets(admin, group, until=None, timeout=30):
    """The group's committed offsets, ``{(topic, partition): offset}`` (a group that has none,
    or does not exist: ``{}``), by kafka-python's admin client, which does not ask for stable
    offsets: while a transaction with offsets for the group is open, the coordinator answers
    those committed before it.

    With ``until``, asks again until ``until(offsets)`` holds (or ``timeout`` seconds, then
    returns the last answer): a transaction's offsets appear once its commit marker is written,
    just after the commit returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        except GroupIdNotFoundError:
            offsets = {}
        found = {(tp.topic, tp.partition): om.offset
                 for tp, om in offsets.items() if om.offset >= 0}
        if until is None or until(found) or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
