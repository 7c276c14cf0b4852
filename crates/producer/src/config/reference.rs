//! Every property [`ProducerConfig::set`] accepts, in one table: its type, default, range and
//! meaning. The table is the single source of truth: [`ProducerConfig::default`] applies its
//! defaults, `set`'s unknown-key error lists its keys, the numeric ranges `set` and `validate`
//! check are its ranges, and docs/configuration.md is rendered from it (`markdown`). The tests
//! below hold `set` and the page to it.
//!
//! [`ProducerConfig::set`]: super::ProducerConfig::set
//! [`ProducerConfig::default`]: super::ProducerConfig::default

// The page is rendered, and the types and meanings read, only by the tests that write and check
// docs/configuration.md.
#![cfg_attr(not(test), allow(dead_code))]

use kafka_producer_protocol::Compression;

/// The command that rewrites docs/configuration.md from this table.
pub(crate) const REGENERATE: &str =
    "KPROD_BLESS=1 cargo test -p kafka-producer --lib config::reference";

/// One property as `ProducerConfig::set` takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Property {
    /// Kafka's name (or librdkafka's, where the meaning says so).
    pub(crate) name: &'static str,
    /// Which part of the page it is listed in.
    pub(crate) section: Section,
    /// Its type, in the Java client's terms.
    pub(crate) kind: Kind,
    /// Its default, as the code applies it.
    pub(crate) default: DefaultValue,
    /// The values `set` accepts.
    pub(crate) values: Values,
    /// One line on what it does, and where this client differs from the Java client.
    pub(crate) meaning: &'static str,
}

/// The sections of the page, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Producer,
    Tls,
    Sasl,
    OAuthBearer,
}

impl Section {
    const ALL: [Section; 4] = [
        Section::Producer,
        Section::Tls,
        Section::Sasl,
        Section::OAuthBearer,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Producer => "Producer",
            Section::Tls => "TLS",
            Section::Sasl => "SASL",
            Section::OAuthBearer => "OAUTHBEARER",
        }
    }

    fn intro(self) -> &'static str {
        match self {
            Section::Producer => "Batching, delivery, retries, idempotence, compression, connections and transactions.",
            Section::Tls => "`security.protocol` and the `ssl.*` keys: TLS to the brokers, with rustls. \
                 Files are read when the producer starts; a missing or unreadable one fails \
                 `Producer::new` naming the key and the file.",
            Section::Sasl => "Authentication with a SASL `security.protocol` (`SASL_PLAINTEXT` or `SASL_SSL`).",
            Section::OAuthBearer => "Where `sasl.mechanism=OAUTHBEARER` takes its tokens from. An application's \
                 `OAuthTokenProvider` (`ProducerConfig::with_oauth_token_provider`) comes before all of these.",
        }
    }
}

/// A property's type, named as the Java client's documentation names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Int,
    Long,
    Double,
    Boolean,
    List,
    /// A string that never appears in `Debug` or an error.
    Password,
    /// A Java class name.
    Class,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Double => "double",
            Kind::Boolean => "boolean",
            Kind::List => "list",
            Kind::Password => "password",
            Kind::Class => "class",
        }
    }
}

/// A property's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    /// This value: `ProducerConfig::default` sets it (producer keys), or setting it changes
    /// nothing (the others).
    Is(&'static str),
    /// No value: the setting is off or unset.
    Unset,
    /// What the code does without a value, in words: it behaves as the words say but stores no
    /// value (a store read as PEM, both TLS versions) or works it out from other settings.
    Like(&'static str),
}

/// The values `set` accepts for a property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Values {
    /// Any text; the meaning says what it is.
    Any,
    /// Text of this form (not checked by `set` beyond what the meaning says).
    Form(&'static str),
    /// One of these, exactly as written unless `any_case`; for a list, each element.
    OneOf {
        values: &'static [&'static str],
        any_case: bool,
    },
    /// An integer in `[min, max]`, or `or`.
    Int { min: i64, max: i64, or: Option<i64> },
    /// A number in `[min, max]`.
    Decimal { min: f64, max: f64 },
}

