//! Typed configuration. Every setting is an environment variable with a same-named `--flag`
//! (12-factor); parsing turns them into types that cannot hold an invalid value, so the rest
//! of the program never re-checks them. A bad value stops start-up with one line that names
//! the variable.

use std::{fmt, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use hyper::Uri;

use crate::service_name;

/// Which process shape to run; one per image (as Loki's `-target`).
#[derive(Debug, Parser)]
#[command(
    name = "users-platform",
    version,
    about = "User-management API: api-gateway and user-service"
)]
pub struct Cli {
    #[command(subcommand)]
    target: Option<TargetCommand>,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[derive(Debug, Subcommand)]
enum TargetCommand {
    /// The public gateway (:3000), proxying /api/users to the user-service.
    ApiGateway(GatewayCommand),
    /// The user-service (:3001), storing users in Redis.
    UserService(UserServiceCommand),
    /// Both services in one process (the default): gateway on PORT, user-service on USER_SERVICE_PORT.
    All(AllCommand),
    /// Writes one Redis pod's redis.conf and sentinel.conf, its primary asked of the Sentinels
    /// (init container of the replicated Redis StatefulSet; the Redis image has no shell).
    RedisConfig(RedisConfigCommand),
    /// Files a verified Redis snapshot under a dated name and keeps the newest N (backup CronJob).
    RedisBackup(RedisBackupCommand),
}

#[derive(Debug, Args)]
struct TelemetryArgs {
    /// tracing filter, e.g. `info` or `users_platform=debug,info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    log_level: String,
    /// `json` (one object per line) or `pretty` (for people).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
struct GatewayCommand {
    /// Listen port.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// Base URL of the user-service.
    #[arg(long, env = "USER_SERVICE_URL", default_value = "http://127.0.0.1:3001")]
    user_service_url: String,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct UserServiceCommand {
    /// Listen port.
    #[arg(long, env = "PORT", default_value_t = 3001)]
    port: u16,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct AllCommand {
    /// The gateway's listen port.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// The in-process user-service's listen port.
    #[arg(long, env = "USER_SERVICE_PORT", default_value_t = 3001)]
    user_service_port: u16,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct UpstreamArgs {
    /// Deadline for one upstream request, retries included.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    upstream_timeout_ms: u64,
    /// Deadline for opening a TCP connection to the upstream.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    upstream_connect_timeout_ms: u64,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// `redis://[:password@]host:port/db`. Without it (and without REDIS_HOST) the embedded in-memory store is used.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Redis host, used when REDIS_URL is not set.
    #[arg(long, env = "REDIS_HOST")]
    redis_host: Option<String>,
    /// Redis port, used with REDIS_HOST.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    redis_port: u16,
    /// File holding the Redis password (a mounted Secret).
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    redis_password_file: Option<PathBuf>,
    /// The Redis password itself, for local use; REDIS_PASSWORD_FILE wins when both are set.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    redis_password: Option<String>,
    /// `host:port,host:port,...` of Redis Sentinels: the primary is found (and followed across
    /// failovers) through them instead of REDIS_URL/REDIS_HOST.
    #[arg(long, env = "REDIS_SENTINELS")]
    redis_sentinels: Option<String>,
    /// The name the Sentinels monitor the primary under.
    #[arg(long, env = "REDIS_MASTER_NAME", default_value = "users")]
    redis_master_name: String,
    /// File holding the Sentinels' password, when they require one.
    #[arg(long, env = "REDIS_SENTINEL_PASSWORD_FILE")]
    redis_sentinel_password_file: Option<PathBuf>,
    /// Replicas that must confirm a write (WAIT) before it is acknowledged; default 1 with
    /// REDIS_SENTINELS (a failover must not lose an acknowledged write), 0 otherwise.
    #[arg(long, env = "REDIS_WRITE_REPLICAS", value_parser = clap::value_parser!(u16).range(0..=16))]
    redis_write_replicas: Option<u16>,
    /// Deadline for one Redis command.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    redis_timeout_ms: u64,
    /// Create three sample users when the store is empty.
    #[arg(long, env = "SEED_SAMPLE_USERS", default_value_t = false, action = clap::ArgAction::Set)]
    seed_sample_users: bool,
}

#[derive(Debug, Args)]
struct RedisConfigCommand {
    /// This pod's name, `<statefulset>-<ordinal>` (downward API `metadata.name`).
    #[arg(long, env = "POD_NAME")]
    pod_name: String,
    /// The headless Service of the StatefulSet: pod `n` is `<statefulset>-<n>.<service>`.
    #[arg(long, env = "REDIS_HEADLESS_SERVICE", default_value = "redis-headless")]
    headless_service: String,
    /// Number of Redis pods (StatefulSet replicas).
    #[arg(long, env = "REDIS_NODES", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
    /// Port of every Redis server.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    redis_port: u16,
    /// Port of every Sentinel.
    #[arg(long, env = "SENTINEL_PORT", default_value_t = 26379)]
    sentinel_port: u16,
    /// The name the Sentinels monitor the primary under.
    #[arg(long, env = "REDIS_MASTER_NAME", default_value = "users")]
    master_name: String,
    /// Sentinels that must agree the primary is down before a failover.
    #[arg(long, env = "SENTINEL_QUORUM", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    quorum: u16,
    /// Sentinel's `down-after-milliseconds`.
    #[arg(long, env = "SENTINEL_DOWN_AFTER_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    down_after_ms: u64,
    /// Sentinel's `failover-timeout`: a split vote is retried after twice this, so keep it small.
    #[arg(long, env = "SENTINEL_FAILOVER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1000..=3_600_000))]
    failover_timeout_ms: u64,
    /// File holding the password of the Redis servers and Sentinels (a mounted Secret).
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    redis_password_file: Option<PathBuf>,
    /// The static redis.conf (ConfigMap) the written one includes.
    #[arg(long, env = "REDIS_BASE_CONFIG", default_value = "/etc/redis/redis.conf")]
    base_config: PathBuf,
    /// Where to write this pod's redis.conf (a writable volume: Sentinel has Redis rewrite it).
    #[arg(long, env = "REDIS_CONFIG_FILE", default_value = "/run/redis/redis.conf")]
    redis_config_file: PathBuf,
    /// Where to write sentinel.conf; the previous one there is read first (Sentinel's id and
    /// the primary it last knew survive a restart).
    #[arg(long, env = "SENTINEL_CONFIG_FILE", default_value = "/data/sentinel.conf")]
    sentinel_config_file: PathBuf,
    /// Deadline for asking one Sentinel who the primary is.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    redis_timeout_ms: u64,
}

#[derive(Debug, Args)]
struct RedisBackupCommand {
    /// Directory of the kept snapshots (the backup volume).
    #[arg(long, env = "BACKUP_DIR", default_value = "/backups")]
    backup_dir: PathBuf,
    /// The snapshot just taken and verified (`redis-cli --rdb`, `redis-check-rdb`).
    #[arg(long, env = "BACKUP_INCOMING", default_value = "/backups/incoming.rdb")]
    incoming: PathBuf,
    /// Snapshots kept, newest first; older ones are deleted.
    #[arg(long, env = "BACKUP_KEEP", default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=1000))]
    keep: u16,
}

#[derive(Debug, Clone, Copy, Args)]
struct ServerArgs {
    /// Seconds readiness reports 503 before the listener closes (endpoint removal lags the signal).
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3600))]
    shutdown_drain_seconds: u64,
    /// Upper bound on finishing in-flight requests after the listener closed.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600))]
    shutdown_timeout_seconds: u64,
    /// Requests served at once before new ones are shed with 503.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_concurrent_requests: u32,
    /// Deadline for a whole request inside this service.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    request_timeout_ms: u64,
    /// Deadline for a client to send a request's whole header block (slowloris defence).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    header_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait idle for its next request. Above the 60 s for
    /// which ingress-nginx and cloud load balancers reuse idle upstream connections, so the
    /// proxy, not this server, closes them (else a request races the close: a 502).
    #[arg(long, env = "KEEP_ALIVE_TIMEOUT_SECONDS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..=3600))]
    keep_alive_timeout_seconds: u64,
    /// Largest request line plus headers, in bytes; beyond it the answer is 431.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1_048_576))]
    max_header_bytes: u32,
    /// Most header fields in one request; beyond it the answer is 431.
    #[arg(long, env = "MAX_HEADERS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(8..=1000))]
    max_headers: u32,
    /// Open client connections at once; further clients wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Everything the process needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub telemetry: TelemetryConfig,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub log_level: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone)]
// Built once at start-up and moved twice: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Target {
    ApiGateway(GatewayConfig),
    UserService(UserServiceConfig),
    /// Both services; the gateway's upstream is the in-process user-service on `user_service.server.port`.
    All {
        gateway: GatewayConfig,
        user_service: UserServiceConfig,
    },
    /// Write a Redis pod's configuration, then exit.
    RedisConfig(RedisNodeConfig),
    /// File a Redis snapshot and rotate the kept ones, then exit.
    RedisBackup(RedisBackupConfig),
}

impl Target {
    /// The `service` name on log lines that belong to no single request.
    pub fn service_name(&self) -> &'static str {
        match self {
            Target::ApiGateway(_) => service_name::API_GATEWAY,
            Target::UserService(_) => service_name::USER_SERVICE,
            Target::All { .. } => service_name::ALL_IN_ONE,
            Target::RedisConfig(_) => service_name::REDIS_CONFIG,
            Target::RedisBackup(_) => service_name::REDIS_BACKUP,
        }
    }
}

/// What every HTTP server of this binary shares.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub port: u16,
    pub shutdown: ShutdownConfig,
    pub max_concurrent_requests: usize,
    pub request_timeout: Duration,
    pub connections: ConnectionLimits,
}

