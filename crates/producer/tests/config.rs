//! Every value the typed setters accept either fails `validate` with an error naming its key, or
//! makes a producer that works: it starts, takes a record and closes, with no panic anywhere
//! (background tasks included) and no hang. Against the testkit's fake broker; no cluster needed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use kafka_producer::{Error, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{FakeBroker, FakeConfig};
use proptest::prelude::*;

/// Panics seen by any thread since the hook was installed: a background task's panic would
/// otherwise vanish into its join handle.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Durations from the edges inward: zero, sub-millisecond, the `int` and `long` limits, the
/// largest `Duration`, and ordinary values.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_micros(500)),
        Just(Duration::from_millis(i32::MAX as u64)),
        Just(Duration::from_millis(i64::MAX as u64)),
        Just(Duration::MAX),
        (0u64..5_000).prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u32::MAX as usize),
        Just(i32::MAX as usize),
        Just(usize::MAX),
        0usize..2_000_000,
        any::<usize>(),
    ]
}

#[derive(Debug, Clone)]
enum Setter {
    Linger(Duration),
    MaxBlock(Duration),
    RequestTimeout(Duration),
    DeliveryTimeout(Duration),
    MetadataMaxAge(Duration),
    RetryBackoff(Duration, Duration),
    BatchSize(usize),
    BatchMaxSize(usize),
    BufferMemory(usize),
    MaxRequestSize(usize),
}

fn setter() -> impl Strategy<Value = Setter> {
    prop_oneof![
        duration().prop_map(Setter::Linger),
        duration().prop_map(Setter::MaxBlock),
        duration().prop_map(Setter::RequestTimeout),
        duration().prop_map(Setter::DeliveryTimeout),
        duration().prop_map(Setter::MetadataMaxAge),
        (duration(), duration()).prop_map(|(a, b)| Setter::RetryBackoff(a, b)),
        size().prop_map(Setter::BatchSize),
        size().prop_map(Setter::BatchMaxSize),
        size().prop_map(Setter::BufferMemory),
        size().prop_map(Setter::MaxRequestSize),
    ]
}

fn apply(c: ProducerConfig, s: &Setter) -> ProducerConfig {
    match *s {
        Setter::Linger(d) => c.with_linger(d),
        Setter::MaxBlock(d) => c.with_max_block(d),
        Setter::RequestTimeout(d) => c.with_request_timeout(d),
        Setter::DeliveryTimeout(d) => c.with_delivery_timeout(d),
        Setter::MetadataMaxAge(d) => c.with_metadata_max_age(d),
        Setter::RetryBackoff(a, b) => c.with_retry_backoff(a, b),
        Setter::BatchSize(n) => c.with_batch_size(n),
        Setter::BatchMaxSize(n) => c.with_batch_max_size(n),
        Setter::BufferMemory(n) => c.with_buffer_memory(n),
        Setter::MaxRequestSize(n) => c.with_max_request_size(n),
    }
}

/// Starts a producer with `config`, sends one record and closes it, all bounded in time.
async fn exercise(config: ProducerConfig) {
    const PATIENCE: Duration = Duration::from_secs(20);
    let bound = |what: &str| format!("{what} hung for {PATIENCE:?}");
    let producer = tokio::time::timeout(PATIENCE, Producer::new(config))
        .await
        .unwrap_or_else(|_| panic!("{}", bound("Producer::new")));
    let Ok(producer) = producer else { return };
    let record = ProducerRecord::new("t").key("k").value("v");
    // Every outcome is allowed (a one-byte buffer.memory refuses the record); hanging is not.
    // The send is bounded by the test, not by max.block.ms, which may be "forever" here.
    let sent = tokio::time::timeout(Duration::from_secs(2), producer.send(record)).await;
    let _ = tokio::time::timeout(PATIENCE, producer.close(Duration::from_secs(1)))
        .await
        .unwrap_or_else(|_| panic!("{}", bound("close")));
    if let Ok(Ok(delivery)) = sent {
        let _ = tokio::time::timeout(PATIENCE, delivery)
            .await
            .unwrap_or_else(|_| panic!("{}", bound("the delivery after close")));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn typed_setters_give_an_error_or_a_working_producer(setters in prop::collection::vec(setter(), 1..4)) {
        count_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let before = PANICS.load(Ordering::SeqCst);
        runtime.block_on(async {
            let broker = FakeBroker::start(FakeConfig {
                topics: vec![("t".into(), 2)],
                ..FakeConfig::default()
            })
            .await;
            let config = setters.iter().fold(ProducerConfig::new(&broker.addr()), apply);
            match config.validate() {
                Err(Error::Config { key, message }) => {
                    let unknown = ProducerConfig::new("a:1")
                        .set(&key, "x")
                        .is_err_and(|e| e.to_string().contains("unknown property"));
                    prop_assert!(!unknown, "the error names no property: {key}: {message}");
                }
                Err(other) => prop_assert!(false, "not a configuration error: {other}"),
                Ok(()) => exercise(config).await,
            }
            Ok(())
        })?;
        drop(runtime);
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a thread panicked");
    }
}
