//! The producer against the secured cluster (`scripts/kafka up --secure`): every listener and
//! SASL mechanism, each configured by the client properties file a Java user would use, read
//! unchanged; the records read back by the Java reader. Then the refusals: a wrong password, an
//! unknown CA, a client certificate from another CA, and a principal without write permission.
//! Then OAUTHBEARER's token sources: an OIDC token endpoint (the testkit's, minting tokens the
//! brokers' unsecured validator accepts) and an application's provider, refreshed as sessions end.

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_producer::{Error, ErrorCode, OAuthToken, Producer, ProducerConfig, ProducerRecord};
use kafka_producer_testkit::{secure_cluster, unsecured_jwt, Cluster, TestPki, TokenEndpoint};

/// Far below `max.block.ms` and `delivery.timeout.ms`: a refusal must not wait for either.
const PATIENCE: Duration = Duration::from_secs(15);

/// The Java client file, read by this client as it is; only `linger.ms` is added.
fn config(file: &Path) -> ProducerConfig {
    let mut c = ProducerConfig::from_properties_file(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    c.set("linger.ms", "0").unwrap();
    c
}

/// Sends `n` records named after `file` with its configuration.
async fn produce(file: &Path, topic: &str, n: usize) -> Vec<String> {
    let name = file.file_stem().unwrap().to_string_lossy().to_string();
    produce_with(&name, || config(file), topic, n).await
}

/// Sends `n` records named `<name>-<i>` with a producer from `make`; retries while the ACLs
/// granted just now have not reached every broker (they travel through the metadata log).
async fn produce_with(
    name: &str,
    make: impl Fn() -> ProducerConfig,
    topic: &str,
    n: usize,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let p = Producer::new(make()).await?;
            let mut deliveries = Vec::new();
            for i in 0..n {
                let r = ProducerRecord::new(topic)
                    .key(name)
                    .value(format!("{name}-{i}"));
                deliveries.push(p.send(r).await?);
            }
            p.flush().await?;
            for d in deliveries {
                d.await?;
            }
            p.close(PATIENCE).await
        };
        match tokio::time::timeout(PATIENCE * 2, attempt).await {
            Ok(Ok(())) => return (0..n).map(|i| format!("{name}-{i}")).collect(),
            Ok(Err(e)) if not_yet_granted(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Err(e)) => panic!("{name}: {e}"),
            Err(_) => panic!("{name}: no outcome within {:?}", PATIENCE * 2),
        }
    }
}

fn not_yet_granted(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("AUTHORIZATION_FAILED") || matches!(e, Error::FlushFailed { .. })
}

#[tokio::test]
async fn every_listener_and_mechanism_with_the_java_client_files() {
    let Some((cluster, dir)) =
        secure_cluster("every_listener_and_mechanism_with_the_java_client_files")
    else {
        return;
    };
    let topic = Cluster::random_topic("secure");
    cluster.create_topic(&topic, 3, 3, &[]);
    cluster.grant_write("User:alice", &topic);
    cluster.grant_write("User:CN=client", &topic);

    let mut files = vec![
        "ssl.properties".to_string(),
        "ssl-pkcs12.properties".into(),
        "ssl-jks.properties".into(),
        // The PEM keystore's key is encrypted for Java (PBE-SHA1-3DES) under ssl.key.password.
        "mtls-client.properties".into(),
        "mtls-client-pkcs12.properties".into(),
        "mtls-client-jks.properties".into(),
    ];
    for listener in ["sasl_ssl", "sasl_plaintext"] {
        for mechanism in ["plain", "scram-sha-256", "scram-sha-512", "oauthbearer"] {
            // SASL_PLAINTEXT does not enable SCRAM-SHA-512 (see the refusals).
            if listener == "sasl_plaintext" && mechanism == "scram-sha-512" {
                continue;
            }
            files.push(format!("{listener}-{mechanism}-alice.properties"));
        }
    }
    let mut expected = Vec::new();
    for file in &files {
        expected.extend(produce(&dir.join(file), &topic, 5).await);
    }
    let mut got: Vec<String> = cluster
        .read_topic(&topic)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every record exactly once");

    // The Java reader takes the JKS client file as it is (principal CN=client, granted Read).
    let mtls_jks = dir.join("mtls-client-jks.properties");
    let b = cluster.bootstrap().to_string();
    let acl = [
        "--bootstrap-server",
        &b,
        "--add",
        "--allow-principal",
        "User:CN=client",
        "--operation",
        "Read",
        "--topic",
        &topic,
    ];
    assert!(cluster.tool("kafka-acls", &acl).status.success());
    let reader_args = [
        "--consumer.config",
        mtls_jks.to_str().unwrap(),
        "--topic",
        &topic,
    ];
    kafka_producer_testkit::wait_until("CN=client may read", Duration::from_secs(60), || {
        cluster.tool("reader", &reader_args).status.success()
    });
    let mut by_java: Vec<String> = cluster
        .read_topic_with(&topic, &mtls_jks)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    by_java.sort();
    assert_eq!(
        by_java, expected,
        "read over mutual TLS with the JKS stores"
    );
}

