//! SIGTERM under continuous load, with the real binary.
//!
//! The claim: no request that reaches a service after its SIGTERM is dropped. Readiness turns
//! 503 at once (so Kubernetes stops routing to the pod), the listener stays open for
//! SHUTDOWN_DRAIN_SECONDS (routing lags the signal), then closes, and requests still in flight
//! finish within SHUTDOWN_TIMEOUT_SECONDS before the process exits 0.
//!
//! The load loops stop sending 0.8–1 s before the drain window ends: after it the listener is
//! closed by design (in a cluster nothing routes there any more), so a request sent at that
//! instant could race the close on a pooled connection and would prove nothing.
//! Requests that are *in flight* when the listener closes are made deterministic instead: the
//! user-service test freezes Redis just before the window ends, so its requests are provably
//! inside the server (the in-flight gauge says so) when the listener closes, then thaws it and
//! checks they all complete with 2xx.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{
    Process, RedisServer, client, eventually, figure, free_port, fresh_connection_client, local, user_service_env,
    wait_for_status, wait_ready,
};

const DRAIN: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(5);
const START: Duration = Duration::from_secs(10);

/// What one load loop saw: every status it got, and created users.
#[derive(Default)]
struct LoopReport {
    /// (status or 0 for a transport error, what was sent, when it was sent)
    statuses: Vec<(u16, String, Instant)>,
    created: Vec<Value>,
}

/// `loops` concurrent create → get → list cycles against `users_url` until `stop`.
fn start_load(http: &reqwest::Client, users_url: &str, loops: usize, stop: &Arc<AtomicBool>) -> JoinSet<LoopReport> {
    let mut tasks = JoinSet::new();
    for worker in 0..loops {
        let (http, url, stop) = (http.clone(), users_url.to_owned(), stop.clone());
        tasks.spawn(async move {
            let mut report = LoopReport::default();
            // Bounded in count as well as by the stop flag.
            for n in 0..5_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .json(
                        &json!({"name": format!("Drain {worker}"), "email": format!("drain-{worker}-{n}@example.com")}),
                    )
                    .send()
                    .await;
                let response = match response {
                    Ok(response) => response,
                    Err(err) => {
                        report.statuses.push((0, format!("POST failed: {err}"), sent));
                        continue;
                    }
                };
                let status = response.status().as_u16();
                report.statuses.push((status, "POST".into(), sent));
                if status != 201 {
                    continue;
                }
                let user: Value = response.json().await.expect("json");
                for url in [
                    format!("{url}/{}", user["id"].as_str().expect("id")),
                    format!("{url}?limit=5"),
                ] {
                    let sent = Instant::now();
                    let status = match http.get(&url).send().await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    report.statuses.push((status, format!("GET {url}"), sent));
                }
                report.created.push(user);
            }
            report
        });
    }
    tasks
}

fn merge(reports: Vec<LoopReport>) -> LoopReport {
    reports.into_iter().fold(LoopReport::default(), |mut all, report| {
        all.statuses.extend(report.statuses);
        all.created.extend(report.created);
        all
    })
}

