"""Transactions with kafka-python's API (and aiokafka's), read back by kafka-python with
``isolation_level='read_committed'`` and the group's offsets by kafka-python's admin client.

The cluster's ``transaction.version`` may be 1 or 2 (other suites switch it), so nothing here
depends on which; failures name the version the producer used.
"""

import asyncio
import uuid

import pytest
from kafka.structs import ConsumerGroupMetadata as KafkaGroupMetadata
from kafka.structs import OffsetAndMetadata as KafkaOffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from conftest import group_offsets, make_topic, read_back, read_committed
from kprod import KafkaProducer, OffsetAndMetadata, TopicPartition, errors
from kprod.aio import AIOKafkaProducer


def new_id(prefix="py-tid"):
    return "{}-{}".format(prefix, uuid.uuid4().hex[:12])


def transactional(bootstrap, transactional_id=None, **configs):
    """A transactional producer, initialized."""
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id or new_id(),
                      **configs)
    p.init_transactions()
    return p


def version(p):
    """Which protocol the producer used, for failure messages."""
    return "transaction.version {}".format(p._core.transaction_version())


def values(prefix, n):
    return [b"%s-%d" % (prefix.encode(), i) for i in range(n)]


def send_all(p, topic, vals):
    # Keys spread the records over the partitions.
    return [p.send(topic, key=v, value=v) for v in vals]


def test_committed_records_are_read_committed_and_aborted_ones_never(bootstrap, topic):
    # linger_ms: the aborted transaction's unflushed records are still queued at the abort.
    with transactional(bootstrap, linger_ms=60000) as p:
        p.begin_transaction()
        first = send_all(p, topic, values("a", 5))
        p.flush()
        p.commit_transaction()
        assert all(f.succeeded() for f in first)

        p.begin_transaction()
        written = send_all(p, topic, values("b", 5))
        p.flush()  # written to the log, then aborted
        queued = send_all(p, topic, values("q", 3))
        p.abort_transaction()
        assert all(f.succeeded() for f in written)
        for f in queued:
            assert f.is_done and isinstance(f.exception, errors.TransactionAbortedError), f

        p.begin_transaction()
        last = send_all(p, topic, values("c", 3))
        p.commit_transaction()  # sends them (no flush before)
        assert all(f.get(timeout=0).offset >= 0 for f in last)
        v = version(p)

    got = sorted(r.value for r in read_committed(bootstrap, topic))
    assert got == sorted(values("a", 5) + values("c", 3)), v
    # The aborted records were written: a read_uncommitted reader sees them.
    everything = read_back(bootstrap, topic, until=lambda rs: len(rs) >= 13)
    assert sorted(r.value for r in everything) == sorted(
        values("a", 5) + values("b", 5) + values("c", 3)), v


def test_sends_outside_a_transaction_raise(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_id())
    try:
        with pytest.raises(errors.IllegalStateError, match="init_transactions"):
            p.send(topic, value=b"before init")
        with pytest.raises(errors.IllegalStateError):
            p.begin_transaction()
        p.init_transactions()
        with pytest.raises(errors.IllegalStateError, match="begin_transaction"):
            p.send(topic, value=b"before begin")
        with pytest.raises(errors.IllegalStateError):
            p.commit_transaction()
        with pytest.raises(errors.IllegalStateError):
            p.abort_transaction()
        with pytest.raises(errors.IllegalStateError):
            p.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(1)}, "g")
        p.begin_transaction()
        with pytest.raises(errors.IllegalStateError):
            p.begin_transaction()
        inside = p.send(topic, value=b"inside")
        p.commit_transaction()
        assert inside.get(timeout=0).offset >= 0
        with pytest.raises(errors.IllegalStateError, match="begin_transaction"):
            p.send(topic, value=b"after commit")
        with pytest.raises(errors.IllegalStateError):
            p.commit_transaction()
    finally:
        p.close()
    with pytest.raises(errors.IllegalStateError, match="closed"):
        p.begin_transaction()
    assert [r.value for r in read_committed(bootstrap, topic)] == [b"inside"]

    # As kafka-python: the transactional calls of a producer without transactional_id.
    with KafkaProducer(bootstrap_servers=bootstrap) as plain:
        for call in (plain.init_transactions, plain.begin_transaction,
                     plain.commit_transaction, plain.abort_transaction):
            with pytest.raises(errors.IllegalStateError, match="transactional"):
                call()


def test_offsets_reach_the_group_only_when_the_transaction_commits(bootstrap, admin):
    source = make_topic(admin, partitions=2)
    out = make_topic(admin, partitions=2)
    group = new_id("py-group")
    with transactional(bootstrap) as p:
        p.begin_transaction()
        send_all(p, out, values("x", 4))
        p.send_offsets_to_transaction(
            {TopicPartition(source, 0): OffsetAndMetadata(5), TopicPartition(source, 1): 3},
            group)
        p.abort_transaction()

        # kafka-python's structures, and its ConsumerGroupMetadata (no member: not checked).
        p.begin_transaction()
        send_all(p, out, values("y", 4))
        p.send_offsets_to_transaction(
            {KafkaTopicPartition(source, 0): KafkaOffsetAndMetadata(7, "meta", -1)},
            KafkaGroupMetadata(group))
        assert group_offsets(admin, group) == {}, "not before the commit: " + version(p)
        p.commit_transaction()
        # Partition 1's offset came only with the aborted transaction: it never counts.
        committed = group_offsets(admin, group, until=lambda o: (source, 0) in o)
        assert committed == {(source, 0): 7}, version(p)
        v = version(p)
    [committed] = admin.list_group_offsets(group).values()
    assert committed[KafkaTopicPartition(source, 0)].metadata == "meta", v
    assert sorted(r.value for r in read_committed(bootstrap, out)) == values("y", 4), v


