//! A TCP fault proxy between a client and the real cluster: it forwards bytes unchanged and, on demand, cuts every
//! connection at once.
//!
//! A client bootstraps and then connects to the addresses the brokers advertise, so a proxy on the bootstrap address
//! alone would be bypassed after the first Metadata answer. With `KAFKA_PROXY_LISTENER=1` (`scripts/kafka up
//! --proxy`), node N of the local cluster also listens for clients on port N9094 and advertises N9095 there; the
//! proxy listens on N9095 and forwards to N9094, so every connection a client opens through
//! `KAFKA_PROXY_BOOTSTRAP` goes through it. Broker-to-broker and controller traffic never do.
//!
//! The proxy only listens on and connects to loopback addresses.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Cluster;

/// Forwards each connection accepted on a listen address to its upstream address, until cut.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use std::time::Duration;
/// use kafka_producer_testkit::{cluster, FaultProxy};
///
/// let Some(cluster) = cluster() else { return Ok(()) };
/// let Some(bootstrap) = cluster.proxy_bootstrap() else { return Ok(()) };
/// let proxy = FaultProxy::for_cluster(&bootstrap).await?;
/// // ... a producer with bootstrap.servers = bootstrap runs meanwhile ...
/// let ms = Duration::from_millis;
/// let cuts = proxy.cut_at_random(Duration::from_secs(60), ms(500)..=ms(1500)).await;
/// println!("connections cut {} times", cuts.len());
/// # Ok(())
/// # }
/// ```
///
/// Everything runs on the caller's tokio runtime. Dropping the proxy stops listening and cuts what is still open.
pub struct FaultProxy {
    routes: Vec<(SocketAddr, SocketAddr)>,
    shared: Arc<Shared>,
    accepts: Vec<JoinHandle<()>>,
}

/// One [`FaultProxy::cut_all`] of a [`cut_at_random`](FaultProxy::cut_at_random) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// When it happened (wall clock, to line up with broker logs).
    pub at: SystemTime,
    /// How many connections it closed.
    pub connections: usize,
}

