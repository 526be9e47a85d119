//! The built binary as real processes: configuration errors, the whole flow through separate
//! gateway and user-service processes on a password-protected Redis, upstream loss, and a
//! second signal in `all` mode. SIGTERM with requests in flight is drain.rs's subject.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    Process, RedisServer, client, free_port, get_json, get_status, local, post, temp_dir, wait_for_status, wait_ready,
};

const START: Duration = Duration::from_secs(10);

#[test]
fn invalid_configuration_fails_with_one_line_naming_the_variable() {
    for (env, variable) in [
        (("PORT", "not-a-port"), "PORT"),
        (("UPSTREAM_TIMEOUT_MS", "0"), "UPSTREAM_TIMEOUT_MS"),
        (("USER_SERVICE_URL", "ftp://elsewhere"), "USER_SERVICE_URL"),
        (("LOG_FORMAT", "xml"), "LOG_FORMAT"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_users-platform"))
            .arg("api-gateway")
            .env_clear()
            .env(env.0, env.1)
            .output()
            .expect("run binary");
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(variable), "{stderr} names {variable}");
    }
    let secret_file = std::process::Command::new(env!("CARGO_BIN_EXE_users-platform"))
        .arg("user-service")
        .env_clear()
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .env("REDIS_PASSWORD_FILE", "/nonexistent/secret")
        .output()
        .expect("run binary");
    assert_eq!(secret_file.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&secret_file.stderr).contains("REDIS_PASSWORD_FILE"));
}

