//! A bare hyper reverse proxy: the floor of what any hyper-based gateway can cost per request.
//!
//! scripts/bench runs it next to the api-gateway, nginx and HAProxy, in front of the same
//! user-service. It does only what relaying needs: strip `/api`, forward method, path and
//! query, headers and body over pooled keep-alive HTTP/1.1 connections, read the answer whole
//! and send it back. None of the gateway's features: no metrics, request ids, deadlines,
//! limits, retries or logs. So the gap between the gateway and this is what those features
//! (and axum, tower) cost, and the gap between this and nginx is what hyper and tokio cost.
//!
//! A yardstick, not something to deploy: no timeouts, no limits, no graceful shutdown.
//! Run as `PORT=... USER_SERVICE_URL=http://host:port target/release/examples/bare_proxy`.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::header::CONNECTION;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// The user-service's address and the idle connections to it, last returned first out.
struct Upstream {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Incoming>>>,
}

impl Upstream {
    async fn sender(&self) -> Result<SendRequest<Incoming>, StatusCode> {
        while let Some(sender) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            if sender.is_ready() {
                return Ok(sender);
            }
        }
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY)?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = client::handshake(TokioIo::new(tcp))
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    fn put_back(&self, sender: SendRequest<Incoming>) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(sender);
    }
}

async fn forward(up: &Arc<Upstream>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, StatusCode> {
    let (mut head, body) = req.into_parts();
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = path.strip_prefix("/api").filter(|rest| rest.starts_with('/'));
    head.uri = Uri::try_from(rest.ok_or(StatusCode::NOT_FOUND)?).map_err(|_| StatusCode::BAD_REQUEST)?;
    // Hop by hop: a client's `Connection: close` must not close a pooled upstream connection.
    head.headers.remove(CONNECTION);

    let mut sender = up.sender().await?;
    let answer = sender
        .send_request(Request::from_parts(head, body))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let (mut head, body) = answer.into_parts();
    let body = body.collect().await.map_err(|_| StatusCode::BAD_GATEWAY)?.to_bytes();
    head.headers.remove(CONNECTION);
    // Back to the pool only once the connection can take the next request.
    if sender.is_ready() {
        up.put_back(sender);
    } else {
        let up = Arc::clone(up);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                up.put_back(sender);
            }
        });
    }
    Ok(Response::from_parts(head, Full::new(body)))
}

async fn handle(up: Arc<Upstream>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(forward(&up, req).await.unwrap_or_else(|status| {
        let mut response = Response::new(Full::default());
        *response.status_mut() = status;
        response
    }))
}

#[tokio::main]
async fn main() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let port: u16 = env("PORT").parse().expect("PORT is a port number");
    let upstream = env("USER_SERVICE_URL");
    let authority = upstream
        .strip_prefix("http://")
        .expect("USER_SERVICE_URL is http://host:port");
    let mut addrs = authority
        .trim_end_matches('/')
        .to_socket_addrs()
        .expect("USER_SERVICE_URL resolves");
    let addr = addrs.next().expect("USER_SERVICE_URL has an address");
    let up = Arc::new(Upstream {
        addr,
        idle: Mutex::default(),
    });
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind 127.0.0.1:PORT");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let up = Arc::clone(&up);
        let service = service_fn(move |req| handle(Arc::clone(&up), req));
        tokio::spawn(server::Builder::new().serve_connection(TokioIo::new(tcp), service));
    }
}
