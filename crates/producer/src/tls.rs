//! `security.protocol` and the `ssl.*` settings: TLS to the brokers with rustls.
//!
//! The keys and their meaning are the Java client's, so a Java user's `client.properties` works
//! unchanged where this client supports what it names. rustls runs on the `ring` crypto provider:
//! it builds with a C compiler alone (aws-lc-rs also needs cmake and takes minutes), and its
//! AES-GCM and ChaCha20 are the same assembly BoringSSL uses.
//!
//! Trust comes from `ssl.truststore.location` (a PEM, PKCS12 or JKS file), `ssl.truststore.certificates`
//! (inline PEM) or librdkafka's `ssl.ca.location`; with none of them, from Mozilla's roots, so a
//! cluster with a public certificate needs no TLS setting beyond `security.protocol`. A client
//! certificate (mutual TLS) comes from `ssl.keystore.location` (PEM key and chain, PKCS12, JKS) or
//! inline `ssl.keystore.key` + `ssl.keystore.certificate.chain`; a PEM key may be encrypted, with
//! `ssl.key.password` ([`encrypted_key`]).

mod encrypted_key;
mod jks_store;

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};

use crate::error::{Error, Result};

/// `security.protocol`: how the producer talks to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// No encryption, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS: the brokers' certificates checked, optionally a client certificate.
    Ssl,
    /// SASL authentication (`sasl.mechanism`) without encryption.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The `ssl.*` settings as given. Secrets never reach `Debug` or an error.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) protocol: SecurityProtocol,
    truststore_location: Option<String>,
    truststore_type: Option<String>,
    truststore_certificates: Option<String>,
    truststore_password: Option<String>,
    keystore_location: Option<String>,
    keystore_password: Option<String>,
    keystore_type: Option<String>,
    keystore_key: Option<String>,
    keystore_certificate_chain: Option<String>,
    key_password: Option<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (the default) checks the broker's name.
    skip_hostname_check: bool,
    /// `ssl.enabled.protocols`; empty means TLS 1.2 and 1.3.
    protocols: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("TlsSettings")
            .field("protocol", &self.protocol)
            .field("truststore_location", &self.truststore_location)
            .field("truststore_type", &self.truststore_type)
            .field(
                "truststore_certificates",
                &self.truststore_certificates.is_some(),
            )
            .field("keystore_location", &self.keystore_location)
            .field("keystore_type", &self.keystore_type)
            .field("keystore_key", &secret(&self.keystore_key))
            .field(
                "keystore_certificate_chain",
                &self.keystore_certificate_chain.is_some(),
            )
            .field("key_password", &secret(&self.key_password))
            .field("truststore_password", &secret(&self.truststore_password))
            .field("keystore_password", &secret(&self.keystore_password))
            .field("skip_hostname_check", &self.skip_hostname_check)
            .field("protocols", &self.protocols)
            .finish()
    }
}