/// What one client connection may cost the server: they bound memory and the time a slow
/// or hostile client can hold a connection (docs/reliability.md, "Hostile clients").
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// The defaults of the settings.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(75),
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ShutdownConfig {
    pub drain: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
}

#[derive(Clone)]
pub struct UpstreamConfig {
    /// `http://host:port`, without a path. May hold credentials: print [`Self::redacted_url`].
    pub base_url: Uri,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl UpstreamConfig {
    /// The base URL as it may be logged.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.base_url.to_string())
    }
}

impl fmt::Debug for UpstreamConfig {
    // Never print `base_url` itself: its user-info may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("base_url", &self.redacted_url())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// `scheme://user:***@host…`: the URL with the password (or a bare token in the user
/// position) replaced by `***`. Works on text that does not even parse as a URL, so error
/// messages about a malformed URL cannot leak the secret either.
pub fn redact_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://").map(|i| i + 3) else {
        return raw.to_owned();
    };
    let rest = &raw[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return raw.to_owned();
    };
    let user_info = &rest[..at];
    let redacted = match user_info.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{redacted}{}", &raw[..scheme_end], &rest[at..])
}

#[derive(Debug, Clone)]
pub struct UserServiceConfig {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub seed_sample_users: bool,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Memory,
    Redis(Box<RedisConfig>),
}

