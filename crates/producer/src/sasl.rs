//! SASL authentication (KIP-43, KIP-152): after ApiVersions, before any other request, a
//! SaslHandshake names the mechanism and SaslAuthenticate rounds carry its messages.
//!
//! Mechanisms: `PLAIN`, `SCRAM-SHA-256` and `SCRAM-SHA-512` (RFC 5802/7677), and `OAUTHBEARER`
//! with the unsecured JSON web token of Kafka's test mode (RFC 7628 framing). Credentials come
//! from `sasl.jaas.config` as the Java client reads it, or librdkafka's `sasl.username` and
//! `sasl.password`. The mechanisms are sans-I/O state machines (see [`Exchange`]), so they are
//! tested against RFC vectors without a broker.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

use crate::error::{Error, Result};
use crate::oauth::OAuthSettings;

/// A SASL mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// The `sasl.*` settings. The password never reaches `Debug` or an error.
#[derive(Clone, Default)]
pub(crate) struct SaslSettings {
    /// `sasl.mechanism`; the Java default, GSSAPI (Kerberos), is not supported.
    mechanism: Option<Mechanism>,
    username: Option<String>,
    password: Option<String>,
    /// OAUTHBEARER's token sources.
    pub(crate) oauth: OAuthSettings,
}

impl fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("oauth", &self.oauth)
            .finish()
    }
}

impl SaslSettings {
    /// Takes one of the configuration reference's SASL keys, or hands the key to the OAUTHBEARER
    /// settings; `Ok(false)` for any other key.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "sasl.mechanism" => {
                self.mechanism = Some(match value {
                    "PLAIN" => Mechanism::Plain,
                    "SCRAM-SHA-256" => Mechanism::ScramSha256,
                    "SCRAM-SHA-512" => Mechanism::ScramSha512,
                    "OAUTHBEARER" => Mechanism::OAuthBearer,
                    "GSSAPI" => {
                        return Err(Error::config(
                            key,
                            "GSSAPI (Kerberos) is not supported; PLAIN, SCRAM-SHA-256, \
                             SCRAM-SHA-512 or OAUTHBEARER",
                        ))
                    }
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "`{value}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, \
                                 OAUTHBEARER"
                            ),
                        ))
                    }
                })
            }
            "sasl.jaas.config" => self.set_jaas(value)?,
            "sasl.username" => self.username = Some(value.to_string()),
            "sasl.password" => self.password = Some(value.to_string()),
            _ => return self.oauth.set(key, value),
        }
        Ok(true)
    }

    fn set_jaas(&mut self, value: &str) -> Result<()> {
        let jaas = parse_jaas(value).map_err(|e| Error::config("sasl.jaas.config", e))?;
        let module = jaas.module.rsplit('.').next().unwrap_or(&jaas.module);
        match module {
            "PlainLoginModule" | "ScramLoginModule" => {
                for (k, v) in jaas.options {
                    match k.as_str() {
                        "username" => self.username = Some(v),
                        "password" => self.password = Some(v),
                        _ => {}
                    }
                }
            }
            "OAuthBearerLoginModule" => {
                for (k, v) in jaas.options {
                    self.oauth.set_jaas_option(&k, v)?;
                }
            }
            _ => {
                return Err(Error::config(
                    "sasl.jaas.config",
                    format!(
                        "login module `{}` is not one of PlainLoginModule, ScramLoginModule, \
                         OAuthBearerLoginModule",
                        jaas.module
                    ),
                ))
            }
        }
        Ok(())
    }

    /// Checks that the settings make a complete SASL setup; called when the protocol is SASL.
    pub(crate) fn validate(&self) -> Result<Mechanism> {
        let mechanism = self.mechanism.ok_or_else(|| {
            Error::config(
                "sasl.mechanism",
                "must be set with SASL (the Java default, GSSAPI, is not supported): PLAIN, \
                 SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
            )
        })?;
        match mechanism {
            Mechanism::OAuthBearer => self.oauth.validate().map(|()| mechanism),
            _ if self.username.is_none() || self.password.is_none() => Err(Error::config(
                "sasl.jaas.config",
                format!(
                    "{} needs a username and a password (sasl.jaas.config's username= and \
                     password=, or sasl.username and sasl.password)",
                    mechanism.name()
                ),
            )),
            _ => Ok(mechanism),
        }
    }

    /// A fresh exchange for one connection; for OAUTHBEARER, `oauth_first` is the client's first
    /// message, made from the producer's current token.
    pub(crate) fn exchange(&self, mechanism: Mechanism, oauth_first: Vec<u8>) -> Exchange {
        let user = self.username.clone().unwrap_or_default();
        let password = self.password.clone().unwrap_or_default();
        match mechanism {
            Mechanism::Plain => Exchange::Plain { user, password },
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                Exchange::Scram(Box::new(Scram::new(mechanism, &user, &password, &nonce())))
            }
            Mechanism::OAuthBearer => Exchange::OAuthBearer { first: oauth_first },
        }
    }
}

