//! The gateway in process: forwarding, header handling, upstream failures, shedding, OpenAPI.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, Router, http::HeaderMap, routing::get};
use serde_json::{Value, json};
use tokio::sync::Notify;
use users_platform::{gateway, http::shutdown::Shutdown};

use crate::helpers::{
    Backend, Served, Stack, client, eventually, free_port, gateway_config, get_json, get_status, get_text, local, post,
    serve,
};

on_both_stores!(forwards_the_whole_api_to_the_user_service);

async fn forwards_the_whole_api_to_the_user_service(backend: Backend) {
    let stack = Stack::start(backend).await;
    let http = client();
    let created = post(
        &http,
        stack.api("/users"),
        &json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    // The gateway's own path: the user-service's `/users/{id}` is a 404 on the gateway.
    let location = created.headers()["location"].to_str().expect("ascii").to_owned();
    let user: Value = created.json().await.expect("json");
    let path = format!("/users/{}", user["id"].as_str().expect("id"));
    assert_eq!(location, format!("/api{path}"));
    assert_eq!(get_json(&http, stack.gateway.url(&location)).await, user);

    let fetched: Value = get_json(&http, stack.api(&path)).await;
    assert_eq!(fetched, user);
    let patched = http
        .patch(stack.api(&path))
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let list: Value = get_json(&http, stack.api("/users?limit=10")).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["role"], "admin");
    let conflict = post(
        &http,
        stack.api("/users"),
        &json!({"name": "B", "email": "ADA@example.com"}),
    )
    .await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(get_status(&http, stack.api("/users?limit=5000")).await, 400);
    let deleted = http.delete(stack.api(&path)).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(get_status(&http, stack.api(&path)).await, 404);
    let unsupported = http.post(stack.api("/users")).body("x").send().await.expect("post");
    assert_eq!(unsupported.status(), 415);
    let too_large = http
        .post(stack.api("/users"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100_000])
        .send()
        .await
        .expect("post");
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        too_large.json::<Value>().await.expect("json"),
        json!({"error": "request body too large"})
    );
}

/// A gateway in front of `upstream`, served on loopback, and its metrics registry.
async fn serve_gateway(
    upstream: &str,
    upstream_timeout: Duration,
    max_concurrent_requests: usize,
) -> (Served, prometheus::Registry) {
    let app = gateway::build(
        &gateway_config(upstream, upstream_timeout, max_concurrent_requests),
        Shutdown::new(),
    );
    (serve(app.router(), Shutdown::new()).await, app.registry().clone())
}

/// Waits up to 5 s until `gateway`'s metrics page contains `needle` (the scrape itself is one
/// request in flight).
async fn wait_for_metrics(http: &reqwest::Client, gateway: &Served, needle: &str, what: &str) {
    let metrics_url = gateway.url("/metrics");
    eventually(Duration::from_secs(5), what, || {
        let metrics_url = metrics_url.clone();
        async move { get_text(http, metrics_url).await.contains(needle) }
    })
    .await;
}

/// An upstream that answers with the headers it received.
async fn echo_upstream() -> Served {
    let router = Router::new().route(
        "/users",
        get(|headers: HeaderMap| async move {
            let received: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_str().unwrap_or("").to_owned())))
                .collect();
            (
                [("connection", "keep-alive"), ("x-upstream", "yes")],
                Json(Value::Object(received)),
            )
        }),
    );
    serve(router, Shutdown::new()).await
}

