//! Test fixtures: a real `redis-server` per test, apps served in-process on ephemeral ports,
//! and the built binary run as a real process. Everything listens on 127.0.0.1 and every wait
//! goes through [`eventually`], a bounded poll, never a fixed sleep.

use std::{
    net::{SocketAddr, TcpListener as StdListener},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use users_platform::{
    config::{ConnectionLimits, GatewayConfig, RedisConfig, ServerConfig, ShutdownConfig, UpstreamConfig},
    gateway,
    http::{server, shutdown::Shutdown},
    telemetry::metrics,
    users::{
        self, AppSettings,
        store::{MemoryStore, RedisStore, UserStore, redis::RedisMetrics},
    },
};

pub const PASSWORD: &str = "s3cret-test-password";

/// The one way tests wait: polls `check` every 10 ms until it yields a value (`Some`, or
/// `true`), and fails the test naming `what` once `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T::Value
where
    T: Polled,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await.done() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What an [`eventually`] check answers: `true`/`Some(value)` when done.
pub trait Polled {
    type Value;
    fn done(self) -> Option<Self::Value>;
}

impl Polled for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Polled for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` owned by one test: own port, own directory, append-only file on, password on.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `--replicaof host port` for a replica, empty for a primary.
    replica_of: Vec<String>,
    /// Set for one start only (e.g. `--appendonly no` to load a restored RDB).
    once: Vec<String>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// A replica of `primary`, started and synchronised (its link to the primary is up).
    pub async fn start_replica_of(primary_port: u16) -> Self {
        let server = Self::start_with(vec!["--replicaof".into(), "127.0.0.1".into(), primary_port.to_string()]).await;
        eventually(Duration::from_secs(20), "the replica to finish its first sync", || {
            std::future::ready(server.info("replication").contains("master_link_status:up"))
        })
        .await;
        server
    }

    async fn start_with(replica_of: Vec<String>) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: temp_dir("redis"),
            child: None,
            replica_of,
            once: Vec::new(),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            // Every node may become a replica after a failover, so every node can authenticate.
            .args(["--requirepass", PASSWORD, "--masterauth", PASSWORD])
            .args(&self.replica_of)
            .args(std::mem::take(&mut self.once))
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/check installs it)");
        self.child = Some(child);
        eventually(Duration::from_secs(10), "redis-server to answer PING", || {
            std::future::ready(self.answers_ping())
        })
        .await;
    }

    fn answers_ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// The URL without the password, as deployments pass it (password from a file).
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn config(&self, command_timeout: Duration) -> RedisConfig {
        use redis::IntoConnectionInfo;
        RedisConfig {
            connection: self.url().into_connection_info().expect("valid url"),
            command_timeout,
            redacted_url: self.url_without_password(),
            sentinel: None,
            write_replicas: 0,
        }
    }

    /// The server's data directory (RDB and append-only files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server and starts it again with `args` added, once.
    pub async fn restart_with(&mut self, args: &[&str]) {
        self.kill();
        self.once = args.iter().map(|arg| (*arg).to_owned()).collect();
        self.spawn().await;
    }

    /// `INFO section` as text; empty when the server does not answer.
    pub fn info(&self, section: &str) -> String {
        let Ok(client) = redis::Client::open(self.url()) else {
            return String::new();
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
            return String::new();
        };
        redis::cmd("INFO").arg(section).query(&mut conn).unwrap_or_default()
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("test connection to redis")
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill(2) on a child we own.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
    }

    /// Freezes the server: connections stay open but nothing answers (SIGSTOP).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server abruptly (SIGKILL), as a crashed node would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory, so it replays its append-only file.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped (paused) server dies on SIGKILL too; continuing it first is harmless
            // and makes the teardown independent of what the test left it in.
            // SAFETY: kill(2) on a child we own.
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
        }
        self.kill();
    }
}

/// A fresh directory, removed when the handle is dropped.
pub fn temp_dir(purpose: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("users-platform-{purpose}-"))
        .tempdir()
        .expect("create temp dir")
}

pub fn settings() -> AppSettings {
    AppSettings {
        max_concurrent_requests: 512,
        request_timeout: Duration::from_secs(10),
    }
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redis,
}

/// A user-service app (not served) on the chosen store; keep `_redis` alive with it.
pub struct UserServiceUnderTest {
    pub app: users::UserServiceApp,
    pub redis: Option<RedisServer>,
    pub shutdown: Shutdown,
}

pub async fn user_service(backend: Backend) -> UserServiceUnderTest {
    user_service_with_redis_deadline(backend, Duration::from_millis(500)).await
}

/// Like [`user_service`], with a chosen Redis command deadline (unused on the memory store).
async fn user_service_with_redis_deadline(backend: Backend, redis_command_timeout: Duration) -> UserServiceUnderTest {
    let shutdown = Shutdown::new();
    let registry = metrics::new_registry();
    let (store, redis_server): (Arc<dyn UserStore>, _) = match backend {
        Backend::Memory => (Arc::new(MemoryStore::new()), None),
        Backend::Redis => {
            let server = RedisServer::start().await;
            let store = RedisStore::connect(&server.config(redis_command_timeout), RedisMetrics::register(&registry))
                .expect("store");
            (Arc::new(store), Some(server))
        }
    };
    let app = users::build_with_store(store, registry, &settings(), shutdown.clone());
    // The start-up work the server would run in the background, done before the first request.
    app.prepare(false).await;
    UserServiceUnderTest {
        app,
        redis: redis_server,
        shutdown,
    }
}

/// A router served on an ephemeral loopback port until the handle is dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(router: axum::Router, shutdown: Shutdown) -> Served {
    serve_with(router, shutdown, test_server_config()).await
}

/// Serves `router` with the given server settings (limits, shutdown bounds).
pub async fn serve_with(router: axum::Router, shutdown: Shutdown, config: ServerConfig) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let _ = server::serve(listener, router, stop, &config).await;
    });
    Served { addr, shutdown, task }
}

/// The settings of a server in tests: defaults, no drain delay, 5 s to finish.
pub fn test_server_config() -> ServerConfig {
    ServerConfig {
        port: 0,
        shutdown: ShutdownConfig {
            drain: Duration::ZERO,
            timeout: Duration::from_secs(5),
        },
        max_concurrent_requests: 512,
        request_timeout: Duration::from_secs(10),
        connections: ConnectionLimits::default(),
    }
}

pub fn gateway_config(upstream: &str, timeout: Duration, max_concurrent_requests: usize) -> GatewayConfig {
    GatewayConfig {
        server: ServerConfig {
            max_concurrent_requests,
            ..test_server_config()
        },
        upstream: UpstreamConfig {
            base_url: upstream.parse().expect("upstream url"),
            timeout,
            connect_timeout: Duration::from_secs(1),
        },
    }
}

/// Gateway and user-service served in-process, as `all` mode runs them.
pub struct Stack {
    pub gateway: Served,
    pub users: Served,
    pub user_service: UserServiceUnderTest,
    pub gateway_registry: prometheus::Registry,
}

impl Stack {
    pub async fn start(backend: Backend) -> Self {
        Self::serve_with_gateway(user_service(backend).await, Duration::from_secs(2)).await
    }

    /// Serves `user_service` and a gateway in front of it with the given upstream deadline.
    async fn serve_with_gateway(user_service: UserServiceUnderTest, upstream_timeout: Duration) -> Self {
        let users = serve(user_service.app.router(), user_service.shutdown.clone()).await;
        let shutdown = Shutdown::new();
        let app = gateway::build(&gateway_config(&users.url(""), upstream_timeout, 512), shutdown.clone());
        let gateway = serve(app.router(), shutdown).await;
        Self {
            gateway,
            users,
            user_service,
            gateway_registry: app.registry().clone(),
        }
    }

    pub fn api(&self, path: &str) -> String {
        self.gateway.url(&format!("/api{path}"))
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("http client")
}

/// The built binary as a real process, its stdout captured to a file for log assertions.
pub struct Process {
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    pub fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = temp_dir("proc");
        let log = dir.path().join("stdout.log");
        let stdout = std::fs::File::create(&log).expect("log file");
        // USERS_PLATFORM_BIN runs the process tests against another build, e.g. the previous
        // release, to measure the "before" figures in docs/reliability.md.
        let binary =
            std::env::var_os("USERS_PLATFORM_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_users-platform").into());
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn binary");
        Self { child, log, _dir: dir }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child we own.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Whether the process is still the one started (it never exited or restarted).
    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for exit without blocking the runtime's other tasks.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        eventually(within, "the process to exit", || {
            std::future::ready(child.try_wait().expect("try_wait"))
        })
        .await
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}")))
            .collect()
    }

    /// RSS in KiB from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `url` answers 200.
pub async fn wait_ready(client: &reqwest::Client, url: &str, within: Duration) {
    let url = url.to_owned();
    eventually(within, &format!("{url} to answer 200"), || {
        let client = client.clone();
        let url = url.clone();
        async move { client.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Reliability suite (concurrency, outage, drain, legacy, fuzz): added helpers only.
// ---------------------------------------------------------------------------------------------

/// `http://127.0.0.1:{port}`.
pub fn local(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A client that opens a new connection for every request: tells "the listener is closed"
/// apart from "a pooled keep-alive connection still works".
pub fn fresh_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

/// Polls `url` until it answers `status`; returns how long that took.
pub async fn wait_for_status(client: &reqwest::Client, url: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    eventually(within, &format!("{url} to answer {status}"), || async move {
        let answer = client.get(url).timeout(Duration::from_secs(2)).send().await;
        answer.is_ok_and(|r| r.status().as_u16() == status)
    })
    .await;
    started.elapsed()
}

/// Prints one measured figure in a greppable form (`cargo nextest run --no-capture | grep FIGURE`).
pub fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("FIGURE {name} = {value}");
}

/// Every key in the Redis keyspace with an order-independent rendering of its value, so two
/// dumps compare equal exactly when the data is the same.
pub fn keyspace_dump(conn: &mut redis::Connection) -> std::collections::BTreeMap<String, String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(conn).expect("KEYS");
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).expect("TYPE");
            let value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).query::<String>(conn).expect("GET"),
                "hash" => {
                    let fields: std::collections::BTreeMap<String, String> =
                        redis::cmd("HGETALL").arg(&key).query(conn).expect("HGETALL");
                    format!("{fields:?}")
                }
                "zset" => {
                    let members: Vec<(String, String)> = redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(conn)
                        .expect("ZRANGE");
                    let sorted: std::collections::BTreeSet<(String, String)> = members.into_iter().collect();
                    format!("{sorted:?}")
                }
                other => format!("<{other}>"),
            };
            (key, format!("{kind}:{value}"))
        })
        .collect()
}