#[derive(Clone)]
pub struct RedisConfig {
    /// The node to use; with `sentinel` only its Redis settings (password, db) count, the
    /// address comes from the Sentinels.
    pub connection: redis::ConnectionInfo,
    pub command_timeout: Duration,
    /// The URL as it may be logged: the password is replaced by `***`.
    pub redacted_url: String,
    /// Set when the primary is found through Sentinel.
    pub sentinel: Option<SentinelConfig>,
    /// Replicas that must confirm each write (`WAIT`) before it is acknowledged.
    pub write_replicas: u16,
}

#[derive(Clone)]
pub struct SentinelConfig {
    /// `(host, port)` of every Sentinel.
    pub nodes: Vec<(String, u16)>,
    pub master_name: String,
    pub password: Option<String>,
}

impl fmt::Debug for RedisConfig {
    // Never print ConnectionInfo: it holds the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url)
            .field("command_timeout", &self.command_timeout)
            .field("write_replicas", &self.write_replicas)
            .finish()
    }
}

/// One Redis pod of the replicated StatefulSet (`redis-config`).
#[derive(Clone)]
pub struct RedisNodeConfig {
    /// This pod's name and the ordinal it ends in.
    pub pod_name: String,
    pub ordinal: u16,
    /// The StatefulSet's name (the pod name without `-<ordinal>`).
    pub stateful_set: String,
    pub headless_service: String,
    pub nodes: u16,
    pub redis_port: u16,
    pub sentinel_port: u16,
    pub master_name: String,
    pub quorum: u16,
    pub down_after: Duration,
    pub failover_timeout: Duration,
    pub password: Option<String>,
    pub base_config: PathBuf,
    pub redis_config_file: PathBuf,
    pub sentinel_config_file: PathBuf,
    pub timeout: Duration,
}

