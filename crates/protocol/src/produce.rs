//! A Produce request frame whose record batches are not copied.
//!
//! kafka-protocol encodes a request into one buffer, so every batch is copied into the frame:
//! at 100-byte records that copy was 4-5% of the client's CPU in a profile against the real
//! cluster (and a fresh megabyte through the cache per request). Here the frame is a list of
//! chunks for a vectored write: the small parts (size, header, fields) share one buffer, and
//! each batch is its own chunk, the very `Bytes` the accumulator sealed. The bytes on the wire
//! are kafka-protocol's, version for version (tested against it below).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;

/// The Produce versions this encoder writes: 3 (the oldest a Kafka 4 broker takes) to 12. v9
/// and later are "flexible" (compact lengths, tagged fields); v13 names topics by id.
pub const PRODUCE_VERSIONS: std::ops::RangeInclusive<i16> = 3..=12;

/// The batches for one topic: `(partition, sealed record batch)`.
pub struct TopicBatches<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// `(partition index, record batch)`, in the order they go in the request.
    pub partitions: Vec<(i32, Bytes)>,
}

/// Partitions with their batches' sizes, not their bytes.
impl std::fmt::Debug for TopicBatches<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<(i32, usize)> = self.partitions.iter().map(|(p, b)| (*p, b.len())).collect();
        f.debug_struct("TopicBatches")
            .field("topic", &self.topic)
            .field("partition_batch_bytes", &sizes)
            .finish()
    }
}

