//! Producer configuration by Kafka's own property names and defaults.
//!
//! A [`ProducerConfig`] is built from properties (`set`, `from_properties`, `from_properties_file`)
//! or with the typed methods. Every key and default is the Java client's; an unknown key or a bad
//! value is an [`Error::Config`] that names the key and says what is allowed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

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

/// `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CompressionType {
    /// No compression (the default).
    #[default]
    None,
}

impl CompressionType {
    /// The codec the record batch encoder uses for this setting.
    pub(crate) fn codec(self) -> kafka_producer_protocol::Compression {
        match self {
            CompressionType::None => kafka_producer_protocol::Compression::None,
        }
    }
}

/// The keys this client understands, each with Kafka's default, in the order the docs list them.
const KNOWN_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", ""),
    ("client.id", ""),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("batch.size", "16384"),
    ("buffer.memory", "33554432"),
    ("max.block.ms", "60000"),
    ("max.request.size", "1048576"),
    ("request.timeout.ms", "30000"),
    ("delivery.timeout.ms", "120000"),
    ("metadata.max.age.ms", "300000"),
    ("retries", "2147483647"),
    ("retry.backoff.ms", "100"),
    ("retry.backoff.max.ms", "1000"),
    ("max.in.flight.requests.per.connection", "5"),
    ("enable.idempotence", "false"),
    ("compression.type", "none"),
    ("partitioner.ignore.keys", "false"),
    ("socket.connection.setup.timeout.ms", "10000"),
    ("reconnect.backoff.ms", "50"),
    ("key.serializer", ""),
    ("value.serializer", ""),
];