impl fmt::Debug for RedisNodeConfig {
    // Never print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNodeConfig")
            .field("pod_name", &self.pod_name)
            .field("nodes", &self.nodes)
            .field("master_name", &self.master_name)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// The backup rotation (`redis-backup`).
#[derive(Debug, Clone)]
pub struct RedisBackupConfig {
    pub backup_dir: PathBuf,
    pub incoming: PathBuf,
    pub keep: usize,
}

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}

impl Cli {
    /// Parses the command line and environment. With no subcommand the target is `all`, so
    /// `cargo run` alone gives a working API. Errors print as one line (clap's own output
    /// spans several) and exit with status 2; `--help` and `--version` print as usual.
    pub fn parse() -> Self {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match Self::try_parse_with_default_target(args) {
            Ok(cli) => cli,
            Err(err) if !err.use_stderr() => err.exit(),
            Err(err) => {
                let rendered = err.render().to_string();
                let first_line = rendered.lines().next().unwrap_or("invalid arguments");
                eprintln!("users-platform: {first_line}");
                std::process::exit(2);
            }
        }
    }

    /// Parses `args` (program name first); a missing subcommand means `all`.
    pub fn try_parse_with_default_target(args: Vec<std::ffi::OsString>) -> Result<Self, clap::Error> {
        let cli = <Self as Parser>::try_parse_from(&args)?;
        if cli.target.is_some() {
            return Ok(cli);
        }
        let mut with_default = args;
        with_default.push("all".into());
        <Self as Parser>::try_parse_from(with_default)
    }

    pub fn into_config(self) -> Result<Config, ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_level)
            .map_err(|err| ConfigError::new("LOG_LEVEL", err.to_string()))?;
        let telemetry = TelemetryConfig {
            log_level: self.telemetry.log_level,
            log_format: self.telemetry.log_format,
        };
        let target = match self.target.unwrap_or_else(|| unreachable!("parse adds `all`")) {
            TargetCommand::ApiGateway(cmd) => Target::ApiGateway(GatewayConfig {
                server: cmd.server.into_config(cmd.port),
                upstream: cmd.upstream.into_config(parse_upstream_url(&cmd.user_service_url)?),
            }),
            TargetCommand::UserService(cmd) => Target::UserService(UserServiceConfig {
                server: cmd.server.into_config(cmd.port),
                seed_sample_users: cmd.store.seed_sample_users,
                store: cmd.store.into_config()?,
            }),
            TargetCommand::All(cmd) => {
                if cmd.port == cmd.user_service_port && cmd.port != 0 {
                    return Err(ConfigError::new(
                        "USER_SERVICE_PORT",
                        format!("must differ from PORT ({})", cmd.port),
                    ));
                }
                // The real upstream address is known once the user-service listener is bound
                // (the port may be 0); startup replaces this placeholder.
                let loopback = parse_upstream_url(&format!("http://127.0.0.1:{}", cmd.user_service_port))?;
                Target::All {
                    gateway: GatewayConfig {
                        server: cmd.server.into_config(cmd.port),
                        upstream: cmd.upstream.into_config(loopback),
                    },
                    user_service: UserServiceConfig {
                        server: cmd.server.into_config(cmd.user_service_port),
                        seed_sample_users: cmd.store.seed_sample_users,
                        store: cmd.store.into_config()?,
                    },
                }
            }
            TargetCommand::RedisConfig(cmd) => Target::RedisConfig(cmd.into_config()?),
            TargetCommand::RedisBackup(cmd) => Target::RedisBackup(RedisBackupConfig {
                backup_dir: cmd.backup_dir,
                incoming: cmd.incoming,
                keep: usize::from(cmd.keep),
            }),
        };
        Ok(Config { telemetry, target })
    }
}

