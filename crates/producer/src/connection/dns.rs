//! From a broker's name to a TCP stream (`client.dns.lookup`, KIP-235 and KIP-302).
//!
//! A name is resolved afresh for every connection, so a broker that moved to another address
//! is found at the next reconnect, and every address it resolves to is tried in turn, each
//! within `socket.connection.setup.timeout.ms`, so one dead address does not hide the others.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

/// Connects to `addr` (`host:port`): resolves it now, then tries its addresses in the
/// resolver's order until one accepts. The error says what happened at each.
pub(super) async fn connect(addr: &str, setup_timeout: Duration) -> Result<TcpStream, String> {
    let resolved: Vec<SocketAddr> =
        tokio::time::timeout(setup_timeout, tokio::net::lookup_host(addr))
            .await
            .map_err(|_| format!("cannot resolve within {}", setup_limit(setup_timeout)))?
            .map_err(|e| format!("cannot resolve: {e}"))?
            .collect();
    connect_any(&resolved, setup_timeout).await
}

/// Tries `addrs` in order, each within `setup_timeout`; the first that accepts wins.
pub(super) async fn connect_any(
    addrs: &[SocketAddr],
    setup_timeout: Duration,
) -> Result<TcpStream, String> {
    let mut failures = Vec::new();
    for ip in addrs {
        match tokio::time::timeout(setup_timeout, TcpStream::connect(ip)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => failures.push((ip, format!("cannot connect: {e}"))),
            Err(_) => failures.push((
                ip,
                format!(
                    "connection not established within {}",
                    setup_limit(setup_timeout)
                ),
            )),
        }
    }
    Err(match failures.as_slice() {
        [] => "the name resolves to no address".to_string(),
        [(_, why)] => why.clone(),
        all => format!(
            "none of its {} addresses accepts: {}",
            all.len(),
            all.iter()
                .map(|(ip, why)| format!("{ip}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    })
}

fn setup_limit(timeout: Duration) -> String {
    format!(
        "socket.connection.setup.timeout.ms ({} ms)",
        timeout.as_millis()
    )
}

/// `client.dns.lookup=resolve_canonical_bootstrap_servers_only`: each bootstrap server replaced
/// by the canonical name of each address its host resolves to, as the Java client does (for
/// Kerberos principals and certificates issued to those names). A server that cannot be
/// resolved, or an address without a name, is kept as it is: connecting then says why.
pub(crate) async fn canonical_servers(servers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for server in servers {
        let expanded = match tokio::net::lookup_host(server.as_str()).await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                tokio::task::spawn_blocking(move || {
                    addrs
                        .iter()
                        .map(|a| with_port(&canonical_name(a.ip()), a.port()))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        if expanded.is_empty() {
            out.push(server.clone());
        }
        for name in expanded {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The name a reverse lookup gives `ip`, or `ip` itself written out (blocking: getnameinfo).
fn canonical_name(ip: IpAddr) -> String {
    dns_lookup::lookup_addr(&ip).unwrap_or_else(|_| ip.to_string())
}

fn with_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// An address nothing listens on: a port bound a moment ago and let go.
    async fn closed_port() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn every_address_is_tried_until_one_accepts() {
        let dead = closed_port().await;
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = connect_any(&[dead, live.local_addr().unwrap()], Duration::from_secs(5))
            .await
            .expect("the second address accepts");
        assert_eq!(stream.peer_addr().unwrap(), live.local_addr().unwrap());
    }

    #[tokio::test]
    async fn when_none_accepts_the_error_names_each() {
        let (a, b) = (closed_port().await, closed_port().await);
        let e = connect_any(&[a, b], Duration::from_secs(5))
            .await
            .map(drop)
            .unwrap_err();
        assert!(e.starts_with("none of its 2 addresses accepts"), "{e}");
        assert!(
            e.contains(&a.to_string()) && e.contains(&b.to_string()),
            "{e}"
        );
        let one = connect_any(&[a], Duration::from_secs(5))
            .await
            .map(drop)
            .unwrap_err();
        assert!(one.starts_with("cannot connect: "), "{one}");
    }

    #[tokio::test]
    async fn a_name_is_resolved_at_each_connection() {
        let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("localhost:{}", live.local_addr().unwrap().port());
        connect(&addr, Duration::from_secs(5)).await.unwrap();
        let e = connect("no-such-host.invalid:9092", Duration::from_secs(5))
            .await
            .map(drop)
            .unwrap_err();
        assert!(e.starts_with("cannot resolve"), "{e}");
    }

    #[tokio::test]
    async fn canonical_names_replace_bootstrap_addresses() {
        let servers = vec![
            "127.0.0.1:9092".to_string(),
            "no-such-host.invalid:9092".to_string(),
        ];
        let canonical = canonical_servers(&servers).await;
        // 127.0.0.1's name is `localhost` (in /etc/hosts); the unresolvable server is kept.
        assert_eq!(
            canonical,
            vec![
                "localhost:9092".to_string(),
                "no-such-host.invalid:9092".to_string()
            ]
        );
    }
}
