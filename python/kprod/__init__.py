"""A Kafka producer on a Rust core, with kafka-python's producer API.

Change only the import::

    from kprod import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=["localhost:9092"], acks="all",
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    producer.send("weather_realtime", key="seoul", value={"temp": 3.5})
    producer.flush()

``kprod.aio.AIOKafkaProducer`` has aiokafka's API on the same core. Exceptions are in
``kprod.errors``, with kafka-python's names. README.md (Python) lists where kprod differs from
kafka-python.
"""

import os as _os

from kprod import _core, errors
from kprod.producer import KafkaProducer
from kprod.structs import ConsumerGroupMetadata, OffsetAndMetadata, RecordMetadata, TopicPartition

__all__ = ["KafkaProducer", "RecordMetadata", "TopicPartition", "OffsetAndMetadata",
           "ConsumerGroupMetadata", "errors"]

# A producer is made of threads, which a child of fork does not have: the core counts forks, and
# a producer used in a child raises IllegalStateError.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_core.forked)

try:
    from importlib.metadata import version as _version

    __version__ = _version("kprod")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
