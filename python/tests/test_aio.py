"""``kprod.aio.AIOKafkaProducer``: aiokafka's API on the same core, read back by kafka-python."""

import asyncio

import pytest

from conftest import read_back
from kprod import errors
from kprod.aio import AIOKafkaProducer, RecordMetadata


def run(coroutine):
    return asyncio.run(coroutine)


def test_send_send_and_wait_flush_stop(bootstrap, topic):
    async def main():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=b"a%d" % i, key=b"k") for i in range(100)]
            md = await producer.send_and_wait(topic, value=b"last", key=b"k")
            await producer.flush()
            done = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return done, md

    done, md = run(main())
    assert isinstance(md, RecordMetadata) and md.timestamp_type == 0
    offsets = [m.offset for m in done] + [md.offset]
    assert offsets == sorted(offsets) and len(set(offsets)) == 101  # one key: one partition
    got = read_back(bootstrap, topic, 101)
    assert sorted(r.value for r in got) == sorted([b"a%d" % i for i in range(100)] + [b"last"])


def test_async_with_and_aiokafka_defaults(bootstrap, topic):
    async def main():
        async with AIOKafkaProducer(bootstrap_servers=bootstrap,
                                    value_serializer=str.encode) as producer:
            assert await producer.partitions_for(topic) == {0, 1, 2}
            return await producer.send_and_wait(topic, "hello")

    md = run(main())
    assert md.topic == topic
    [r] = read_back(bootstrap, topic, 1)
    assert r.value == b"hello"


def test_a_failed_record_raises_in_its_awaitable(bootstrap, topic):
    async def main():
        async with AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1000) as p:
            with pytest.raises(errors.MessageSizeTooLargeError):
                await p.send(topic, value=b"x" * 2000)
            with pytest.raises(errors.KafkaConfigurationError):
                AIOKafkaProducer(bootstrap_servers=bootstrap, batch_size=5)
            return await p.send_and_wait(topic, value=b"fine")

    assert run(main()).offset >= 0


def test_send_before_start_is_an_error(bootstrap, topic):
    async def main():
        p = AIOKafkaProducer(bootstrap_servers=bootstrap)
        with pytest.raises(errors.IllegalStateError, match="start"):
            await p.send(topic, value=b"x")

    run(main())