/// The Java client's `int` range from 0 or 1.
const INT: i64 = i32::MAX as i64;
/// The Java client's `long` range: `i64::MAX` ms is its idiom for "no limit".
const LONG: i64 = i64::MAX;

const fn int(min: i64, max: i64) -> Values {
    Values::Int { min, max, or: None }
}

const fn one_of(values: &'static [&'static str]) -> Values {
    Values::OneOf {
        values,
        any_case: false,
    }
}

const fn one_of_any_case(values: &'static [&'static str]) -> Values {
    Values::OneOf {
        values,
        any_case: true,
    }
}

const BOOLEAN: Values = one_of_any_case(&["true", "false"]);

/// A compression level: the codec's range, as `set` checks it.
const fn level(levels: &std::ops::RangeInclusive<i32>, or: Option<i32>) -> Values {
    Values::Int {
        min: *levels.start() as i64,
        max: *levels.end() as i64,
        or: match or {
            Some(v) => Some(v as i64),
            None => None,
        },
    }
}

const fn producer(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    values: Values,
    meaning: &'static str,
) -> Property {
    Property {
        name,
        section: Section::Producer,
        kind,
        default,
        values,
        meaning,
    }
}

const fn tls(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    values: Values,
    meaning: &'static str,
) -> Property {
    Property {
        section: Section::Tls,
        ..producer(name, kind, default, values, meaning)
    }
}

const fn sasl(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    values: Values,
    meaning: &'static str,
) -> Property {
    Property {
        section: Section::Sasl,
        ..producer(name, kind, default, values, meaning)
    }
}

const fn oauth(
    name: &'static str,
    kind: Kind,
    default: DefaultValue,
    values: Values,
    meaning: &'static str,
) -> Property {
    Property {
        section: Section::OAuthBearer,
        ..producer(name, kind, default, values, meaning)
    }
}

use DefaultValue::{Is, Like, Unset};

