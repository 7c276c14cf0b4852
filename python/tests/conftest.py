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
from kafka.errors import TopicAlreadyExistsError


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


def read_back(bootstrap, topic, count=None, timeout=60, until=None):
    """The topic's records, read by kafka-python from the start, until ``count`` arrived or
    ``until(records)`` holds (or ``timeout`` seconds, then whatever arrived: the caller's
    assertion says what is missing)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=2000)
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        assert partitions, "topic {} not found".format(topic)
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