#[tokio::test]
async fn propagates_request_id_and_trace_and_strips_hop_by_hop_headers() {
    let upstream = echo_upstream().await;
    let (gateway, _) = serve_gateway(&upstream.url(""), Duration::from_secs(2), 64).await;
    let response = client()
        .get(gateway.url("/api/users"))
        .header("x-request-id", "trace-me-1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "trailers")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("get");
    assert_eq!(response.headers()["x-request-id"], "trace-me-1");
    assert_eq!(
        response.headers()["x-upstream"],
        "yes",
        "end-to-end response headers pass through"
    );
    let received: Value = response.json().await.expect("json");
    assert_eq!(received["x-request-id"], "trace-me-1");
    assert_eq!(received["x-custom"], "kept");
    assert!(received.get("proxy-authorization").is_none());
    assert!(received.get("te").is_none());
    let traceparent = received["traceparent"].as_str().expect("traceparent forwarded");
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the gateway is the new parent"
    );
    assert_eq!(received["host"], upstream.addr.to_string());
    // The client's chain is kept and the gateway's peer appended.
    assert_eq!(received["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(received["forwarded"], "for=127.0.0.1;proto=http");
    assert_eq!(received["x-forwarded-proto"], "http");

    let fresh: Value = get_json(&client(), gateway.url("/api/users")).await;
    assert_eq!(fresh["traceparent"].as_str().expect("created when absent").len(), 55);
}

#[tokio::test]
async fn unreachable_upstream_is_a_fast_502_and_not_ready() {
    let (gateway, registry) = serve_gateway(&local(free_port()), Duration::from_secs(2), 64).await;
    let http = client();
    let started = Instant::now();
    let response = http.get(gateway.url("/api/users/abc")).send().await.expect("get");
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "upstream unavailable"})
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let create_attempt = post(
        &http,
        gateway.url("/api/users"),
        &json!({"name": "a", "email": "a@b.co"}),
    )
    .await;
    assert_eq!(create_attempt.status(), 502);

    let ready = http.get(gateway.url("/health/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.expect("json"),
        json!({"error": "not ready", "details": {"userService": "down"}})
    );
    assert_eq!(get_status(&http, gateway.url("/health/live")).await, 200);

    let metrics = users_platform::telemetry::metrics::encode(&registry);
    assert!(
        metrics.contains("upstream_retries_total 4"),
        "a refused connection proves nothing was sent: the GET and the POST were retried twice each:\n{metrics}"
    );
    assert!(
        metrics.contains(
            r#"upstream_request_duration_seconds_count{method="GET",outcome="error",route="/api/users/{id}"} 1"#
        ),
        "{metrics}"
    );
}

/// An upstream whose `/users` answers only when released.
async fn stalled_upstream(release: Arc<Notify>) -> Served {
    let router = Router::new()
        .route(
            "/users",
            get(move || {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Json(json!({"data": [], "total": 0, "next_cursor": null}))
                }
            }),
        )
        .route("/health/live", get(|| async { Json(json!({"status": "alive"})) }));
    serve(router, Shutdown::new()).await
}

#[tokio::test]
async fn slow_upstream_is_a_504_at_the_deadline() {
    let upstream = stalled_upstream(Arc::new(Notify::new())).await;
    let (gateway, _) = serve_gateway(&upstream.url(""), Duration::from_millis(300), 64).await;
    let started = Instant::now();
    let response = client().get(gateway.url("/api/users")).send().await.expect("get");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "upstream timed out"})
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn over_the_concurrency_limit_requests_are_shed_but_probes_answer() {
    let release = Arc::new(Notify::new());
    let upstream = stalled_upstream(release.clone()).await;
    let (gateway, registry) = serve_gateway(&upstream.url(""), Duration::from_secs(5), 2).await;
    let http = client();
    let url = gateway.url("/api/users");
    let in_flight: Vec<_> = (0..2).map(|_| tokio::spawn(http.get(&url).send())).collect();
    wait_for_metrics(&http, &gateway, "http_requests_in_flight 3", "two requests in flight").await;
    let shed = http.get(&url).send().await.expect("get");
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(
        shed.json::<Value>().await.expect("json"),
        json!({"error": "service overloaded, retry later"})
    );
    assert_eq!(get_status(&http, gateway.url("/health/live")).await, 200);
    assert_eq!(get_status(&http, gateway.url("/health/ready")).await, 200);
    release.notify_waiters();
    for request in in_flight {
        assert_eq!(request.await.expect("task").expect("response").status(), 200);
    }
    assert!(users_platform::telemetry::metrics::encode(&registry).contains("http_requests_shed_total 1"));
}

#[tokio::test]
async fn openapi_document_describes_every_public_operation() {
    let stack = Stack::start(Backend::Memory).await;
    let doc: Value = get_json(&client(), stack.gateway.url("/openapi.json")).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/users", &["get", "post"][..]),
        ("/api/users/{id}", &["get", "patch", "delete"][..]),
        ("/health/ready", &["get"][..]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} is documented");
        }
    }
    let post = &paths["/api/users"]["post"]["responses"];
    for status in ["201", "400", "409", "413", "415", "422", "502", "503", "504"] {
        assert!(post[status].is_object(), "POST documents {status}");
    }
    assert!(doc["components"]["schemas"]["User"]["properties"]["createdAt"].is_object());
}

#[tokio::test]
async fn draining_gateway_is_unready_but_still_serves() {
    let stack = Stack::start(Backend::Memory).await;
    stack.gateway.shutdown.start_draining();
    let http = client();
    assert_eq!(get_status(&http, stack.gateway.url("/health/ready")).await, 503);
    assert_eq!(get_status(&http, stack.api("/users")).await, 200);
}