impl RedisConfigCommand {
    fn into_config(self) -> Result<RedisNodeConfig, ConfigError> {
        let (stateful_set, ordinal) = self
            .pod_name
            .rsplit_once('-')
            .and_then(|(set, ordinal)| Some((set, ordinal.parse::<u16>().ok()?)))
            .filter(|(set, _)| !set.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "POD_NAME",
                    format!("{:?} is not <statefulset>-<ordinal>", self.pod_name),
                )
            })?;
        if ordinal >= self.nodes {
            return Err(ConfigError::new(
                "POD_NAME",
                format!("ordinal {ordinal} is not below REDIS_NODES ({})", self.nodes),
            ));
        }
        if self.quorum > self.nodes {
            return Err(ConfigError::new(
                "SENTINEL_QUORUM",
                format!("{} is more than the {} Sentinels", self.quorum, self.nodes),
            ));
        }
        if self.headless_service.is_empty() || self.headless_service.contains(['/', ' ', '@', ':']) {
            return Err(ConfigError::new("REDIS_HEADLESS_SERVICE", "not a Service name"));
        }
        check_master_name(&self.master_name)?;
        let password = self
            .redis_password_file
            .as_ref()
            .map(|path| read_secret_file("REDIS_PASSWORD_FILE", path))
            .transpose()?;
        // Redis's config parser splits on whitespace and treats quotes and backslashes as
        // quoting even inside a word; the Secret's `auth.conf` has the password unquoted too.
        if password.as_ref().is_some_and(|p| {
            p.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
        }) {
            return Err(ConfigError::new(
                "REDIS_PASSWORD_FILE",
                "the password must not contain whitespace, quotes or backslashes (it is written into config files)",
            ));
        }
        Ok(RedisNodeConfig {
            stateful_set: stateful_set.to_owned(),
            ordinal,
            pod_name: self.pod_name,
            headless_service: self.headless_service,
            nodes: self.nodes,
            redis_port: self.redis_port,
            sentinel_port: self.sentinel_port,
            master_name: self.master_name,
            quorum: self.quorum,
            down_after: Duration::from_millis(self.down_after_ms),
            failover_timeout: Duration::from_millis(self.failover_timeout_ms),
            password,
            base_config: self.base_config,
            redis_config_file: self.redis_config_file,
            sentinel_config_file: self.sentinel_config_file,
            timeout: Duration::from_millis(self.redis_timeout_ms),
        })
    }
}

impl ServerArgs {
    fn into_config(self, port: u16) -> ServerConfig {
        ServerConfig {
            port,
            shutdown: ShutdownConfig {
                drain: Duration::from_secs(self.shutdown_drain_seconds),
                timeout: Duration::from_secs(self.shutdown_timeout_seconds),
            },
            max_concurrent_requests: self.max_concurrent_requests as usize,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                keep_alive_timeout: Duration::from_secs(self.keep_alive_timeout_seconds),
                max_header_bytes: self.max_header_bytes as usize,
                max_headers: self.max_headers as usize,
                max_connections: self.max_connections as usize,
            },
        }
    }
}

impl UpstreamArgs {
    fn into_config(self, base_url: Uri) -> UpstreamConfig {
        UpstreamConfig {
            base_url,
            timeout: Duration::from_millis(self.upstream_timeout_ms),
            connect_timeout: Duration::from_millis(self.upstream_connect_timeout_ms),
        }
    }
}

fn parse_upstream_url(raw: &str) -> Result<Uri, ConfigError> {
    let invalid = |why: &str| ConfigError::new("USER_SERVICE_URL", format!("{why} (got {:?})", redact_url(raw)));
    let uri: Uri = raw.trim_end_matches('/').parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("must start with http://"));
    }
    if uri.host().is_none() {
        return Err(invalid("has no host"));
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err(invalid("must not have a path"));
    }
    Ok(uri)
}

