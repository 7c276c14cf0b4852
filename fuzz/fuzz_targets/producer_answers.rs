//! The producer itself against a broker whose answers the fuzzer writes.
//!
//! A broker on loopback reads each request the producer sends and answers it as the input says:
//! honestly, with fields of its own choosing (partition indexes, leaders, error codes, offsets,
//! version ranges, producer ids), with arbitrary bytes after a correct header, with an arbitrary
//! frame, with silence, or by closing the connection. The producer starts, sends a few records and
//! closes. Whatever the answers, nothing may panic (on any thread: the background tasks too),
//! every record handed to `send` must get its outcome, and the whole run must end in bounded time
//! (the producer's timeouts are short). No allocation may be sized by a number from the wire:
//! scripts/fuzz-smoke runs this with a malloc limit far below what such a number could ask for.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_producer::{Producer, ProducerConfig, ProducerRecord};
use kafka_producer_protocol::frame::{self, decode_request_body, decode_request_header};
use kafka_producer_protocol::kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_producer_protocol::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_producer_protocol::kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use kafka_producer_protocol::kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataResponse,
    ProduceRequest, ProduceResponse, ProducerId, RequestHeader, TopicName,
};
use kafka_producer_protocol::kafka_protocol::protocol::{Encodable, HeaderVersion, Message};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A run longer than this is a hang: the producer's own timeouts end every wait far sooner.
const HANG: Duration = Duration::from_secs(15);

#[derive(Arbitrary, Debug)]
struct Script {
    idempotent: bool,
    acks_one: bool,
    records: Vec<Rec>,
    answers: Vec<Answer>,
}

#[derive(Arbitrary, Debug)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    partition: Option<i8>,
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Honest,
    Versions {
        code: u8,
        ranges: Vec<(i16, i16, i16)>,
    },
    Metadata {
        brokers: Vec<(i32, Addr)>,
        topic_code: u8,
        partitions: Vec<(i32, i32, u8)>,
        other_topic: bool,
    },
    InitProducerId {
        code: u8,
        id: i64,
        epoch: i16,
    },
    Produce {
        codes: Vec<u8>,
        base_offset: i64,
        log_start_offset: i64,
        extra: Vec<(i32, u8)>,
    },
    /// A correct header, then these bytes as the body.
    Body(Vec<u8>),
    /// These bytes as the whole frame.
    Raw(Vec<u8>),
    Silent,
    Close,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    Here,
    /// Port 1 on loopback: refused at once.
    Refused,
}

/// Kafka's codes run from -1 to about 120; a byte covers them and a few unknown ones.
fn code(c: u8) -> i16 {
    i16::from(c % 130) - 1
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

fuzz_target!(|script: Script| {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
    let before = PANICS.load(Ordering::SeqCst);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(HANG, run(script))
            .await
            .expect("the producer hung")
    });
    drop(runtime);
    // A background task's panic is caught by tokio; count it here.
    assert_eq!(PANICS.load(Ordering::SeqCst), before, "a thread panicked");
});

async fn run(script: Script) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers = std::sync::Arc::new(std::sync::Mutex::new(
        script.answers.into_iter().take(64).collect::<std::collections::VecDeque<_>>(),
    ));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, port, answers.clone()));
        }
    });

    let mut config = ProducerConfig::new(&format!("127.0.0.1:{port}"));
    let acks = if script.acks_one && !script.idempotent { "1" } else { "all" };
    for (k, v) in [
        ("acks", acks),
        ("enable.idempotence", if script.idempotent { "true" } else { "false" }),
        ("linger.ms", "0"),
        ("request.timeout.ms", "200"),
        ("delivery.timeout.ms", "800"),
        ("max.block.ms", "300"),
        ("retry.backoff.ms", "5"),
        ("retry.backoff.max.ms", "20"),
        ("reconnect.backoff.ms", "5"),
        ("socket.connection.setup.timeout.ms", "200"),
        ("buffer.memory", "1048576"),
        ("batch.max.size", "65536"),
    ] {
        config.set(k, v).unwrap();
    }
    let Ok(producer) = Producer::new(config).await else {
        return;
    };
    let mut deliveries = Vec::new();
    for r in script.records.iter().take(8) {
        let mut record = ProducerRecord::new("t").value(&r.value[..]);
        if let Some(key) = &r.key {
            record = record.key(&key[..]);
        }
        if let Some(p) = r.partition {
            record = record.partition(i32::from(p));
        }
        if let Ok(d) = producer.send(record).await {
            deliveries.push(d);
        }
    }
    let _ = producer.close(Duration::from_millis(500)).await;
    for d in deliveries {
        let _ = d.await;
    }
    assert_eq!(producer.pending_records(), 0, "a record without an outcome");
}

