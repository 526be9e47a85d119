//! Hostile and slow clients at the HTTP edge (issue 14): each test reproduces one finding with
//! real sockets on 127.0.0.1, bounded in count and time.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use users_platform::{config::ServerConfig, gateway, http::shutdown::Shutdown};

use crate::helpers::{
    Backend, Process, Stack, client, eventually, figure, free_port, gateway_config, get_text, local, post, serve,
    serve_with, test_server_config, user_service, wait_ready,
};

/// Number of `name{…}` series on a Prometheus page.
fn series(page: &str, name: &str) -> usize {
    let prefix = format!("{name}{{");
    page.lines().filter(|line| line.starts_with(&prefix)).count()
}

/// Sends `raw` on a new connection and reads until the server closes it (or `within`).
async fn exchange(addr: std::net::SocketAddr, raw: &[u8], within: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before all of it was written: that is what some tests check.
    let _ = stream.write_all(raw).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn json_body_of(answer: &str) -> Value {
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body in {answer:?}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body:?}"))
}

#[tokio::test]
async fn odd_methods_and_paths_do_not_add_metric_series() {
    let stack = Stack::start(Backend::Memory).await;
    let http = client();
    let flood = |count: usize, salt: &'static str| {
        let http = http.clone();
        let gateway = stack.gateway.url("");
        let users = stack.users.url("");
        async move {
            for i in 0..count {
                let method = reqwest::Method::from_bytes(format!("X{salt}{i}{}", "Q".repeat(64)).as_bytes())
                    .expect("a token is a method");
                for base in [&gateway, &users] {
                    let odd = http.request(method.clone(), format!("{base}/api/users/{salt}/{i}"));
                    let _ = odd.send().await.expect("odd method answered");
                    let _ = http
                        .get(format!("{base}/nope/{salt}{i}"))
                        .send()
                        .await
                        .expect("odd path");
                }
            }
        }
    };
    let count = |page: &str| {
        series(page, "http_requests_total")
            + series(page, "http_request_duration_seconds_count")
            + series(page, "upstream_request_duration_seconds_count")
    };
    flood(3, "a").await;
    // A first scrape adds the series of `GET /metrics` itself.
    let _ = get_text(&http, stack.gateway.url("/metrics")).await;
    let _ = get_text(&http, stack.users.url("/metrics")).await;
    let before = (
        count(&get_text(&http, stack.gateway.url("/metrics")).await),
        count(&get_text(&http, stack.users.url("/metrics")).await),
    );
    flood(100, "b").await;
    let gateway_page = get_text(&http, stack.gateway.url("/metrics")).await;
    let after = (
        count(&gateway_page),
        count(&get_text(&http, stack.users.url("/metrics")).await),
    );
    figure("metric_series_after_odd_method_flood", format!("{after:?}"));
    assert_eq!(before, after, "series counts (gateway, user-service) changed");
    assert!(gateway_page.contains(r#"method="OTHER""#), "{gateway_page}");
    assert!(
        gateway_page.len() < 64 * 1024,
        "/metrics is {} bytes",
        gateway_page.len()
    );
}

/// A gateway process with a short header-read timeout, in front of nothing.
fn lone_gateway(extra: &[(&str, String)]) -> (Process, u16) {
    let port = free_port();
    let mut env = vec![
        ("PORT", port.to_string()),
        ("USER_SERVICE_URL", local(free_port())),
        ("HEADER_READ_TIMEOUT_MS", "1000".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    (Process::spawn(&["api-gateway"], &env), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_is_bounded_in_time_and_memory() {
    let (gateway, port) = lone_gateway(&[]);
    let http = client();
    wait_ready(&http, &format!("{}/health/live", local(port)), Duration::from_secs(10)).await;
    let baseline_kib = gateway.rss_kib();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    // 200 connections writing a 390 KB header line that never ends, 200 that trickle.
    let huge_line = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}", "a".repeat(390 * 1024));
    let mut huge = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let line = huge_line.clone();
        huge.push(tokio::spawn(async move {
            let _ = stream.write_all(line.as_bytes()).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }));
    }
    let mut trickling = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nX-A: b")
            .await
            .expect("write");
        trickling.push(stream);
    }
    let peak_kib = gateway.rss_kib();
    figure("slowloris_rss_baseline_kib", baseline_kib);
    figure("slowloris_rss_with_400_connections_kib", peak_kib);
    let started = Instant::now();
    for answer in huge {
        let answer = answer.await.expect("task");
        // Refused with 431 once past MAX_HEADER_BYTES, or cut off: never buffered whole.
        assert!(answer.is_empty() || status_of(&answer) == 431, "{answer:?}");
    }
    for mut stream in trickling {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a connection with unfinished headers is still open");
    }
    let all_closed_after = started.elapsed();
    figure("slowloris_all_closed_after_ms", all_closed_after.as_millis());
    assert!(peak_kib < 32 * 1024, "RSS {peak_kib} KiB under slowloris");
    assert!(all_closed_after < Duration::from_secs(4), "{all_closed_after:?}");
    assert_eq!(
        client()
            .get(format!("{}/health/live", local(port)))
            .send()
            .await
            .expect("live")
            .status(),
        200,
        "still serving"
    );
}

/// Reads one `Connection: keep-alive` response to `GET /health/live` from `stream`.
async fn live_on(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    status_of(&String::from_utf8_lossy(&answer[..read]))
}

/// How long until the server closes `stream`, reading and dropping anything it sends.
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("still open after {within:?}"))
        .expect("read to the close");
    started.elapsed()
}