/// Every property `ProducerConfig::set` accepts, section by section, in the order of Kafka's docs.
pub(crate) const PROPERTIES: &[Property] = &[
    producer(
        "bootstrap.servers",
        Kind::List,
        Unset,
        Values::Form("host:port, comma-separated; IPv6 as [::1]:9092"),
        "The brokers asked for the cluster's metadata at start and when rebootstrapping; one or two are enough. Required.",
    ),
    producer(
        "client.id",
        Kind::String,
        Is(""),
        Values::Any,
        "A name sent with every request, for the brokers' logs and quotas, and the metrics' `client-id`. When empty, as in the Java client: `producer-` and the `transactional.id`, else `producer-N`, N counting this process's producers.",
    ),
    producer(
        "metrics.sample.window.ms",
        Kind::Long,
        Is("30000"),
        int(1, LONG),
        "The window of one sample of the windowed metrics (rates, averages, maxima; `Producer::metrics`).",
    ),
    producer(
        "metrics.num.samples",
        Kind::Int,
        Is("2"),
        int(1, INT),
        "How many sample windows the windowed metrics keep; a rate is over their span.",
    ),
    producer(
        "metrics.recording.level",
        Kind::String,
        Is("INFO"),
        one_of(&["INFO", "DEBUG", "TRACE"]),
        "Checked, then ignored: every metric here is recorded at every level (they cost nothing per record).",
    ),
    producer(
        "acks",
        Kind::String,
        Is("all"),
        one_of(&["0", "1", "all", "-1"]),
        "When the leader answers a produce request: `0` never (no offset, failures unnoticed), `1` once it has written the records, `all` (`-1`) once every in-sync replica has.",
    ),
    producer(
        "linger.ms",
        Kind::Long,
        Is("5"),
        int(0, LONG),
        "How long a batch waits for more records before it may go.",
    ),
    producer(
        "batch.size",
        Kind::Int,
        Is("16384"),
        int(0, INT),
        "The batch size, in bytes, at which the Java client sends a partition's batch; here a batch may grow past it, up to `batch.max.size`, while `linger.ms` has not passed.",
    ),
    producer(
        "batch.max.size",
        Kind::Int,
        Is("1000000"),
        int(0, INT),
        "Not a Java client key (KIP-782's proposal): how large a batch may grow past `batch.size` while it waits, at most `max.request.size`. At or below `batch.size`, batches never grow, as in the Java client.",
    ),
    producer(
        "buffer.memory",
        Kind::Long,
        Is("33554432"),
        // The memory semaphore counts in u32-sized permits.
        int(1, u32::MAX as i64),
        "Bytes of records the producer may hold unsent; `send` waits for room up to `max.block.ms`. At most 4 GiB here, unlike the Java client's `long`.",
    ),
    producer(
        "max.block.ms",
        Kind::Long,
        Is("60000"),
        int(0, LONG),
        "How long `send` may wait for metadata or buffer room before it fails.",
    ),
    producer(
        "max.request.size",
        Kind::Int,
        Is("1048576"),
        int(1, INT),
        "The largest produce request in bytes, and so the largest record.",
    ),
    producer(
        "request.timeout.ms",
        Kind::Int,
        Is("30000"),
        int(1, INT),
        "How long to wait for a broker's answer (also to a TLS handshake) before the request fails and may be retried.",
    ),
    producer(
        "delivery.timeout.ms",
        Kind::Int,
        Is("120000"),
        int(1, INT),
        "How long a record may take from `send` to its outcome, retries included; at least `linger.ms` + `request.timeout.ms`.",
    ),
    producer(
        "metadata.max.age.ms",
        Kind::Long,
        Is("300000"),
        int(0, LONG),
        "How often metadata is refreshed when nothing has made it stale sooner.",
    ),
    producer(
        "metadata.recovery.strategy",
        Kind::String,
        Is("rebootstrap"),
        one_of_any_case(&["none", "rebootstrap"]),
        "When no known broker answers: `rebootstrap` goes back to `bootstrap.servers`, their names resolved again; `none` never does once metadata came (KIP-899).",
    ),
    producer(
        "metadata.recovery.rebootstrap.trigger.ms",
        Kind::Long,
        Is("300000"),
        int(0, LONG),
        "Checked, then ignored (KIP-1102): this producer rebootstraps as soon as every known broker has failed, never later than this trigger would.",
    ),
    producer(
        "retries",
        Kind::Int,
        Is("2147483647"),
        int(0, INT),
        "How many times a failed batch is retried; `delivery.timeout.ms` usually ends it first. `0` turns idempotence off unless it was asked for.",
    ),
    producer(
        "retry.backoff.ms",
        Kind::Long,
        Is("100"),
        int(0, LONG),
        "The wait before the first retry; it doubles with each retry, with ±20 % jitter, up to `retry.backoff.max.ms`.",
    ),
    producer(
        "retry.backoff.max.ms",
        Kind::Long,
        Is("1000"),
        int(0, LONG),
        "The longest wait between retries; not less than `retry.backoff.ms`.",
    ),
    producer(
        "max.in.flight.requests.per.connection",
        Kind::Int,
        Is("5"),
        int(1, 1000),
        "Produce requests a connection may have unanswered. Above 5, idempotence is off unless asked for (then an error). At most 1000 here.",
    ),
    producer(
        "enable.idempotence",
        Kind::Boolean,
        Like("true, unless `acks`, `retries` or `max.in.flight.requests.per.connection` conflict"),
        BOOLEAN,
        "A producer id and sequence numbers, so that retries write no duplicates. Unset, a conflicting setting turns it off quietly; set to `true`, a conflict is an error.",
    ),
    producer(
        "compression.type",
        Kind::String,
        Is("none"),
        one_of(&["none", "gzip", "snappy", "lz4", "zstd"]),
        "The codec batches are compressed with, in the format the Java client writes (zstd needs brokers 2.1 or later).",
    ),
    producer(
        "compression.gzip.level",
        Kind::Int,
        Is("-1"),
        level(&Compression::GZIP_LEVELS, Some(Compression::GZIP_DEFAULT_LEVEL)),
        "gzip's level; `-1` is zlib's own default.",
    ),
    producer(
        "compression.lz4.level",
        Kind::Int,
        Is("9"),
        level(&Compression::LZ4_LEVELS, None),
        "LZ4's level.",
    ),
    producer(
        "compression.zstd.level",
        Kind::Int,
        Is("3"),
        level(&Compression::ZSTD_LEVELS, None),
        "zstd's level.",
    ),
    producer(
        "partitioner.ignore.keys",
        Kind::Boolean,
        Is("false"),
        BOOLEAN,
        "When `true`, keys do not choose the partition: every record goes where a record without a key would.",
    ),
    producer(
        "partitioner.adaptive.partitioning.enable",
        Kind::Boolean,
        Is("true"),
        BOOLEAN,
        "When `true`, a record without a key that needs a new sticky partition gets one chosen at random weighted by how short each partition's queue of batches is (KIP-794), so a broker that falls behind gets fewer records; `false` chooses uniformly among the partitions with a leader.",
    ),
    producer(
        "partitioner.availability.timeout.ms",
        Kind::Long,
        Is("0"),
        int(0, LONG),
        "With adaptive partitioning: when a broker has had batches ready for longer than this without any drained to it (no connection, or every request slot taken), its partitions with batches waiting are not chosen for records without a key. `0`: off.",
    ),
    producer(
        "socket.connection.setup.timeout.ms",
        Kind::Long,
        Is("10000"),
        int(1, LONG),
        "How long one TCP connection attempt to one address may take before the next address is tried. Fixed: the Java client's `socket.connection.setup.timeout.max.ms` is not a key here.",
    ),
    producer(
        "client.dns.lookup",
        Kind::String,
        Is("use_all_dns_ips"),
        one_of(&["use_all_dns_ips", "resolve_canonical_bootstrap_servers_only"]),
        "Each of a name's addresses is tried in turn, the name resolved again at every connection; the second value first replaces each bootstrap server by its addresses' canonical names (for Kerberos or certificates).",
    ),
    producer(
        "reconnect.backoff.ms",
        Kind::Long,
        Is("50"),
        int(0, LONG),
        "The wait before connecting again to a broker that failed; it doubles with each failure up to 1 s (the Java client's `reconnect.backoff.max.ms` default, not a key here).",
    ),
    producer(
        "transactional.id",
        Kind::String,
        Unset,
        Values::Any,
        "Set, the producer writes in transactions under this id (and must be idempotent); empty means none.",
    ),
    producer(
        "transaction.timeout.ms",
        Kind::Int,
        Is("60000"),
        int(1, INT),
        "How long the transaction coordinator lets a transaction stay open before it aborts it.",
    ),
    producer(
        "key.serializer",
        Kind::Class,
        Unset,
        Values::Any,
        "Accepted so that a Java client's properties work, and ignored: serializers are Rust types, chosen in code (`TypedProducer`).",
    ),
    producer(
        "value.serializer",
        Kind::Class,
        Unset,
        Values::Any,
        "Accepted so that a Java client's properties work, and ignored, as `key.serializer`.",
    ),
    tls(
        "security.protocol",
        Kind::String,
        Is("PLAINTEXT"),
        one_of_any_case(&["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
        "How connections are made: plain, TLS, SASL, or SASL over TLS.",
    ),
    tls(
        "ssl.truststore.location",
        Kind::String,
        Unset,
        Values::Form("a file path"),
        "A file of the CA certificates to trust (PEM, PKCS12 or JKS: `ssl.truststore.type`). With no trust setting at all, Mozilla's roots are trusted.",
    ),
    tls(
        "ssl.truststore.type",
        Kind::String,
        Like("PEM"),
        one_of_any_case(&["PEM", "PKCS12", "JKS"]),
        "The format of `ssl.truststore.location`. Unset, the file is read as PEM; the Java client assumes JKS.",
    ),
    tls(
        "ssl.truststore.password",
        Kind::Password,
        Unset,
        Values::Any,
        "The truststore's password. A JKS truststore needs it here; the Java client reads one without, unchecked.",
    ),
    tls(
        "ssl.truststore.certificates",
        Kind::Password,
        Unset,
        Values::Form("PEM"),
        "The CA certificates to trust, inline; ahead of `ssl.truststore.location`.",
    ),
    tls(
        "ssl.ca.location",
        Kind::String,
        Unset,
        Values::Form("a file path"),
        "Not a Java client key: librdkafka's name, taken as `ssl.truststore.location`.",
    ),
    tls(
        "ssl.keystore.location",
        Kind::String,
        Unset,
        Values::Form("a file path"),
        "A file of the client's key and certificate chain, for mutual TLS (PEM, PKCS12 or JKS: `ssl.keystore.type`).",
    ),
    tls(
        "ssl.keystore.type",
        Kind::String,
        Like("PEM"),
        one_of_any_case(&["PEM", "PKCS12", "JKS"]),
        "The format of `ssl.keystore.location`. Unset, the file is read as PEM; the Java client assumes JKS.",
    ),
    tls(
        "ssl.keystore.password",
        Kind::Password,
        Unset,
        Values::Any,
        "The keystore's password (PKCS12, JKS); in a PKCS12 keystore it also guards the key.",
    ),
    tls(
        "ssl.keystore.key",
        Kind::Password,
        Unset,
        Values::Form("PEM"),
        "The client's private key, inline, possibly encrypted (`ssl.key.password`); with `ssl.keystore.certificate.chain`, ahead of `ssl.keystore.location`.",
    ),
    tls(
        "ssl.keystore.certificate.chain",
        Kind::Password,
        Unset,
        Values::Form("PEM"),
        "The client's certificate chain, inline; with `ssl.keystore.key`.",
    ),
    tls(
        "ssl.key.password",
        Kind::Password,
        Unset,
        Values::Any,
        "The password of an encrypted PEM key (PBES2, or PBE-SHA1-3DES), or of the key in a JKS keystore.",
    ),
    tls(
        "ssl.endpoint.identification.algorithm",
        Kind::String,
        Is("https"),
        one_of_any_case(&["https", ""]),
        "`https`: the broker's certificate must name the host connected to; empty: it need not (it is still checked against the trusted CAs).",
    ),
    tls(
        "ssl.enabled.protocols",
        Kind::List,
        Like("TLSv1.2,TLSv1.3"),
        one_of(&["TLSv1.2", "TLSv1.3"]),
        "The TLS versions the producer offers.",
    ),
    sasl(
        "sasl.mechanism",
        Kind::String,
        Unset,
        one_of(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]),
        "The SASL mechanism; required with SASL, as the Java client's default, GSSAPI (Kerberos), is not supported.",
    ),
    sasl(
        "sasl.jaas.config",
        Kind::Password,
        Unset,
        Values::Form("a JAAS login module entry, ending with `;`"),
        "Credentials as the Java client reads them: `PlainLoginModule` or `ScramLoginModule` with `username` and `password`, or `OAuthBearerLoginModule` with its options.",
    ),
    sasl(
        "sasl.username",
        Kind::String,
        Unset,
        Values::Any,
        "Not a Java client key: librdkafka's, the PLAIN or SCRAM user, instead of `sasl.jaas.config`.",
    ),
    sasl(
        "sasl.password",
        Kind::Password,
        Unset,
        Values::Any,
        "Not a Java client key: librdkafka's, the PLAIN or SCRAM password, instead of `sasl.jaas.config`.",
    ),
    oauth(
        "sasl.oauthbearer.token.endpoint.url",
        Kind::String,
        Unset,
        Values::Form("an http(s) or file: URL"),
        "An OIDC token endpoint, asked with the client-credentials grant (an `https` one trusted by Mozilla's roots plus `ssl.truststore.*`), or a `file:` URL naming a file with a JWT, read again at each refresh.",
    ),
    oauth(
        "sasl.oauthbearer.client.id",
        Kind::String,
        Unset,
        Values::Any,
        "Not a Java client key: librdkafka's name for the OIDC client id (else `OAuthBearerLoginModule`'s `clientId`).",
    ),
    oauth(
        "sasl.oauthbearer.client.secret",
        Kind::Password,
        Unset,
        Values::Any,
        "Not a Java client key: librdkafka's name for the OIDC client secret (else `OAuthBearerLoginModule`'s `clientSecret`).",
    ),
    oauth(
        "sasl.oauthbearer.client.credentials.client.id",
        Kind::String,
        Unset,
        Values::Any,
        "The Java client's name since Kafka 4.1 (KIP-1139) for `sasl.oauthbearer.client.id`.",
    ),
    oauth(
        "sasl.oauthbearer.client.credentials.client.secret",
        Kind::Password,
        Unset,
        Values::Any,
        "The Java client's name since Kafka 4.1 (KIP-1139) for `sasl.oauthbearer.client.secret`.",
    ),
    oauth(
        "sasl.oauthbearer.scope",
        Kind::String,
        Unset,
        Values::Any,
        "The scope asked for with the token (else `OAuthBearerLoginModule`'s `scope`).",
    ),
    oauth(
        "sasl.oauthbearer.extensions",
        Kind::String,
        Unset,
        Values::Form("name=value, comma-separated"),
        "Not a Java client key: librdkafka's, SASL extensions sent with the token (as `extension_<name>` login module options).",
    ),
    oauth(
        "sasl.oauthbearer.method",
        Kind::String,
        Is("default"),
        one_of_any_case(&["default", "oidc"]),
        "Not a Java client key: librdkafka's. Checked and otherwise ignored: the token source follows from the other settings.",
    ),
    oauth(
        "sasl.login.callback.handler.class",
        Kind::Class,
        Unset,
        Values::Form("the Java client's OIDC handler, or empty"),
        "Accepted for the Java client's OIDC handler (either of its names) and ignored: the OIDC flow needs no handler here. Any other class is an error.",
    ),
    oauth(
        "sasl.login.refresh.window.factor",
        Kind::Double,
        Is("0.8"),
        Values::Decimal { min: 0.5, max: 1.0 },
        "The share of a token's lifetime after which a fresh one is fetched.",
    ),
];

/// The property named `key`, if there is one.
pub(crate) fn find(key: &str) -> Option<&'static Property> {
    PROPERTIES.iter().find(|p| p.name == key)
}