async fn serve(
    mut stream: TcpStream,
    port: u16,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Answer>>>,
) {
    let mut buf = BytesMut::new();
    loop {
        let request = loop {
            match frame::split_frame(&mut buf, 8 << 20) {
                Ok(Some(f)) => break f.freeze(),
                Ok(None) => {}
                Err(_) => return,
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let mut body = request;
        let Ok(header) = decode_request_header(&mut body) else {
            return;
        };
        let answer = answers.lock().unwrap().pop_front().unwrap_or(Answer::Honest);
        let mut out = BytesMut::new();
        match answer {
            Answer::Silent => continue,
            Answer::Close => return,
            Answer::Raw(bytes) => {
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
            Answer::Body(bytes) => {
                let mut frame = BytesMut::new();
                frame.extend_from_slice(&header.correlation_id.to_be_bytes());
                frame.extend_from_slice(&bytes);
                out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
                out.extend_from_slice(&frame);
            }
            answer => {
                if respond(&mut out, &header, body, answer, port).is_err() {
                    return;
                }
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn respond(
    out: &mut BytesMut,
    h: &RequestHeader,
    body: Bytes,
    answer: Answer,
    port: u16,
) -> Result<(), ()> {
    let v = h.request_api_version;
    match ApiKey::try_from(h.request_api_key)? {
        ApiKey::ApiVersions => {
            let mut resp = ApiVersionsResponse::default();
            let ranges = match answer {
                Answer::Versions { code: c, ranges } => {
                    resp.error_code = code(c);
                    ranges
                }
                _ => vec![(18, 0, 3), (3, 0, 12), (0, 3, 12), (22, 0, 4)],
            };
            resp.api_keys = ranges
                .into_iter()
                .take(16)
                .map(|(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect();
            // Brokers answer an unsupported version at v0 (KIP-511).
            let v = if resp.error_code == 35 { 0 } else { v };
            encode(out, v, h.correlation_id, &resp)
        }
        ApiKey::Metadata => {
            let here = |node: i32, addr: Addr| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(node))
                    .with_host("127.0.0.1".into())
                    .with_port(match addr {
                        Addr::Here => i32::from(port),
                        Addr::Refused => 1,
                    })
            };
            let (brokers, topic_code, partitions, other) = match answer {
                Answer::Metadata {
                    brokers,
                    topic_code,
                    partitions,
                    other_topic,
                } => (
                    brokers.into_iter().take(8).map(|(n, a)| here(n, a)).collect(),
                    code(topic_code),
                    partitions.into_iter().take(16).collect(),
                    other_topic,
                ),
                _ => (vec![here(1, Addr::Here)], 0, vec![(0, 1, 1), (1, 1, 1)], false),
            };
            let partitions = partitions
                .into_iter()
                .map(|(index, leader, c)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_leader_id(BrokerId(leader))
                        .with_error_code(code(c))
                })
                .collect();
            let name = if other { "u" } else { "t" };
            let resp = MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(1))
                .with_topics(vec![MetadataResponseTopic::default()
                    .with_name(Some(TopicName(name.into())))
                    .with_error_code(topic_code)
                    .with_partitions(partitions)]);
            encode(out, v, h.correlation_id, &resp)
        }
        ApiKey::InitProducerId => {
            let (c, id, epoch) = match answer {
                Answer::InitProducerId { code: c, id, epoch } => (code(c), id, epoch),
                _ => (0, 1, 0),
            };
            let resp = InitProducerIdResponse::default()
                .with_error_code(c)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch);
            encode(out, v, h.correlation_id, &resp)
        }
        ApiKey::Produce => {
            let request: ProduceRequest = decode_request_body(body, v).map_err(|_| ())?;
            if request.acks == 0 {
                return Ok(());
            }
            let (codes, base, log_start, extra) = match answer {
                Answer::Produce {
                    codes,
                    base_offset,
                    log_start_offset,
                    extra,
                } => (codes, base_offset, log_start_offset, extra),
                _ => (Vec::new(), 0, 0, Vec::new()),
            };
            let mut i = 0;
            let mut responses: Vec<TopicProduceResponse> = request
                .topic_data
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_data
                        .iter()
                        .map(|p| {
                            let c = codes.get(i).map_or(0, |&c| code(c));
                            i += 1;
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(c)
                                .with_base_offset(base)
                                .with_log_start_offset(log_start)
                        })
                        .collect();
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(partitions)
                })
                .collect();
            if let Some(first) = responses.first_mut() {
                for (index, c) in extra.into_iter().take(8) {
                    first.partition_responses.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(code(c)),
                    );
                }
            }
            let resp = ProduceResponse::default().with_responses(responses);
            encode(out, v, h.correlation_id, &resp)
        }
        _ => Err(()),
    }
}

fn encode<M: Encodable + HeaderVersion + Message>(
    out: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    resp: &M,
) -> Result<(), ()> {
    frame::encode_response(out, version, correlation_id, resp).map_err(|_| ())
}