#[tokio::test]
async fn idle_keep_alive_outlives_the_header_deadline_and_ends_at_its_own() {
    const HEADER: Duration = Duration::from_millis(300);
    const KEEP_ALIVE: Duration = Duration::from_secs(2);
    let (_gateway, port) = lone_gateway(&[
        ("HEADER_READ_TIMEOUT_MS", HEADER.as_millis().to_string()),
        ("KEEP_ALIVE_TIMEOUT_SECONDS", KEEP_ALIVE.as_secs().to_string()),
    ]);
    wait_ready(
        &client(),
        &format!("{}/health/live", local(port)),
        Duration::from_secs(10),
    )
    .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    // A pooled connection, as a proxy keeps one: idle for three header deadlines, then reused.
    // (The idle time is what is tested, so this test waits it out.)
    let mut pooled = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(live_on(&mut pooled).await, 200);
    tokio::time::sleep(3 * HEADER).await;
    assert_eq!(
        live_on(&mut pooled).await,
        200,
        "reused after idling past the header deadline"
    );
    let idle_closed = closed_after(&mut pooled, 3 * KEEP_ALIVE).await;
    figure("keep_alive_idle_closed_after_ms", idle_closed.as_millis());
    assert!(
        idle_closed >= KEEP_ALIVE - Duration::from_millis(100),
        "{idle_closed:?}"
    );

    // Slowloris keeps the short deadline: a header block begun and never finished, on a new
    // connection and on a kept-alive one, and a new connection that sends nothing.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /health/live HTTP/1.1\r\nX-A: b")
        .await
        .expect("write");
    let mut stalled_after_a_request = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(live_on(&mut stalled_after_a_request).await, 200);
    stalled_after_a_request
        .write_all(b"GET /health/live HTTP/1.1\r\nX-A: b")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    for (what, stream) in [
        ("unfinished header block", &mut stalled),
        ("unfinished second header block", &mut stalled_after_a_request),
        ("silent new connection", &mut silent),
    ] {
        let closed = closed_after(stream, KEEP_ALIVE).await;
        figure(&format!("{what} closed after (ms)"), closed.as_millis());
        assert!(closed < KEEP_ALIVE / 2, "{what}: closed after {closed:?}");
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431() {
    let (_gateway, port) = lone_gateway(&[("MAX_HEADERS", "16".to_owned())]);
    wait_ready(
        &client(),
        &format!("{}/health/live", local(port)),
        Duration::from_secs(10),
    )
    .await;
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = exchange(
        addr,
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&answer), 431, "{answer:?}");
    let large = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    let answer = exchange(addr, large.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), 431, "{answer:?}");
}

/// A gateway (in process, short request deadline) in front of a real user-service.
async fn stack_with_request_timeout(
    request_timeout: Duration,
) -> (crate::helpers::Served, prometheus::Registry, Stack) {
    let stack = Stack::start(Backend::Memory).await;
    let mut config = gateway_config(&stack.users.url(""), Duration::from_secs(2), 512);
    config.server.request_timeout = request_timeout;
    let app = gateway::build(&config, Shutdown::new());
    let registry = app.registry().clone();
    (serve(app.router(), Shutdown::new()).await, registry, stack)
}

