"""kafka-python's record structures."""

from collections import namedtuple

__all__ = ["TopicPartition", "RecordMetadata", "OffsetAndMetadata", "ConsumerGroupMetadata"]

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

OffsetAndMetadata = namedtuple("OffsetAndMetadata", ["offset", "metadata", "leader_epoch"],
                               defaults=["", -1])
OffsetAndMetadata.__doc__ = """A consumer group's offset for a partition, as kafka-python's: the
next offset to read, free text stored with it, and the leader epoch of the last record read (-1:
unknown)."""

ConsumerGroupMetadata = namedtuple(
    "ConsumerGroupMetadata", ["group_id", "generation_id", "member_id", "group_instance_id"],
    defaults=[-1, "", None])
ConsumerGroupMetadata.__doc__ = """A consumer's membership of its group, as kafka-python's
``KafkaConsumer.group_metadata()`` gives it (which ``send_offsets_to_transaction`` takes too).
With only ``group_id``, the group coordinator takes the offsets without checking membership."""