/// One authentication's messages: the client speaks first; each server message gets the
/// client's next, until the exchange says it is done.
pub(crate) enum Exchange {
    Plain { user: String, password: String },
    Scram(Box<Scram>),
    OAuthBearer { first: Vec<u8> },
}

impl Exchange {
    pub(crate) fn first(&mut self) -> Vec<u8> {
        match self {
            Exchange::Plain { user, password } => format!("\0{user}\0{password}").into_bytes(),
            Exchange::Scram(s) => s.client_first().into_bytes(),
            Exchange::OAuthBearer { first } => std::mem::take(first),
        }
    }

    /// The answer to the server's message, or `None` when the exchange is complete (the
    /// server's message verified, where the mechanism has something to verify).
    pub(crate) fn next(&mut self, server: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        match self {
            Exchange::Plain { .. } => Ok(None),
            // RFC 7628: an error comes as a JSON challenge (the broker then fails the exchange);
            // success as an empty message.
            Exchange::OAuthBearer { .. } if !server.is_empty() => Err(format!(
                "the broker refused the token: {}",
                String::from_utf8_lossy(server)
            )),
            Exchange::OAuthBearer { .. } => Ok(None),
            Exchange::Scram(s) => s.next(server),
        }
    }
}

/// A SCRAM client (RFC 5802), SHA-256 or SHA-512.
pub(crate) struct Scram {
    hmac: hmac::Algorithm,
    digest: &'static digest::Algorithm,
    pbkdf2: pbkdf2::Algorithm,
    password: String,
    client_first_bare: String,
    nonce: String,
    state: ScramState,
}

enum ScramState {
    Start,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

/// Kafka's bounds on SCRAM iterations: fewer is refused as weak (as the Java client does),
/// more could make a hostile broker keep the client hashing for minutes.
const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=16384;

impl Scram {
    fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> Scram {
        let (hmac, digest, pbkdf2) = match mechanism {
            Mechanism::ScramSha512 => (
                hmac::HMAC_SHA512,
                &digest::SHA512,
                pbkdf2::PBKDF2_HMAC_SHA512,
            ),
            _ => (
                hmac::HMAC_SHA256,
                &digest::SHA256,
                pbkdf2::PBKDF2_HMAC_SHA256,
            ),
        };
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            hmac,
            digest,
            pbkdf2,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_string(),
            state: ScramState::Start,
        }
    }

    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    fn next(&mut self, server: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        let server =
            std::str::from_utf8(server).map_err(|_| "a server message that is not UTF-8")?;
        match std::mem::replace(&mut self.state, ScramState::Done) {
            ScramState::Start => {
                let (client_final, server_signature) = self.client_final(server)?;
                self.state = ScramState::SentFinal { server_signature };
                Ok(Some(client_final.into_bytes()))
            }
            ScramState::SentFinal { server_signature } => {
                let verifier = attribute(server, 'v');
                if let Some(e) = attribute(server, 'e') {
                    return Err(format!("the server refused: {e}"));
                }
                let verifier =
                    verifier.ok_or("no server signature in the server's last message")?;
                let got = STANDARD
                    .decode(verifier)
                    .map_err(|_| "a server signature that is not base64")?;
                if got != server_signature {
                    return Err(
                        "the server's signature does not match: not the broker that \
                                holds these credentials"
                            .into(),
                    );
                }
                Ok(None)
            }
            ScramState::Done => Err("a server message after the exchange ended".into()),
        }
    }

