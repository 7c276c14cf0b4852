//! TLS to the brokers (`security.protocol=SSL`) against the testkit's fake broker speaking TLS,
//! with a CA made for the test: trust from a PEM file or inline, mutual TLS, hostname checks, and
//! the refusals (unknown CA, wrong name, no client certificate, missing file). No cluster needed.

use std::path::PathBuf;
use std::time::Duration;

use kafka_producer::{Error, Producer, ProducerConfig, ProducerRecord, SecurityProtocol};
use kafka_producer_testkit::{FakeBroker, FakeConfig, TestPki};

/// Far below `max.block.ms` (60 s): a refusal must come from the handshake, not a timeout.
const PATIENCE: Duration = Duration::from_secs(10);

async fn tls_broker(pki: &TestPki, mutual: bool) -> FakeBroker {
    FakeBroker::start(FakeConfig {
        topics: vec![("t".into(), 2)],
        tls: Some(pki.server_config(mutual)),
        ..FakeConfig::default()
    })
    .await
}

/// A file in a directory of this test's own, removed with the process's temp files.
fn file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kprod-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn config(broker: &FakeBroker, props: &[(&str, &str)]) -> ProducerConfig {
    let mut c = ProducerConfig::new(&broker.addr());
    c.set("security.protocol", "SSL").unwrap();
    c.set("linger.ms", "0").unwrap();
    for (k, v) in props {
        c.set(k, v).unwrap();
    }
    c
}

/// Sends three records and checks the broker stored them, in order, with their offsets.
async fn produces(config: ProducerConfig, broker: &FakeBroker) {
    assert_eq!(config.security_protocol(), SecurityProtocol::Ssl);
    let p = tokio::time::timeout(PATIENCE, Producer::new(config))
        .await
        .expect("connected in time")
        .expect("connected over TLS");
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let r = ProducerRecord::new("t")
            .key("k")
            .value(format!("v{i}"))
            .partition(1);
        deliveries.push(p.send(r).await.unwrap());
    }
    p.flush().await.unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        assert_eq!(d.await.unwrap().offset, Some(i as i64));
    }
    let stored: Vec<String> = broker
        .records("t", 1)
        .iter()
        .map(|r| r.value_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stored, ["v0", "v1", "v2"]);
    p.close(PATIENCE).await.unwrap();
}

/// Producer::new's error, within PATIENCE.
async fn refused(config: ProducerConfig) -> String {
    let result = tokio::time::timeout(PATIENCE, Producer::new(config))
        .await
        .expect("refused in time, not after max.block.ms");
    result.expect_err("must not connect").to_string()
}

#[tokio::test]
async fn produces_over_tls_trusting_a_pem_file_or_inline_certificates() {
    let pki = TestPki::new("test CA", &["127.0.0.1", "localhost"]);
    let broker = tls_broker(&pki, false).await;
    let ca = file("ca.pem", &pki.ca_pem);
    let ca = ca.to_str().unwrap();
    produces(config(&broker, &[("ssl.truststore.location", ca)]), &broker).await;
    let broker = tls_broker(&pki, false).await;
    let pem = [
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", ca),
    ];
    produces(config(&broker, &pem), &broker).await;
    let broker = tls_broker(&pki, false).await;
    let inline = [("ssl.truststore.certificates", pki.ca_pem.as_str())];
    produces(config(&broker, &inline), &broker).await;
    let broker = tls_broker(&pki, false).await;
    let tls12 = [
        ("ssl.ca.location", ca),
        ("ssl.enabled.protocols", "TLSv1.2"),
    ];
    produces(config(&broker, &tls12), &broker).await;
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::new("test CA", &["127.0.0.1"]);
    let broker = tls_broker(&pki, true).await;
    let ca = file("mtls-ca.pem", &pki.ca_pem);
    let ca = ca.to_str().unwrap();
    let keystore = file(
        "client.pem",
        &format!("{}{}", pki.client_key_pem, pki.client_cert_pem),
    );
    let with_file = [
        ("ssl.truststore.location", ca),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", keystore.to_str().unwrap()),
    ];
    produces(config(&broker, &with_file), &broker).await;
    let broker = tls_broker(&pki, true).await;
    let inline = [
        ("ssl.truststore.location", ca),
        ("ssl.keystore.key", pki.client_key_pem.as_str()),
        (
            "ssl.keystore.certificate.chain",
            pki.client_cert_pem.as_str(),
        ),
    ];
    produces(config(&broker, &inline), &broker).await;

    let e = refused(config(&broker, &[("ssl.truststore.location", ca)])).await;
    assert!(e.contains("bootstrap.servers"), "{e}");
}