/// Separate gateway and user-service processes, Redis password from a mounted-secret-like file.
struct Deployment {
    _redis: RedisServer,
    _secret_dir: tempfile::TempDir,
    user_service: Process,
    gateway: Process,
    users_port: u16,
    gateway_port: u16,
    users_env: Vec<(&'static str, String)>,
}

impl Deployment {
    async fn start() -> Self {
        let redis = RedisServer::start().await;
        let secret_dir = temp_dir("secret");
        let password_file = secret_dir.path().join("password");
        std::fs::write(&password_file, format!("{}\n", crate::helpers::PASSWORD)).expect("write secret");
        let (users_port, gateway_port) = (free_port(), free_port());
        let users_env = vec![
            ("PORT", users_port.to_string()),
            ("REDIS_URL", redis.url_without_password()),
            ("REDIS_PASSWORD_FILE", password_file.display().to_string()),
            ("SHUTDOWN_DRAIN_SECONDS", "1".to_owned()),
        ];
        let user_service = Process::spawn(&["user-service"], &users_env);
        let gateway = Process::spawn(
            &["api-gateway"],
            &[
                ("PORT", gateway_port.to_string()),
                ("USER_SERVICE_URL", local(users_port)),
                ("SHUTDOWN_DRAIN_SECONDS", "1".to_owned()),
            ],
        );
        let http = client();
        wait_ready(&http, &format!("{}/health/ready", local(users_port)), START).await;
        wait_ready(&http, &format!("{}/health/ready", local(gateway_port)), START).await;
        Self {
            _redis: redis,
            _secret_dir: secret_dir,
            user_service,
            gateway,
            users_port,
            gateway_port,
            users_env,
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api{path}", local(self.gateway_port))
    }
}

#[tokio::test]
async fn separate_processes_serve_the_api_and_log_json_with_request_ids() {
    let deployment = Deployment::start().await;
    let http = client();
    let created = http
        .post(deployment.api("/users"))
        .header("x-request-id", "flow-req-1")
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.expect("json");
    let list: Value = get_json(&http, deployment.api("/users")).await;
    assert_eq!(list["data"][0], user);

    let password = crate::helpers::PASSWORD;
    for process in [&deployment.gateway, &deployment.user_service] {
        let lines = process.log_lines();
        let access: Vec<&Value> = lines.iter().filter(|l| l["request_id"] == "flow-req-1").collect();
        assert!(!access.is_empty(), "the request id reaches both services' logs");
        let completed = access
            .iter()
            .find(|l| l["message"] == "request completed")
            .expect("access line");
        for field in [
            "timestamp",
            "level",
            "service",
            "version",
            "method",
            "route",
            "status",
            "duration_ms",
            "trace_id",
        ] {
            assert!(!completed[field].is_null(), "access line has {field}: {completed}");
        }
        assert_eq!(completed["status"], 201);
        let raw = std::fs::read_to_string(&process.log).expect("log");
        assert!(!raw.contains(password), "the Redis password is never logged");
    }
    // A short burst of load: both processes stay far below their 64 MiB container limit.
    let burst: Vec<_> = (0..16)
        .map(|worker| {
            let (http, url) = (http.clone(), deployment.api("/users?limit=50"));
            let create = deployment.api("/users");
            tokio::spawn(async move {
                for i in 0..30 {
                    let email = format!("w{worker}-{i}@example.com");
                    let created = post(&http, &create, &json!({"name": "Load", "email": email})).await;
                    assert_eq!(created.status(), 201);
                    assert_eq!(get_status(&http, &url).await, 200);
                }
            })
        })
        .collect();
    for worker in burst {
        worker.await.expect("worker");
    }
    for process in [&deployment.gateway, &deployment.user_service] {
        let rss_mib = process.rss_kib() / 1024;
        assert!((1..48).contains(&rss_mib), "RSS {rss_mib} MiB after the burst");
    }

    let trace_of = |process: &Process| {
        process
            .log_lines()
            .into_iter()
            .find(|l| l["request_id"] == "flow-req-1")
            .expect("line")["trace_id"]
            .clone()
    };
    assert_eq!(
        trace_of(&deployment.gateway),
        trace_of(&deployment.user_service),
        "one trace across both services"
    );
}

#[tokio::test]
async fn losing_the_user_service_is_a_fast_502_then_recovers_by_itself() {
    let mut deployment = Deployment::start().await;
    let http = client();
    deployment.user_service.signal(libc::SIGKILL);
    deployment.user_service.wait_exit(Duration::from_secs(5)).await;

    let started = Instant::now();
    let response = http.get(deployment.api("/users")).send().await.expect("get");
    assert_eq!(response.status(), 502);
    assert!(response.json::<Value>().await.expect("json")["error"].is_string());
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let ready_url = format!("{}/health/ready", local(deployment.gateway_port));
    assert_eq!(get_status(&http, &ready_url).await, 503);
    assert_eq!(
        get_status(&http, format!("{}/health/live", local(deployment.gateway_port))).await,
        200
    );

    deployment.user_service = Process::spawn(&["user-service"], &deployment.users_env);
    wait_ready(&http, &ready_url, START).await;
    assert_eq!(get_status(&http, deployment.api("/users")).await, 200);
    let _ = deployment.users_port;
}

#[tokio::test]
async fn all_mode_runs_both_services_and_a_second_signal_exits_at_once() {
    let (gateway_port, users_port) = (free_port(), free_port());
    let mut all = Process::spawn(
        &[],
        &[
            ("PORT", gateway_port.to_string()),
            ("USER_SERVICE_PORT", users_port.to_string()),
            ("SHUTDOWN_DRAIN_SECONDS", "30".to_owned()),
        ],
    );
    let http = client();
    let ready_url = format!("{}/health/ready", local(gateway_port));
    wait_ready(&http, &ready_url, START).await;
    let created = post(
        &http,
        format!("{}/api/users", local(gateway_port)),
        &json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(get_status(&http, format!("{}/users", local(users_port))).await, 200);

    all.signal(libc::SIGTERM);
    wait_for_status(&http, &ready_url, 503, Duration::from_secs(2)).await;
    let started = Instant::now();
    all.signal(libc::SIGTERM);
    let status = all.wait_exit(Duration::from_secs(3)).await;
    assert_ne!(status.code(), Some(0), "the second signal aborts the 30 s drain");
    assert!(started.elapsed() < Duration::from_secs(2));
}
