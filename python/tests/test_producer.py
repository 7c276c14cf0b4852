"""``KafkaProducer`` against the real cluster: what it writes, read back by kafka-python; its
futures and callbacks; keys on the Java client's partitions."""

import math
import threading
import time

import pytest
from kafka.partitioner.default import murmur2

from conftest import make_topic, read_back
from kprod import KafkaProducer, RecordMetadata, errors


def test_records_arrive_as_sent(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5) as p:
        futures = [
            p.send(topic, value="v{}".format(i).encode(), key=b"k%d" % (i % 7),
                   headers=[("h", b"x"), ("n", str(i).encode())], timestamp_ms=1700000000000 + i)
            for i in range(200)
        ]
        p.flush()
        metadata = [f.get(timeout=10) for f in futures]
    got = read_back(bootstrap, topic, 200)
    assert sorted(r.value for r in got) == sorted("v{}".format(i).encode() for i in range(200))
    by_value = {r.value: r for r in got}
    for i, md in enumerate(metadata):
        r = by_value["v{}".format(i).encode()]
        assert (md.topic, md.partition, md.offset) == (topic, r.partition, r.offset)
        assert r.key == b"k%d" % (i % 7)
        assert r.headers == [("h", b"x"), ("n", str(i).encode())]
        assert r.timestamp == md.timestamp == 1700000000000 + i
        assert md.serialized_key_size == len(r.key)
        assert md.serialized_value_size == len(r.value)
        assert md.serialized_header_size == len("h") + 1 + len("n") + len(str(i))
        assert isinstance(md, RecordMetadata) and md.topic_partition == (topic, md.partition)


def test_same_key_same_partition_as_the_java_client_in_order(bootstrap, admin):
    topic = make_topic(admin, partitions=6)
    keys = [b"seoul", b"busan", b"incheon", b"daegu", b"", b"\xff\x00"]
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        futures = [(k, i, p.send(topic, key=k, value=b"%d" % i)) for i in range(30) for k in keys]
        p.flush()
    for k, _, f in futures:
        # kafka-python's murmur2 is a port of the Java client's: an independent reference.
        assert f.get().partition == (murmur2(k) & 0x7FFFFFFF) % 6, k
    got = read_back(bootstrap, topic, len(futures))
    for k in keys:
        values = [int(r.value) for r in sorted(got, key=lambda r: r.offset) if r.key == k]
        assert values == list(range(30)), k


def test_str_keys_and_values_without_serializer_are_utf8(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        p.send(topic, key="서울", value="날씨 ☀").get(timeout=30)
    [r] = read_back(bootstrap, topic, 1)
    assert (r.key, r.value) == ("서울".encode(), "날씨 ☀".encode())


def test_acks_zero_and_one(bootstrap, topic):
    for acks in (0, 1):
        with KafkaProducer(bootstrap_servers=bootstrap, acks=acks) as p:
            md = p.send(topic, value=b"acks%d" % acks).get(timeout=30)
            assert (md.offset == -1) == (acks == 0)
    assert {r.value for r in read_back(bootstrap, topic, 2)} == {b"acks0", b"acks1"}


def test_future_states_and_callbacks(bootstrap, topic):
    seen = []
    threads = set()
    with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=200) as p:
        f = p.send(topic, value=b"x")
        assert not f.is_done and f.value is None and f.exception is None
        f.add_callback(lambda tag, md: (seen.append((tag, md.offset)),
                                        threads.add(threading.current_thread().name)), "cb")
        f.add_errback(lambda e: seen.append(("eb", e)))
        f.add_both(lambda v, tag=None: seen.append(("both", tag)), tag="b")
        md = f.get(timeout=30)
        p.flush()
        assert f.is_done and f.succeeded() and not f.failed() and f.value == md
        assert seen == [("cb", md.offset), ("both", "b")]
        # The callbacks ran on the producer's callback thread.
        assert threads == {"kprod-callbacks"}
        # Registered after the outcome: runs at once, in the caller.
        late = []
        f.add_callback(late.append)
        assert late == [md]


def test_an_exception_in_a_callback_is_logged_not_lost(bootstrap, topic, caplog):
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        p.send(topic, value=b"x").add_callback(lambda md: 1 / 0)
        ok = p.send(topic, value=b"y")
        p.flush()
        assert ok.get(timeout=10).offset >= 0
    assert any("Error processing callback" in r.getMessage() and r.exc_info
               and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_many_threads_share_one_producer(bootstrap, topic):
    failures = []
    with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5) as p:
        def work(t):
            try:
                futures = [p.send(topic, key=b"t%d" % t, value=b"%d-%d" % (t, i))
                           for i in range(500)]
                for f in futures:
                    f.get(timeout=60)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    got = read_back(bootstrap, topic, 4000)
    assert sorted(r.value for r in got) == sorted(b"%d-%d" % (t, i) for t in range(8)
                                                  for i in range(500))


def test_partitions_for_and_metrics(bootstrap, topic):
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        assert p.partitions_for(topic) == {0, 1, 2}
        assert p.bootstrap_connected()
        p.send(topic, value=b"x").get(timeout=30)
        assert records_sent(p.metrics()["producer-metrics"]) == 1
    assert not p.bootstrap_connected()
    # Still there once closed, as in kafka-python.
    assert records_sent(p.metrics()["producer-metrics"]) == 1


