//! A certificate authority made fresh for a test: a CA, a server certificate for the fake
//! broker's TLS listener, and a client certificate for mutual TLS, all in PEM as a Kafka user
//! would have them in files.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A test CA and the certificates it signed. Panics on failure: a test cannot go on without it.
pub struct TestPki {
    /// The CA certificate (what a client's truststore holds).
    pub ca_pem: String,
    /// The server certificate, valid for `localhost` and `127.0.0.1`.
    pub server_cert_pem: String,
    /// The server certificate's private key.
    pub server_key_pem: String,
    /// A client certificate (CN=client) for mutual TLS.
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl TestPki {
    /// A new CA named `name`, with a server certificate for `names` (DNS names or IP
    /// addresses) and a client certificate.
    pub fn new(name: &str, names: &[&str]) -> TestPki {
        Self::build(name, names, false)
    }

    /// As [`TestPki::new`], but the server certificate expired: valid only during 2020.
    pub fn with_expired_server(name: &str, names: &[&str]) -> TestPki {
        Self::build(name, names, true)
    }

    fn build(name: &str, names: &[&str], expired_server: bool) -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let leaf = |sans: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(sans).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, cn);
            if expired_server && cn == "broker" {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &ca).expect("signed leaf");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) =
            leaf(names.iter().map(|n| n.to_string()).collect(), "broker");
        let (client_cert_pem, client_key_pem) = leaf(Vec::new(), "client");
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }

    /// The server side of TLS for [`crate::FakeConfig::tls`]; with `require_client_cert`, only
    /// clients with a certificate this CA signed get in (mutual TLS).
    pub fn server_config(&self, require_client_cert: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("CA certificate");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain = CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server chain");
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).expect("key");
        Arc::new(
            builder
                .with_single_cert(chain, key)
                .expect("server certificate"),
        )
    }
}