impl StoreArgs {
    fn into_config(self) -> Result<StoreConfig, ConfigError> {
        let password = match (&self.redis_password_file, &self.redis_password) {
            (Some(path), _) => Some(read_password_file(path)?),
            (None, Some(password)) => Some(password.clone()),
            (None, None) => None,
        };
        let sentinel = self.sentinel_config()?;
        if sentinel.is_some() && (self.redis_url.is_some() || self.redis_host.is_some()) {
            return Err(ConfigError::new(
                "REDIS_SENTINELS",
                "set either REDIS_SENTINELS or REDIS_URL/REDIS_HOST, not both",
            ));
        }
        let mut connection: redis::ConnectionInfo = match (&self.redis_url, &self.redis_host) {
            // The address is the Sentinels' to give; this only carries password and db.
            _ if sentinel.is_some() => {
                use redis::IntoConnectionInfo;
                ("127.0.0.1", 6379)
                    .into_connection_info()
                    .map_err(|err| ConfigError::new("REDIS_SENTINELS", err.to_string()))?
            }
            (Some(url), _) => {
                use redis::IntoConnectionInfo;
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|_| ConfigError::new("REDIS_URL", "not a valid redis:// URL"))?;
                if !matches!(info.addr(), redis::ConnectionAddr::Tcp(_, _)) {
                    return Err(ConfigError::new("REDIS_URL", "only redis://host:port/db is supported"));
                }
                info
            }
            (None, Some(host)) => {
                if host.is_empty() || host.contains(['/', ' ', '@']) {
                    return Err(ConfigError::new("REDIS_HOST", format!("not a host name: {host:?}")));
                }
                use redis::IntoConnectionInfo;
                (host.as_str(), self.redis_port)
                    .into_connection_info()
                    .map_err(|err| ConfigError::new("REDIS_HOST", err.to_string()))?
            }
            (None, None) => {
                // Redis settings without a Redis to use are a mistake, never a reason to fall
                // back silently to the in-memory store.
                let stray = [
                    ("REDIS_PASSWORD_FILE", self.redis_password_file.is_some()),
                    ("REDIS_PASSWORD", self.redis_password.is_some()),
                    ("REDIS_WRITE_REPLICAS", self.redis_write_replicas.is_some()),
                ];
                if let Some((variable, _)) = stray.iter().find(|(_, set)| *set) {
                    return Err(ConfigError::new(
                        variable,
                        "set, but none of REDIS_URL, REDIS_HOST or REDIS_SENTINELS is",
                    ));
                }
                return Ok(StoreConfig::Memory);
            }
        };
        if let Some(password) = password {
            let settings = connection.redis_settings().clone().set_password(password);
            connection = connection.set_redis_settings(settings);
        }
        let redacted_url = match &sentinel {
            Some(sentinel) => redacted_sentinel_url(sentinel),
            None => redacted_url(&connection),
        };
        let write_replicas = self.redis_write_replicas.unwrap_or(u16::from(sentinel.is_some()));
        Ok(StoreConfig::Redis(Box::new(RedisConfig {
            connection,
            command_timeout: Duration::from_millis(self.redis_timeout_ms),
            redacted_url,
            sentinel,
            write_replicas,
        })))
    }

    fn sentinel_config(&self) -> Result<Option<SentinelConfig>, ConfigError> {
        let Some(list) = &self.redis_sentinels else {
            if self.redis_sentinel_password_file.is_some() {
                return Err(ConfigError::new(
                    "REDIS_SENTINEL_PASSWORD_FILE",
                    "set, but REDIS_SENTINELS is not",
                ));
            }
            return Ok(None);
        };
        let invalid = |why: String| ConfigError::new("REDIS_SENTINELS", why);
        let nodes = list
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .map(|node| {
                let (host, port) = node
                    .rsplit_once(':')
                    .ok_or_else(|| invalid(format!("{node:?} is not host:port")))?;
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| invalid(format!("{node:?} has no valid port")))?;
                if host.is_empty() || host.contains(['/', ' ', '@']) {
                    return Err(invalid(format!("{node:?} has no valid host")));
                }
                Ok((host.to_owned(), port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(invalid("no host:port given".into()));
        }
        check_master_name(&self.redis_master_name)?;
        let password = self
            .redis_sentinel_password_file
            .as_ref()
            .map(|path| read_secret_file("REDIS_SENTINEL_PASSWORD_FILE", path))
            .transpose()?;
        Ok(Some(SentinelConfig {
            nodes,
            master_name: self.redis_master_name.clone(),
            password,
        }))
    }
}

/// The name Sentinel monitors the primary under: one word (it is a config-file token).
fn check_master_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(ConfigError::new("REDIS_MASTER_NAME", "must be one word"));
    }
    Ok(())
}

