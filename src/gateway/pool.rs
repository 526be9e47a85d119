//! Keep-alive connections to the user-service, on hyper's low-level HTTP/1 client.
//!
//! Why not hyper-util's pooled `Client`, which this replaced: it keys its pool by scheme and
//! authority (SipHash over both at every checkout and return) and wraps each request in a
//! channel and boxed futures of its own. The gateway talks to one upstream only, so a stack of
//! ready connections is all it needs. Measured (docs/performance.md, "The gateway's own
//! connection pool"): the gateway's CPU per request fell 4.3 % against the user-service's in
//! two A/B batches.
//!
//! What the pool guarantees, and the upstream client's retries rely on:
//! - a connection is handed out only when hyper says it can take a request (`is_ready`): a
//!   connection still busy with a streamed response, or closed by `Connection: close`, never is;
//! - a connection idle longer than [`IDLE_TIMEOUT`] is never reused (see there);
//! - a request that hyper hands back unwritten because the pooled connection it got had just
//!   closed is sent on the next connection at once ([`Pool::send`]), as hyper-util did: it
//!   never reached the user-service, so it is neither a failure nor a retry.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::{Duration, Instant},
};

use axum::body::Body;
use hyper::{
    Request, Response,
    body::Incoming,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Pooled connections idle longer than this are not reused. Below both the user-service's
/// drain (`SHUTDOWN_DRAIN_SECONDS`, 5 s) and its idle close (`KEEP_ALIVE_TIMEOUT_SECONDS`, 75 s):
/// a connection the gateway picks was used within this time, so during a drain it already
/// got `Connection: close`, and it is never one the server is about to close for idleness.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept at most; more are closed when they come back.
const MAX_IDLE: usize = 512;
/// The most a connection reads ahead; a streamed response holds about this much per request.
const READ_BUFFER_BYTES: usize = 64 * 1024;

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

/// Why [`Pool::send`] got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection: the request was not sent.
    Connect(ConnectError),
    /// hyper's error for the exchange.
    Http(hyper::Error),
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

    /// Sends `request` on the most recently used idle connection, or a new one, and returns
    /// the response head with the connection (to [`give_back`](Self::give_back) once done).
    pub async fn send(&self, mut request: Request<Body>) -> Result<(SendRequest<Body>, Response<Incoming>), SendError> {
        loop {
            let (mut connection, reused) = match self.shared.take_idle() {
                Some(connection) => (connection, true),
                None => (self.connect().await.map_err(SendError::Connect)?, false),
            };
            match connection.try_send_request(request).await {
                Ok(response) => return Ok((connection, response)),
                Err(mut err) => match (reused, err.take_message()) {
                    // Closed between its last use and this one, before a byte of this request
                    // was written. Each turn takes another pooled connection or opens a new
                    // one, so this ends.
                    (true, Some(unsent)) => request = unsent,
                    _ => return Err(SendError::Http(err.into_error())),
                },
            }
        }
    }

    /// Gives a connection back after its response was read, or handed on to be streamed.
    /// It is pooled once hyper can send the next request on it: at once when the response is
    /// complete, otherwise when its body has been relayed to the end. If the response body is
    /// dropped half-way, hyper keeps the connection only if the rest was already buffered;
    /// otherwise it closes it, and it is not pooled at all.
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

    /// Resolves the host and tries each address in turn, all within one connect timeout.
    /// Resolving is bounded too: a lookup that hangs (DNS egress blocked) is a fast 502 naming
    /// the cause, not a request that waits for the whole upstream deadline.
    async fn connect_tcp(&self) -> Result<TcpStream, ConnectError> {
        let Address { host, port } = &self.shared.address;
        let timeout = self.shared.connect_timeout;
        // The address being tried when the time ran out, for the error.
        let mut trying = None;
        let attempt = async {
            let addresses = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.clone(),
                    source,
                })?;
            let mut failure = ConnectError::NoAddress { host: host.clone() };
            for address in addresses {
                trying = Some(address);
                match TcpStream::connect(address).await {
                    Ok(tcp) => return Ok(tcp),
                    Err(source) => {
                        failure = ConnectError::Io {
                            host: host.clone(),
                            address,
                            source,
                        };
                    }
                }
            }
            Err(failure)
        };
        let result = tokio::time::timeout(timeout, attempt).await;
        result.unwrap_or_else(|_| {
            let (host, timeout_ms) = (host.clone(), timeout.as_millis());
            Err(match trying {
                Some(address) => ConnectError::Timeout {
                    host,
                    address,
                    timeout_ms,
                },
                None => ConnectError::ResolveTimeout { host, timeout_ms },
            })
        })
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
