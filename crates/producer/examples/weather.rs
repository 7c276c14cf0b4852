//! The README's demo: weather readings as JSON, keyed by city, to `weather_realtime`.
//!
//! ```text
//! KAFKA_BOOTSTRAP=localhost:9092 cargo run --example weather
//! ```
//!
//! The Python original, for comparison:
//!
//! ```python
//! producer = KafkaProducer(bootstrap_servers=['localhost:9092'], acks='all',
//!                          value_serializer=lambda v: json.dumps(v).encode('utf-8'))
//! producer.send('weather_realtime', key='seoul', value=weather_data)
//! producer.flush()
//! ```
//!
//! The topic must exist (`scripts/demo` creates it with 3 partitions). Records with the same key go
//! to the same partition, in the order they were sent; the example prints where each city goes
//! before sending and checks that the brokers agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_producer::{
    partition_for_key, Acks, JsonSerializer, ProducerConfig, ProducerRecord, StringSerializer,
    TypedProducer,
};
use serde::Serialize;

const TOPIC: &str = "weather_realtime";
const ROUNDS: u32 = 5;
/// Each city with a typical temperature, in °C. With 3 partitions these keys use all three.
const CITIES: [(&str, f64); 7] = [
    ("seoul", 10.0),
    ("busan", 14.5),
    ("incheon", 9.5),
    ("daejeon", 11.5),
    ("ulsan", 14.0),
    ("changwon", 14.5),
    ("jeju", 16.5),
];

/// One reading: `{"city":"seoul","temp":10.3,"ts":1700000000000}` on the wire.
#[derive(Debug, Serialize)]
struct Reading {
    city: &'static str,
    temp: f64,
    /// Milliseconds since the Unix epoch.
    ts: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap =
        std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "localhost:9092".to_string());
    let config = ProducerConfig::new(&bootstrap).with_acks(Acks::All);
    let producer: TypedProducer<str, Reading> =
        TypedProducer::new(config, StringSerializer, JsonSerializer).await?;

    let partitions = producer.partition_count(TOPIC).await?;
    println!("{TOPIC} has {partitions} partitions; each city's readings all go to one:");
    for (city, _) in CITIES {
        let partition = partition_for_key(city.as_bytes(), partitions as u32);
        println!("  {city:<9} -> partition {partition}");
    }

    // `send` only queues the record: it returns at once, and the delivery comes later.
    let mut deliveries = Vec::new();
    for round in 0..ROUNDS {
        for (i, (city, base)) in CITIES.into_iter().enumerate() {
            let reading = Reading {
                city,
                temp: temperature(base, round, i),
                ts: now_millis(),
            };
            let delivery = producer
                .send(ProducerRecord::new(TOPIC).key(city).value(&reading))
                .await?;
            deliveries.push((city, delivery));
        }
        // Readings come in over time, so each round is later than the one before.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Send whatever is still buffered and wait until the brokers (all in-sync replicas) have it.
    producer.flush().await?;

    for (city, delivery) in deliveries {
        let delivered = delivery.await?;
        let offset = delivered.offset.expect("acks=all reports offsets");
        println!(
            "{city} -> partition {} @ offset {offset}",
            delivered.partition
        );
        let expected = partition_for_key(city.as_bytes(), partitions as u32) as i32;
        if delivered.partition != expected {
            return Err(format!(
                "{city} went to partition {}, not {expected}",
                delivered.partition
            )
            .into());
        }
    }

    producer.close(Duration::from_secs(10)).await?;
    Ok(())
}

/// A plausible reading near `base`, different for each round and city, with one decimal.
fn temperature(base: f64, round: u32, city: usize) -> f64 {
    let wobble = ((round as usize * 7 + city * 3) % 11) as f64 / 10.0 - 0.5;
    ((base + wobble) * 10.0).round() / 10.0
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
