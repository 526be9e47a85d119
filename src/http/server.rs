//! Serving a router on a bound listener until shutdown: our own accept loop on hyper's HTTP/1
//! connection, because `axum::serve` exposes none of the limits a hostile or slow client needs
//! (header-read timeout, header size and count, connection count), nor the drain behaviour.
//!
//! Bounds per connection (docs/reliability.md, "Hostile clients"): the header block must
//! arrive within `HEADER_READ_TIMEOUT_MS` and a kept-alive connection may wait idle for
//! `KEEP_ALIVE_TIMEOUT_SECONDS` (both in [`read_deadlines`](super::read_deadlines)), a header
//! block may be at most `MAX_HEADER_BYTES` and `MAX_HEADERS` fields (hyper answers 431), and
//! hyper's read buffer is capped at the header limit, so one connection costs a few tens of
//! KiB at most. At most `MAX_CONNECTIONS` are open at once; further clients wait in the
//! kernel's listen backlog instead of costing memory.

use std::{convert::Infallible, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header::CONNECTION},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tower::ServiceExt;

use super::{
    peer::Peer,
    read_deadlines::{DeadlineIo, Deadlines, RequestPhase},
    shutdown::Shutdown,
};
use crate::config::ServerConfig;

/// The header count hyper allows when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;
/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER_BYTES: usize = 8 * 1024;
/// Pause after a failed accept (out of file descriptors, say), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Binds `0.0.0.0:port` (port 0 picks a free one).
pub async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Serves until `shutdown` is stopped, then lets in-flight requests finish for at most
/// `config.shutdown.timeout`. From the start of the drain every response carries
/// `Connection: close`, so clients (the gateway's pool above all) move to another replica
/// before the listener closes.
pub async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown, config: &ServerConfig) -> io::Result<()> {
    let limits = config.connections;
    let mut http = http1::Builder::new();
    // No timer for hyper: its header-read timeout would also close idle keep-alive connections
    // after the same short time; `DeadlineIo` keeps the two deadlines apart.
    http.keep_alive(true)
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER_BYTES));
    // Any explicit count makes hyper parse headers into a heap buffer per request (its docs:
    // about 5 % slower); its own default of 100 uses the stack.
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http.max_headers(limits.max_headers);
    }
    let deadlines = Deadlines {
        header_read: limits.header_read_timeout,
        keep_alive: limits.keep_alive_timeout,
    };
    let open_connections = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            permit = open_connections.clone().acquire_owned() => permit,
            () = shutdown.stopped() => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.stopped() => break,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Small JSON responses: Nagle's algorithm would only delay them.
                let _ = tcp.set_nodelay(true);
                let connection = serve_connection(
                    http.clone(),
                    DeadlineIo::new(tcp, deadlines),
                    peer,
                    router.clone(),
                    shutdown.clone(),
                    permit,
                );
                tokio::spawn(connection);
            }
            Err(err) => {
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    drop(listener);
    // Every connection holds a permit until it ends: having them all back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown.timeout, open_connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_seconds = config.shutdown.timeout.as_secs(),
            "in-flight requests still running at the shutdown timeout; closing them"
        );
    }
    Ok(())
}

async fn serve_connection(
    http: http1::Builder,
    (tcp, phase): (DeadlineIo<TcpStream>, RequestPhase),
    address: SocketAddr,
    router: Router,
    shutdown: Shutdown,
    _permit: OwnedSemaphorePermit,
) {
    let (draining, request_phase) = (shutdown.clone(), phase);
    let peer = Peer::new(address);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // The gateway appends the peer to `X-Forwarded-For`.
        req.extensions_mut().insert(peer.clone());
        request_phase.serving();
        let response = router.clone().oneshot(req);
        let (draining, request_phase) = (draining.clone(), request_phase.clone());
        async move {
            let Ok(mut response) = response.await;
            request_phase.idle();
            if draining.is_draining() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    // Idle connections are closed when the listener stops, not when the drain starts: a
    // request may be on the wire on any idle connection, and closing under it fails it. During
    // the drain every response says `Connection: close`, so a connection in use closes after
    // its next response, and the gateway's pool forgets connections idle longer than the
    // drain (gateway/upstream.rs), so none is left to race with the stop.
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.stopped() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Clients that time out, send garbage or go away are not the server's problem.
        tracing::debug!(error = %err, peer = %address, "connection ended with an error");
    }
}