/// PEM to DER for the PKCS12 stores, made with the same crate the client reads them with but
/// through its writer.
fn der_cert(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn pkcs12_truststores_and_keystores_are_read_with_their_passwords() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    use rustls::pki_types::pem::PemObject;

    let pki = TestPki::new("test CA", &["127.0.0.1"]);
    let mut trust = KeyStore::new();
    let ca = Certificate::from_der(&der_cert(&pki.ca_pem)).unwrap();
    trust.add_entry("ca", KeyStoreEntry::Certificate(ca.clone()));
    let truststore = file("trust.p12", "");
    std::fs::write(&truststore, trust.writer("trustpw").write().unwrap()).unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).unwrap();
    let chain = PrivateKeyChain::new(
        b"client".to_vec(),
        PrivateKey::from_der(key.secret_der()).unwrap(),
        [
            Certificate::from_der(&der_cert(&pki.client_cert_pem)).unwrap(),
            ca,
        ],
    );
    let mut keys = KeyStore::new();
    keys.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
    let keystore = file("client.p12", "");
    std::fs::write(&keystore, keys.writer("keypw").write().unwrap()).unwrap();

    let broker = tls_broker(&pki, true).await;
    let props = [
        ("ssl.truststore.type", "PKCS12"),
        ("ssl.truststore.location", truststore.to_str().unwrap()),
        ("ssl.truststore.password", "trustpw"),
        ("ssl.keystore.type", "PKCS12"),
        ("ssl.keystore.location", keystore.to_str().unwrap()),
        ("ssl.keystore.password", "keypw"),
    ];
    produces(config(&broker, &props), &broker).await;

    let mut wrong = props;
    wrong[2] = ("ssl.truststore.password", "nope");
    let e = refused(config(&broker, &wrong)).await;
    assert!(
        e.contains("ssl.truststore.location") && e.contains("trust.p12"),
        "{e}"
    );
    assert!(!e.contains("nope") && !e.contains("trustpw"), "{e}");
}

#[tokio::test]
async fn an_unknown_ca_or_a_wrong_name_is_refused_at_once() {
    let pki = TestPki::new("test CA", &["127.0.0.1"]);
    let other = TestPki::new("another CA", &["127.0.0.1"]);
    let broker = tls_broker(&pki, false).await;
    let e = refused(config(
        &broker,
        &[("ssl.truststore.certificates", other.ca_pem.as_str())],
    ))
    .await;
    assert!(
        e.contains("TLS handshake failed") && e.contains("UnknownIssuer"),
        "{e}"
    );

    let misnamed = TestPki::new("test CA", &["wrong.example"]);
    let broker = tls_broker(&misnamed, false).await;
    let trust = [("ssl.truststore.certificates", misnamed.ca_pem.as_str())];
    let e = refused(config(&broker, &trust)).await;
    assert!(
        e.contains("TLS handshake failed") && e.contains("not valid for name"),
        "{e}"
    );
    // An empty ssl.endpoint.identification.algorithm checks the chain but not the name.
    let no_name_check = [trust[0], ("ssl.endpoint.identification.algorithm", "")];
    produces(config(&broker, &no_name_check), &broker).await;
    // Without any trust setting, Mozilla's roots: the test CA is not among them.
    let e = refused(config(&broker, &[])).await;
    assert!(e.contains("UnknownIssuer"), "{e}");
}

/// A broker whose certificate has expired (rustls checks the chain against the clock): refused
/// within `refused`'s patience, saying so, however long `delivery.timeout.ms` is.
#[tokio::test]
async fn an_expired_certificate_is_refused_at_once() {
    let pki = TestPki::with_expired_server("test CA", &["127.0.0.1"]);
    let broker = tls_broker(&pki, false).await;
    let e = refused(config(
        &broker,
        &[("ssl.truststore.certificates", pki.ca_pem.as_str())],
    ))
    .await;
    assert!(
        e.contains("TLS handshake failed") && e.to_lowercase().contains("expired"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_tls_settings_are_named_at_construction() {
    let pki = TestPki::new("test CA", &["127.0.0.1"]);
    let broker = tls_broker(&pki, false).await;
    let missing = "/nonexistent/kprod-ca.pem";
    let e = refused(config(&broker, &[("ssl.truststore.location", missing)])).await;
    assert!(
        e.contains("ssl.truststore.location") && e.contains(missing),
        "{e}"
    );
    let junk = file("junk.pem", "not a certificate");
    let e = refused(config(
        &broker,
        &[("ssl.truststore.location", junk.to_str().unwrap())],
    ))
    .await;
    assert!(
        e.contains("ssl.truststore.location") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = refused(config(
        &broker,
        &[("ssl.keystore.key", pki.client_key_pem.as_str())],
    ))
    .await;
    assert!(e.contains("ssl.keystore.certificate.chain"), "{e}");

    let mut c = ProducerConfig::new("a:1");
    for (k, bad) in [
        ("security.protocol", "TLS"),
        ("ssl.truststore.type", "XYZ"),
        ("ssl.enabled.protocols", "TLSv1.1"),
        ("ssl.endpoint.identification.algorithm", "http"),
    ] {
        let e = c.set(k, bad).unwrap_err();
        assert!(matches!(&e, Error::Config { key, .. } if key == k), "{e}");
    }
    c.set("ssl.truststore.type", "JKS").unwrap();
    let e = c
        .set("ssl.truststore.type", "JCEKS")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not one of PEM, PKCS12, JKS"), "{e}");

    // A secret set inline never shows in Debug.
    c.set("ssl.keystore.key", &pki.client_key_pem).unwrap();
    c.set("ssl.key.password", "hunter2").unwrap();
    c.set("ssl.truststore.password", "hunter3").unwrap();
    c.set("ssl.keystore.password", "hunter4").unwrap();
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("PRIVATE KEY") && !debug.contains("hunter"),
        "{debug}"
    );
}