def records_sent(metrics):
    """Records sent, each once: record-send-total counts a retried record again, as the Java
    client's does (a new topic's leader may not know it yet at the first attempt)."""
    return metrics["record-send-total"] - metrics["record-retry-total"]


def test_metrics_are_the_java_clients_in_kafka_pythons_shape(bootstrap, topic):
    n = 250
    with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                       metrics_sample_window_ms=10000) as p:
        before = p.metrics()
        # Nothing queued yet: an average with no values is NaN, as in kafka-python.
        assert math.isnan(before["producer-metrics"]["record-queue-time-avg"])
        assert before["producer-metrics"]["record-send-total"] == 0
        for i in range(n):
            p.send(topic, value=b"%d" % i, key=b"k%d" % i)
        p.flush()
        m = p.metrics()
        raw = p.metrics(raw=True)
    assert len(read_back(bootstrap, topic, n)) == n

    assert all(isinstance(v, float) for names in m.values() for v in names.values())
    assert records_sent(m["producer-metrics"]) == n
    assert m["producer-metrics"]["record-error-total"] == 0
    assert records_sent(m["producer-topic-metrics." + topic]) == n
    nodes = [group for group in m if group.startswith("producer-node-metrics.node-")]
    assert nodes, sorted(m)
    assert any(m[group]["request-total"] > 0 for group in nodes), {g: m[g] for g in nodes}
    assert set(m) == {"producer-metrics", "producer-topic-metrics." + topic, *nodes}

    # raw: one dict per metric, the same metrics, the topic and node in the tags (a record total
    # has not moved since; a gauge such as metadata-age may have).
    assert len(raw) == sum(len(names) for names in m.values())
    for metric in raw:
        assert set(metric) == {"group", "name", "tags", "description", "value"}
        assert metric["description"] and metric["tags"]["client-id"]
        tag = metric["tags"].get("topic") or metric["tags"].get("node-id")
        group = metric["group"] + ("." + tag if tag else "")
        value = m[group][metric["name"]]
        if metric["name"].startswith("record-") and metric["name"].endswith("-total"):
            assert value == metric["value"], metric
    sent = [x for x in raw if x["group"] == "producer-topic-metrics"
            and x["name"] == "record-send-total"]
    assert [(x["tags"]["topic"], x["value"]) for x in sent] == [
        (topic, m["producer-topic-metrics." + topic]["record-send-total"])]


def test_metrics_keywords(bootstrap):
    with KafkaProducer(bootstrap_servers=bootstrap, metrics_enabled=False) as p:
        assert p.metrics() is None
    # metrics_sample_window_ms is metrics.sample.window.ms, checked by the core.
    with pytest.raises(errors.KafkaConfigurationError, match="metrics.sample.window.ms"):
        KafkaProducer(bootstrap_servers=bootstrap, metrics_sample_window_ms=0)


def test_a_wait_is_interrupted_by_ctrl_c(bootstrap):
    import _thread

    with KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=60000) as p:
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            # A topic that does not exist: send waits for its metadata up to max_block_ms.
            p.send("py-missing-interrupted", value=b"x")
        assert time.monotonic() - started < 30


def test_timestamps_and_log_append_time_through_aio_fields(bootstrap, admin):
    topic = make_topic(admin, configs={"message.timestamp.type": "LogAppendTime"})
    with KafkaProducer(bootstrap_servers=bootstrap) as p:
        f = p.send(topic, value=b"x", timestamp_ms=1000)
        md = f.get(timeout=30)
    assert md.timestamp > 1000 and f.timestamp_type == 1
    [r] = read_back(bootstrap, topic, 1)
    assert r.timestamp == md.timestamp


def test_a_kafka_python_2_partitioner_callable_and_java_properties(bootstrap, topic):
    calls = []

    def last_partition(key_bytes, all_partitions, available):
        calls.append((key_bytes, list(all_partitions)))
        return all_partitions[-1]

    with KafkaProducer(bootstrap_servers=bootstrap, partitioner=last_partition,
                       key_serializer=lambda k: k.upper().encode(),
                       properties={"compression.type": "gzip", "linger.ms": 1}) as p:
        md = p.send(topic, key="k", value=b"v").get(timeout=30)
        explicit = p.send(topic, key="k", value=b"w", partition=0).get(timeout=30)
    assert calls == [(b"K", [0, 1, 2])]
    assert (md.partition, explicit.partition) == (2, 0)
    got = {r.value: r for r in read_back(bootstrap, topic, 2)}
    assert (got[b"v"].partition, got[b"v"].key) == (2, b"K")
    assert got[b"w"].key == b"K"


def test_flush_waits_for_earlier_callbacks_not_for_later_senders(bootstrap, topic):
    stop = threading.Event()
    seen = []
    with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5) as p:
        def keep_sending():
            while not stop.is_set():
                p.send(topic, value=b"later").add_callback(lambda md: None)
                time.sleep(0.001)

        mine = p.send(topic, value=b"mine").add_callback(seen.append)
        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            time.sleep(0.3)
            # Returns although the other thread keeps adding records with callbacks.
            p.flush(timeout=30)
            assert seen == [mine.get()]
        finally:
            stop.set()
            sender.join()


def test_close_from_inside_a_callback(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap)
    closed = threading.Event()

    def close_it(md):
        p.close()
        closed.set()

    p.send(topic, value=b"x").add_callback(close_it)
    assert closed.wait(30)
    with pytest.raises(errors.IllegalStateError):
        p.send(topic, value=b"y")