/// What the accept loops and the handle share.
#[derive(Default)]
struct Shared {
    /// One sender per open connection; sending (or dropping it) cuts the connection.
    open: Mutex<Vec<oneshot::Sender<()>>>,
    accepted: AtomicUsize,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, Vec<oneshot::Sender<()>>> {
        // A panic elsewhere while holding this lock leaves the list intact: keep going.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FaultProxy {
    /// Listens on every `(listen, upstream)` pair's listen address (port 0: an ephemeral port) and forwards what it
    /// accepts there to the upstream address.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if an address is not a loopback address, or the error of a failed bind.
    pub async fn start(routes: &[(SocketAddr, SocketAddr)]) -> io::Result<FaultProxy> {
        for (listen, upstream) in routes {
            for addr in [listen, upstream] {
                if !addr.ip().is_loopback() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("the fault proxy only uses loopback addresses, not {addr}"),
                    ));
                }
            }
        }
        let shared = Arc::new(Shared::default());
        let mut bound = Vec::with_capacity(routes.len());
        let mut accepts = Vec::with_capacity(routes.len());
        for &(listen, upstream) in routes {
            let listener = match TcpListener::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    accepts.iter().for_each(JoinHandle::abort);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("fault proxy: cannot listen on {listen}: {e}"),
                    ));
                }
            };
            bound.push((listener.local_addr()?, upstream));
            accepts.push(tokio::spawn(accept_loop(
                listener,
                upstream,
                shared.clone(),
            )));
        }
        Ok(FaultProxy {
            routes: bound,
            shared,
            accepts,
        })
    }

    /// The proxy for the cluster's proxy listener: listens on every address of `proxy_bootstrap`
    /// (`KAFKA_PROXY_BOOTSTRAP`, ports N9095) and forwards to the port below it (N9094), as `scripts/kafka` sets up.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an address that is not `loopback-ip:port`, or the error of a failed bind.
    pub async fn for_cluster(proxy_bootstrap: &str) -> io::Result<FaultProxy> {
        FaultProxy::start(&cluster_routes(proxy_bootstrap)?).await
    }

    /// The addresses it listens on, in the order given.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.routes.iter().map(|(listen, _)| *listen).collect()
    }

    /// The listen addresses as a `bootstrap.servers` list.
    pub fn bootstrap(&self) -> String {
        let addrs: Vec<String> = self.routes.iter().map(|(l, _)| l.to_string()).collect();
        addrs.join(",")
    }

    /// Closes every open connection now, both sides, with a TCP reset (as a crashed peer or a dropped NAT entry
    /// would): bytes the proxy read and had not yet forwarded are lost. New connections are accepted as before.
    /// Returns how many connections it closed.
    pub fn cut_all(&self) -> usize {
        let open = std::mem::take(&mut *self.shared.open());
        // A send fails when the connection has already ended by itself.
        open.into_iter()
            .map(|cut| cut.send(()))
            .filter(Result::is_ok)
            .count()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared
            .open()
            .iter()
            .filter(|cut| !cut.is_closed())
            .count()
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Calls [`cut_all`](FaultProxy::cut_all) after a random pause in `every` (uniform), again and again, until
    /// `duration` has passed since the call; returns every cut. The last pause is shortened to end on time, and
    /// ends without a cut.
    pub async fn cut_at_random(
        &self,
        duration: Duration,
        every: RangeInclusive<Duration>,
    ) -> Vec<Cut> {
        let deadline = Instant::now() + duration;
        let mut random = SplitMix64::from_clock();
        let mut cuts = Vec::new();
        loop {
            let pause = random.duration_in(&every);
            let at = Instant::now() + pause;
            if at > deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return cuts;
            }
            tokio::time::sleep_until(at.into()).await;
            cuts.push(Cut {
                at: SystemTime::now(),
                connections: self.cut_all(),
            });
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accepts.iter().for_each(JoinHandle::abort);
        self.cut_all();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("routes", &self.routes)
            .field("open", &self.open_connections())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster's proxy listener addresses, from `KAFKA_PROXY_BOOTSTRAP` (which `scripts/kafka up --proxy`
    /// prints), for [`FaultProxy::for_cluster`].
    ///
    /// Without it, like [`cluster`](crate::cluster): prints `SKIPPED: <test> needs KAFKA_PROXY_BOOTSTRAP` and returns
    /// `None`, or panics when `KPROD_REQUIRE_KAFKA=1`.
    pub fn proxy_bootstrap(&self) -> Option<String> {
        let bootstrap = std::env::var("KAFKA_PROXY_BOOTSTRAP").unwrap_or_default();
        if !bootstrap.trim().is_empty() {
            return Some(bootstrap.trim().to_string());
        }
        let test = std::thread::current()
            .name()
            .unwrap_or("this test")
            .to_string();
        if std::env::var("KPROD_REQUIRE_KAFKA").as_deref() == Ok("1") {
            panic!(
                "{test} needs the cluster's proxy listener, and KPROD_REQUIRE_KAFKA=1 forbids skipping it, but \
                 KAFKA_PROXY_BOOTSTRAP is not set. Start the cluster with `KAFKA_PROXY_LISTENER=1 scripts/kafka up` \
                 (after `scripts/kafka down` if one runs without it) and export the KAFKA_PROXY_BOOTSTRAP=... line it \
                 prints, or run `scripts/test`, which does both."
            );
        }
        // Straight to the stderr handle, not eprintln!: libtest captures the macros, and a skip must be visible.
        let _ = writeln!(io::stderr(), "SKIPPED: {test} needs KAFKA_PROXY_BOOTSTRAP");
        None
    }
}

/// `127.0.0.1:19095,...` to `(127.0.0.1:19095, 127.0.0.1:19094), ...`.
fn cluster_routes(proxy_bootstrap: &str) -> io::Result<Vec<(SocketAddr, SocketAddr)>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    proxy_bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let listen: SocketAddr = s
                .parse()
                .map_err(|e| invalid(format!("proxy address {s:?}: {e}")))?;
            let port = listen
                .port()
                .checked_sub(1)
                .filter(|&p| p > 0)
                .ok_or_else(|| invalid(format!("proxy address {s:?}: no port below it")))?;
            Ok((listen, SocketAddr::new(listen.ip(), port)))
        })
        .collect()
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        // Listening on loopback only, every peer is local.
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of descriptors and the like: pause rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        let (cut, cut_rx) = oneshot::channel();
        {
            let mut open = shared.open();
            // Forget connections that ended by themselves, so the list stays as long as what is open.
            open.retain(|cut| !cut.is_closed());
            open.push(cut);
        }
        tokio::spawn(forward(client, upstream, cut_rx));
    }
}

