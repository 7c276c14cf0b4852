//! Producer configuration by Kafka's own property names and defaults.
//!
//! A [`ProducerConfig`] is built from properties (`set`, `from_properties`, `from_properties_file`)
//! or with the typed methods. Every key and default is the Java client's; an unknown key or a bad
//! value is an [`Error::Config`] that names the key and says what is allowed.
//!
//! Every property, with its type, default, range and meaning, is in one table (`reference.rs`),
//! which docs/configuration.md is generated from.
//!
//! Every numeric property has the Java client's range however it is set: [`ProducerConfig::set`]
//! checks a value at once, and [`ProducerConfig::validate`] (which `Producer::new` calls) checks
//! whatever the typed setters stored. A duration the Java client types as `long` may be anything
//! up to `i64::MAX` ms, its idiom for "no limit", which is taken as 100 years.

mod reference;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use kafka_producer_protocol::Compression;

use crate::error::{Error, Result};
use crate::sasl::SaslSettings;
use crate::tls::{SecurityProtocol, TlsSettings};

use reference::{DefaultValue, Section};

/// `acks`: when the leader answers a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Acks {
    /// `acks=0`: no answer at all; the offset is unknown and a failure goes unnoticed.
    None,
    /// `acks=1`: once the leader has written the record.
    Leader,
    /// `acks=all` (or `-1`): once every in-sync replica has it. The default.
    #[default]
    All,
}

impl Acks {
    /// The value of the `acks` field in a ProduceRequest.
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// `compression.type`: the codec every batch is compressed with, in the format the Java client
/// writes. The levels are `compression.gzip.level`, `compression.lz4.level` and
/// `compression.zstd.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CompressionType {
    /// No compression (the default).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// snappy, in snappy-java's framing.
    Snappy,
    /// An LZ4 frame.
    Lz4,
    /// zstd (brokers 2.1 and later).
    Zstd,
}

impl CompressionType {
    /// Kafka's name for it, as `compression.type` takes it.
    pub fn name(self) -> &'static str {
        match self {
            CompressionType::None => "none",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

/// `metadata.recovery.strategy` (KIP-899): where the producer looks for the cluster when none of the
/// brokers it knows of answers (all of them stopped, say, or moved to other addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetadataRecoveryStrategy {
    /// `none`: once the first metadata has come, only the brokers of the latest metadata are asked;
    /// the bootstrap servers never again. Records then fail at `delivery.timeout.ms` if none of
    /// those brokers comes back.
    None,
    /// `rebootstrap`, the default (as in the Java client since Kafka 4.0): when every known broker
    /// has failed a metadata request (or InitProducerId, or a transaction coordinator lookup), the
    /// bootstrap servers are tried again, their names resolved anew, and their metadata replaces
    /// the old brokers.
    #[default]
    Rebootstrap,
}

impl MetadataRecoveryStrategy {
    /// Kafka's name for it, as `metadata.recovery.strategy` takes it.
    pub fn name(self) -> &'static str {
        match self {
            MetadataRecoveryStrategy::None => "none",
            MetadataRecoveryStrategy::Rebootstrap => "rebootstrap",
        }
    }
}

/// `compression.type` and the `compression.<codec>.level` settings, which Kafka keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompressionConfig {
    pub(crate) kind: CompressionType,
    pub(crate) gzip_level: i32,
    pub(crate) lz4_level: i32,
    pub(crate) zstd_level: i32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            kind: CompressionType::None,
            gzip_level: Compression::GZIP_DEFAULT_LEVEL,
            lz4_level: Compression::LZ4_DEFAULT_LEVEL,
            zstd_level: Compression::ZSTD_DEFAULT_LEVEL,
        }
    }
}

impl CompressionConfig {
    /// The codec, with its level, that batches are sealed with.
    pub(crate) fn codec(self) -> Compression {
        match self.kind {
            CompressionType::None => Compression::None,
            CompressionType::Gzip => Compression::Gzip {
                level: self.gzip_level,
            },
            CompressionType::Snappy => Compression::Snappy,
            CompressionType::Lz4 => Compression::Lz4 {
                level: self.lz4_level,
            },
            CompressionType::Zstd => Compression::Zstd {
                level: self.zstd_level,
            },
        }
    }
}

/// `client.dns.lookup`: how broker names become addresses. Either way a name is resolved again
/// at every connection and each of its addresses is tried in turn (see `connection/dns.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DnsLookup {
    /// `use_all_dns_ips`, the default.
    UseAllDnsIps,
    /// `resolve_canonical_bootstrap_servers_only`: each bootstrap server is first replaced by the
    /// canonical names of its addresses (reverse lookup), for Kerberos or certificates issued
    /// to those names.
    CanonicalBootstrap,
}