/// Checks the Redis layout (docs/design.md §5) for inconsistencies and describes each one:
/// - a dangling email index entry: `users:email:{k}` whose id has no hash, or whose hash's
///   `emailKey` is not `k`;
/// - a user whose own index entry is missing or names someone else (allowed only when
///   `allow_shared_legacy_emails` and the owner is another user with the same `emailKey`:
///   migrated duplicates, see src/users/store/redis/legacy.rs);
/// - creation-index members without a hash, and hashes missing from the creation index.
pub fn index_problems(conn: &mut redis::Connection, allow_shared_legacy_emails: bool) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let mut problems = Vec::new();
    let user_keys: Vec<String> = redis::cmd("KEYS").arg("users:user:*").query(conn).expect("KEYS");
    let mut users: HashMap<String, HashMap<String, String>> = HashMap::new();
    for key in user_keys {
        let fields: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query(conn).expect("HGETALL");
        users.insert(key.trim_start_matches("users:user:").to_owned(), fields);
    }
    let email_keys: Vec<String> = redis::cmd("KEYS").arg("users:email:*").query(conn).expect("KEYS");
    for key in &email_keys {
        let email_key = key.trim_start_matches("users:email:");
        let id: String = redis::cmd("GET").arg(key).query(conn).expect("GET");
        match users.get(&id) {
            None => problems.push(format!("dangling index entry {key} -> {id}: no such user")),
            Some(fields) if fields.get("emailKey").map(String::as_str) != Some(email_key) => problems.push(format!(
                "dangling index entry {key} -> {id}, whose emailKey is {:?}",
                fields.get("emailKey")
            )),
            Some(_) => {}
        }
    }
    let created: Vec<String> = redis::cmd("ZRANGE")
        .arg("users:by_created")
        .arg(0)
        .arg(-1)
        .query(conn)
        .expect("ZRANGE");
    let created: HashSet<String> = created.into_iter().collect();
    for (id, fields) in &users {
        if fields.get("id") != Some(id) {
            problems.push(format!("users:user:{id} holds id {:?}", fields.get("id")));
        }
        if !created.contains(id) {
            problems.push(format!("users:user:{id} is missing from users:by_created"));
        }
        let Some(email_key) = fields.get("emailKey") else {
            problems.push(format!("users:user:{id} has no emailKey"));
            continue;
        };
        let owner: Option<String> = redis::cmd("GET")
            .arg(format!("users:email:{email_key}"))
            .query(conn)
            .expect("GET");
        match owner {
            Some(owner) if &owner == id => {}
            Some(owner)
                if allow_shared_legacy_emails
                    && users.get(&owner).and_then(|f| f.get("emailKey")) == Some(email_key) => {}
            other => problems.push(format!(
                "users:user:{id} (emailKey {email_key:?}) is not indexed: index names {other:?}"
            )),
        }
    }
    for id in created {
        if !users.contains_key(&id) {
            problems.push(format!("users:by_created member {id} has no hash"));
        }
    }
    problems
}

