//! OAUTHBEARER tokens (KIP-255, KIP-768): where they come from and when they are renewed.
//!
//! A token comes from one of three sources, in this order of precedence:
//!
//! - a provider the application supplies ([`OAuthTokenProvider`], set with
//!   [`ProducerConfig::with_oauth_token_provider`](crate::ProducerConfig::with_oauth_token_provider)),
//!   for anything the configuration cannot express, such as a cloud's IAM-signed tokens;
//! - an OIDC token endpoint with the client-credentials grant
//!   (`sasl.oauthbearer.token.endpoint.url`, see [`oidc`]), or a `file:` URL naming a file that
//!   holds the token, as in the Java client;
//! - the unsecured JSON web token of Kafka's test mode (`unsecuredLoginStringClaim_sub`).
//!
//! Every authentication, a connection's first or a renewal (KIP-368), asks the producer's
//! [`TokenCache`]. It fetches a token when it has none, or when the one it has has used
//! `sasl.login.refresh.window.factor` of its lifetime, so a renewal carries a fresh token before the
//! old one expires; if that refresh fails while the old token is still valid, it keeps using it.

pub(crate) mod oidc;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{BoxError, Error, Result};

/// An OAUTHBEARER access token and how long it stays valid.
#[derive(Clone)]
pub struct OAuthToken {
    value: String,
    lifetime: Duration,
}

impl OAuthToken {
    /// A token that stays valid for `lifetime` from now.
    pub fn new(value: impl Into<String>, lifetime: Duration) -> Self {
        OAuthToken {
            value: value.into(),
            lifetime,
        }
    }

    /// A JSON web token, valid until its `exp` claim. Fails when the value is not a JWT or has
    /// no `exp` (the Java client requires both).
    pub fn from_jwt(value: impl Into<String>) -> std::result::Result<Self, BoxError> {
        let value = value.into();
        let claims = jwt_claims(&value)?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_f64)
            .ok_or("the token has no numeric `exp` claim")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if exp <= now {
            return Err(format!("the token expired {:.0} s ago", now - exp).into());
        }
        Ok(OAuthToken {
            value,
            lifetime: Duration::from_secs_f64(exp - now),
        })
    }

    /// The token itself, as sent to the broker.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// How long the token stays valid from when it was made.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("value", &"[redacted]")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The future an [`OAuthTokenProvider`] returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<OAuthToken, BoxError>> + Send + 'a>>;

/// Where OAUTHBEARER tokens come from, when the configuration's sources do not fit: a cloud's
/// signer, a secrets manager, a token another part of the application already holds.
///
/// The producer calls [`token`](OAuthTokenProvider::token) when it needs a token: for its first
/// connection, and again once the token it has has used `sasl.login.refresh.window.factor`
/// (80 % by default) of its lifetime. Calls are never concurrent; between them the producer reuses
/// the token. An error from the provider fails the authentication, and with it every pending
/// record (as a wrong password does); a provider that can recover from a passing failure should
/// retry inside `token`.
///
/// A closure returning a future is a provider:
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_producer::{OAuthToken, ProducerConfig};
///
/// # fn sign_with_my_cloud() -> Result<String, kafka_producer::BoxError> { unimplemented!() }
/// let config = ProducerConfig::new("broker:9098")
///     .with_oauth_token_provider(|| async {
///         // For example an IAM-signed token from the cloud's SDK, valid 15 minutes.
///         let token = sign_with_my_cloud()?;
///         Ok(OAuthToken::new(token, Duration::from_secs(900)))
///     });
/// ```
pub trait OAuthTokenProvider: Send + Sync + 'static {
    /// A fresh token.
    fn token(&self) -> TokenFuture<'_>;
}

impl<F, Fut> OAuthTokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<OAuthToken, BoxError>> + Send + 'static,
{
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(self())
    }
}

/// The OAUTHBEARER settings: `sasl.oauthbearer.*`, the login module's options and the provider.
/// Secrets never reach `Debug`.
#[derive(Clone)]
pub(crate) struct OAuthSettings {
    /// `unsecuredLoginStringClaim_sub`: the test mode's subject.
    unsecured_subject: Option<String>,
    /// `unsecuredLoginLifetimeSeconds`.
    unsecured_lifetime: Duration,
    /// `sasl.oauthbearer.token.endpoint.url`.
    endpoint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    /// SASL extensions sent with the token (`extension_<name>` options, librdkafka's
    /// `sasl.oauthbearer.extensions`), such as a managed cluster's logical cluster id.
    extensions: Vec<(String, String)>,
    /// `sasl.login.refresh.window.factor`.
    refresh_factor: f64,
    provider: Option<Arc<dyn OAuthTokenProvider>>,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            unsecured_subject: None,
            unsecured_lifetime: Duration::from_secs(3600),
            endpoint: None,
            client_id: None,
            client_secret: None,
            scope: None,
            extensions: Vec::new(),
            refresh_factor: 0.8,
            provider: None,
        }
    }
}

