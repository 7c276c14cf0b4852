"""kafka-python's record structures."""

from collections import namedtuple

__all__ = ["TopicPartition", "RecordMetadata"]

TopicPartition = namedtuple("TopicPartition", ["topic", "partition"])
TopicPartition.__doc__ = "A topic and one of its partitions."

RecordMetadata = namedtuple(
    "RecordMetadata",
    [
        "topic",
        "partition",
        "topic_partition",
        "offset",
        "timestamp",
        "checksum",
        "serialized_key_size",
        "serialized_value_size",
        "serialized_header_size",
    ],
)
RecordMetadata.__doc__ = """An acknowledged record: where it went and what it was.

``offset`` is -1 with ``acks=0`` (no answer to read it from). ``timestamp`` is the record's
CreateTime in milliseconds, or the broker's LogAppendTime for a topic that uses it. ``checksum``
is always ``None`` (record batches v2 have none per record). Sizes are -1 for no key, no value,
no headers.
"""