/// `Producer::new`'s error for `file`, within PATIENCE.
async fn refused(file: &Path) -> String {
    refused_with(config(file)).await
}

/// `Producer::new`'s error for `config`, within PATIENCE.
async fn refused_with(config: ProducerConfig) -> String {
    tokio::time::timeout(PATIENCE, Producer::new(config))
        .await
        .unwrap_or_else(|_| panic!("no answer within {PATIENCE:?}"))
        .map(drop)
        .expect_err("must be refused")
        .to_string()
}

#[tokio::test]
async fn refusals_are_clear_and_fast() {
    let Some((cluster, dir)) = secure_cluster("refusals_are_clear_and_fast") else {
        return;
    };
    let negative = dir.join("negative");
    for mechanism in ["plain", "scram-sha-512"] {
        let file = negative.join(format!(
            "sasl_ssl-{mechanism}-alice-wrong-password.properties"
        ));
        let e = refused(&file).await;
        assert!(
            e.contains("authentication with broker") && e.contains("SASL_AUTHENTICATION_FAILED"),
            "{mechanism}: {e}"
        );
        assert!(!e.contains("password="), "{e}");
    }
    // The PEM keystore's encrypted key under a wrong ssl.key.password: an error at
    // construction, naming the key, not a handshake the broker refuses.
    let mut c = config(&dir.join("mtls-client.properties"));
    c.set("ssl.key.password", "not-the-password").unwrap();
    let e = refused_with(c).await;
    assert!(
        e.contains("ssl.keystore.location") && e.contains("not its password"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");

    // A mechanism the listener does not enable: the broker's list, in the error.
    let e = refused(&negative.join("sasl_plaintext-scram-sha-512-alice.properties")).await;
    assert!(
        e.contains("UNSUPPORTED_SASL_MECHANISM") || e.contains("does not enable SCRAM-SHA-512"),
        "{e}"
    );
    assert!(
        e.contains("it enables: PLAIN, SCRAM-SHA-256, OAUTHBEARER"),
        "{e}"
    );

    // A JKS truststore needs its password, and the right one.
    let jks = dir.join("ssl-jks.properties");
    for (password, says) in [
        (None, "ssl.truststore.password"),
        (Some("wrong"), "not a JKS store this password opens"),
    ] {
        let mut c = ProducerConfig::new("127.0.0.1:1");
        for (k, v) in kafka_producer_testkit::read_properties(&jks) {
            if k != "ssl.truststore.password" {
                c.set(&k, &v).unwrap();
            }
        }
        if let Some(p) = password {
            c.set("ssl.truststore.password", p).unwrap();
        }
        let e = refused_with(c).await;
        assert!(e.contains(says) && e.contains("truststore.jks"), "{e}");
    }

    let e = refused(&negative.join("ssl-wrong-ca.properties")).await;
    assert!(e.contains("TLS") && e.contains("UnknownIssuer"), "{e}");
    // A client certificate from a CA the brokers do not trust.
    let other = TestPki::new("another CA", &[]);
    let mut c = config(&dir.join("mtls-client-pkcs12.properties"));
    c.set("ssl.keystore.key", &other.client_key_pem).unwrap();
    c.set("ssl.keystore.certificate.chain", &other.client_cert_pem)
        .unwrap();
    let e = refused_with(c).await;
    assert!(
        e.contains("BadCertificate") || e.contains("CertificateUnknown") || e.contains("UnknownCA"),
        "{e}"
    );

    // Authenticated, but not allowed to write: the send fails at once, naming the ACL.
    let topic = Cluster::random_topic("denied");
    cluster.create_topic(&topic, 1, 3, &[]);
    let file = dir.join("sasl_ssl-scram-sha-256-alice.properties");
    let mut c = config(&file);
    // Without IdempotentWrite on the cluster an idempotent producer cannot start; this is
    // about the topic.
    c.set("enable.idempotence", "false").unwrap();
    c.set("acks", "1").unwrap();
    let p = Producer::new(c).await.unwrap();
    let sent = tokio::time::timeout(
        PATIENCE,
        p.send(ProducerRecord::new(&topic).key("k").value("x")),
    )
    .await;
    let e = sent
        .expect("send returns")
        .expect_err("no Write on the topic");
    assert_eq!(e.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED), "{e}");
    assert!(e.to_string().contains("Write and Describe ACLs"), "{e}");
    p.close(PATIENCE).await.unwrap();
}

/// Counts the producer's "SASL session ending" events per thread: a current-thread runtime
/// runs a test's producer tasks on the test's thread. One global subscriber for the whole test
/// binary, because tracing caches each event site's interest across threads, and a per-thread
/// subscriber can miss events when other threads hit the site first.
struct Renewals;

static RENEWALS: std::sync::Mutex<Vec<std::thread::ThreadId>> = std::sync::Mutex::new(Vec::new());

/// The renewals seen on this thread so far (installs the subscriber on first use).
fn renewals_on_this_thread() -> usize {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Renewals).unwrap());
    let me = std::thread::current().id();
    RENEWALS
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t == me)
        .count()
}