/// `http_requests_in_flight` from a Prometheus text page.
async fn in_flight(http: &reqwest::Client, port: u16) -> u64 {
    let Ok(response) = http.get(format!("{}/metrics", local(port))).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("http_requests_in_flight "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits until `port` counts at least `count` requests in flight (a scrape counts itself).
async fn wait_in_flight(http: &reqwest::Client, port: u16, count: u64, within: Duration, what: &str) {
    eventually(within, what, || async move { in_flight(http, port).await >= count }).await;
}

/// Polls until a *new* connection to `port` is refused; returns when that happened.
async fn wait_listener_closed(port: u16, within: Duration) -> Instant {
    let fresh = &fresh_connection_client();
    let live = &format!("{}/health/live", local(port));
    eventually(within, "the listener to close", || async move {
        let answer = fresh.get(live).timeout(Duration::from_millis(500)).send().await;
        answer.is_err().then(Instant::now)
    })
    .await
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_service_under_load_serves_the_whole_drain_window_and_finishes_in_flight_requests() {
    let redis = RedisServer::start().await;
    let port = free_port();
    let mut env = user_service_env(&redis, port);
    env.extend([
        // Long enough to hold requests across the listener close while Redis is frozen.
        ("REDIS_TIMEOUT_MS", "4000".to_owned()),
        ("SHUTDOWN_DRAIN_SECONDS", DRAIN.as_secs().to_string()),
        ("SHUTDOWN_TIMEOUT_SECONDS", TIMEOUT.as_secs().to_string()),
    ]);
    let mut service = Process::spawn(&["user-service"], &env);
    let http = client();
    let ready_url = format!("{}/health/ready", local(port));
    wait_ready(&http, &ready_url, START).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&http, &format!("{}/users", local(port)), 4, &stop);
    wait_in_flight(&http, port, 2, Duration::from_secs(5), "load is flowing").await;

    service.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let unready = wait_for_status(&http, &ready_url, 503, Duration::from_millis(500)).await;
    figure("drain_user_service_readiness_503_ms", unready.as_millis());

    // Load runs on through the drain window and stops 800 ms before its end: the in-flight
    // requests below must start inside the window.
    sleep_until(signalled + DRAIN - Duration::from_millis(800)).await;
    stop.store(true, Ordering::Release);
    let report = merge(load.join_all().await);

    // Requests that will be in flight when the listener closes.
    let redis_pid = crate::helpers::redis_pid(&redis);
    redis.pause();
    crate::helpers::wait_stopped(redis_pid, Duration::from_secs(1)).await;
    let held_user: &Value = report.created.last().expect("a user was created");
    let held_path = format!("{}/users/{}", local(port), held_user["id"].as_str().expect("id"));
    let held = [
        http.get(format!("{}/users", local(port))),
        http.get(&held_path),
        http.post(format!("{}/users", local(port)))
            .json(&json!({"name": "In flight", "email": "in-flight@example.com"})),
    ]
    .map(|request| tokio::spawn(request.send()));
    let window_left = (signalled + DRAIN).saturating_duration_since(Instant::now());
    let what = "3 requests in flight (+1 scrape) before the window ends";
    wait_in_flight(&http, port, 4, window_left, what).await;
    assert!(signalled.elapsed() < DRAIN, "still inside the drain window");

    let closed_at = wait_listener_closed(port, DRAIN + Duration::from_secs(2)).await;
    let closed_after = closed_at - signalled;
    figure("drain_user_service_listener_closed_after_ms", closed_after.as_millis());
    assert!(closed_after >= DRAIN - Duration::from_millis(100), "{closed_after:?}");
    redis.resume();
    let mut held_statuses = Vec::new();
    for request in held {
        let response = request
            .await
            .expect("task")
            .expect("in-flight request answered after the listener closed");
        held_statuses.push(response.status().as_u16());
    }
    assert!(
        held_statuses.iter().all(|s| (200..300).contains(s)),
        "in-flight requests complete: {held_statuses:?}"
    );

    let status = service.wait_exit(DRAIN + TIMEOUT).await;
    let exited_after = signalled.elapsed();
    figure("drain_user_service_exit_after_ms", exited_after.as_millis());
    assert_eq!(status.code(), Some(0));
    assert!(exited_after < DRAIN + TIMEOUT, "{exited_after:?}");

    assert_every_request_succeeded(&report, signalled, "user_service");

    // Every acknowledged create is stored (the service is gone; ask Redis).
    let mut conn = redis.connection();
    for user in &report.created {
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("users:user:{}", user["id"].as_str().expect("id")))
            .query(&mut conn)
            .expect("EXISTS");
        assert!(exists, "{user}");
    }
    let in_flight_create: Option<String> = redis::cmd("GET")
        .arg("users:email:in-flight@example.com")
        .query(&mut conn)
        .expect("GET");
    assert!(in_flight_create.is_some(), "the in-flight create was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_mode_under_load_through_the_gateway_drains_without_a_failed_request() {
    let (gateway, users) = (free_port(), free_port());
    let mut process = Process::spawn(
        &["all"],
        &[
            ("PORT", gateway.to_string()),
            ("USER_SERVICE_PORT", users.to_string()),
            ("SHUTDOWN_DRAIN_SECONDS", DRAIN.as_secs().to_string()),
            ("SHUTDOWN_TIMEOUT_SECONDS", TIMEOUT.as_secs().to_string()),
        ],
    );
    let http = client();
    let gateway_ready = format!("{}/health/ready", local(gateway));
    let users_ready = format!("{}/health/ready", local(users));
    wait_ready(&http, &gateway_ready, START).await;
    wait_ready(&http, &users_ready, START).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&http, &format!("{}/api/users", local(gateway)), 4, &stop);
    wait_in_flight(&http, gateway, 2, Duration::from_secs(5), "load is flowing").await;

    process.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let (gateway_unready, users_unready) = tokio::join!(
        wait_for_status(&http, &gateway_ready, 503, Duration::from_millis(500)),
        wait_for_status(&http, &users_ready, 503, Duration::from_millis(500)),
    );
    figure("drain_all_gateway_readiness_503_ms", gateway_unready.as_millis());
    figure("drain_all_user_service_readiness_503_ms", users_unready.as_millis());

    // A margin of a second: on a loaded machine a request written into a keep-alive
    // connection can sit unread for a while, and one still unread when the listener closes
    // has not reached the service (that is the race the drain window exists to avoid).
    sleep_until(signalled + DRAIN - Duration::from_secs(1)).await;
    stop.store(true, Ordering::Release);
    let report = merge(load.join_all().await);

    let closed_after = wait_listener_closed(gateway, DRAIN + Duration::from_secs(2)).await - signalled;
    figure("drain_all_gateway_listener_closed_after_ms", closed_after.as_millis());
    assert!(closed_after >= DRAIN - Duration::from_millis(100), "{closed_after:?}");
    let status = process.wait_exit(DRAIN + TIMEOUT).await;
    let exited_after = signalled.elapsed();
    figure("drain_all_exit_after_ms", exited_after.as_millis());
    assert_eq!(status.code(), Some(0));
    assert!(exited_after < DRAIN + TIMEOUT, "{exited_after:?}");

    assert_every_request_succeeded(&report, signalled, "all");
}

/// Every request the load loops sent succeeded, and enough of them were sent while draining
/// for that to mean something. `name` labels the reported figures.
fn assert_every_request_succeeded(report: &LoopReport, signalled: Instant, name: &str) {
    let failed: Vec<_> = report
        .statuses
        .iter()
        .filter(|(s, _, _)| !(200..300).contains(s))
        .collect();
    let sent_while_draining = report.statuses.iter().filter(|(_, _, at)| *at >= signalled).count();
    figure(&format!("drain_{name}_requests_total"), report.statuses.len());
    figure(
        &format!("drain_{name}_requests_sent_while_draining"),
        sent_while_draining,
    );
    figure(&format!("drain_{name}_requests_failed"), failed.len());
    assert!(
        failed.is_empty(),
        "requests during the drain failed: {:?}",
        failed
            .iter()
            .map(|(status, what, at)| format!(
                "{status} {what} sent at {:?} after SIGTERM",
                at.saturating_duration_since(signalled)
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        sent_while_draining > 20,
        "the load was real: {sent_while_draining} requests while draining"
    );
}

/// HAProxy (Debian's) as a TCP load balancer that health-checks `/health/ready`, killed with
/// the handle.
struct Haproxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: &[u16]) -> Self {
        let dir = crate::helpers::temp_dir("haproxy");
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, backend)| format!("  server replica{i} 127.0.0.1:{backend} check\n"))
            .collect();
        let config = format!(
            "global\n  maxconn 512\n\
             defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 2\n  option redispatch\n\
             frontend api\n  bind 127.0.0.1:{port}\n  default_backend users\n\
             backend users\n  balance roundrobin\n  option httpchk GET /health/ready\n  http-check expect status 200\n\
             \x20 default-server inter 100ms fall 1 rise 1\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("haproxy config");
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy on PATH (Debian package haproxy)");
        Self { child, port, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_behind_a_load_balancer_fails_no_request_through_the_gateway() {
    let redis = RedisServer::start().await;
    let replica_ports = [free_port(), free_port()];
    let drain_env = [
        ("SHUTDOWN_DRAIN_SECONDS", DRAIN.as_secs().to_string()),
        ("SHUTDOWN_TIMEOUT_SECONDS", TIMEOUT.as_secs().to_string()),
    ];
    let mut replicas: Vec<Process> = replica_ports
        .iter()
        .map(|port| {
            let mut env = user_service_env(&redis, *port);
            env.extend(drain_env.iter().cloned());
            Process::spawn(&["user-service"], &env)
        })
        .collect();
    let http = client();
    for port in replica_ports {
        wait_ready(&http, &format!("{}/health/ready", local(port)), START).await;
    }
    let balancer = Haproxy::start(&replica_ports);
    let gateway_port = free_port();
    let _gateway = Process::spawn(
        &["api-gateway"],
        &[
            ("PORT", gateway_port.to_string()),
            ("USER_SERVICE_URL", local(balancer.port)),
        ],
    );
    wait_ready(&http, &format!("{}/health/ready", local(gateway_port)), START).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&http, &format!("{}/api/users", local(gateway_port)), 8, &stop);
    wait_in_flight(&http, gateway_port, 2, Duration::from_secs(5), "load is flowing").await;

    let stopping = &mut replicas[0];
    stopping.signal(libc::SIGTERM);
    let signalled = Instant::now();
    // Load on through the drain, the listener's close and the exit, and a while after.
    let status = stopping.wait_exit(DRAIN + TIMEOUT).await;
    figure("rolling_restart_replica_exit_after_ms", signalled.elapsed().as_millis());
    let creates_at_exit = gateway_creates(&http, gateway_port).await;
    eventually(
        Duration::from_secs(10),
        "40 more creates after the replica exited",
        || {
            let http = http.clone();
            async move { gateway_creates(&http, gateway_port).await >= creates_at_exit + 40 }
        },
    )
    .await;
    stop.store(true, Ordering::Release);
    let report = merge(load.join_all().await);
    assert_eq!(status.code(), Some(0));
    let after_exit = report
        .statuses
        .iter()
        .filter(|(_, _, at)| at.saturating_duration_since(signalled) > DRAIN)
        .count();
    figure("rolling_restart_requests_after_listener_closed", after_exit);
    assert!(after_exit > 20, "the load went on past the close: {after_exit}");
    assert_every_request_succeeded(&report, signalled, "rolling_restart");
}

/// The gateway's count of creates answered 201.
async fn gateway_creates(http: &reqwest::Client, port: u16) -> u64 {
    let page = crate::helpers::get_text(http, format!("{}/metrics", local(port))).await;
    page.lines()
        .find(|line| line.starts_with(r#"http_requests_total{method="POST",route="/api/users",status="201"}"#))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}