/// Every key, in the table's order.
pub(crate) fn keys() -> impl Iterator<Item = &'static str> {
    PROPERTIES.iter().map(|p| p.name)
}

/// The allowed range of a numeric property (one that takes an integer from 0 or 1 and nothing
/// else): the Java client's, where an `int` key stops at `i32::MAX` and a `long` key at
/// `i64::MAX`. `set` and `validate` both check against it, so a value is held to the same range
/// whether it came as text or through a typed setter. Panics for any other key: a caller names
/// its own numeric keys.
pub(crate) fn bounds(key: &str) -> (u64, u64) {
    match find(key).map(|p| p.values) {
        Some(Values::Int { min, max, or: None }) if min >= 0 => (min as u64, max as u64),
        _ => unreachable!("`{key}` is not a non-negative integer property"),
    }
}

/// docs/configuration.md: the table as Markdown, a section per [`Section`].
pub(crate) fn markdown() -> String {
    let mut page = format!(
        "# Configuration reference\n\n\
         Every property the producer accepts, by its Kafka name: with `ProducerConfig::set` or \
         `ProducerConfig::from_properties` (and so a Java `.properties` file, `kprod -X KEY=VALUE` \
         and the Python package's `properties`). An unknown key, or a value outside the range, is \
         an error naming the key. Types, defaults and ranges are the Java client's unless the \
         meaning says otherwise; a `long` duration of 9223372036854775807 ms is the Java idiom for \
         \"no limit\", taken as 100 years.\n\n\
         This page is generated from the table in `crates/producer/src/config/reference.rs`, and a \
         unit test fails when the two differ: edit the table, not this page, then run\n\n\
         ```sh\n{REGENERATE}\n```\n"
    );
    for section in Section::ALL {
        page.push_str(&format!(
            "\n## {}\n\n{}\n\n| key | type | default | range or values | meaning |\n|---|---|---|---|---|\n",
            section.title(),
            section.intro()
        ));
        for p in PROPERTIES.iter().filter(|p| p.section == section) {
            page.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                p.name,
                p.kind.name(),
                cell(&default_text(p.default)),
                cell(&values_text(p.values)),
                cell(p.meaning)
            ));
        }
    }
    page
}