impl fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("unsecured_subject", &self.unsecured_subject)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("extensions", &self.extensions)
            .field("refresh_factor", &self.refresh_factor)
            .field(
                "provider",
                &self.provider.as_ref().map(|_| "[application's]"),
            )
            .finish_non_exhaustive()
    }
}

/// The Java client's login callback handlers for the OIDC flow (the second is its pre-3.4 name).
const JAVA_OIDC_HANDLERS: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
];

impl OAuthSettings {
    /// Takes one of the configuration reference's OAUTHBEARER keys; `Ok(false)` for any other key.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "sasl.oauthbearer.token.endpoint.url" => {
                self.endpoint = Some(value.to_string());
            }
            // librdkafka's names, and the Java client's since Kafka 4.1 (KIP-1139).
            "sasl.oauthbearer.client.id" | "sasl.oauthbearer.client.credentials.client.id" => {
                self.client_id = Some(value.to_string())
            }
            "sasl.oauthbearer.client.secret"
            | "sasl.oauthbearer.client.credentials.client.secret" => {
                self.client_secret = Some(value.to_string())
            }
            "sasl.oauthbearer.scope" => self.scope = Some(value.to_string()),
            "sasl.oauthbearer.extensions" => {
                for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        Error::config(key, format!("`{pair}` is not `name=value`"))
                    })?;
                    self.add_extension(key, k.trim(), v.trim())?;
                }
            }
            // librdkafka: `default` (its unsecured JWT, or a callback) or `oidc` (the endpoint).
            "sasl.oauthbearer.method" => match value.to_ascii_lowercase().as_str() {
                "default" | "oidc" => {}
                _ => {
                    return Err(Error::config(
                        key,
                        format!("`{value}` is not `default` or `oidc`"),
                    ))
                }
            },
            "sasl.login.callback.handler.class" => {
                if !value.is_empty() && !JAVA_OIDC_HANDLERS.contains(&value) {
                    return Err(Error::config(
                        key,
                        format!(
                            "`{value}` is a Java class, which this client cannot load; the OIDC \
                             flow needs no handler here (set \
                             sasl.oauthbearer.token.endpoint.url), and other token sources plug \
                             in with ProducerConfig::with_oauth_token_provider"
                        ),
                    ));
                }
            }
            "sasl.login.refresh.window.factor" => {
                let factor: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(key, format!("`{value}` is not a number")))?;
                if !(0.5..=1.0).contains(&factor) {
                    return Err(Error::config(key, format!("{factor} is not in [0.5, 1.0]")));
                }
                self.refresh_factor = factor;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An option of `OAuthBearerLoginModule` in `sasl.jaas.config`.
    pub(crate) fn set_jaas_option(&mut self, name: &str, value: String) -> Result<()> {
        const KEY: &str = "sasl.jaas.config";
        match name {
            "unsecuredLoginStringClaim_sub" => self.unsecured_subject = Some(value),
            "unsecuredLoginLifetimeSeconds" => {
                let secs: u64 = value.parse().map_err(|_| {
                    Error::config(
                        KEY,
                        format!("unsecuredLoginLifetimeSeconds `{value}` is not a number"),
                    )
                })?;
                self.unsecured_lifetime = Duration::from_secs(secs.max(1));
            }
            "clientId" => self.client_id = Some(value),
            "clientSecret" => self.client_secret = Some(value),
            "scope" => self.scope = Some(value),
            _ => {
                if let Some(extension) = name.strip_prefix("extension_") {
                    self.add_extension(KEY, extension, &value)?;
                }
            }
        }
        Ok(())
    }

    /// RFC 7628's rules for an extension: a name of letters, and a value of printable ASCII
    /// (with spaces and tabs); `auth` is the token's own field.
    fn add_extension(&mut self, key: &str, name: &str, value: &str) -> Result<()> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) || name == "auth" {
            return Err(Error::config(
                key,
                format!("`{name}` is not a usable SASL extension name (letters only, not `auth`)"),
            ));
        }
        if !value.bytes().all(|b| matches!(b, 0x20..=0x7e | b'\t')) {
            return Err(Error::config(
                key,
                format!("the value of SASL extension `{name}` has characters RFC 7628 forbids"),
            ));
        }
        self.extensions.retain(|(n, _)| n != name);
        self.extensions.push((name.to_string(), value.to_string()));
        Ok(())
    }

    pub(crate) fn set_provider(&mut self, provider: Arc<dyn OAuthTokenProvider>) {
        self.provider = Some(provider);
    }

    /// Checks that one token source is complete; called when the mechanism is OAUTHBEARER.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.provider.is_some() {
            return Ok(());
        }
        if let Some(url) = &self.endpoint {
            if url.starts_with("file:") {
                return Ok(());
            }
            oidc::ClientCredentials::check_url(url)?;
            if self.client_id.is_none() || self.client_secret.is_none() {
                return Err(Error::config(
                    "sasl.oauthbearer.client.id",
                    "the OIDC token endpoint needs a client id and secret (clientId= and \
                     clientSecret= in OAuthBearerLoginModule, or sasl.oauthbearer.client.id and \
                     sasl.oauthbearer.client.secret)",
                ));
            }
            return Ok(());
        }
        if self.unsecured_subject.is_none() {
            return Err(Error::config(
                "sasl.jaas.config",
                "OAUTHBEARER needs a token source: sasl.oauthbearer.token.endpoint.url with a \
                 client id and secret, OAuthBearerLoginModule's unsecuredLoginStringClaim_sub \
                 (Kafka's test mode), or ProducerConfig::with_oauth_token_provider",
            ));
        }
        Ok(())
    }

    /// The producer's token cache; `tls` gives the trust for an OIDC token endpoint (the
    /// client's, plus the public roots), read only when there is one.
    pub(crate) fn cache(&self, tls: &crate::tls::TlsSettings) -> Result<TokenCache> {
        let source = if let Some(provider) = &self.provider {
            Source::Provider(provider.clone())
        } else if let Some(url) = &self.endpoint {
            match url.strip_prefix("file:") {
                Some(path) => Source::File(path.trim_start_matches("//").to_string()),
                None => Source::Oidc(Box::new(oidc::ClientCredentials::new(
                    url,
                    self.client_id.clone().unwrap_or_default(),
                    self.client_secret.clone().unwrap_or_default(),
                    self.scope.clone(),
                    Arc::new(tls.token_endpoint_config()?),
                )?)),
            }
        } else {
            Source::Unsecured {
                subject: self.unsecured_subject.clone().unwrap_or_default(),
                lifetime: self.unsecured_lifetime,
            }
        };
        Ok(TokenCache {
            source,
            refresh_factor: self.refresh_factor,
            extensions: self.extensions.clone(),
            current: tokio::sync::Mutex::new(None),
        })
    }
}