#[tokio::test]
async fn requests_abandoned_by_their_client_leave_the_in_flight_gauge() {
    let upstream = stalled_upstream(Arc::new(Notify::new())).await;
    let (gateway, _) = serve_gateway(&upstream.url(""), Duration::from_secs(5), 64).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    assert!(
        impatient.get(gateway.url("/api/users")).send().await.is_err(),
        "the upstream never answers"
    );
    let http = client();
    let only_the_scrape = "http_requests_in_flight 1\n";
    wait_for_metrics(&http, &gateway, only_the_scrape, "only the metrics request in flight").await;
}

/// An upstream that reads each request and closes the connection without answering (a
/// replica stopping under the gateway) for the first `failures` connections, then answers
/// `200 {}`.
async fn closing_upstream(failures: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = vec![0; 16 * 1024];
            let _ = stream.read(&mut request).await;
            if n >= failures {
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.read(&mut request).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_closed_before_the_response_is_retried_for_get_only() {
    let http = client();
    let upstream = closing_upstream(1).await;
    let (gateway, registry) = serve_gateway(&format!("http://{upstream}"), Duration::from_secs(2), 64).await;
    assert_eq!(get_status(&http, gateway.url("/api/users/abc")).await, 200);
    let metrics = users_platform::telemetry::metrics::encode(&registry);
    assert!(metrics.contains("upstream_retries_total 1"), "{metrics}");

    // The POST may have been processed: it is not sent again.
    let upstream = closing_upstream(1).await;
    let (gateway, registry) = serve_gateway(&format!("http://{upstream}"), Duration::from_secs(2), 64).await;
    let create = post(
        &http,
        gateway.url("/api/users"),
        &json!({"name": "a", "email": "a@b.co"}),
    )
    .await;
    assert_eq!(create.status(), 502);
    let metrics = users_platform::telemetry::metrics::encode(&registry);
    assert!(metrics.contains("upstream_retries_total 0"), "{metrics}");
}

/// An upstream whose `/users` answers `size` bytes of JSON, with `Content-Length`.
async fn sized_upstream(size: usize) -> Served {
    let body = format!("\"{}\"", "x".repeat(size.saturating_sub(2)));
    let router = Router::new().route(
        "/users",
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    serve(router, Shutdown::new()).await
}

#[tokio::test]
async fn large_responses_are_relayed_whole_and_oversized_ones_refused() {
    // Over the buffered size (64 KiB): streamed, with the upstream's length.
    let upstream = sized_upstream(300_000).await;
    let (gateway, _) = serve_gateway(&upstream.url(""), Duration::from_secs(2), 64).await;
    let response = client().get(gateway.url("/api/users")).send().await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "300000");
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.bytes().await.expect("body").len(), 300_000);

    // Over the relay limit (8 MiB) by its declared length: a JSON 502 before any byte.
    let upstream = sized_upstream(9 << 20).await;
    let (gateway, _) = serve_gateway(&upstream.url(""), Duration::from_secs(5), 64).await;
    let response = client().get(gateway.url("/api/users")).send().await.expect("get");
    assert_eq!(response.status(), 502);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": "upstream unavailable"})
    );
}

/// An upstream that answers every request `200 {}` on kept-alive connections and counts the
/// connections it accepted and those the gateway closed.
async fn counting_upstream() -> (std::net::SocketAddr, Arc<[std::sync::atomic::AtomicUsize; 2]>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counts: Arc<[std::sync::atomic::AtomicUsize; 2]> = Arc::new(Default::default());
    let (accepted, closed) = (counts.clone(), counts.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted[0].fetch_add(1, SeqCst);
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut request = vec![0; 16 * 1024];
                // A GET arrives in one read; zero bytes is the gateway closing the connection.
                while stream.read(&mut request).await.is_ok_and(|n| n > 0) {
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
                closed[1].fetch_add(1, SeqCst);
            });
        }
    });
    (addr, counts)
}

#[tokio::test]
async fn upstream_connections_are_reused_then_closed_once_idle() {
    use std::sync::atomic::Ordering::SeqCst;
    let http = client();
    let (upstream, counts) = counting_upstream().await;
    let (gateway, _) = serve_gateway(&format!("http://{upstream}"), Duration::from_secs(2), 64).await;
    for _ in 0..5 {
        assert_eq!(get_status(&http, gateway.url("/api/users/abc")).await, 200);
    }
    assert_eq!(counts[0].load(SeqCst), 1, "five requests in a row share one connection");
    let idle_since = Instant::now();
    // The pool closes connections idle for over 2 s, checked every 2 s.
    eventually(
        Duration::from_secs(6),
        "the idle upstream connection closed",
        || async { counts[1].load(SeqCst) == 1 },
    )
    .await;
    assert!(
        idle_since.elapsed() >= Duration::from_secs(2),
        "closed before the idle timeout"
    );
}