    /// The client-final message for the server-first one, and the server signature to expect.
    fn client_final(&self, server_first: &str) -> std::result::Result<(String, Vec<u8>), String> {
        if attribute(server_first, 'm').is_some() {
            return Err("the server asks for a SCRAM extension this client does not know".into());
        }
        let nonce = attribute(server_first, 'r').ok_or("no nonce in the server's first message")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = attribute(server_first, 's').ok_or("no salt in the server's first message")?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| "a salt that is not base64")?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or("no iteration count in the server's first message")?;
        if !ITERATIONS.contains(&iterations) {
            return Err(format!(
                "{iterations} iterations is outside the {}..={} Kafka allows",
                ITERATIONS.start(),
                ITERATIONS.end()
            ));
        }
        let len = self.digest.output_len();
        let mut salted = vec![0u8; len];
        pbkdf2::derive(
            self.pbkdf2,
            std::num::NonZeroU32::new(iterations).ok_or("zero iterations")?,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted = hmac::Key::new(self.hmac, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(self.digest, client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac::sign(
            &hmac::Key::new(self.hmac, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(self.hmac, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        Ok((
            format!("{without_proof},p={}", STANDARD.encode(proof)),
            server_signature.as_ref().to_vec(),
        ))
    }
}

/// The value of `name=` in a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// A client nonce: 24 random bytes as base64 (printable, no comma).
fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    // The system's random source failing is not something a producer can recover from.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator works");
    STANDARD.encode(bytes)
}

/// `sasl.jaas.config`: `<LoginModule class> <flag> key=value ... ;`.
struct Jaas {
    module: String,
    options: Vec<(String, String)>,
}

fn parse_jaas(text: &str) -> std::result::Result<Jaas, String> {
    let text = text.trim();
    let body = text
        .strip_suffix(';')
        .ok_or("must end with `;`, as in the Java client")?
        .trim();
    let mut rest = body;
    let mut word = || {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (w, r) = rest.split_at(end);
        rest = r;
        w.to_string()
    };
    let module = word();
    let flag = word();
    if module.is_empty()
        || !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str())
    {
        return Err("expected `<LoginModule class> required key=\"value\" ...;`".into());
    }
    let mut options = Vec::new();
    let mut chars = rest.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|&c| c != '=' && !c.is_whitespace())).collect();
        if chars.next() != Some('=') {
            return Err(format!("option `{key}` has no `=value`"));
        }
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => v.extend(chars.next()),
                    Some('"') => break v,
                    Some(c) => v.push(c),
                    None => return Err(format!("option `{key}`: unterminated quote")),
                }
            }
        } else {
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect()
        };
        options.push((key, value));
    }
    Ok(Jaas { module, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, message by message.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let mut s = Scram::new(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = s.next(server_first.as_bytes()).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(s.next(server_final.as_bytes()), Ok(None));
    }

    #[test]
    fn scram_refuses_a_forged_server_a_foreign_nonce_and_odd_iterations() {
        let new = || Scram::new(Mechanism::ScramSha512, "a,b=c", "pw", "abc");
        assert_eq!(new().client_first(), "n,,n=a=2Cb=3Dc,r=abc");
        let mut s = new();
        s.next(b"r=abcdef,s=c2FsdA==,i=4096").unwrap().unwrap();
        let e = s.next(b"v=AAAA").unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let e = new().next(b"r=xyz,s=c2FsdA==,i=4096").unwrap_err();
        assert!(e.contains("nonce"), "{e}");
        for i in ["1", "4095", "16385", "4294967295", "x"] {
            let msg = format!("r=abcdef,s=c2FsdA==,i={i}");
            assert!(new().next(msg.as_bytes()).is_err(), "{i}");
        }
        let mut s = new();
        s.next(b"r=abcdef,s=c2FsdA==,i=4096").unwrap();
        let e = s.next(b"e=invalid-proof").unwrap_err();
        assert!(e.contains("invalid-proof"), "{e}");
    }

    #[test]
    fn jaas_config_is_read_as_the_java_client_reads_it() {
        let mut s = SaslSettings::default();
        s.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="a \"quoted\" secret";"#,
        )
        .unwrap();
        assert_eq!(s.username.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some(r#"a "quoted" secret"#));
        s.set("sasl.mechanism", "SCRAM-SHA-512").unwrap();
        assert_eq!(s.validate().unwrap(), Mechanism::ScramSha512);
        assert!(!format!("{s:?}").contains("quoted"));

        let mut o = SaslSettings::default();
        o.set(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=alice ;",
        )
        .unwrap();
        o.set("sasl.mechanism", "OAUTHBEARER").unwrap();
        assert_eq!(o.validate().unwrap(), Mechanism::OAuthBearer);

        // The Java client's OIDC setup: the endpoint as a property, the client in the module.
        let mut c = SaslSettings::default();
        c.set("sasl.mechanism", "OAUTHBEARER").unwrap();
        c.set(
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="svc" clientSecret="s3cr3t" scope="kafka" extension_logicalCluster="lkc-1";"#,
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("needs a token source"), "{e}");
        c.set(
            "sasl.login.callback.handler.class",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
        )
        .unwrap();
        c.set(
            "sasl.oauthbearer.token.endpoint.url",
            "https://idp.example.com/token",
        )
        .unwrap();
        assert_eq!(c.validate().unwrap(), Mechanism::OAuthBearer);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("lkc-1"),
            "{debug}"
        );
        let e = c
            .set("sasl.login.callback.handler.class", "com.example.MyHandler")
            .unwrap_err()
            .to_string();
        assert!(e.contains("with_oauth_token_provider"), "{e}");

        for bad in [
            "PlainLoginModule required username=alice",
            "PlainLoginModule username=alice;",
            r#"PlainLoginModule required username="alice;"#,
            "KerberosLoginModule required;",
        ] {
            let e = SaslSettings::default().set("sasl.jaas.config", bad);
            assert!(e.is_err(), "{bad}");
        }
        let e = SaslSettings::default().validate().unwrap_err().to_string();
        assert!(e.contains("sasl.mechanism"), "{e}");
        let mut p = SaslSettings::default();
        p.set("sasl.mechanism", "PLAIN").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("username"));
        p.set("sasl.username", "u").unwrap();
        p.set("sasl.password", "p").unwrap();
        assert_eq!(
            p.exchange(p.validate().unwrap(), Vec::new()).first(),
            b"\0u\0p"
        );
    }
}