/// A Produce request as frame chunks: size prefix, request header and body, with each batch a
/// chunk of its own. `transactional_id` is a transactional producer's (KIP-98), else `None`.
// The request's fields in wire order; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn encode_produce_request(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    transactional_id: Option<&str>,
    acks: i16,
    timeout_ms: i32,
    topics: &[TopicBatches<'_>],
) -> Result<Vec<Bytes>, EncodeError> {
    if !PRODUCE_VERSIONS.contains(&version) {
        return Err(EncodeError(format!(
            "Produce v{version}: this encoder writes v{}..=v{}",
            PRODUCE_VERSIONS.start(),
            PRODUCE_VERSIONS.end()
        )));
    }
    let flexible = version >= 9;
    let mut small = BytesMut::with_capacity(64 + topics.len() * 32);
    // Where each batch goes: after this many bytes of `small`.
    let mut splits: Vec<(usize, &Bytes)> = Vec::new();
    small.put_i32(0); // size, filled in at the end
    small.put_i16(0); // api key: Produce
    small.put_i16(version);
    small.put_i32(correlation_id);
    // client_id is a nullable (non-compact) string in request header v1 and v2 alike.
    match client_id {
        Some(id) => {
            small.put_i16(i16::try_from(id.len()).map_err(|_| too_long("client.id"))?);
            small.put_slice(id.as_bytes());
        }
        None => small.put_i16(-1),
    }
    if flexible {
        small.put_u8(0); // header tagged fields
        match transactional_id {
            Some(id) => {
                put_unsigned_varint(&mut small, id.len() as u64 + 1);
                small.put_slice(id.as_bytes());
            }
            None => put_unsigned_varint(&mut small, 0),
        }
    } else {
        match transactional_id {
            Some(id) => {
                let len = i16::try_from(id.len()).map_err(|_| too_long("transactional.id"))?;
                small.put_i16(len);
                small.put_slice(id.as_bytes());
            }
            None => small.put_i16(-1),
        }
    }
    small.put_i16(acks);
    small.put_i32(timeout_ms);
    put_array_len(&mut small, topics.len(), flexible)?;
    let mut batch_bytes = 0usize;
    for t in topics {
        if flexible {
            put_unsigned_varint(&mut small, t.topic.len() as u64 + 1);
        } else {
            small.put_i16(i16::try_from(t.topic.len()).map_err(|_| too_long("topic name"))?);
        }
        small.put_slice(t.topic.as_bytes());
        put_array_len(&mut small, t.partitions.len(), flexible)?;
        for (partition, records) in &t.partitions {
            small.put_i32(*partition);
            if flexible {
                put_unsigned_varint(&mut small, records.len() as u64 + 1);
            } else {
                small.put_i32(i32::try_from(records.len()).map_err(|_| too_long("batch"))?);
            }
            splits.push((small.len(), records));
            batch_bytes += records.len();
            if flexible {
                small.put_u8(0); // partition tagged fields
            }
        }
        if flexible {
            small.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        small.put_u8(0); // request tagged fields
    }
    let size = small.len() - 4 + batch_bytes;
    let size = i32::try_from(size).map_err(|_| too_long("request"))?;
    small[..4].copy_from_slice(&size.to_be_bytes());
    let small = small.freeze();
    let mut chunks = Vec::with_capacity(splits.len() * 2 + 1);
    let mut at = 0;
    for (split, records) in splits {
        chunks.push(small.slice(at..split));
        if !records.is_empty() {
            chunks.push(records.clone());
        }
        at = split;
    }
    // Before v9 nothing follows the last batch.
    if at < small.len() {
        chunks.push(small.slice(at..));
    }
    Ok(chunks)
}

fn too_long(what: &str) -> EncodeError {
    EncodeError(format!("{what} too long for a Produce request"))
}

fn put_array_len(buf: &mut BytesMut, len: usize, flexible: bool) -> Result<(), EncodeError> {
    if flexible {
        put_unsigned_varint(buf, len as u64 + 1);
    } else {
        buf.put_i32(i32::try_from(len).map_err(|_| too_long("array"))?);
    }
    Ok(())
}

/// Kafka's unsigned varint: seven bits a byte, low bits first.
fn put_unsigned_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::frame::encode_request;

    fn batch(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    /// Every version, with names and batches whose lengths take one and two varint bytes, an
    /// empty batch, several topics and partitions, with and without a client id and a
    /// transactional id: the same
    /// bytes as kafka-protocol's encoding, and the batches are the caller's, not copies.
    #[test]
    fn the_frame_is_kafka_protocols_byte_for_byte_without_copying_batches() {
        let long_name = "t".repeat(200);
        let topics = vec![
            TopicBatches {
                topic: "orders",
                partitions: vec![(0, batch(70, 1)), (5, batch(300, 2)), (2, batch(0, 0))],
            },
            TopicBatches {
                topic: &long_name,
                partitions: vec![(1, batch(20_000, 3))],
            },
        ];
        for version in PRODUCE_VERSIONS {
            for (client_id, txn) in [(Some("kprod"), None), (None, None), (None, Some("etl-7"))] {
                let chunks =
                    encode_produce_request(version, 77, client_id, txn, -1, 30_000, &topics)
                        .unwrap();
                let ours: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();

                let request = ProduceRequest::default()
                    .with_transactional_id(
                        txn.map(|t| TransactionalId(StrBytes::from_static_str(t))),
                    )
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(
                        topics
                            .iter()
                            .map(|t| {
                                TopicProduceData::default()
                                    .with_name(TopicName(StrBytes::from_string(
                                        t.topic.to_string(),
                                    )))
                                    .with_partition_data(
                                        t.partitions
                                            .iter()
                                            .map(|(p, r)| {
                                                PartitionProduceData::default()
                                                    .with_index(*p)
                                                    .with_records(Some(r.clone()))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let mut theirs = BytesMut::new();
                encode_request(&mut theirs, version, 77, client_id, &request).unwrap();
                assert_eq!(
                    ours,
                    theirs.to_vec(),
                    "Produce v{version}, {client_id:?}, {txn:?}"
                );

                for (p, records) in topics.iter().flat_map(|t| &t.partitions) {
                    if !records.is_empty() {
                        assert!(
                            chunks.iter().any(|c| c.as_ptr() == records.as_ptr()),
                            "partition {p}'s batch is a chunk of its own"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn versions_it_does_not_write_are_an_error() {
        for version in [2, 13] {
            let e = encode_produce_request(version, 1, None, None, 1, 1, &[]).unwrap_err();
            assert!(e.to_string().contains("Produce v"), "{e}");
        }
    }
}