impl tracing::Subscriber for Renewals {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" && format!("{value:?}").contains("SASL session ending")
                {
                    self.0 = true;
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            RENEWALS.lock().unwrap().push(std::thread::current().id());
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Sends a record every 10 ms for `how_long`, then checks the Java reader gets each of them
/// exactly once.
async fn stream_for(p: Producer, cluster: &Cluster, topic: &str, how_long: Duration) {
    let started = Instant::now();
    let mut deliveries = Vec::new();
    while started.elapsed() < how_long {
        let value = format!("r{}", deliveries.len());
        deliveries.push(
            p.send(ProducerRecord::new(topic).key("k").value(value))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.flush().await.unwrap();
    let sent = deliveries.len();
    for d in deliveries {
        d.await.unwrap();
    }
    p.close(PATIENCE).await.unwrap();
    let mut got: Vec<String> = cluster
        .read_topic(topic)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .filter(|v| v.starts_with('r'))
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..sent).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(got, expected, "every record exactly once");
}

/// SCRAM-SHA-256 sessions on the SASL_PLAINTEXT listener end after 4 s
/// (`connections.max.reauth.ms`): over a 20 s stream the producer authenticates afresh before
/// each ends, and the Java reader gets every record exactly once.
#[tokio::test]
async fn a_20_second_stream_outlives_its_4_second_sasl_sessions() {
    let Some((cluster, dir)) =
        secure_cluster("a_20_second_stream_outlives_its_4_second_sasl_sessions")
    else {
        return;
    };
    let renewals_before = renewals_on_this_thread();
    let topic = Cluster::random_topic("reauth");
    cluster.create_topic(&topic, 3, 3, &[]);
    cluster.grant_write("User:alice", &topic);
    let file = dir.join("sasl_plaintext-scram-sha-256-alice.properties");
    // The ACLs may take a moment to reach every broker.
    produce(&file, &topic, 1).await;
    let p = Producer::new(config(&file)).await.unwrap();
    stream_for(p, &cluster, &topic, Duration::from_secs(20)).await;
    let renewed = renewals_on_this_thread() - renewals_before;
    assert!(
        renewed >= 3,
        "{renewed} session renewals in 20 s of 4 s sessions"
    );
}

/// The Java client's OIDC setup (KIP-768) over SASL_SSL: the token endpoint as a property, the
/// client's id, secret and scope in the login module. One token serves every connection; the
/// principal is the token's subject, so the ACLs are granted to the client id.
#[tokio::test]
async fn oidc_client_credentials_over_sasl_ssl() {
    let Some((cluster, dir)) = secure_cluster("oidc_client_credentials_over_sasl_ssl") else {
        return;
    };
    let idp = TokenEndpoint::start("kprod-svc", "svc-secret", Duration::from_secs(3600)).await;
    let topic = Cluster::random_topic("oidc");
    cluster.create_topic(&topic, 3, 3, &[]);
    cluster.grant_write("User:kprod-svc", &topic);
    let oidc = |secret: &str| {
        let mut c = config(&dir.join("sasl_ssl-oauthbearer-alice.properties"));
        c.set(
            "sasl.jaas.config",
            &format!(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 clientId=\"kprod-svc\" clientSecret=\"{secret}\" scope=\"kafka\";"
            ),
        )
        .unwrap();
        c.set(
            "sasl.login.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
        )
        .unwrap();
        c.set("sasl.oauthbearer.token.endpoint.url", &idp.url)
            .unwrap();
        c
    };
    let expected = produce_with("oidc", || oidc("svc-secret"), &topic, 50).await;
    let mut got: Vec<String> = cluster
        .read_topic(&topic)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(got, expected, "every record exactly once");
    let requests = idp.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.request_line, "POST /oauth2/token HTTP/1.1");
        assert_eq!(r.credentials.as_deref(), Some("kprod-svc:svc-secret"));
        assert_eq!(r.body, "grant_type=client_credentials&scope=kafka");
    }