impl TlsSettings {
    /// Takes one of this module's keys (the configuration reference's TLS section); `Ok(false)` for
    /// any other key.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let some = || (!value.is_empty()).then(|| value.to_string());
        match key {
            "security.protocol" => {
                self.protocol = match value.to_ascii_uppercase().as_str() {
                    "PLAINTEXT" => SecurityProtocol::Plaintext,
                    "SSL" => SecurityProtocol::Ssl,
                    "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                    "SASL_SSL" => SecurityProtocol::SaslSsl,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "`{value}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                            ),
                        ))
                    }
                }
            }
            "ssl.truststore.location" | "ssl.ca.location" => self.truststore_location = some(),
            "ssl.truststore.type" => self.truststore_type = store_type(key, value)?,
            "ssl.truststore.password" => self.truststore_password = some(),
            "ssl.keystore.password" => self.keystore_password = some(),
            "ssl.truststore.certificates" => self.truststore_certificates = some(),
            "ssl.keystore.location" => self.keystore_location = some(),
            "ssl.keystore.type" => self.keystore_type = store_type(key, value)?,
            "ssl.keystore.key" => self.keystore_key = some(),
            "ssl.keystore.certificate.chain" => self.keystore_certificate_chain = some(),
            "ssl.key.password" => self.key_password = some(),
            "ssl.endpoint.identification.algorithm" => {
                self.skip_hostname_check = match value.to_ascii_lowercase().as_str() {
                    "" => true,
                    "https" => false,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("`{value}` is not `https` or empty (no hostname check)"),
                        ))
                    }
                }
            }
            "ssl.enabled.protocols" => {
                let mut protocols = Vec::new();
                for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    protocols.push(match p {
                        "TLSv1.2" => &rustls::version::TLS12,
                        "TLSv1.3" => &rustls::version::TLS13,
                        _ => {
                            return Err(Error::config(
                                key,
                                format!("`{p}` is not one of TLSv1.2, TLSv1.3"),
                            ))
                        }
                    });
                }
                self.protocols = protocols;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rustls configuration for these settings, or `None` without TLS. Reads the files it
    /// names; a file that is missing or does not parse is an error naming the key and the file.
    pub(crate) fn client_config(&self) -> Result<Option<Arc<ClientConfig>>> {
        if !self.protocol.uses_tls() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(self.roots()?);
        let versions = if self.protocols.is_empty() {
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            self.protocols.clone()
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| Error::config("ssl.enabled.protocols", e))?;
        let builder = if self.skip_hostname_check {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| Error::config("ssl.truststore.location", e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        } else {
            builder.with_root_certificates(roots)
        };
        let config = match self.client_identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config("ssl.keystore.location", e))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Some(Arc::new(config)))
    }

    /// The rustls configuration for an `https` OAUTHBEARER token endpoint: the public roots and
    /// the configured truststore's, the hostname always checked, no client certificate.
    pub(crate) fn token_endpoint_config(&self) -> Result<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if self.truststore_certificates.is_some() || self.truststore_location.is_some() {
            roots.roots.extend(self.roots()?.roots);
        }
        Ok(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::config("ssl.enabled.protocols", e))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        let (key, pem) = if let Some(inline) = &self.truststore_certificates {
            ("ssl.truststore.certificates", inline.clone())
        } else if let Some(path) = &self.truststore_location {
            let key = "ssl.truststore.location";
            let password = self.truststore_password.as_deref();
            if let Some(data) = jks_data(key, path, self.truststore_type.as_deref())? {
                for cert in jks_store::certificates(key, path, &data, password)? {
                    roots
                        .add(cert)
                        .map_err(|e| Error::config(key, format!("{path}: {e}")))?;
                }
                return Ok(roots);
            }
            if matches!(self.truststore_type.as_deref(), Some("PKCS12" | "JKS")) {
                let password = self.truststore_password.as_deref().unwrap_or_default();
                let store = pkcs12(key, path, password, Pkcs12ImportPolicy::Raw)?;
                let mut any = false;
                for (_, entry) in store.entries() {
                    let certs: Vec<p12_keystore::Certificate> = match entry {
                        KeyStoreEntry::Certificate(c) => vec![c.clone()],
                        KeyStoreEntry::PrivateKeyChain(chain) => chain.certs().to_vec(),
                        _ => vec![],
                    };
                    for c in certs {
                        roots
                            .add(CertificateDer::from(c.as_der().to_vec()))
                            .map_err(|e| Error::config(key, format!("{path}: {e}")))?;
                        any = true;
                    }
                }
                if !any {
                    return Err(Error::config(key, format!("{path} holds no certificate")));
                }
                return Ok(roots);
            }
            (key, read(key, path)?)
        } else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok(roots);
        };
        let certs = certificates(key, &pem)?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| Error::config(key, format!("a certificate is not usable: {e}")))?;
        }
        Ok(roots)
    }

    /// The key and chain of a PKCS12 keystore.
    #[allow(clippy::type_complexity)]
    fn pkcs12_identity(
        &self,
        path: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key = "ssl.keystore.location";
        // Kafka's PKCS12 keystores hold the key under the store's password.
        let password = self.keystore_password.as_deref().unwrap_or_default();
        let store = pkcs12(key, path, password, Pkcs12ImportPolicy::Strict)?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            Error::config(key, format!("{path} holds no private key with its chain"))
        })?;
        let certs = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        Ok((
            certs,
            PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into()),
        ))
    }

    /// The client certificate chain and key for mutual TLS, if configured.
    #[allow(clippy::type_complexity)]
    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        let (key_name, chain_name, key_pem, chain_pem) = match (
            &self.keystore_key,
            &self.keystore_certificate_chain,
            &self.keystore_location,
        ) {
            (Some(k), Some(c), _) => (
                "ssl.keystore.key",
                "ssl.keystore.certificate.chain",
                k.clone(),
                c.clone(),
            ),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(Error::config(
                    "ssl.keystore.key",
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ))
            }
            (None, None, Some(path)) if self.keystore_type.as_deref() == Some("JKS") => {
                let key = "ssl.keystore.location";
                if let Some(data) = jks_data(key, path, Some("JKS"))? {
                    let (store, key_password) = (
                        self.keystore_password.as_deref(),
                        self.key_password.as_deref(),
                    );
                    return jks_store::identity(key, path, &data, store, key_password).map(Some);
                }
                // A PKCS12 file named JKS, read as Java's compatibility mode does.
                return self.pkcs12_identity(path).map(Some);
            }
            (None, None, Some(path)) if self.keystore_type.as_deref() == Some("PKCS12") => {
                return self.pkcs12_identity(path).map(Some);
            }
            (None, None, Some(path)) => {
                let key = "ssl.keystore.location";
                let pem = read(key, path)?;
                (key, key, pem.clone(), pem)
            }
            (None, None, None) => return Ok(None),
        };
        let chain = certificates(chain_name, &chain_pem)?;
        let key = match encrypted_key::find(&key_pem) {
            Some(der) => {
                let password = self.key_password.as_deref().ok_or_else(|| {
                    Error::config("ssl.key.password", "the private key is encrypted")
                })?;
                let pkcs8 = der
                    .and_then(|der| encrypted_key::decrypt(&der, password))
                    .map_err(|e| Error::config(key_name, format!("the private key: {e}")))?;
                PrivateKeyDer::Pkcs8(pkcs8.into())
            }
            None => PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| Error::config(key_name, format!("no usable private key: {e}")))?,
        };
        Ok(Some((chain, key)))
    }
}

/// `ssl.truststore.type` / `ssl.keystore.type`: PEM, PKCS12 and JKS. A store named without a
/// type is read as PEM (Java would assume JKS and fail on a PEM file).
fn store_type(key: &str, value: &str) -> Result<Option<String>> {
    match value.to_ascii_uppercase().as_str() {
        "" => Ok(None),
        "PEM" => Ok(Some("PEM".into())),
        "PKCS12" => Ok(Some("PKCS12".into())),
        "JKS" => Ok(Some("JKS".into())),
        _ => Err(Error::config(
            key,
            format!("`{value}` is not one of PEM, PKCS12, JKS"),
        )),
    }
}

/// The file of a store of type JKS when it holds JKS (not PKCS12, which Java also reads as JKS).
fn jks_data(key: &str, path: &str, store_type: Option<&str>) -> Result<Option<Vec<u8>>> {
    if store_type != Some("JKS") {
        return Ok(None);
    }
    let data =
        std::fs::read(path).map_err(|e| Error::config(key, format!("cannot read {path}: {e}")))?;
    Ok(jks_store::is_jks(&data).then_some(data))
}

/// Reads a PKCS12 store; a wrong password is an error naming the key and the file.
fn pkcs12(key: &str, path: &str, password: &str, policy: Pkcs12ImportPolicy) -> Result<KeyStore> {
    let data =
        std::fs::read(path).map_err(|e| Error::config(key, format!("cannot read {path}: {e}")))?;
    KeyStore::from_pkcs12(&data, password, policy).map_err(|e| {
        Error::config(
            key,
            format!("{path} is not a PKCS12 store this password opens: {e}"),
        )
    })
}

fn read(key: &str, path: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::config(key, format!("cannot read {path}: {e}")))
}

fn certificates(key: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(key, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(key, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The server name a broker's certificate must carry: the host of its `host:port`.
pub(crate) fn server_name(addr: &str) -> std::result::Result<ServerName<'static>, String> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("`{host}` is not a server name: {e}"))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