fn redacted_sentinel_url(sentinel: &SentinelConfig) -> String {
    let auth = if sentinel.password.is_some() { ":***@" } else { "" };
    let nodes: Vec<String> = sentinel
        .nodes
        .iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect();
    format!("redis+sentinel://{auth}{}/{}", nodes.join(","), sentinel.master_name)
}

fn read_password_file(path: &PathBuf) -> Result<String, ConfigError> {
    read_secret_file("REDIS_PASSWORD_FILE", path)
}

fn read_secret_file(variable: &'static str, path: &PathBuf) -> Result<String, ConfigError> {
    let content = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::new(variable, format!("cannot read {}: {err}", path.display())))?;
    // Secrets written with `echo` end in a newline that is not part of the password.
    let password = content.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(ConfigError::new(variable, format!("{} is empty", path.display())));
    }
    Ok(password.to_owned())
}

fn redacted_url(info: &redis::ConnectionInfo) -> String {
    let (host, port) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.as_str(), *port),
        _ => ("?", 0),
    };
    let settings = info.redis_settings();
    let auth = match (settings.username(), settings.password()) {
        (Some(user), Some(_)) => format!("{user}:***@"),
        (None, Some(_)) => ":***@".to_owned(),
        (Some(user), None) => format!("{user}@"),
        (None, None) => String::new(),
    };
    format!("redis://{auth}{host}:{port}/{}", settings.db())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let args = std::iter::once("users-platform")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        Cli::try_parse_with_default_target(args)
            .map_err(|e| e.to_string())?
            .into_config()
            .map_err(|e| e.to_string())
    }

    /// The Redis settings of a valid `user-service` command line.
    fn redis_config(args: &[&str]) -> RedisConfig {
        let Target::UserService(cfg) = parse(args).expect("valid").target else {
            panic!("user-service")
        };
        let StoreConfig::Redis(redis) = cfg.store else {
            panic!("redis")
        };
        *redis
    }

    #[test]
    fn no_subcommand_means_all_with_memory_store() {
        let config = parse(&[]).expect("defaults are valid");
        match config.target {
            Target::All { gateway, user_service } => {
                assert_eq!(gateway.server.port, 3000);
                assert_eq!(user_service.server.port, 3001);
                assert!(matches!(user_service.store, StoreConfig::Memory));
            }
            other => panic!("expected all, got {other:?}"),
        }
    }

    #[test]
    fn redis_password_is_redacted_in_the_loggable_url() {
        let redis = redis_config(&["user-service", "--redis-url", "redis://:hunter2@example:6380/2"]);
        assert_eq!(redis.redacted_url, "redis://:***@example:6380/2");
        assert!(!format!("{redis:?}").contains("hunter2"));
        assert_eq!(redis.connection.redis_settings().password(), Some("hunter2"));
    }

    #[test]
    fn user_service_url_credentials_never_reach_errors_or_debug_output() {
        let err = parse(&["api-gateway", "--user-service-url", "http://gw:hunter2@example:3001/x"]).unwrap_err();
        assert!(
            err.starts_with("USER_SERVICE_URL:") && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse(&["api-gateway", "--user-service-url", "ftp://hunter2@exa mple"]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let config = parse(&["api-gateway", "--user-service-url", "http://gw:hunter2@example:3001"]).expect("valid");
        let Target::ApiGateway(gateway) = config.target else {
            panic!("api-gateway")
        };
        assert_eq!(gateway.upstream.redacted_url(), "http://gw:***@example:3001/");
        assert!(!format!("{gateway:?}").contains("hunter2"));
        assert_eq!(redact_url("http://example:3001/a@b"), "http://example:3001/a@b");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = parse(&["api-gateway", "--user-service-url", "ftp://x"]).unwrap_err();
        assert!(err.starts_with("USER_SERVICE_URL:"), "{err}");
        let err = parse(&["user-service", "--redis-password-file", "/nonexistent/pw"]).unwrap_err();
        assert!(err.starts_with("REDIS_PASSWORD_FILE:"), "{err}");
        let err = parse(&["all", "--port", "4000", "--user-service-port", "4000"]).unwrap_err();
        assert!(err.starts_with("USER_SERVICE_PORT:"), "{err}");
        let err = parse(&["--log-level", "info,=[", "all"]).unwrap_err();
        assert!(err.starts_with("LOG_LEVEL:"), "{err}");
        let err = parse(&["user-service", "--redis-sentinels", "a:1,b"]).unwrap_err();
        assert!(err.starts_with("REDIS_SENTINELS:"), "{err}");
        let err = parse(&[
            "user-service",
            "--redis-sentinels",
            "a:1",
            "--redis-url",
            "redis://x:1/0",
        ])
        .unwrap_err();
        assert!(err.starts_with("REDIS_SENTINELS:"), "{err}");
    }

    #[test]
    fn sentinels_select_redis_and_require_a_replica_by_default() {
        let redis = redis_config(&["user-service", "--redis-sentinels", "s-0:26379, s-1:26379"]);
        let sentinel = redis.sentinel.expect("sentinel mode");
        assert_eq!(sentinel.nodes, [("s-0".to_owned(), 26379), ("s-1".to_owned(), 26379)]);
        assert_eq!(sentinel.master_name, "users");
        assert_eq!(redis.write_replicas, 1);
        assert_eq!(redis.redacted_url, "redis+sentinel://s-0:26379,s-1:26379/users");
    }

    #[test]
    fn redis_config_reads_the_ordinal_from_the_pod_name() {
        let Target::RedisConfig(node) = parse(&["redis-config", "--pod-name", "redis-2"]).expect("valid").target else {
            panic!("redis-config")
        };
        assert_eq!((node.stateful_set.as_str(), node.ordinal, node.nodes), ("redis", 2, 3));
        let err = parse(&["redis-config", "--pod-name", "redis"]).unwrap_err();
        assert!(err.starts_with("POD_NAME:"), "{err}");
        let err = parse(&["redis-config", "--pod-name", "redis-3"]).unwrap_err();
        assert!(err.starts_with("POD_NAME:"), "{err}");
        let err = parse(&["redis-config", "--pod-name", "redis-0", "--nodes", "1", "--quorum", "2"]).unwrap_err();
        assert!(err.starts_with("SENTINEL_QUORUM:"), "{err}");
    }

    #[test]
    fn redis_config_refuses_passwords_its_config_files_cannot_hold() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("password");
        let with = |password: &str| {
            std::fs::write(&file, password).expect("write password");
            let path = file.to_str().expect("utf-8 path");
            parse(&["redis-config", "--pod-name", "redis-1", "--redis-password-file", path])
        };
        assert!(
            with("s3cret-Pass_word.42\n").is_ok(),
            "a trailing newline is not part of it"
        );
        for bad in ["two words", "quo\"te", "it's", "back\\slash"] {
            let err = with(bad).unwrap_err();
            assert!(err.starts_with("REDIS_PASSWORD_FILE:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn redis_settings_without_a_redis_are_refused_not_ignored() {
        let err = parse(&["user-service", "--redis-password", "x"]).unwrap_err();
        assert!(err.starts_with("REDIS_PASSWORD:"), "{err}");
        let err = parse(&["user-service", "--redis-sentinel-password-file", "/x"]).unwrap_err();
        assert!(err.starts_with("REDIS_SENTINEL_PASSWORD_FILE:"), "{err}");
    }
}
