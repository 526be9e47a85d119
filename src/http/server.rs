//! Serving a router on a bound listener until shutdown, with a bound on the drain.

use std::{io, net::SocketAddr};

use axum::{Router, serve::ListenerExt};
use tokio::net::TcpListener;

use super::shutdown::Shutdown;
use crate::config::ShutdownConfig;

/// Binds `0.0.0.0:port` (port 0 picks a free one).
pub async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Serves until `shutdown` is stopped, then lets in-flight requests finish for at most
/// `config.timeout`. Idle keep-alive connections are closed at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    config: ShutdownConfig,
) -> io::Result<()> {
    // Small JSON responses: Nagle's algorithm would only delay them.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stopping = shutdown.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stopping.stopped().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown.stopped() => {}
    }
    match tokio::time::timeout(config.timeout, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                timeout_seconds = config.timeout.as_secs(),
                "in-flight requests still running at the shutdown timeout; closing them"
            );
            Ok(())
        }
    }
}