fn default_text(default: DefaultValue) -> String {
    match default {
        DefaultValue::Is("") => "empty".into(),
        DefaultValue::Is(v) => format!("`{v}`"),
        DefaultValue::Unset => "none".into(),
        DefaultValue::Like(words) => words.into(),
    }
}

fn values_text(values: Values) -> String {
    match values {
        Values::Any => String::new(),
        Values::Form(form) => form.into(),
        Values::OneOf { values, any_case } => {
            let listed: Vec<String> = values
                .iter()
                .map(|v| match *v {
                    "" => "empty".to_string(),
                    v => format!("`{v}`"),
                })
                .collect();
            let case = if any_case { " (any case)" } else { "" };
            format!("{}{case}", listed.join(", "))
        }
        Values::Int { min, max, or } => {
            let or = or.map(|v| format!(" or {v}")).unwrap_or_default();
            format!("[{min}, {max}]{or}")
        }
        Values::Decimal { min, max } => format!("[{min:?}, {max:?}]"),
    }
}

/// A table cell: a `|` would end it.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::ProducerConfig;

    /// A fresh configuration with `key` set to `value`, or the error.
    fn set(key: &str, value: &str) -> crate::Result<ProducerConfig> {
        let mut c = ProducerConfig::default();
        c.set(key, value)?;
        Ok(c)
    }

    /// A value `set` accepts for `p`, from the table alone, where one is there to take.
    fn sample(p: &Property) -> &'static str {
        match (p.default, p.values) {
            (DefaultValue::Is(v), _) => v,
            (_, Values::OneOf { values, .. }) => values[0],
            // The one key whose empty value is refused, as the Java client's parser refuses it.
            _ if p.name == "sasl.jaas.config" => {
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";"#
            }
            _ => "",
        }
    }

    #[test]
    fn every_key_is_accepted_with_its_default_or_a_listed_value() {
        for p in PROPERTIES {
            if let Err(e) = set(p.name, sample(p)) {
                panic!("{}={:?} is refused: {e}", p.name, sample(p));
            }
        }
    }

    /// A default the table states is the code's: setting it to a fresh configuration changes
    /// nothing that `Debug` shows (which is every setting but the secrets' values).
    #[test]
    fn stated_defaults_are_the_codes() {
        let fresh = format!("{:?}", ProducerConfig::default());
        for p in PROPERTIES {
            if let DefaultValue::Is(v) = p.default {
                let c = set(p.name, v).unwrap();
                assert_eq!(
                    format!("{c:?}"),
                    fresh,
                    "{}={v:?} is not the default",
                    p.name
                );
            }
        }
    }

    #[test]
    fn listed_values_and_ranges_are_what_set_checks() {
        for p in PROPERTIES {
            let name = p.name;
            match p.values {
                Values::OneOf { values, any_case } => {
                    for v in values {
                        set(name, v).unwrap_or_else(|e| panic!("{name}={v}: {e}"));
                        if any_case {
                            set(name, &v.to_ascii_uppercase()).unwrap();
                            set(name, &v.to_ascii_lowercase()).unwrap();
                        }
                    }
                    let e = set(name, "bogus").unwrap_err().to_string();
                    for v in values {
                        assert!(e.contains(name) && e.contains(v), "{name}: {e}");
                    }
                }
                Values::Int { min, max, or } => {
                    let range = values_text(p.values);
                    for ok in [Some(min), Some(max), or].into_iter().flatten() {
                        set(name, &ok.to_string()).unwrap_or_else(|e| panic!("{name}={ok}: {e}"));
                    }
                    let below = i128::from(min) - 1;
                    let above = i128::from(max) + 1;
                    for bad in [below, above]
                        .into_iter()
                        .filter(|v| Some(*v) != or.map(i128::from))
                    {
                        let e = set(name, &bad.to_string()).unwrap_err().to_string();
                        assert!(e.contains(name) && e.contains(&range), "{name}={bad}: {e}");
                    }
                }
                Values::Decimal { min, max } => {
                    set(name, &min.to_string()).unwrap();
                    set(name, &max.to_string()).unwrap();
                    let range = values_text(p.values);
                    for bad in [min - 0.01, max + 0.01] {
                        let e = set(name, &bad.to_string()).unwrap_err().to_string();
                        assert!(e.contains(name) && e.contains(&range), "{name}={bad}: {e}");
                    }
                }
                Values::Any | Values::Form(_) => {}
            }
        }
    }

    #[test]
    fn the_unknown_key_error_lists_the_table() {
        let e = set("no.such.key", "1").unwrap_err().to_string();
        let list = e
            .split_once("known properties are: ")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("{e}"));
        let listed: Vec<&str> = list.split(", ").collect();
        assert_eq!(listed, keys().collect::<Vec<_>>());
        let mut unique = listed.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), listed.len(), "a key is listed twice");
    }

    /// The keys the `set` functions match on, read from their source: a key that `set` takes
    /// but the table lacks would be missing from the page and the unknown-key error.
    #[test]
    fn every_key_the_code_matches_on_is_in_the_table() {
        let sources = [
            ("config.rs", include_str!("../config.rs")),
            ("tls.rs", include_str!("../tls.rs")),
            ("sasl.rs", include_str!("../sasl.rs")),
            ("oauth/mod.rs", include_str!("../oauth/mod.rs")),
        ];
        let mut matched: Vec<String> = Vec::new();
        for (file, source) in sources {
            let code = source.split("#[cfg(test)]").next().unwrap_or(source);
            for key in matched_keys(code) {
                assert!(
                    find(&key).is_some(),
                    "{file} matches on `{key}`, which the table lacks"
                );
                matched.push(key);
            }
        }
        // And the other way round, which shows that the scan sees every arm.
        for key in keys() {
            assert!(
                matched.iter().any(|m| m == key),
                "no `set` matches on `{key}`"
            );
        }
    }

    /// The string literals that make up the arms' patterns of every `match key` (`"a.b" | "c.d" =>`).
    fn matched_keys(code: &str) -> Vec<String> {
        let indent = |line: &str| line.len() - line.trim_start().len();
        let mut keys = Vec::new();
        let mut lines = code.lines();
        while let Some(line) = lines.next() {
            if !line.trim_end().ends_with("match key {") {
                continue;
            }
            let arm_indent = indent(line) + 4;
            // The arms' first lines, each with the lines of its patterns that start with `|`.
            let mut arms: Vec<String> = Vec::new();
            for line in lines.by_ref() {
                if indent(line) < arm_indent && !line.trim().is_empty() {
                    break;
                }
                let trimmed = line.trim();
                match arms.last_mut() {
                    _ if indent(line) != arm_indent => {}
                    Some(arm) if trimmed.starts_with('|') => arm.push_str(trimmed),
                    _ => arms.push(trimmed.to_string()),
                }
            }
            for arm in &arms {
                let Some((patterns, _)) = arm.split_once("=>") else {
                    continue;
                };
                let literals: Vec<&str> = patterns.split('|').map(str::trim).collect();
                if literals
                    .iter()
                    .all(|l| l.len() > 2 && l.starts_with('"') && l.ends_with('"'))
                {
                    keys.extend(literals.iter().map(|l| l[1..l.len() - 1].to_string()));
                }
            }
        }
        keys
    }

    #[test]
    fn config_reference_page_is_up_to_date() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let rendered = markdown();
        if std::env::var_os("KPROD_BLESS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
            return;
        }
        let page = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            page == rendered,
            "docs/configuration.md differs from the table in crates/producer/src/config/reference.rs; \
             regenerate it with `{REGENERATE}`"
        );
    }
}