/// The producer's settings. Build one with [`ProducerConfig::new`] and the setters, or from properties.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub(crate) bootstrap_servers: Vec<String>,
    pub(crate) client_id: String,
    pub(crate) acks: Acks,
    pub(crate) linger: Duration,
    pub(crate) batch_size: usize,
    /// How far a batch may grow past `batch.size` while `linger.ms` lets it fill: KIP-782's
    /// `batch.max.size`.
    pub(crate) batch_max_size: usize,
    pub(crate) buffer_memory: usize,
    pub(crate) max_block: Duration,
    pub(crate) max_request_size: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) metadata_max_age: Duration,
    /// `metrics.sample.window.ms` and `metrics.num.samples`: the windowed metrics' samples.
    pub(crate) metrics_window: Duration,
    pub(crate) metrics_samples: usize,
    /// `metadata.recovery.strategy`: whether the bootstrap servers are tried again once metadata came.
    pub(crate) metadata_recovery: MetadataRecoveryStrategy,
    /// `metadata.recovery.rebootstrap.trigger.ms`: kept for its range check only (see
    /// [`ProducerConfig::with_metadata_recovery_strategy`]).
    pub(crate) rebootstrap_trigger: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) max_in_flight: usize,
    /// `enable.idempotence` as the user set it; `None` means the default.
    pub(crate) enable_idempotence: Option<bool>,
    pub(crate) compression: CompressionConfig,
    pub(crate) partitioner_ignore_keys: bool,
    /// `partitioner.adaptive.partitioning.enable`: a record without a key moves to a partition
    /// chosen by how short its queue is, rather than uniformly.
    pub(crate) partitioner_adaptive: bool,
    /// `partitioner.availability.timeout.ms`: with adaptive partitioning, a partition whose
    /// leader has had batches ready but none drained for longer is not chosen; zero: off.
    pub(crate) partitioner_availability_timeout: Duration,
    pub(crate) connection_setup_timeout: Duration,
    pub(crate) dns_lookup: DnsLookup,
    pub(crate) reconnect_backoff: Duration,
    /// `transactional.id`: set, the producer writes in transactions.
    pub(crate) transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay open.
    pub(crate) transaction_timeout: Duration,
    /// `security.protocol` and `ssl.*`.
    pub(crate) tls: TlsSettings,
    /// `sasl.*`.
    pub(crate) sasl: SaslSettings,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        let mut config = ProducerConfig {
            bootstrap_servers: Vec::new(),
            client_id: String::new(),
            acks: Acks::All,
            linger: Duration::ZERO,
            batch_size: 0,
            batch_max_size: 0,
            buffer_memory: 0,
            max_block: Duration::ZERO,
            max_request_size: 0,
            request_timeout: Duration::ZERO,
            delivery_timeout: Duration::ZERO,
            metadata_max_age: Duration::ZERO,
            metrics_window: Duration::ZERO,
            metrics_samples: 0,
            metadata_recovery: MetadataRecoveryStrategy::Rebootstrap,
            rebootstrap_trigger: Duration::ZERO,
            retries: 0,
            retry_backoff: Duration::ZERO,
            retry_backoff_max: Duration::ZERO,
            max_in_flight: 0,
            enable_idempotence: None,
            compression: CompressionConfig::default(),
            partitioner_ignore_keys: false,
            partitioner_adaptive: false,
            partitioner_availability_timeout: Duration::ZERO,
            connection_setup_timeout: Duration::ZERO,
            dns_lookup: DnsLookup::UseAllDnsIps,
            reconnect_backoff: Duration::ZERO,
            transactional_id: None,
            transaction_timeout: Duration::ZERO,
            tls: TlsSettings::default(),
            sasl: SaslSettings::default(),
        };
        // The producer's own keys; the TLS and SASL settings' defaults are their types' own.
        for p in reference::PROPERTIES {
            if let (Section::Producer, DefaultValue::Is(default)) = (p.section, p.default) {
                config
                    .set(p.name, default)
                    .expect("the built-in defaults are valid");
            }
        }
        config
    }
}

impl ProducerConfig {
    /// A configuration with Kafka's defaults and the given `bootstrap.servers`
    /// (`host:port`, comma-separated for several).
    pub fn new(bootstrap_servers: &str) -> Self {
        ProducerConfig {
            bootstrap_servers: split_servers(bootstrap_servers),
            ..ProducerConfig::default()
        }
    }