/// The environment of a `user-service` process on `redis` (password in the URL) at `port`.
pub fn user_service_env(redis: &RedisServer, port: u16) -> Vec<(&'static str, String)> {
    vec![("PORT", port.to_string()), ("REDIS_URL", redis.url())]
}

/// The pid of a test Redis server (from `INFO server`).
pub fn redis_pid(redis: &RedisServer) -> i32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut redis.connection())
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("process_id in INFO")
}

/// Waits until every thread of `pid` is stopped: kill(SIGSTOP) returns before the signal has
/// stopped threads running on other CPUs, and a request sent in that gap is still served.
pub async fn wait_stopped(pid: i32, within: Duration) {
    let all_stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    // The state follows the parenthesised command name.
                    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
                })
                .is_some_and(|state| matches!(state, 'T' | 't'))
        })
    };
    eventually(within, &format!("process {pid} to be stopped"), || {
        let stopped = all_stopped();
        async move { stopped }
    })
    .await;
}

/// Like [`Stack::start`] on Redis, with a chosen Redis command deadline (and the gateway's
/// upstream deadline 2 s above it): the concurrency tests give Redis (fsync on every write)
/// room on a loaded CI machine, so a slow disk is not mistaken for a lost write.
pub async fn redis_stack(command_timeout: Duration) -> Stack {
    let user_service = user_service_with_redis_deadline(Backend::Redis, command_timeout).await;
    Stack::serve_with_gateway(user_service, command_timeout + Duration::from_secs(2)).await
}