/// Why no token could be had.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The source refused (a wrong client secret, a provider's error, a malformed answer): a
    /// retry would not change it.
    Refused(String),
    /// The source could not be reached or failed for now (a network error, HTTP 5xx).
    Unavailable(String),
}

enum Source {
    Unsecured { subject: String, lifetime: Duration },
    Oidc(Box<oidc::ClientCredentials>),
    File(String),
    Provider(Arc<dyn OAuthTokenProvider>),
}

impl Source {
    async fn fetch(&self) -> std::result::Result<OAuthToken, TokenError> {
        match self {
            Source::Unsecured { subject, lifetime } => Ok(OAuthToken::new(
                unsecured_jwt(subject, *lifetime),
                *lifetime,
            )),
            Source::Oidc(flow) => flow.fetch().await,
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    TokenError::Unavailable(format!("cannot read the token file {path}: {e}"))
                })?;
                OAuthToken::from_jwt(text.trim())
                    .map_err(|e| TokenError::Refused(format!("the token in {path}: {e}")))
            }
            Source::Provider(provider) => provider
                .token()
                .await
                .map_err(|e| TokenError::Refused(format!("the token provider failed: {e}"))),
        }
    }
}

/// The producer's current token, shared by its connections.
pub(crate) struct TokenCache {
    source: Source,
    refresh_factor: f64,
    extensions: Vec<(String, String)>,
    current: tokio::sync::Mutex<Option<Current>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

struct Current {
    token: String,
    refresh_at: Instant,
    expires_at: Instant,
}

impl TokenCache {
    /// A token to authenticate with now, and the extensions to send with it.
    pub(crate) async fn token(
        &self,
    ) -> std::result::Result<(String, &[(String, String)]), TokenError> {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        if let Some(c) = current.as_ref().filter(|c| now < c.refresh_at) {
            return Ok((c.token.clone(), &self.extensions));
        }
        match self.source.fetch().await {
            Ok(token) => {
                let now = Instant::now();
                let fresh = Current {
                    token: token.value,
                    refresh_at: now + token.lifetime.mul_f64(self.refresh_factor),
                    expires_at: now + token.lifetime,
                };
                let value = fresh.token.clone();
                *current = Some(fresh);
                Ok((value, &self.extensions))
            }
            Err(e) => match current.as_ref().filter(|c| Instant::now() < c.expires_at) {
                Some(c) => {
                    tracing::warn!(
                        error = ?e,
                        "cannot refresh the OAUTHBEARER token; using the current one until it expires"
                    );
                    Ok((c.token.clone(), &self.extensions))
                }
                None => Err(e),
            },
        }
    }
}

/// RFC 7628's client-first message: the token and the extensions.
pub(crate) fn client_first(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut message = format!("n,,\u{1}auth=Bearer {token}\u{1}");
    for (name, value) in extensions {
        message.push_str(name);
        message.push('=');
        message.push_str(value);
        message.push('\u{1}');
    }
    message.push('\u{1}');
    message.into_bytes()
}

/// Kafka's unsecured OAUTHBEARER token: an unsigned JWT with `sub`, `iat` and `exp`.
pub(crate) fn unsecured_jwt(subject: &str, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let claims = serde_json::json!({
        "sub": subject,
        "iat": now,
        "exp": now + lifetime.as_secs().max(1),
    });
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// The claims of a JSON web token (its signature is the broker's to check, not ours).
fn jwt_claims(
    token: &str,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JSON web token (three dot-separated parts)".into());
    };
    let json = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the token's claims are not base64url".to_string())?;
    match serde_json::from_slice(&json) {
        Ok(serde_json::Value::Object(claims)) => Ok(claims),
        _ => Err("the token's claims are not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_first_message_carries_the_token_and_extensions() {
        let ext = vec![
            ("logicalCluster".to_string(), "lkc-1".to_string()),
            ("identityPoolId".to_string(), "pool-2".to_string()),
        ];
        assert_eq!(
            client_first("T", &ext),
            b"n,,\x01auth=Bearer T\x01logicalCluster=lkc-1\x01identityPoolId=pool-2\x01\x01"
        );
        assert_eq!(client_first("T", &[]), b"n,,\x01auth=Bearer T\x01\x01");
    }

    #[test]
    fn a_jwt_lives_until_its_exp_claim() {
        let token = OAuthToken::from_jwt(unsecured_jwt("alice", Duration::from_secs(600))).unwrap();
        assert!(
            (599..=600).contains(&token.lifetime().as_secs()),
            "{token:?}"
        );
        assert!(!format!("{token:?}").contains(token.value()));

        let expired = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode("{}"),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"a","exp":1000}"#)
        );
        let err = OAuthToken::from_jwt(expired).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        let err = OAuthToken::from_jwt("opaque").unwrap_err().to_string();
        assert!(err.contains("three dot-separated parts"), "{err}");
        let no_exp = format!("a.{}.", URL_SAFE_NO_PAD.encode(r#"{"sub":"a"}"#));
        let err = OAuthToken::from_jwt(no_exp).unwrap_err().to_string();
        assert!(err.contains("`exp`"), "{err}");
    }

    #[test]
    fn extensions_follow_rfc_7628() {
        let mut s = OAuthSettings::default();
        s.set(
            "sasl.oauthbearer.extensions",
            "logicalCluster=lkc-1, identityPoolId=pool-2",
        )
        .unwrap();
        s.set_jaas_option("extension_traceId", "x y".into())
            .unwrap();
        assert_eq!(s.extensions.len(), 3);
        for bad in ["auth=x", "has-dash=x", "=x", "novalue"] {
            assert!(s.set("sasl.oauthbearer.extensions", bad).is_err(), "{bad}");
        }
        assert!(s.set_jaas_option("extension_a", "\u{1}".into()).is_err());
    }

    /// The cache serves one token until the refresh point, then fetches; a failed refresh keeps
    /// the unexpired token, and an expired one is not served.
    #[tokio::test(start_paused = true)]
    async fn the_cache_refreshes_at_the_window_factor_and_survives_a_failed_refresh() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let mut settings = OAuthSettings::default();
        settings.set_provider(Arc::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 2 || n == 3 {
                    return Err("the signer is down".into());
                }
                Ok(OAuthToken::new(
                    format!("token-{n}"),
                    Duration::from_secs(100),
                ))
            }
        }));
        let cache = settings.cache(&crate::tls::TlsSettings::default()).unwrap();
        async fn token(c: &TokenCache) -> std::result::Result<String, String> {
            c.token()
                .await
                .map(|(t, _)| t)
                .map_err(|e| format!("{e:?}"))
        }
        assert_eq!(token(&cache).await.unwrap(), "token-0");
        tokio::time::advance(Duration::from_secs(79)).await;
        assert_eq!(token(&cache).await.unwrap(), "token-0");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(token(&cache).await.unwrap(), "token-1");
        tokio::time::advance(Duration::from_secs(81)).await;
        // Call 2 fails; token-1 has 19 s left.
        assert_eq!(token(&cache).await.unwrap(), "token-1");
        tokio::time::advance(Duration::from_secs(20)).await;
        // Call 3 fails and token-1 has expired.
        let err = token(&cache).await.unwrap_err();
        assert!(err.contains("the signer is down"), "{err}");
        assert_eq!(token(&cache).await.unwrap(), "token-4");
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