    /// Builds a configuration from `key=value` properties; later keys win.
    pub fn from_properties<I, K, V>(props: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = ProducerConfig::default();
        for (k, v) in props {
            config.set(k.as_ref(), v.as_ref())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a Java `.properties` file (`key=value` or `key: value`, `#` and `!` comments).
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self> {
        let props = read_properties_file(path.as_ref())?;
        Self::from_properties(props)
    }

    /// Sets one property by its Kafka name. The value is checked at once.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let value = value.trim();
        match key {
            "bootstrap.servers" => self.bootstrap_servers = split_servers(value),
            "client.id" => self.client_id = value.to_string(),
            "metrics.sample.window.ms" => self.metrics_window = millis(key, value)?,
            "metrics.num.samples" => self.metrics_samples = int(key, value)? as usize,
            "metrics.recording.level" => {
                if !["INFO", "DEBUG", "TRACE"].contains(&value) {
                    return Err(Error::config(
                        key,
                        format!("`{value}` is not one of INFO, DEBUG, TRACE"),
                    ));
                }
            }
            "acks" => {
                self.acks = match value {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("`{value}` is not one of 0, 1, all, -1"),
                        ))
                    }
                }
            }
            "linger.ms" => self.linger = millis(key, value)?,
            "batch.size" => self.batch_size = int(key, value)? as usize,
            "batch.max.size" => self.batch_max_size = int(key, value)? as usize,
            "buffer.memory" => self.buffer_memory = int(key, value)? as usize,
            "max.block.ms" => self.max_block = millis(key, value)?,
            "max.request.size" => self.max_request_size = int(key, value)? as usize,
            "request.timeout.ms" => self.request_timeout = millis(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = millis(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = millis(key, value)?,
            // Case-insensitive, as the Java client's validator.
            "metadata.recovery.strategy" => {
                self.metadata_recovery = match value.to_ascii_lowercase().as_str() {
                    "none" => MetadataRecoveryStrategy::None,
                    "rebootstrap" => MetadataRecoveryStrategy::Rebootstrap,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("`{value}` is not one of none, rebootstrap"),
                        ))
                    }
                }
            }
            "metadata.recovery.rebootstrap.trigger.ms" => {
                self.rebootstrap_trigger = millis(key, value)?
            }
            "retries" => self.retries = int(key, value)? as u32,
            "retry.backoff.ms" => self.retry_backoff = millis(key, value)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = millis(key, value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = int(key, value)? as usize
            }
            "enable.idempotence" => self.enable_idempotence = Some(boolean(key, value)?),
            "compression.type" => {
                self.compression.kind = match value {
                    "none" => CompressionType::None,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("`{value}` is not one of none, gzip, snappy, lz4, zstd"),
                        ))
                    }
                }
            }
            "compression.gzip.level" => {
                self.compression.gzip_level = level(
                    key,
                    value,
                    Compression::GZIP_LEVELS,
                    Some(Compression::GZIP_DEFAULT_LEVEL),
                )?
            }
            "compression.lz4.level" => {
                self.compression.lz4_level = level(key, value, Compression::LZ4_LEVELS, None)?
            }
            "compression.zstd.level" => {
                self.compression.zstd_level = level(key, value, Compression::ZSTD_LEVELS, None)?
            }
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = boolean(key, value)?,
            "partitioner.adaptive.partitioning.enable" => {
                self.partitioner_adaptive = boolean(key, value)?
            }
            "partitioner.availability.timeout.ms" => {
                self.partitioner_availability_timeout = millis(key, value)?
            }
            "socket.connection.setup.timeout.ms" => {
                self.connection_setup_timeout = millis(key, value)?
            }
            "client.dns.lookup" => {
                self.dns_lookup = match value {
                    "use_all_dns_ips" => DnsLookup::UseAllDnsIps,
                    "resolve_canonical_bootstrap_servers_only" => DnsLookup::CanonicalBootstrap,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "`{value}` is not one of use_all_dns_ips, \
                                 resolve_canonical_bootstrap_servers_only"
                            ),
                        ))
                    }
                }
            }
            "reconnect.backoff.ms" => self.reconnect_backoff = millis(key, value)?,
            // An empty id means none, as in the Java client.
            "transactional.id" => {
                self.transactional_id = (!value.is_empty()).then(|| value.to_string())
            }
            "transaction.timeout.ms" => self.transaction_timeout = millis(key, value)?,
            // The Java client names serializer classes here; in Rust they are types, chosen in code.
            "key.serializer" | "value.serializer" => {}
            _ if self.tls.set(key, value)? => {}
            _ if self.sasl.set(key, value)? => {}
            _ => {
                let known: Vec<&str> = reference::keys().collect();
                return Err(Error::config(
                    key,
                    format!(
                        "unknown property; known properties are: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(self)
    }

    /// Checks the settings against each other, as the Java client does when it starts.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::config(
                "bootstrap.servers",
                "must list at least one host:port",
            ));
        }
        for server in &self.bootstrap_servers {
            parse_host_port(server)?;
        }
        // The typed setters take any value; every one is checked here against the range `set`
        // applies, so nothing out of range reaches an `Instant` or the memory semaphore.
        for (key, value) in self.numbers() {
            check_range(key, value)?;
        }
        if self.tls.protocol.uses_sasl() {
            self.sasl.validate()?;
        }
        let floor = self.linger.saturating_add(self.request_timeout);
        if self.delivery_timeout < floor {
            return Err(Error::config(
                "delivery.timeout.ms",
                format!(
                    "{} ms is less than linger.ms + request.timeout.ms ({} ms)",
                    self.delivery_timeout.as_millis(),
                    floor.as_millis()
                ),
            ));
        }
        if self.enable_idempotence == Some(true) || self.transactional_id.is_some() {
            if let Some(conflict) = self.idempotence_conflict() {
                let key = match self.enable_idempotence {
                    Some(true) => "enable.idempotence",
                    _ => "transactional.id",
                };
                let why = match key {
                    "transactional.id" => {
                        format!("a transactional producer is idempotent, which {conflict}")
                    }
                    _ => conflict,
                };
                return Err(Error::config(key, why));
            }
        }
        if self.transactional_id.is_some() && self.enable_idempotence == Some(false) {
            return Err(Error::config(
                "transactional.id",
                "a transactional producer must be idempotent: unset enable.idempotence=false",
            ));
        }
        if self.retry_backoff_max < self.retry_backoff {
            return Err(Error::config(
                "retry.backoff.max.ms",
                "must not be less than retry.backoff.ms",
            ));
        }
        Ok(())
    }

    /// Every numeric setting under its key, durations in milliseconds (rounded down, so a
    /// sub-millisecond timeout fails a minimum of 1 ms as `set` would).
    fn numbers(&self) -> [(&'static str, u128); 20] {
        [
            ("metrics.sample.window.ms", self.metrics_window.as_millis()),
            ("metrics.num.samples", self.metrics_samples as u128),
            ("linger.ms", self.linger.as_millis()),
            ("batch.size", self.batch_size as u128),
            ("batch.max.size", self.batch_max_size as u128),
            ("buffer.memory", self.buffer_memory as u128),
            ("max.block.ms", self.max_block.as_millis()),
            ("max.request.size", self.max_request_size as u128),
            ("request.timeout.ms", self.request_timeout.as_millis()),
            ("delivery.timeout.ms", self.delivery_timeout.as_millis()),
            ("metadata.max.age.ms", self.metadata_max_age.as_millis()),
            (
                "metadata.recovery.rebootstrap.trigger.ms",
                self.rebootstrap_trigger.as_millis(),
            ),
            ("retries", self.retries as u128),
            ("retry.backoff.ms", self.retry_backoff.as_millis()),
            ("retry.backoff.max.ms", self.retry_backoff_max.as_millis()),
            (
                "max.in.flight.requests.per.connection",
                self.max_in_flight as u128,
            ),
            (
                "socket.connection.setup.timeout.ms",
                self.connection_setup_timeout.as_millis(),
            ),
            ("reconnect.backoff.ms", self.reconnect_backoff.as_millis()),
            (
                "partitioner.availability.timeout.ms",
                self.partitioner_availability_timeout.as_millis(),
            ),
            (
                "transaction.timeout.ms",
                self.transaction_timeout.as_millis(),
            ),
        ]
    }

    /// Whether the producer is idempotent. As in the Java client: on by default, unless `acks`,
    /// `retries` or `max.in.flight.requests.per.connection` conflict with it and it was not asked for
    /// explicitly (then those settings are an error, see [`ProducerConfig::validate`]).
    pub fn idempotent(&self) -> bool {
        self.enable_idempotence.unwrap_or(true) && self.idempotence_conflict().is_none()
    }

    fn idempotence_conflict(&self) -> Option<String> {
        if self.acks != Acks::All {
            Some("requires acks=all".into())
        } else if self.max_in_flight > 5 {
            Some(format!(
                "requires max.in.flight.requests.per.connection <= 5 (it is {})",
                self.max_in_flight
            ))
        } else if self.retries == 0 {
            Some("requires retries > 0".into())
        } else {
            None
        }
    }

    /// Sets `enable.idempotence`.
    pub fn with_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// Sets `transactional.id`: the producer then writes in transactions
    /// ([`Producer::init_transactions`](crate::Producer::init_transactions) first).
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into()).filter(|id: &String| !id.is_empty());
        self
    }

    /// The configured `transactional.id`, if any.
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// The configured `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }

    /// The configured `buffer.memory`, in bytes.
    pub fn buffer_memory(&self) -> usize {
        self.buffer_memory
    }

    /// The configured `acks`.
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// Sets `acks`.
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Sets `linger.ms`.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = forever_at_most(linger);
        self
    }

    /// Sets `batch.size` in bytes.
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `batch.max.size` in bytes: how large a batch may grow past `batch.size`. A batch
    /// then goes when `linger.ms` has passed since its first record or when it reaches
    /// `batch.max.size`, not when it reaches `batch.size`. Default 1,000,000 (librdkafka's
    /// `batch.size`: under the broker's default `message.max.bytes` of 1,048,588 with room for a
    /// codec's framing), never more than `max.request.size`; at or below `batch.size`, batches
    /// never grow and a batch goes as soon as it reaches `batch.size` (the Java client's
    /// behaviour). The key is KIP-782's; the Java client does not have it.
    pub fn with_batch_max_size(mut self, bytes: usize) -> Self {
        self.batch_max_size = bytes;
        self
    }

    /// Sets `buffer.memory` in bytes.
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets `max.block.ms`.
    pub fn with_max_block(mut self, max_block: Duration) -> Self {
        self.max_block = forever_at_most(max_block);
        self
    }

    /// Sets `max.request.size` in bytes.
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets `request.timeout.ms`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = forever_at_most(timeout);
        self
    }

    /// Sets `delivery.timeout.ms`.
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = forever_at_most(timeout);
        self
    }

    /// Sets `client.id`.
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        self.client_id = client_id.to_string();
        self
    }

    /// Sets `metadata.max.age.ms`.
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = forever_at_most(age);
        self
    }

    /// Sets `metadata.recovery.strategy` (KIP-899): [`MetadataRecoveryStrategy::Rebootstrap`] (the
    /// default) goes back to `bootstrap.servers`, resolving their names again, whenever every broker
    /// of the latest metadata fails; [`MetadataRecoveryStrategy::None`] uses the bootstrap servers
    /// only until the first metadata has come.
    ///
    /// The Java client rebootstraps when it cannot connect to any known broker (KIP-899), or when
    /// it has had no metadata for `metadata.recovery.rebootstrap.trigger.ms` (KIP-1102, default
    /// 300000) although brokers accept connections. This producer asks each known broker in turn and
    /// then, in the same round, the bootstrap servers, so it rebootstraps as soon as every known
    /// broker has failed, never later than that trigger would. The key is accepted and checked
    /// (a `long`, at least 0) so that a Java client's properties work here, and changes nothing.
    pub fn with_metadata_recovery_strategy(mut self, strategy: MetadataRecoveryStrategy) -> Self {
        self.metadata_recovery = strategy;
        self
    }

    /// The configured `metadata.recovery.strategy`.
    pub fn metadata_recovery_strategy(&self) -> MetadataRecoveryStrategy {
        self.metadata_recovery
    }

    /// Sets `retry.backoff.ms` and `retry.backoff.max.ms`.
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = forever_at_most(initial);
        self.retry_backoff_max = forever_at_most(max);
        self
    }

    /// Sets `partitioner.ignore.keys`: when true, keys do not choose the partition.
    pub fn with_partitioner_ignore_keys(mut self, ignore: bool) -> Self {
        self.partitioner_ignore_keys = ignore;
        self
    }

    /// Sets `partitioner.adaptive.partitioning.enable` (default true): a record without a key
    /// that needs a new sticky partition gets one chosen at random weighted by how short each
    /// partition's queue of batches is, as the Java client's (KIP-794), so that a broker that
    /// falls behind gets fewer records; false chooses uniformly among partitions with a leader.
    pub fn with_partitioner_adaptive_partitioning(mut self, enable: bool) -> Self {
        self.partitioner_adaptive = enable;
        self
    }

    /// Sets `partitioner.availability.timeout.ms` (default 0, off): with adaptive partitioning,
    /// when a broker has had batches ready for longer than this without any drained to it (no
    /// connection, or every request slot taken), its partitions that have batches waiting are
    /// not chosen for records without a key.
    pub fn with_partitioner_availability_timeout(mut self, timeout: Duration) -> Self {
        self.partitioner_availability_timeout = forever_at_most(timeout);
        self
    }

    /// The configured `security.protocol`.
    pub fn security_protocol(&self) -> SecurityProtocol {
        self.tls.protocol
    }

    /// The configured `compression.type`.
    pub fn compression(&self) -> CompressionType {
        self.compression.kind
    }

    /// Sets `compression.type`; the level stays that of `compression.<codec>.level`.
    pub fn with_compression(mut self, compression: CompressionType) -> Self {
        self.compression.kind = compression;
        self
    }

    /// Takes SASL/OAUTHBEARER tokens from `provider` (see [`OAuthTokenProvider`]), ahead of any
    /// token source in the properties. `sasl.mechanism=OAUTHBEARER` and a SASL
    /// `security.protocol` are still set as properties.
    ///
    /// [`OAuthTokenProvider`]: crate::OAuthTokenProvider
    pub fn with_oauth_token_provider(mut self, provider: impl crate::OAuthTokenProvider) -> Self {
        self.sasl.oauth.set_provider(std::sync::Arc::new(provider));
        self
    }
}