/// GETs `url` and returns the status; a transport error fails the test.
pub async fn get_status(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> reqwest::StatusCode {
    http.get(url).send().await.expect("GET").status()
}

/// GETs `url` and returns its body as text (a Prometheus page, say); a transport error fails
/// the test.
pub async fn get_text(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text body")
}

/// GETs `url` and parses its JSON body; any transport or JSON error fails the test.
pub async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

/// POSTs `body` as JSON to `url` and returns the response, whatever its status; a transport
/// error fails the test.
pub async fn post(http: &reqwest::Client, url: impl reqwest::IntoUrl, body: &serde_json::Value) -> reqwest::Response {
    http.post(url).json(body).send().await.expect("POST")
}

/// POSTs `body` as JSON to `url` and parses the JSON answer; any transport or JSON error fails
/// the test.
pub async fn post_json(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: &serde_json::Value,
) -> serde_json::Value {
    post(http, url, body).await.json().await.expect("JSON body")
}

// ---------------------------------------------------------------------------------------------
// Replication and Sentinel (failover suite).
// ---------------------------------------------------------------------------------------------

pub const SENTINEL_PASSWORD: &str = "s3ntinel-test-password";
pub const MASTER_NAME: &str = "users";
/// How long a primary must be silent before a Sentinel calls it down.
pub const SENTINEL_DOWN_AFTER: Duration = Duration::from_millis(1000);
/// Sentinel's `failover-timeout`: after an election that chose no leader (split vote), the
/// next attempt waits twice this.
pub const SENTINEL_FAILOVER_TIMEOUT: Duration = Duration::from_millis(2000);

/// A `redis-server --sentinel` owned by one test, watching the primary as [`MASTER_NAME`] with
/// [`SENTINEL_DOWN_AFTER`] and [`SENTINEL_FAILOVER_TIMEOUT`], password [`SENTINEL_PASSWORD`].
pub struct SentinelServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SentinelServer {
    pub async fn start(primary_port: u16) -> Self {
        let port = free_port();
        let dir = temp_dir("sentinel");
        // Sentinel rewrites its configuration file (what it learnt), so it needs its own copy.
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nrequirepass {SENTINEL_PASSWORD}\n\
                 sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                 sentinel auth-pass {MASTER_NAME} {PASSWORD}\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {down_after}\n\
                 sentinel failover-timeout {MASTER_NAME} {failover_timeout}\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.path().display(),
                down_after = SENTINEL_DOWN_AFTER.as_millis(),
                failover_timeout = SENTINEL_FAILOVER_TIMEOUT.as_millis(),
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/check installs it)");
        let sentinel = Self {
            port,
            dir,
            child: Some(child),
        };
        eventually(Duration::from_secs(10), "sentinel to answer PING", || {
            std::future::ready(sentinel.query::<String>(&mut redis::cmd("PING")).is_some())
        })
        .await;
        sentinel
    }

    /// One command to this Sentinel; `None` when it does not answer.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Option<T> {
        let url = format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}/0", self.port);
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
        cmd.query(&mut conn).ok()
    }

    /// The primary's port as this Sentinel sees it.
    pub fn primary_port(&self) -> Option<u16> {
        let addr: Vec<String> = self.query(redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME))?;
        addr.get(1)?.parse().ok()
    }

    fn count(&self, what: &str) -> usize {
        self.query::<Vec<redis::Value>>(redis::cmd("SENTINEL").arg(what).arg(MASTER_NAME))
            .map_or(0, |entries| entries.len())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = &self.dir;
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A primary, two replicas and three Sentinels on loopback, as prod runs them.
pub struct ReplicatedRedis {
    /// Every data node; which one is the primary changes with failovers.
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<SentinelServer>,
}

impl ReplicatedRedis {
    pub async fn start() -> Self {
        let primary = RedisServer::start().await;
        let first = RedisServer::start_replica_of(primary.port).await;
        let second = RedisServer::start_replica_of(primary.port).await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(SentinelServer::start(primary.port).await);
        }
        let cluster = Self {
            nodes: vec![primary, first, second],
            sentinels,
        };
        cluster.wait_settled(2).await;
        cluster
    }

    /// Waits until every running Sentinel knows the other two and agrees on the primary, and
    /// the primary has `replicas` replicas online: only then can a failover happen.
    pub async fn wait_settled(&self, replicas: usize) {
        eventually(
            Duration::from_secs(60),
            "the Sentinels to know each other and the replicas",
            || {
                let primary = self.sentinels[0].primary_port();
                let settled = self.sentinels.iter().all(|s| {
                    s.child.is_some()
                        && s.count("SENTINELS") == 2
                        && s.count("REPLICAS") >= replicas
                        && s.primary_port() == primary
                }) && primary.and_then(|port| self.node(port)).is_some_and(|node| {
                    node.info("replication")
                        .lines()
                        .filter(|line| line.starts_with("slave") && line.contains("state=online"))
                        .count()
                        >= replicas
                });
                std::future::ready(settled)
            },
        )
        .await;
    }

    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|node| node.port == port)
    }

    /// The primary's port according to the first Sentinel that answers.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(SentinelServer::primary_port)
    }

    /// `REDIS_SENTINELS` for this cluster.
    pub fn sentinels_setting(&self) -> String {
        let nodes: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        nodes.join(",")
    }

    /// SIGKILLs the current primary; returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().expect("a Sentinel names the primary");
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("primary is ours");
        node.kill();
        port
    }
}
