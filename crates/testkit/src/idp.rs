//! A local OAuth 2.0 token endpoint for the OAUTHBEARER tests: the client-credentials grant
//! (RFC 6749 section 4.4) over plain HTTP/1.1 on loopback, minting the unsecured JSON web tokens
//! that the test cluster's brokers accept (Kafka's unsecured validator). It records what each
//! request carried, so a test sees the grant, the scope and the credentials the client sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one token request carried.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The request line, e.g. `POST /oauth2/token HTTP/1.1`.
    pub request_line: String,
    /// The `Authorization` header, decoded from Basic: `id:secret` as sent (form-encoded).
    pub credentials: Option<String>,
    /// The form body, e.g. `grant_type=client_credentials&scope=kafka`.
    pub body: String,
}

/// The endpoint; it stops when dropped.
#[derive(Debug)]
pub struct TokenEndpoint {
    /// `http://127.0.0.1:<port>/oauth2/token`.
    pub url: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenEndpoint {
    /// Serves tokens for `client_id:client_secret` (answering 401 `invalid_client` to any
    /// other), each with `sub` = the client id and valid for `lifetime`.
    pub async fn start(client_id: &str, client_secret: &str, lifetime: Duration) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!(
            "http://{}/oauth2/token",
            listener.local_addr().expect("local address")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let expected = format!("{client_id}:{client_secret}");
        let subject = client_id.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, expected, subject) = (seen.clone(), expected.clone(), subject.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &seen, &expected, &subject, lifetime).await;
                });
            }
        });
        TokenEndpoint {
            url,
            requests,
            task,
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Vec<TokenRequest>>,
    expected: &str,
    subject: &str,
    lifetime: Duration,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if stream.read_buf(&mut buf).await? == 0 || buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + length]).to_string();
    let credentials = header("authorization")
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let granted = credentials.as_deref() == Some(expected)
        && body
            .split('&')
            .any(|p| p == "grant_type=client_credentials");
    seen.lock().expect("not poisoned").push(TokenRequest {
        request_line,
        credentials,
        body,
    });
    let (status, json) = if granted {
        let token = unsecured_jwt(subject, lifetime);
        (
            "200 OK",
            format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                lifetime.as_secs()
            ),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                .to_string(),
        )
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// An unsigned JWT (`alg: none`) with `sub`, `iat` and `exp`: what Kafka's unsecured validator
/// accepts.
pub fn unsecured_jwt(subject: &str, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "sub": subject,
        "iat": now,
        "exp": now + lifetime.as_secs(),
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