/// Reads `key=value` pairs from a Java properties file.
pub fn read_properties_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(
            "producer.config",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    parse_properties(&text).map_err(|line| {
        Error::config(
            "producer.config",
            format!("{}:{line}: expected key=value", path.display()),
        )
    })
}

/// Parses Java properties text; on a line that is not `key=value`/`key: value`, returns its number.
pub(crate) fn parse_properties(text: &str) -> std::result::Result<BTreeMap<String, String>, usize> {
    let mut props = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).ok_or(i + 1)?;
        let (k, v) = (line[..split].trim(), line[split + 1..].trim());
        if k.is_empty() {
            return Err(i + 1);
        }
        props.insert(k.to_string(), v.to_string());
    }
    Ok(props)
}

/// Splits `host:port` into its parts; IPv6 hosts are written `[::1]:9092`.
pub(crate) fn parse_host_port(server: &str) -> Result<(String, u16)> {
    let bad = || Error::config("bootstrap.servers", format!("`{server}` is not host:port"));
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| bad())?;
    Ok((host.to_string(), port))
}

fn split_servers(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_range(key: &str, value: u128) -> Result<u64> {
    let (min, max) = reference::bounds(key);
    if (min as u128..=max as u128).contains(&value) {
        Ok(value as u64)
    } else {
        Err(Error::config(
            key,
            format!("{value} is not an integer in [{min}, {max}]"),
        ))
    }
}

fn int(key: &str, value: &str) -> Result<u64> {
    let (min, max) = reference::bounds(key);
    match value.parse::<i128>() {
        Ok(v) if v >= 0 => check_range(key, v as u128),
        _ => Err(Error::config(
            key,
            format!("`{value}` is not an integer in [{min}, {max}]"),
        )),
    }
}

fn millis(key: &str, value: &str) -> Result<Duration> {
    int(key, value).map(|ms| forever_at_most(Duration::from_millis(ms)))
}

/// Longer than any producer lives, and short enough that a deadline this far ahead, or a sum of a
/// few of them, never overflows an `Instant`. A `long` duration key set to `i64::MAX` (the Java
/// idiom for "no limit") means this.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn forever_at_most(d: Duration) -> Duration {
    d.min(FOREVER)
}