/// Copies both ways until either side closes or the connection is cut; a cut, or an error on one side, resets both.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut cut: oneshot::Receiver<()>) {
    let connected = tokio::select! {
        c = TcpStream::connect(upstream) => c.ok(),
        _ = &mut cut => None,
    };
    let Some(mut server) = connected else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let abrupt = tokio::select! {
        copied = copy_bidirectional(&mut client, &mut server) => copied.is_err(),
        _ = &mut cut => true,
    };
    if abrupt {
        reset(&client);
        reset(&server);
    }
}

/// Makes the coming close send RST instead of FIN (`SO_LINGER` 0, which does not block).
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// A small pseudo-random generator (SplitMix64): enough to spread cut times, and no dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn from_clock() -> SplitMix64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `range` to the microsecond.
    fn duration_in(&mut self, range: &RangeInclusive<Duration>) -> Duration {
        let (low, high) = (*range.start(), *range.end());
        let span = high.saturating_sub(low).as_micros() as u64;
        low + Duration::from_micros(self.next() % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    /// An echo server on an ephemeral loopback port; reports how each of its connections ended.
    async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<io::Result<usize>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ended, ends) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let ended = ended.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let end = loop {
                        match conn.read(&mut buf).await {
                            Ok(0) => break Ok(0),
                            Ok(n) => {
                                if let Err(e) = conn.write_all(&buf[..n]).await {
                                    break Err(e);
                                }
                            }
                            Err(e) => break Err(e),
                        }
                    };
                    let _ = ended.send(end);
                });
            }
        });
        (addr, ends)
    }

    async fn proxy_to(upstream: SocketAddr) -> FaultProxy {
        FaultProxy::start(&[("127.0.0.1:0".parse().unwrap(), upstream)])
            .await
            .unwrap()
    }

    async fn round_trip(conn: &mut TcpStream, message: &[u8]) {
        conn.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        conn.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let (echo, _) = echo_server().await;
        let proxy = proxy_to(echo).await;
        let mut conn = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        round_trip(&mut conn, b"hello").await;
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        round_trip(&mut conn, &big).await;
        assert_eq!(proxy.connections_accepted(), 1);
        assert_eq!(proxy.open_connections(), 1);
    }

    #[tokio::test]
    async fn cut_all_resets_both_sides_and_new_connections_work() {
        let (echo, mut ends) = echo_server().await;
        let proxy = proxy_to(echo).await;
        let mut a = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        let mut b = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        round_trip(&mut a, b"a").await;
        round_trip(&mut b, b"b").await;

        assert_eq!(proxy.cut_all(), 2);
        for conn in [&mut a, &mut b] {
            let mut buf = [0u8; 8];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("the cut reaches the client");
            let err = read.expect_err("a reset, not an orderly end");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        }
        for _ in 0..2 {
            let end = tokio::time::timeout(Duration::from_secs(5), ends.recv())
                .await
                .expect("the cut reaches the server")
                .unwrap();
            let err = end.expect_err("a reset, not an orderly end");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        }

        let mut c = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        round_trip(&mut c, b"again").await;
        assert_eq!(proxy.connections_accepted(), 3);
        assert_eq!(proxy.cut_all(), 1);
        assert_eq!(proxy.cut_all(), 0);
    }

    #[tokio::test]
    async fn a_connection_that_ends_by_itself_is_not_counted_as_cut() {
        let (echo, mut ends) = echo_server().await;
        let proxy = proxy_to(echo).await;
        let mut conn = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        round_trip(&mut conn, b"bye").await;
        drop(conn);
        assert!(
            ends.recv().await.unwrap().is_ok(),
            "an orderly end passes through"
        );
        // The proxy closes its side once both directions ended.
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.open_connections() > 0 {
            assert!(Instant::now() < deadline, "the connection is still open");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(proxy.cut_all(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_resets_the_client() {
        // Bound but never listening, and kept: connections are refused, and no other test can
        // be given the port meanwhile (a listener bound and dropped freed it for anyone, and a
        // test running alongside that got it made this one hang).
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed = socket.local_addr().unwrap();
        let proxy = proxy_to(closed).await;
        let mut conn = TcpStream::connect(proxy.listen_addrs()[0]).await.unwrap();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap();
        assert!(read.is_err(), "{read:?}");
    }

    #[tokio::test]
    async fn cuts_at_random_intervals_in_the_range() {
        let (echo, _) = echo_server().await;
        let proxy = proxy_to(echo).await;
        let listen = proxy.listen_addrs()[0];
        // A client that reconnects whenever it is cut, so that most cuts have something to cut.
        let client = tokio::spawn(async move {
            loop {
                if let Ok(mut conn) = TcpStream::connect(listen).await {
                    let mut buf = [0u8; 8];
                    let _ = conn.write_all(b"x").await;
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            }
        });
        let ms = Duration::from_millis;
        let started = Instant::now();
        let cuts = proxy.cut_at_random(ms(600), ms(20)..=ms(60)).await;
        let elapsed = started.elapsed();
        client.abort();
        assert!(elapsed >= ms(600) && elapsed < ms(2000), "{elapsed:?}");
        // 600 ms of 20-60 ms pauses; timers that fire late on a busy machine make fewer.
        assert!((5..=30).contains(&cuts.len()), "{} cuts", cuts.len());
        assert!(cuts.iter().any(|c| c.connections > 0), "{cuts:?}");
        for pair in cuts.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at).unwrap();
            // Timers fire late, never early; allow for a loaded machine on the upper side.
            assert!(gap >= ms(19), "{gap:?}");
        }
    }

    #[test]
    fn random_durations_cover_the_range_and_stay_in_it() {
        let mut random = SplitMix64(42);
        let range = Duration::from_millis(500)..=Duration::from_millis(1500);
        let drawn: Vec<Duration> = (0..10_000).map(|_| random.duration_in(&range)).collect();
        assert!(drawn.iter().all(|d| range.contains(d)));
        assert!(drawn.iter().any(|d| *d < Duration::from_millis(550)));
        assert!(drawn.iter().any(|d| *d > Duration::from_millis(1450)));
        let fixed = Duration::from_millis(7)..=Duration::from_millis(7);
        assert_eq!(random.duration_in(&fixed), Duration::from_millis(7));
    }

    #[tokio::test]
    async fn refuses_anything_but_loopback() {
        let err = FaultProxy::start(&[(
            "127.0.0.1:0".parse().unwrap(),
            "10.0.0.1:9092".parse().unwrap(),
        )])
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = FaultProxy::start(&[(
            "0.0.0.0:0".parse().unwrap(),
            "127.0.0.1:9092".parse().unwrap(),
        )])
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn cluster_routes_forward_to_the_port_below() {
        let routes = cluster_routes("127.0.0.1:19095, 127.0.0.1:29095,").unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            routes,
            [
                (addr("127.0.0.1:19095"), addr("127.0.0.1:19094")),
                (addr("127.0.0.1:29095"), addr("127.0.0.1:29094")),
            ]
        );
        assert!(cluster_routes("localhost:19095").is_err());
        assert!(cluster_routes("127.0.0.1:1").is_err());
    }
}