def test_offsets_arguments_are_checked(bootstrap, topic):
    with transactional(bootstrap) as p:
        p.begin_transaction()
        with pytest.raises(TypeError, match="group_metadata"):
            p.send_offsets_to_transaction({TopicPartition(topic, 0): 1}, 42)
        with pytest.raises(ValueError, match="member_id"):
            p.send_offsets_to_transaction({TopicPartition(topic, 0): 1},
                                          KafkaGroupMetadata("g", generation_id=3))
        with pytest.raises(TypeError, match="dict"):
            p.send_offsets_to_transaction([(TopicPartition(topic, 0), 1)], "g")
        p.abort_transaction()


def test_a_second_producer_with_the_same_id_fences_the_first(bootstrap, topic):
    tid = new_id()
    first = transactional(bootstrap, tid)
    first.begin_transaction()
    zombie = send_all(first, topic, values("zombie", 10))
    first.flush()
    assert all(f.succeeded() for f in zombie)

    # Taking over the id aborts the first producer's open transaction.
    second = transactional(bootstrap, tid)
    v = version(second)
    with pytest.raises(errors.ProducerFencedError) as fenced:
        first.commit_transaction()
    assert fenced.value.fatal, v
    assert isinstance(fenced.value, errors.KafkaError)
    # Every later call fails too; closing it does not raise again (as kafka-python).
    with pytest.raises(errors.ProducerFencedError):
        first.send(topic, value=b"late")
    with pytest.raises(errors.ProducerFencedError):
        first.begin_transaction()
    first.close()

    second.begin_transaction()
    send_all(second, topic, values("live", 5))
    second.commit_transaction()
    second.close()
    assert sorted(r.value for r in read_committed(bootstrap, topic)) == values("live", 5), v


def test_a_failed_record_makes_the_transaction_abortable(bootstrap, admin):
    topic = make_topic(admin, configs={"max.message.bytes": "2000"})
    with transactional(bootstrap) as p:
        p.begin_transaction()
        good = p.send(topic, value=b"fine", partition=0)
        bad = p.send(topic, value=b"x" * 5000, partition=1)
        with pytest.raises(errors.TransactionAbortableError) as abortable:
            p.commit_transaction()
        v = version(p)
        assert not abortable.value.fatal, v
        assert isinstance(abortable.value.__cause__, errors.MessageSizeTooLargeError), v
        assert isinstance(bad.exception, errors.MessageSizeTooLargeError), v
        with pytest.raises(errors.TransactionAbortableError):
            p.send(topic, value=b"refused until the abort")
        p.abort_transaction()
        assert good.is_done, v

        p.begin_transaction()
        p.send(topic, value=b"next", partition=2)
        p.commit_transaction()
    assert [r.value for r in read_committed(bootstrap, topic)] == [b"next"], v


def test_transaction_timeout_ms_reaches_the_coordinator(bootstrap):
    # Above the brokers' transaction.max.timeout.ms (15 minutes): the coordinator refuses it.
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=new_id(),
                      transaction_timeout_ms=24 * 3600 * 1000)
    try:
        with pytest.raises(errors.InvalidTransactionTimeoutError) as refused:
            p.init_transactions()
        assert refused.value.fatal
    finally:
        p.close()


def test_a_call_longer_than_max_block_ms_times_out_and_goes_on(bootstrap, topic):
    # As kafka-python: KafkaTimeoutError after max_block_ms, and calling again waits for the
    # same call. Taking over an id whose transaction is open takes longer than 5 ms: the
    # coordinator answers CONCURRENT_TRANSACTIONS until it has aborted that transaction, and the
    # producer asks again 20 ms later.
    tid = new_id()
    with transactional(bootstrap, tid) as first:
        first.begin_transaction()
        send_all(first, topic, values("open", 3))
        first.flush()
        with KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid,
                           max_block_ms=5) as p:
            timeouts = 0
            while True:
                try:
                    p.init_transactions()
                    break
                except errors.KafkaTimeoutError as e:
                    assert "init_transactions" in str(e)
                    timeouts += 1
                    assert timeouts < 10000, "init_transactions never finished"
            assert timeouts >= 1
            p.begin_transaction()
            p.commit_transaction()  # empty: no network
        # Closing the fenced first producer (which aborts its open transaction) raises nothing.
    assert read_committed(bootstrap, topic) == []


def test_aiokafka_transactions(bootstrap, admin):
    topic = make_topic(admin, partitions=2)
    group = new_id("py-group")

    async def main():
        async with AIOKafkaProducer(bootstrap_servers=bootstrap,
                                    transactional_id=new_id()) as p:
            async with p.transaction():
                await p.send(topic, value=b"kept")
                await p.send_offsets_to_transaction({TopicPartition(topic, 0): 4}, group)
            with pytest.raises(RuntimeError, match="boom"):
                async with p.transaction():
                    await p.send_and_wait(topic, value=b"dropped")
                    raise RuntimeError("boom")
            await p.begin_transaction()
            await p.send(topic, value=b"explicit")
            await p.commit_transaction()
            await p.begin_transaction()
            await p.send(topic, value=b"aborted")
            await p.abort_transaction()
            with pytest.raises(errors.IllegalStateError):
                await p.send(topic, value=b"outside")
            return version(p)

    v = asyncio.run(main())
    assert sorted(r.value for r in read_committed(bootstrap, topic)) == [b"explicit", b"kept"], v
    assert group_offsets(admin, group, until=bool) == {(topic, 0): 4}, v