/// A compression level: an integer in `levels`, or the codec's `default` where Kafka allows it
/// outside the range (gzip's -1).
fn level(key: &str, value: &str, levels: RangeInclusive<i32>, default: Option<i32>) -> Result<i32> {
    match value.parse::<i32>() {
        Ok(v) if levels.contains(&v) || Some(v) == default => Ok(v),
        _ => {
            let or_default = default.map(|d| format!(" or {d}")).unwrap_or_default();
            Err(Error::config(
                key,
                format!(
                    "`{value}` is not an integer in [{}, {}]{or_default}",
                    levels.start(),
                    levels.end()
                ),
            ))
        }
    }
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(
            key,
            format!("`{value}` is not true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = ProducerConfig::new("localhost:9092");
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.batch_max_size, 1000000);
        assert_eq!(c.buffer_memory, 33554432);
        assert_eq!(c.max_block, Duration::from_secs(60));
        assert_eq!(c.max_request_size, 1048576);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.metadata_max_age, Duration::from_secs(300));
        assert_eq!(c.metadata_recovery, MetadataRecoveryStrategy::Rebootstrap);
        assert_eq!(c.rebootstrap_trigger, Duration::from_secs(300));
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.dns_lookup, DnsLookup::UseAllDnsIps);
        c.validate().unwrap();
    }

    #[test]
    fn client_dns_lookup_takes_javas_two_values() {
        let mut c = ProducerConfig::new("a:1");
        c.set(
            "client.dns.lookup",
            "resolve_canonical_bootstrap_servers_only",
        )
        .unwrap();
        assert_eq!(c.dns_lookup, DnsLookup::CanonicalBootstrap);
        c.set("client.dns.lookup", "use_all_dns_ips").unwrap();
        assert_eq!(c.dns_lookup, DnsLookup::UseAllDnsIps);
        // `default` went with Kafka 3.0 (KIP-602).
        let e = c
            .set("client.dns.lookup", "default")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`client.dns.lookup`") && e.contains("use_all_dns_ips"),
            "{e}"
        );
    }

    #[test]
    fn properties_set_values() {
        let c = ProducerConfig::from_properties([
            ("bootstrap.servers", "a:1, b:2"),
            ("acks", "-1"),
            ("linger.ms", "0"),
            ("batch.size", "1000"),
        ])
        .unwrap();
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.linger, Duration::ZERO);
        assert_eq!(c.batch_size, 1000);
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let mut c = ProducerConfig::new("a:1");
        let e = c.set("acks", "2").unwrap_err().to_string();
        assert!(e.contains("`acks`") && e.contains("0, 1, all, -1"), "{e}");
        let e = c.set("linger.ms", "soon").unwrap_err().to_string();
        assert!(e.contains("linger.ms") && e.contains("integer"), "{e}");
        let e = c.set("lingr.ms", "5").unwrap_err().to_string();
        assert!(e.contains("lingr.ms") && e.contains("linger.ms"), "{e}");
        let e = ProducerConfig::from_properties([("bootstrap.servers", "nohostport")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bootstrap.servers") && e.contains("host:port"),
            "{e}"
        );
        let e = ProducerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("delivery.timeout.ms", "1000"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("delivery.timeout.ms"), "{e}");
    }

    #[test]
    fn typed_setters_are_held_to_the_ranges_set_applies() {
        let e = |c: ProducerConfig| c.validate().unwrap_err().to_string();
        let c = || ProducerConfig::new("a:1");
        let msg = e(c().with_buffer_memory(usize::MAX));
        assert!(
            msg.contains("`buffer.memory`") && msg.contains("[1, 4294967295]"),
            "{msg}"
        );
        let msg = e(c().with_request_timeout(Duration::MAX));
        assert!(
            msg.contains("`request.timeout.ms`") && msg.contains("[1, 2147483647]"),
            "{msg}"
        );
        let msg = e(c().with_request_timeout(Duration::from_micros(999)));
        assert!(msg.contains("`request.timeout.ms`"), "{msg}");
        let msg = e(c().with_max_request_size(0));
        assert!(msg.contains("`max.request.size`"), "{msg}");
        let msg = e(c().with_batch_size(usize::MAX));
        assert!(msg.contains("`batch.size`"), "{msg}");
        // Java's "no limit" for a `long` duration: taken as FOREVER, never an overflow.
        let forever = c().with_linger(Duration::MAX).with_max_block(Duration::MAX);
        assert_eq!((forever.linger, forever.max_block), (FOREVER, FOREVER));
        assert!(forever
            .validate()
            .unwrap_err()
            .to_string()
            .contains("delivery.timeout.ms"));
        let mut c = c();
        c.set("max.block.ms", &i64::MAX.to_string()).unwrap();
        assert_eq!(c.max_block, FOREVER);
        let msg = c
            .set("max.block.ms", "9223372036854775808")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[0, 9223372036854775807]"), "{msg}");
        let msg = c.set("linger.ms", "-1").unwrap_err().to_string();
        assert!(msg.contains("`linger.ms`") && msg.contains("[0, "), "{msg}");
        c.validate().unwrap();
    }

    #[test]
    fn idempotence_is_on_unless_settings_conflict() {
        assert!(ProducerConfig::new("a:1").idempotent());
        let quiet = ProducerConfig::new("a:1").with_acks(Acks::Leader);
        assert!(!quiet.idempotent(), "acks=1 turns the default off");
        quiet.validate().unwrap();
        let e = ProducerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("enable.idempotence", "true"),
            ("acks", "1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("enable.idempotence") && e.contains("acks=all"),
            "{e}"
        );
        let e = ProducerConfig::from_properties([
            ("bootstrap.servers", "a:1"),
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "6"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("<= 5"), "{e}");
        let off = ProducerConfig::new("a:1").with_idempotence(false);
        assert!(!off.idempotent());
    }

    #[test]
    fn compression_types_and_levels_map_to_codecs() {
        let c = ProducerConfig::new("a:1");
        assert_eq!(c.compression(), CompressionType::None);
        assert_eq!(c.compression.codec(), Compression::None);
        let codec = |props: &[(&str, &str)]| {
            let mut c = ProducerConfig::new("a:1");
            for (k, v) in props {
                c.set(k, v).unwrap();
            }
            c.compression.codec()
        };
        // Kafka's defaults: gzip -1 (zlib's own), lz4 9, zstd 3.
        assert_eq!(
            codec(&[("compression.type", "gzip")]),
            Compression::Gzip { level: -1 }
        );
        assert_eq!(
            codec(&[("compression.type", "snappy")]),
            Compression::Snappy
        );
        assert_eq!(
            codec(&[("compression.type", "lz4")]),
            Compression::Lz4 { level: 9 }
        );
        assert_eq!(
            codec(&[("compression.type", "zstd")]),
            Compression::Zstd { level: 3 }
        );
        // Levels apply whatever the order of the keys, and only to their own codec.
        let levels = [
            ("compression.gzip.level", "9"),
            ("compression.lz4.level", "17"),
            ("compression.zstd.level", "-131072"),
        ];
        for (kind, expected) in [
            ("gzip", Compression::Gzip { level: 9 }),
            ("lz4", Compression::Lz4 { level: 17 }),
            ("zstd", Compression::Zstd { level: -131_072 }),
            ("none", Compression::None),
        ] {
            let mut props = levels.to_vec();
            props.push(("compression.type", kind));
            assert_eq!(codec(&props), expected);
            props.rotate_right(1);
            assert_eq!(codec(&props), expected);
        }
        let typed = ProducerConfig::new("a:1").with_compression(CompressionType::Zstd);
        assert_eq!(typed.compression(), CompressionType::Zstd);
        assert_eq!(typed.compression.codec(), Compression::Zstd { level: 3 });
        assert_eq!(typed.compression().name(), "zstd");
    }

    #[test]
    fn bad_compression_settings_name_the_key_and_the_range() {
        let mut c = ProducerConfig::new("a:1");
        for value in ["brotli", "GZIP", ""] {
            let e = c.set("compression.type", value).unwrap_err().to_string();
            assert!(
                e.contains("compression.type") && e.contains("none, gzip, snappy, lz4, zstd"),
                "{e}"
            );
        }
        for (key, bad, range) in [
            ("compression.gzip.level", "0", "[1, 9] or -1"),
            ("compression.gzip.level", "10", "[1, 9] or -1"),
            ("compression.gzip.level", "-2", "[1, 9] or -1"),
            ("compression.lz4.level", "0", "[1, 17]"),
            ("compression.lz4.level", "18", "[1, 17]"),
            ("compression.lz4.level", "-1", "[1, 17]"),
            ("compression.zstd.level", "23", "[-131072, 22]"),
            ("compression.zstd.level", "-131073", "[-131072, 22]"),
            ("compression.zstd.level", "fast", "[-131072, 22]"),
        ] {
            let e = c.set(key, bad).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(range), "{key}={bad}: {e}");
        }
        // Nothing was changed by the refused values.
        assert_eq!(c.compression, CompressionConfig::default());
        c.set("compression.zstd.level", "-5").unwrap();
        c.set("compression.gzip.level", " 1 ").unwrap();
        assert_eq!(
            (c.compression.zstd_level, c.compression.gzip_level),
            (-5, 1)
        );
    }

    #[test]
    fn properties_text() {
        let p = parse_properties("# c\n! c\n\nacks = all\nlinger.ms: 7\n").unwrap();
        assert_eq!(p["acks"], "all");
        assert_eq!(p["linger.ms"], "7");
        assert_eq!(parse_properties("a=1\nnonsense\n"), Err(2));
    }

    #[test]
    fn metadata_recovery_strategy_takes_javas_values_in_any_case() {
        let mut c = ProducerConfig::new("a:1");
        for (value, expected) in [
            ("none", MetadataRecoveryStrategy::None),
            ("REBOOTSTRAP", MetadataRecoveryStrategy::Rebootstrap),
            (" None ", MetadataRecoveryStrategy::None),
            ("rebootstrap", MetadataRecoveryStrategy::Rebootstrap),
        ] {
            c.set("metadata.recovery.strategy", value).unwrap();
            assert_eq!(c.metadata_recovery_strategy(), expected, "{value:?}");
            assert_eq!(expected.name(), value.trim().to_ascii_lowercase());
        }
        for bad in ["", "re-bootstrap", "rebootstrap,none"] {
            let e = c
                .set("metadata.recovery.strategy", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`metadata.recovery.strategy`") && e.contains("none, rebootstrap"),
                "{bad:?}: {e}"
            );
        }
        let c = c.with_metadata_recovery_strategy(MetadataRecoveryStrategy::None);
        assert_eq!(c.metadata_recovery, MetadataRecoveryStrategy::None);
    }

    #[test]
    fn rebootstrap_trigger_is_a_long_from_zero() {
        let key = "metadata.recovery.rebootstrap.trigger.ms";
        let mut c = ProducerConfig::new("a:1");
        c.set(key, "0").unwrap();
        assert_eq!(c.rebootstrap_trigger, Duration::ZERO);
        c.set(key, &i64::MAX.to_string()).unwrap();
        assert_eq!(c.rebootstrap_trigger, FOREVER);
        for bad in ["-1", "5s", "9223372036854775808"] {
            let e = c.set(key, bad).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("[0, 9223372036854775807]"),
                "{bad:?}: {e}"
            );
        }
        c.validate().unwrap();
    }

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("h:9").unwrap(), ("h".to_string(), 9));
        assert_eq!(parse_host_port("[::1]:9").unwrap(), ("::1".to_string(), 9));
        assert!(parse_host_port("h").is_err());
        assert!(parse_host_port(":9").is_err());
    }
}
