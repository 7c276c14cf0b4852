//! The OIDC client-credentials grant (RFC 6749 section 4.4) that KIP-768 brought to the Java
//! client: a POST of `grant_type=client_credentials` (and the scope) to the token endpoint, with
//! the client's id and secret as HTTP Basic credentials, answered by a JSON object whose
//! `access_token` is the token. Its lifetime is the JWT's `exp` claim, as the Java client reads it,
//! or the answer's `expires_in` for a token that is not a JWT.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{OAuthToken, TokenError};
use crate::error::{Error, Result};

const KEY: &str = "sasl.oauthbearer.token.endpoint.url";

/// An answer larger than this is not a token answer.
const MAX_ANSWER: usize = 1 << 20;

/// One configured client-credentials flow. The secret lives only in the prepared header.
pub(crate) struct ClientCredentials {
    url: String,
    uri: Uri,
    host: String,
    port: u16,
    https: bool,
    authorization: String,
    body: String,
    tls: Arc<rustls::ClientConfig>,
}

impl ClientCredentials {
    /// Checks `url` is an `http` or `https` URL with a host.
    pub(crate) fn check_url(url: &str) -> Result<Uri> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::config(KEY, format!("`{url}` is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(Error::config(
                KEY,
                format!("`{url}` is not an https://, http:// or file: URL"),
            ));
        }
        Ok(uri)
    }

    pub(crate) fn new(
        url: &str,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self> {
        let uri = Self::check_url(url)?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        // `[::1]` in a URL is `::1` to connect to and to name.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // RFC 6749 section 2.3.1: the id and secret are form-encoded, then base64.
        let credentials = format!(
            "{}:{}",
            form_encode(&client_id),
            form_encode(&client_secret)
        );
        let mut body = "grant_type=client_credentials".to_string();
        if let Some(scope) = scope.filter(|s| !s.is_empty()) {
            body.push_str("&scope=");
            body.push_str(&form_encode(&scope));
        }
        Ok(ClientCredentials {
            url: url.to_string(),
            uri,
            host,
            port,
            https,
            authorization: format!("Basic {}", STANDARD.encode(credentials)),
            body,
            tls,
        })
    }

    /// Asks the token endpoint for a token.
    pub(crate) async fn fetch(&self) -> std::result::Result<OAuthToken, TokenError> {
        let unavailable =
            |e: &dyn std::fmt::Display| TokenError::Unavailable(format!("{}: {e}", self.url));
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unavailable(&e))?;
        if !self.https {
            return self.exchange(tcp).await;
        }
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| TokenError::Refused(format!("{}: {e}", self.url)))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(
                |e| match e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
                    // A certificate we refuse stays refused.
                    true => TokenError::Refused(format!("{}: TLS: {e}", self.url)),
                    false => unavailable(&e),
                },
            )?;
        self.exchange(tls).await
    }

    async fn exchange<S>(&self, stream: S) -> std::result::Result<OAuthToken, TokenError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let unavailable =
            |e: &dyn std::fmt::Display| TokenError::Unavailable(format!("{}: {e}", self.url));
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
        // Drives the connection; it ends when the answer is read and `sender` is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(HOST, self.uri.authority().map_or("", |a| a.as_str()))
            .header(AUTHORIZATION, &self.authorization)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(CACHE_CONTROL, "no-cache")
            .body(Full::new(Bytes::from(self.body.clone())))
            .map_err(|e| TokenError::Refused(format!("{}: {e}", self.url)))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| unavailable(&e))?
            .to_bytes();
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(TokenError::Unavailable(format!(
                "{} answered {status}: {}",
                self.url,
                excerpt(&body)
            )));
        }
        if !status.is_success() {
            return Err(TokenError::Refused(format!(
                "{} answered {status}: {}",
                self.url,
                excerpt(&body)
            )));
        }
        token_from_answer(&body).map_err(|e| TokenError::Refused(format!("{}: {e}", self.url)))
    }
}

/// The token in a successful answer.
fn token_from_answer(body: &[u8]) -> std::result::Result<OAuthToken, String> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let token = answer
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("the answer has no access_token")?;
    match OAuthToken::from_jwt(token) {
        Ok(token) => Ok(token),
        Err(not_jwt) => match answer.get("expires_in").and_then(serde_json::Value::as_f64) {
            Some(secs) if secs >= 1.0 && secs.is_finite() => Ok(OAuthToken::new(
                token,
                std::time::Duration::from_secs_f64(secs.min(1e9)),
            )),
            _ => Err(format!(
                "no lifetime for the access token ({not_jwt}, and the answer has no expires_in)"
            )),
        },
    }
}

/// The start of an error answer, for the error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(no body)".into(),
        None => text.to_string(),
    }
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, a space as `+`, the rest
/// as `%XX`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_what_a_form_must() {
        assert_eq!(form_encode("kprod client:1/ü"), "kprod+client%3A1%2F%C3%BC");
        assert_eq!(form_encode("a-b.c_d*"), "a-b.c_d*");
    }

    #[test]
    fn a_token_answer_gives_the_jwt_expiry_or_expires_in() {
        let jwt = super::super::unsecured_jwt("svc", std::time::Duration::from_secs(300));
        let answer = serde_json::json!({"access_token": jwt, "expires_in": 9999});
        let token = token_from_answer(answer.to_string().as_bytes()).unwrap();
        assert!(token.lifetime().as_secs() <= 300, "{token:?}");

        let opaque = r#"{"access_token":"opaque","token_type":"Bearer","expires_in":60}"#;
        let token = token_from_answer(opaque.as_bytes()).unwrap();
        assert_eq!(token.lifetime().as_secs(), 60);

        for (bad, says) in [
            (r#"{"access_token":"opaque"}"#, "no expires_in"),
            (r#"{"error":"invalid_client"}"#, "no access_token"),
            ("<html>", "not JSON"),
        ] {
            let err = token_from_answer(bad.as_bytes()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_endpoints() {
        for good in [
            "https://idp.example.com/oauth2/token",
            "http://127.0.0.1:8080/t",
        ] {
            assert!(ClientCredentials::check_url(good).is_ok(), "{good}");
        }
        for bad in ["ftp://x/y", "idp.example.com/token", "https:///token"] {
            assert!(ClientCredentials::check_url(bad).is_err(), "{bad}");
        }
    }
}