/// The producer's settings. Build one with [`ProducerConfig::new`] and the setters, or from properties.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub(crate) bootstrap_servers: Vec<String>,
    pub(crate) client_id: String,
    pub(crate) acks: Acks,
    pub(crate) linger: Duration,
    pub(crate) batch_size: usize,
    pub(crate) buffer_memory: usize,
    pub(crate) max_block: Duration,
    pub(crate) max_request_size: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) delivery_timeout: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) compression: CompressionType,
    pub(crate) partitioner_ignore_keys: bool,
    pub(crate) connection_setup_timeout: Duration,
    pub(crate) reconnect_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        let mut config = ProducerConfig {
            bootstrap_servers: Vec::new(),
            client_id: String::new(),
            acks: Acks::All,
            linger: Duration::ZERO,
            batch_size: 0,
            buffer_memory: 0,
            max_block: Duration::ZERO,
            max_request_size: 0,
            request_timeout: Duration::ZERO,
            delivery_timeout: Duration::ZERO,
            metadata_max_age: Duration::ZERO,
            retries: 0,
            retry_backoff: Duration::ZERO,
            retry_backoff_max: Duration::ZERO,
            max_in_flight: 0,
            compression: CompressionType::None,
            partitioner_ignore_keys: false,
            connection_setup_timeout: Duration::ZERO,
            reconnect_backoff: Duration::ZERO,
        };
        for (key, default) in KNOWN_KEYS {
            if !default.is_empty() {
                config
                    .set(key, default)
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
            "linger.ms" => self.linger = millis(key, value, 0)?,
            "batch.size" => self.batch_size = int(key, value, 0, i32::MAX as u64)? as usize,
            "buffer.memory" => self.buffer_memory = int(key, value, 1, u32::MAX as u64)? as usize,
            "max.block.ms" => self.max_block = millis(key, value, 0)?,
            "max.request.size" => {
                self.max_request_size = int(key, value, 1, i32::MAX as u64)? as usize
            }
            "request.timeout.ms" => self.request_timeout = millis(key, value, 1)?,
            "delivery.timeout.ms" => self.delivery_timeout = millis(key, value, 1)?,
            "metadata.max.age.ms" => self.metadata_max_age = millis(key, value, 0)?,
            "retries" => self.retries = int(key, value, 0, i32::MAX as u64)? as u32,
            "retry.backoff.ms" => self.retry_backoff = millis(key, value, 0)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = millis(key, value, 0)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = int(key, value, 1, 1000)? as usize
            }
            "enable.idempotence" => {
                if boolean(key, value)? {
                    return Err(Error::config(
                        key,
                        "`true` is not supported yet by this version; set it to false",
                    ));
                }
            }
            "compression.type" => {
                self.compression = match value {
                    "none" => CompressionType::None,
                    "gzip" | "snappy" | "lz4" | "zstd" => {
                        return Err(Error::config(
                            key,
                            format!(
                                "`{value}` is not supported yet by this version; only `none` is"
                            ),
                        ))
                    }
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("`{value}` is not one of none, gzip, snappy, lz4, zstd"),
                        ))
                    }
                }
            }
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = boolean(key, value)?,
            "socket.connection.setup.timeout.ms" => {
                self.connection_setup_timeout = millis(key, value, 1)?
            }
            "reconnect.backoff.ms" => self.reconnect_backoff = millis(key, value, 0)?,
            // The Java client names serializer classes here; in Rust they are types, chosen in code.
            "key.serializer" | "value.serializer" => {}
            _ => {
                let known: Vec<&str> = KNOWN_KEYS.iter().map(|(k, _)| *k).collect();
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
        let floor = self.linger + self.request_timeout;
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
        if self.retry_backoff_max < self.retry_backoff {
            return Err(Error::config(
                "retry.backoff.max.ms",
                "must not be less than retry.backoff.ms",
            ));
        }
        Ok(())
    }

    /// The configured `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
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
        self.linger = linger;
        self
    }

    /// Sets `batch.size` in bytes.
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `buffer.memory` in bytes.
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Sets `max.block.ms`.
    pub fn with_max_block(mut self, max_block: Duration) -> Self {
        self.max_block = max_block;
        self
    }

    /// Sets `max.request.size` in bytes.
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets `request.timeout.ms`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets `delivery.timeout.ms`.
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets `client.id`.
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        self.client_id = client_id.to_string();
        self
    }

    /// Sets `metadata.max.age.ms`.
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets `retry.backoff.ms` and `retry.backoff.max.ms`.
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = initial;
        self.retry_backoff_max = max;
        self
    }

    /// Sets `partitioner.ignore.keys`: when true, keys do not choose the partition.
    pub fn with_partitioner_ignore_keys(mut self, ignore: bool) -> Self {
        self.partitioner_ignore_keys = ignore;
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

fn int(key: &str, value: &str, min: u64, max: u64) -> Result<u64> {
    match value.parse::<i64>() {
        Ok(v) if v >= min as i64 && v as u64 <= max => Ok(v as u64),
        _ => Err(Error::config(
            key,
            format!("`{value}` is not an integer in [{min}, {max}]"),
        )),
    }
}

fn millis(key: &str, value: &str, min: u64) -> Result<Duration> {
    int(key, value, min, i64::MAX as u64).map(Duration::from_millis)
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
        assert_eq!(c.buffer_memory, 33554432);
        assert_eq!(c.max_block, Duration::from_secs(60));
        assert_eq!(c.max_request_size, 1048576);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
        assert_eq!(c.metadata_max_age, Duration::from_secs(300));
        assert_eq!(c.max_in_flight, 5);
        c.validate().unwrap();
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
    fn properties_text() {
        let p = parse_properties("# c\n! c\n\nacks = all\nlinger.ms: 7\n").unwrap();
        assert_eq!(p["acks"], "all");
        assert_eq!(p["linger.ms"], "7");
        assert_eq!(parse_properties("a=1\nnonsense\n"), Err(2));
    }

    #[test]
    fn host_port() {
        assert_eq!(parse_host_port("h:9").unwrap(), ("h".to_string(), 9));
        assert_eq!(parse_host_port("[::1]:9").unwrap(), ("::1".to_string(), 9));
        assert!(parse_host_port("h").is_err());
        assert!(parse_host_port(":9").is_err());
    }
}