#[tokio::test]
async fn a_slow_body_is_a_408_and_a_vanished_client_no_5xx() {
    let (gateway, registry, _stack) = stack_with_request_timeout(Duration::from_millis(300)).await;
    let head = "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    let answer = exchange(
        gateway.addr,
        format!("{head}{{\"name\"").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&answer), 408, "{answer:?}");
    assert_eq!(
        json_body_of(&answer),
        json!({"error": "request body not received in time"})
    );
    assert!(answer.to_ascii_lowercase().contains("x-request-id:"), "{answer:?}");

    // A client that goes away mid-body.
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream.write_all(format!("{head}{{").as_bytes()).await.expect("write");
    drop(stream);
    let page = eventually(Duration::from_secs(5), "the vanished client to be counted", || {
        let page = users_platform::telemetry::metrics::encode(&registry);
        std::future::ready((series(&page, "http_requests_total") >= 2).then_some(page))
    })
    .await;
    assert!(page.contains(r#"status="408""#), "{page}");
    assert!(
        !page.contains(r#"status="5"#),
        "a client's slowness or exit is no 5xx:\n{page}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_a_readable_413_for_write_then_read_clients() {
    let stack = Stack::start(Backend::Memory).await;
    for addr in [stack.gateway.addr, stack.users.addr] {
        let body = "x".repeat(900 * 1024);
        let request = format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // Written whole before anything is read, as simple clients do: a failed write (the
        // server closed, the peer reset) is where such a client gives up.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // In pieces, as over a real network: what arrives after the 413 must still be read.
        for piece in request.as_bytes().chunks(96 * 1024) {
            stream.write_all(piece).await.expect("the whole body is accepted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status_of(&answer), 413, "{answer:?}");
        assert_eq!(json_body_of(&answer), json!({"error": "request body too large"}));
    }
}

#[tokio::test]
async fn responses_during_the_drain_say_connection_close() {
    let users = user_service(Backend::Memory).await;
    let shutdown = users.shutdown.clone();
    let served = serve_with(
        users.app.router(),
        shutdown.clone(),
        ServerConfig { ..test_server_config() },
    )
    .await;
    let http = client();
    let before = http.get(served.url("/users")).send().await.expect("get");
    assert!(before.headers().get("connection").is_none());
    shutdown.start_draining();
    for path in ["/users", "/health/live", "/nope"] {
        let during = http.get(served.url(path)).send().await.expect("get");
        assert_eq!(during.headers()["connection"], "close", "{path}");
    }
}

#[tokio::test]
async fn probe_and_scrape_lines_are_debug_and_urls_are_redacted() {
    let (gateway, users) = (free_port(), free_port());
    let process = Process::spawn(
        &["all"],
        &[("PORT", gateway.to_string()), ("USER_SERVICE_PORT", users.to_string())],
    );
    let http = client();
    wait_ready(
        &http,
        &format!("{}/health/ready", local(gateway)),
        Duration::from_secs(10),
    )
    .await;
    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let _ = http
            .get(format!("{}{path}", local(gateway)))
            .send()
            .await
            .expect("probe");
        let _ = http.get(format!("{}{path}", local(users))).send().await.expect("probe");
    }
    let created = post(
        &http,
        format!("{}/api/users", local(gateway)),
        &json!({"name": "A", "email": "a@example.com"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let lines = eventually(Duration::from_secs(5), "the create's access lines", || {
        let lines = process.log_lines();
        let done = lines
            .iter()
            .filter(|l| l["message"] == "request completed" && l["method"] == "POST")
            .count()
            == 2;
        std::future::ready(done.then_some(lines))
    })
    .await;
    let routine: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "request completed")
        .filter(|l| {
            l["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("/health") || r == "/metrics")
        })
        .collect();
    assert!(routine.is_empty(), "probe lines at info: {routine:?}");

    // A password in USER_SERVICE_URL never reaches a log line.
    let port = free_port();
    let gateway = Process::spawn(
        &["api-gateway"],
        &[
            ("PORT", port.to_string()),
            ("USER_SERVICE_URL", format!("http://gw:hunter2@127.0.0.1:{users}")),
        ],
    );
    wait_ready(&http, &format!("{}/health/ready", local(port)), Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(&gateway.log).expect("log");
    assert!(log.contains("gw:***@127.0.0.1"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}
