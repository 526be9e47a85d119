//! Keep-alive connections to the user-service, on hyper's low-level HTTP/1 client.
//!
//! Why not hyper-util's pooled `Client`, which this replaced: it keys its pool by scheme and
//! authority (SipHash over both at every checkout and return), wraps each request in its own
//! channel and boxed futures, and resolves names through its own resolver on every new
//! connection. The gateway talks to one upstream only, so a stack of ready connections is all
//! it needs. Measured in the same A/B run (docs/performance.md, "The gateway against nginx
//! and HAProxy"): a bare hyper proxy spends ~10.5 µs of user CPU per request with hyper-util's
//! client and ~7.5 µs with this kind of pool.
//!
//! What the pool guarantees, and the upstream client's retries rely on:
//! - a connection is handed out only when hyper says it can take a request (`is_ready`): a
//!   connection still busy with a streamed response, or closed by `Connection: close`, never is;
//! - a connection idle longer than [`IDLE_TIMEOUT`] is never reused (see there);
//! - a request that could not be written on a pooled connection comes back unsent
//!   (`try_send_request`), so it can be sent on another.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use axum::body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Pooled connections idle longer than this are not reused. Below both the user-service's
/// drain (`SHUTDOWN_DRAIN_SECONDS`, 5 s) and its idle close (`KEEP_ALIVE_TIMEOUT_SECONDS`, 75 s):
/// a connection the gateway picks was used within this time, so during a drain it already
/// got `Connection: close`, and it is never one the server is about to close for idleness.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept at most; more are closed when they come back.
const MAX_IDLE: usize = 512;
/// The most a connection reads ahead; a streamed response holds about this much per request.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Where the user-service listens: host (a name or an address) and port.
#[derive(Clone, Debug)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    address: Address,
    connect_timeout: Duration,
    http: http1::Builder,
    /// Oldest first: connections are pushed as they become idle and taken from the end, so
    /// the busiest few stay warm and the rest age out.
    idle: Mutex<Vec<Idle>>,
    reaper_started: std::sync::atomic::AtomicBool,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why no connection could be had. The request was not sent: retrying is always safe. The
/// messages name the address tried: in a cluster, the Service's ClusterIP and port.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("resolving {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("resolving {host}: no answer within {timeout_ms} ms")]
    ResolveTimeout { host: String, timeout_ms: u128 },
    #[error("resolving {host}: no address")]
    NoAddress { host: String },
    #[error("connecting to {host} at {address}: {source}")]
    Io {
        host: String,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {host} at {address}: no connection within {timeout_ms} ms")]
    Timeout {
        host: String,
        address: SocketAddr,
        timeout_ms: u128,
    },
    #[error("HTTP handshake with the user-service: {0}")]
    Handshake(hyper::Error),
}

impl Pool {
    pub fn new(address: Address, connect_timeout: Duration) -> Self {
        let mut http = http1::Builder::new();
        // One flat write per request instead of a vectored one: fewer, larger copies measured
        // cheaper on loopback (docs/performance.md, step 3).
        http.writev(false).max_buf_size(READ_BUFFER_BYTES);
        Self {
            shared: Arc::new(Shared {
                address,
                connect_timeout,
                http,
                idle: Mutex::new(Vec::new()),
                reaper_started: false.into(),
            }),
        }
    }

    /// A connection ready for one request: the most recently used idle one, or a new one.
    pub async fn checkout(&self) -> Result<SendRequest<Body>, ConnectError> {
        if let Some(sender) = self.shared.take_idle() {
            return Ok(sender);
        }
        self.connect().await
    }

    /// Gives a connection back after its response was read, or handed on to be streamed.
    /// It is pooled once hyper can send the next request on it: at once when the response is
    /// complete, otherwise when its body has been relayed to the end. A response body dropped
    /// half-way closes the connection, and then it is not pooled at all.
    pub fn give_back(&self, mut sender: SendRequest<Body>) {
        if sender.is_ready() {
            self.shared.put_idle(sender);
            return;
        }
        if sender.is_closed() {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            if sender.ready().await.is_ok()
                && let Some(shared) = shared.upgrade()
            {
                shared.put_idle(sender);
            }
        });
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ConnectError> {
        let tcp = self.connect_tcp().await?;
        // Small JSON requests: Nagle's algorithm would only delay them.
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = self
            .shared
            .http
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "user-service connection ended with an error");
            }
        });
        if !self
            .shared
            .reaper_started
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tokio::spawn(reap_idle(Arc::downgrade(&self.shared)));
        }
        Ok(sender)
    }
}

impl Pool {
    /// Each resolved address in turn, each within the connect timeout. Resolving is bounded by
    /// it too: a lookup that hangs (DNS egress blocked) is a fast 502 naming the cause, not a
    /// request that waits for the whole upstream deadline.
    async fn connect_tcp(&self) -> Result<TcpStream, ConnectError> {
        let Address { host, port } = &self.shared.address;
        let timeout = self.shared.connect_timeout;
        let resolving = tokio::net::lookup_host((host.as_str(), *port));
        let addresses = match tokio::time::timeout(timeout, resolving).await {
            Ok(Ok(addresses)) => addresses,
            Ok(Err(source)) => {
                return Err(ConnectError::Resolve {
                    host: host.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(ConnectError::ResolveTimeout {
                    host: host.clone(),
                    timeout_ms: timeout.as_millis(),
                });
            }
        };
        let mut failure = ConnectError::NoAddress { host: host.clone() };
        for address in addresses {
            failure = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(source)) => ConnectError::Io {
                    host: host.clone(),
                    address,
                    source,
                },
                Err(_) => ConnectError::Timeout {
                    host: host.clone(),
                    address,
                    timeout_ms: timeout.as_millis(),
                },
            };
        }
        Err(failure)
    }
}

impl Shared {
    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The list stays consistent whatever a panicking holder did: every operation on it is
        // one push, pop or truncation.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle();
        while let Some(Idle { sender, since }) = idle.pop() {
            if since.elapsed() > IDLE_TIMEOUT {
                // Oldest first: everything below is older still.
                idle.clear();
                return None;
            }
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops connections idle past [`IDLE_TIMEOUT`] (closing them), so a quiet gateway does
    /// not hold the user-service's sockets open until its idle close.
    fn close_expired(&self) {
        let mut idle = self.idle();
        let expired = idle.partition_point(|i| i.since.elapsed() > IDLE_TIMEOUT);
        idle.drain(..expired);
    }
}

/// Runs while the pool exists.
async fn reap_idle(shared: Weak<Shared>) {
    let mut every = tokio::time::interval(IDLE_TIMEOUT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        shared.close_expired();
    }
}