    // A wrong secret: the endpoint's 401 fails the producer at once, naming the endpoint and
    // its answer, never the secret.
    let before = requests.len();
    let e = refused_with(oidc("wrong-secret")).await;
    assert!(
        e.contains("SASL/OAUTHBEARER") && e.contains("401") && e.contains("invalid_client"),
        "{e}"
    );
    assert!(e.contains(&idp.url) && !e.contains("wrong-secret"), "{e}");
    assert_eq!(idp.requests().len(), before + 1, "no retry of a refusal");
}

/// An application's token provider, with 5 s tokens on the SASL_PLAINTEXT listener, where
/// OAUTHBEARER sessions end after 4 s or when the token expires: over a 15 s stream the producer
/// asks the provider again before each token expires, and the Java reader gets every record
/// exactly once. Then a provider that fails: the error reaches the caller at once.
#[tokio::test]
async fn an_application_token_provider_is_asked_again_before_each_token_expires() {
    let Some((cluster, dir)) =
        secure_cluster("an_application_token_provider_is_asked_again_before_each_token_expires")
    else {
        return;
    };
    let topic = Cluster::random_topic("provider");
    cluster.create_topic(&topic, 3, 3, &[]);
    cluster.grant_write("User:app-signed", &topic);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let with_provider = || {
        let calls = calls.clone();
        config(&dir.join("sasl_plaintext-oauthbearer-alice.properties")).with_oauth_token_provider(
            move || {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    let lifetime = Duration::from_secs(5);
                    Ok(OAuthToken::new(
                        unsecured_jwt("app-signed", lifetime),
                        lifetime,
                    ))
                }
            },
        )
    };
    produce_with("warm-up", with_provider, &topic, 1).await;
    calls.store(0, std::sync::atomic::Ordering::SeqCst);

    let p = Producer::new(with_provider()).await.unwrap();
    stream_for(p, &cluster, &topic, Duration::from_secs(15)).await;
    // 5 s tokens refreshed at 80 %: 15 s need at least 3 after the first.
    let asked = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked >= 4, "the provider was asked {asked} times in 15 s");

    let failing = config(&dir.join("sasl_plaintext-oauthbearer-alice.properties"))
        .with_oauth_token_provider(|| async { Err("the signer's credentials expired".into()) });
    let e = refused_with(failing).await;
    assert!(
        e.contains("the token provider failed: the signer's credentials expired"),
        "{e}"
    );
}
