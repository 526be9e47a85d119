//! The Redis store (layout: docs/design.md §5): a hash per user, a sorted set for creation
//! order, and one key per lowercased email as the uniqueness index. Every write is one Lua script, so no
//! read-modify-write race can lose a user or admit a duplicate email.
//!
//! Every command runs under a deadline and maps to `StoreError::Unavailable` when Redis is
//! slow or gone; the connection manager reconnects in the background, so the service
//! recovers without a restart.
//!
//! Everything that knows the layout lives in this module: the keys, the Lua scripts and the
//! upgrade from the previous service's format ([`legacy`]).

use std::{
    future::Future,
    sync::{
        Arc, Mutex as SyncMutex, RwLock,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus::{HistogramVec, IntCounter, IntGaugeVec, Registry};
use redis::{
    ErrorKind, RedisError, RedisResult, Script, ServerErrorKind, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    sentinel::{Sentinel, SentinelNodeConnectionInfo},
};
use time::OffsetDateTime;

mod legacy;

use super::{Cursor, Page, PageRequest, StoreError, UserStore};
use crate::{
    config::RedisConfig,
    telemetry::metrics,
    timestamp::{self, format as format_timestamp, truncate_to_millis},
    users::model::{Email, Role, User, UserId, UserName, UserPatch},
};

const USER_KEY_PREFIX: &str = "users:user:";
const BY_CREATED_KEY: &str = "users:by_created";
const EMAIL_KEY_PREFIX: &str = "users:email:";

/// The Lua scripts, loaded once; reads use EVALSHA with a fall back to EVAL after a Redis
/// restart flushed the script cache, writes load the script and send it again (see `write`).
struct Scripts {
    create: Script,
    update: Script,
    delete: Script,
    list: Script,
    migrate_legacy: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            create: Script::new(include_str!("lua/create.lua")),
            update: Script::new(include_str!("lua/update.lua")),
            delete: Script::new(include_str!("lua/delete.lua")),
            list: Script::new(include_str!("lua/list.lua")),
            migrate_legacy: Script::new(include_str!("lua/migrate_legacy.lua")),
        }
    }
}

/// Redis command latency, by operation and outcome, and which node is the primary.
#[derive(Clone)]
pub struct RedisMetrics {
    duration: HistogramVec,
    primary: IntGaugeVec,
    primary_changes: IntCounter,
}

impl RedisMetrics {
    pub fn register(registry: &Registry) -> Self {
        let primary = IntGaugeVec::new(
            prometheus::Opts::new(
                "redis_primary",
                "1 for the Redis node this service writes to (found through Sentinel, or configured)",
            ),
            &["address"],
        )
        .expect("valid metric");
        let primary_changes = IntCounter::new(
            "redis_primary_changes_total",
            "Times the service switched to another Redis primary (a Sentinel failover)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(primary.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(primary_changes.clone()))
            .expect("metric registered once");
        Self {
            duration: metrics::histogram(
                registry,
                "redis_command_duration_seconds",
                "Redis round trips by operation (a Lua script counts as one) and outcome",
                &["command", "outcome"],
            ),
            primary,
            primary_changes,
        }
    }
}

/// The node requests go to, and the connection to it.
struct Primary {
    /// `host:port`, for readiness, logs and the `redis_primary` metric.
    address: String,
    /// Reads and checks (PING, ROLE).
    connection: ConnectionManager,
    /// Writes only: Redis answers a connection's commands in order, so each write's `WAIT`
    /// holds up whatever follows it on the same connection; reads must not queue behind it.
    writes: ConnectionManager,
    /// For one-off diagnostic connections; requests go through `connection`.
    client: redis::Client,
}

/// How the primary is found: configured once, or asked of the Sentinels again after a
/// connection loss or a `READONLY` reply (a failover happened).
enum Locator {
    Fixed,
    Sentinel(Box<SentinelLocator>),
}

struct SentinelLocator {
    /// Behind a lock: the crate's `Sentinel` caches its connections and needs `&mut`.
    sentinel: tokio::sync::Mutex<Sentinel>,
    master_name: String,
    /// Password and db of the data nodes.
    node: SentinelNodeConnectionInfo,
}

#[derive(Clone)]
pub struct RedisStore {
    primary: Arc<RwLock<Option<Arc<Primary>>>>,
    locator: Arc<Locator>,
    /// Why the last Sentinel lookup failed, for `diagnose`.
    last_lookup_error: Arc<SyncMutex<Option<String>>>,
    manager_config: ConnectionManagerConfig,
    timeout: Duration,
    write_replicas: u16,
    replicas: Arc<OnlineReplicas>,
    scripts: Arc<Scripts>,
    metrics: RedisMetrics,
}

impl RedisStore {
    /// Connects lazily: the service starts (and reports not ready) even while Redis (or every
    /// Sentinel) is down.
    pub fn connect(config: &RedisConfig, metrics: RedisMetrics) -> Result<Self, StoreError> {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // Reconnect attempts back off up to 1 s, so recovery after an outage is quick, and
            // never give up: a connection that failed for good (e.g. LOADING during the
            // handshake after a restart) would otherwise stay failed until the process restarts.
            // The price is that callers only see their deadline pass; `diagnose` tells why.
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        let unavailable = |err: RedisError| StoreError::Unavailable(err.to_string());
        let (locator, primary) = match &config.sentinel {
            None => {
                let client = redis::Client::open(config.connection.clone()).map_err(unavailable)?;
                let primary = open_primary(client, &manager_config)?;
                (Locator::Fixed, Some(primary))
            }
            Some(sentinel) => {
                let nodes = sentinel
                    .nodes
                    .iter()
                    .map(|(host, port)| {
                        use redis::IntoConnectionInfo;
                        let info = (host.as_str(), *port).into_connection_info()?;
                        let mut settings = info.redis_settings().clone();
                        if let Some(password) = &sentinel.password {
                            settings = settings.set_password(password.as_str());
                        }
                        Ok(info.set_redis_settings(settings))
                    })
                    .collect::<redis::RedisResult<Vec<redis::ConnectionInfo>>>()
                    .map_err(unavailable)?;
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(config.connection.redis_settings().clone());
                let locator = Locator::Sentinel(Box::new(SentinelLocator {
                    sentinel: tokio::sync::Mutex::new(Sentinel::build(nodes).map_err(unavailable)?),
                    master_name: sentinel.master_name.clone(),
                    node,
                }));
                (locator, None)
            }
        };
        let store = Self {
            primary: Arc::new(RwLock::new(None)),
            locator: Arc::new(locator),
            last_lookup_error: Arc::new(SyncMutex::new(None)),
            manager_config,
            timeout: config.command_timeout,
            write_replicas: config.write_replicas,
            replicas: Arc::new(OnlineReplicas::default()),
            scripts: Arc::new(Scripts::load()),
            metrics,
        };
        if let Some(primary) = primary {
            store.install(Arc::new(primary));
        }
        Ok(store)
    }

    /// The address of the node requests go to now, if one is known.
    pub fn primary_address(&self) -> Option<String> {
        self.current().map(|primary| primary.address.clone())
    }

    fn current(&self) -> Option<Arc<Primary>> {
        self.primary
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Makes `primary` the node requests go to and says so in the metric.
    fn install(&self, primary: Arc<Primary>) {
        let previous = self
            .primary
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(primary.clone());
        if let Some(previous) = &previous {
            let _ = self.metrics.primary.remove_label_values(&[&previous.address]);
            self.metrics.primary_changes.inc();
            tracing::warn!(from = %previous.address, to = %primary.address, "switched to a new Redis primary");
        } else {
            tracing::info!(primary = %primary.address, "using Redis primary");
        }
        self.metrics.primary.with_label_values(&[&primary.address]).set(1);
    }

    /// Asks the Sentinels for the primary and switches to it when it moved. One lookup at a
    /// time: requests failing together wait for the same answer instead of asking each.
    /// Without an answer (every Sentinel down) the current primary stays: it may be fine.
    async fn locate(&self, failed: Option<&str>) -> Option<Arc<Primary>> {
        let Locator::Sentinel(locator) = self.locator.as_ref() else {
            return self.current();
        };
        let SentinelLocator {
            sentinel,
            master_name,
            node,
        } = locator.as_ref();
        let mut sentinel = sentinel.lock().await;
        // Someone else switched while this caller waited for the lock.
        if let Some(current) = self.current()
            && failed.is_some_and(|failed| failed != current.address)
        {
            return Some(current);
        }
        let lookup = tokio::time::timeout(self.timeout, sentinel.async_master_for(master_name, Some(node))).await;
        let client = match lookup {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => return self.lookup_failed(format!("sentinel lookup of {master_name:?}: {err}")),
            Err(_) => {
                return self.lookup_failed(format!(
                    "sentinel lookup of {master_name:?}: no answer within {:?}",
                    self.timeout
                ));
            }
        };
        *self.last_lookup_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let address = address_of(&client);
        if let Some(current) = self.current()
            && current.address == address
        {
            // Same node: its connection manager reconnects by itself.
            return Some(current);
        }
        match open_primary(client, &self.manager_config) {
            Ok(primary) => {
                let primary = Arc::new(primary);
                self.install(primary.clone());
                Some(primary)
            }
            Err(err) => self.lookup_failed(err.to_string()),
        }
    }

    fn lookup_failed(&self, reason: String) -> Option<Arc<Primary>> {
        tracing::warn!(reason, "could not find the Redis primary through Sentinel");
        *self.last_lookup_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.current()
    }

    /// The primary to send a command to, looked up first if none is known yet.
    async fn primary(&self) -> Result<Arc<Primary>, StoreError> {
        if let Some(primary) = self.current() {
            return Ok(primary);
        }
        self.locate(None).await.ok_or_else(|| {
            let reason = self.last_lookup_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            StoreError::Unavailable(reason.unwrap_or_else(|| "no Redis primary known".into()))
        })
    }

    /// After a failure that may mean the primary moved (connection lost, deadline passed,
    /// `READONLY`), looks it up again in the background; the failed request is not retried
    /// (its write may have been applied) and answers 503 now.
    fn relocate_after(&self, failed: &Primary) {
        if matches!(self.locator.as_ref(), Locator::Fixed) {
            return;
        }
        let store = self.clone();
        let failed = failed.address.clone();
        tokio::spawn(async move { store.locate(Some(&failed)).await });
    }

    /// Runs one Redis operation on the primary under the deadline and records its latency.
    async fn timed<T, F, Fut>(&self, command: &'static str, lane: Lane, operation: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, OperationError>>,
    {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.primary()).await {
            Ok(Ok(primary)) => {
                let result = tokio::time::timeout(
                    self.timeout.saturating_sub(started.elapsed()),
                    operation(match lane {
                        Lane::Read => primary.connection.clone(),
                        Lane::Write => primary.writes.clone(),
                    }),
                )
                .await;
                if result
                    .as_ref()
                    .map_or(true, |r| r.as_ref().is_err_and(OperationError::primary_may_have_moved))
                {
                    self.relocate_after(&primary);
                }
                result
            }
            Ok(Err(err)) => Ok(Err(OperationError::NoPrimary(err))),
            Err(elapsed) => Err(elapsed),
        };
        let (outcome, result) = match result {
            Ok(Ok(value)) => ("ok", Ok(value)),
            Ok(Err(err)) => ("error", Err(err.into_store_error(command))),
            Err(_) => (
                "timeout",
                Err(StoreError::Unavailable(format!(
                    "redis {command}: no answer within {:?}",
                    self.timeout
                ))),
            ),
        };
        self.metrics
            .duration
            .with_label_values(&[command, outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Runs a raw command under the deadline.
    async fn query<T: redis::FromRedisValue>(&self, command: &'static str, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.timed(command, Lane::Read, |mut connection| async move {
            cmd.query_async(&mut connection).await.map_err(OperationError::Redis)
        })
        .await
    }

    /// Runs a read-only script under the deadline.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        command: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.timed(command, Lane::Read, |mut connection| async move {
            invocation
                .invoke_async(&mut connection)
                .await
                .map_err(OperationError::Redis)
        })
        .await
    }

    /// Runs a write script and, in the same pipeline on the same connection, `WAIT`s for its
    /// replicas: only once `write_replicas` have it is the write acknowledged.
    ///
    /// It also waits, briefly ([`LAGGING_REPLICA_GRACE`]), for every other online replica:
    /// Sentinel picks the replica to promote by replication offsets it read up to 10 s
    /// earlier, so with `WAIT 1` alone and two replicas it promoted the one without the write
    /// (tests/api/failover.rs lost 79 of 28k acknowledged writes that way). The grace is short
    /// because a dead replica stays "online" on the primary until `repl-timeout`, and a `WAIT`
    /// holds up every command behind it on the connection.
    ///
    /// The required `WAIT` gives up at 3/4 of the deadline, so a missing replica is reported
    /// as such rather than as a deadline passed; either way the write may have been applied on
    /// the primary (docs/reliability.md).
    async fn write<T: redis::FromRedisValue>(
        &self,
        command: &'static str,
        script: &Script,
        eval: redis::Cmd,
    ) -> Result<T, StoreError> {
        let required = self.write_replicas;
        let online = if required > 0 {
            self.refresh_online_replicas();
            self.replicas.online.load(Ordering::Relaxed)
        } else {
            0
        };
        let wait_ms = millis(self.timeout * 3 / 4);
        let replicas = self.replicas.clone();
        self.timed(command, Lane::Write, |mut connection| async move {
            let mut pipe = redis::pipe();
            pipe.add_command(eval);
            if online > required {
                pipe.cmd("WAIT")
                    .arg(online)
                    .arg(millis(LAGGING_REPLICA_GRACE.min(self.timeout / 4)));
            }
            if required > 0 {
                pipe.cmd("WAIT").arg(required).arg(wait_ms);
            }
            // A script error comes back as the pipeline's first value, not as an error.
            let mut reply: RedisResult<Vec<Value>> = pipe.query_async(&mut connection).await;
            if script_missing(&reply) {
                // Redis restarted (or this is a new primary) and lost its script cache.
                script
                    .load_async(&mut connection)
                    .await
                    .map_err(OperationError::Redis)?;
                reply = pipe.query_async(&mut connection).await;
            }
            let mut reply = reply.map_err(OperationError::Redis)?.into_iter();
            // READONLY (the node became a replica) surfaces here, as a Redis error.
            let result = reply
                .next()
                .unwrap_or(Value::Nil)
                .extract_error()
                .map_err(OperationError::Redis)?;
            let waits: Vec<i64> = reply
                .map(|confirmed| {
                    redis::from_redis_value(confirmed).map_err(|err| OperationError::Reply(err.to_string()))
                })
                .collect::<Result<_, _>>()?;
            if let [all, _] = waits.as_slice()
                && *all < i64::from(online)
            {
                // A replica left or lags: later writes stop waiting for it until the next
                // look at the primary's replicas says it is back.
                replicas
                    .online
                    .store(u16::try_from(*all).unwrap_or(0), Ordering::Relaxed);
            }
            if let Some(&confirmed) = waits.last()
                && confirmed < i64::from(required)
            {
                return Err(OperationError::NotReplicated {
                    confirmed,
                    replicas: required,
                });
            }
            redis::from_redis_value(result).map_err(|err| OperationError::Reply(err.to_string()))
        })
        .await
    }
}

fn script_missing(reply: &RedisResult<Vec<Value>>) -> bool {
    let no_script = ErrorKind::Server(ServerErrorKind::NoScript);
    match reply {
        Err(err) => err.kind() == no_script,
        Ok(values) => values
            .first()
            .is_some_and(|first| first.clone().extract_error().is_err_and(|err| err.kind() == no_script)),
    }
}

/// How long a write waits for replicas beyond the required ones (see `RedisStore::write`).
const LAGGING_REPLICA_GRACE: Duration = Duration::from_millis(50);

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Which of the primary's connections an operation uses.
#[derive(Clone, Copy)]
enum Lane {
    Read,
    Write,
}

impl RedisStore {
    /// Re-reads how many replicas the primary streams to (`ROLE`, on the read connection, so
    /// never behind a `WAIT`), at most every [`REPLICA_REFRESH`], in the background: writes
    /// never wait for it.
    fn refresh_online_replicas(&self) {
        {
            let mut checked_at = self.replicas.checked_at.lock().unwrap_or_else(|p| p.into_inner());
            if checked_at.is_some_and(|at| at.elapsed() < REPLICA_REFRESH) {
                return;
            }
            *checked_at = Some(Instant::now());
        }
        let store = self.clone();
        tokio::spawn(async move {
            let role: Result<Vec<Value>, StoreError> = store.query("role", &redis::cmd("ROLE")).await;
            // A master's ROLE: ["master", offset, [[host, port, offset], ...]], online replicas only.
            if let Ok(role) = role
                && let Some(Value::Array(replicas)) = role.get(2)
            {
                let count = u16::try_from(replicas.len()).unwrap_or(u16::MAX);
                store.replicas.online.store(count, Ordering::Relaxed);
            }
        });
    }
}

/// How often the number of online replicas is re-read.
const REPLICA_REFRESH: Duration = Duration::from_millis(250);

/// The replicas the primary streams to, as last seen; writes wait for all of them.
#[derive(Default)]
struct OnlineReplicas {
    online: AtomicU16,
    checked_at: SyncMutex<Option<Instant>>,
}

/// Why one operation failed, before it becomes a `StoreError`.
enum OperationError {
    Redis(RedisError),
    NoPrimary(StoreError),
    /// A reply of an unexpected shape.
    Reply(String),
    /// The node answers, but as a replica.
    NotPrimary,
    /// The write is on the primary but fewer replicas than required confirmed it in time.
    NotReplicated {
        confirmed: i64,
        replicas: u16,
    },
}

impl OperationError {
    /// Whether the primary may have changed: the connection broke or refused, or the node
    /// now answers as a replica (`READONLY`), or says it lost its own primary.
    fn primary_may_have_moved(&self) -> bool {
        match self {
            OperationError::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error()
                    || matches!(
                        err.kind(),
                        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
                    )
            }
            OperationError::NoPrimary(_) | OperationError::Reply(_) => false,
            OperationError::NotPrimary => true,
            // The replica may be gone because it is being promoted.
            OperationError::NotReplicated { .. } => true,
        }
    }

    fn into_store_error(self, command: &str) -> StoreError {
        match self {
            OperationError::Redis(err) => StoreError::Unavailable(format!("redis {command}: {err}")),
            OperationError::NoPrimary(err) => err,
            OperationError::Reply(err) => StoreError::Unavailable(format!("redis {command}: {err}")),
            OperationError::NotPrimary => {
                StoreError::Unavailable(format!("redis {command}: the node is not the primary"))
            }
            OperationError::NotReplicated { confirmed, replicas } => StoreError::Unavailable(format!(
                "redis {command}: {confirmed} of {replicas} replicas confirmed the write in time; it may still be applied"
            )),
        }
    }
}

/// `EVALSHA` of `script` on `keys`; the caller appends the arguments. Built by hand (not
/// with `ScriptInvocation`) so a write can share a pipeline with its `WAIT`.
fn script_call(script: &Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

fn open_primary(client: redis::Client, config: &ConnectionManagerConfig) -> Result<Primary, StoreError> {
    let open = || {
        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|err| StoreError::Unavailable(err.to_string()))
    };
    let (connection, writes) = (open()?, open()?);
    Ok(Primary {
        writes,
        address: address_of(&client),
        connection,
        client,
    })
}

fn address_of(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => other.to_string(),
    }
}

fn user_key(id: &UserId) -> String {
    format!("{USER_KEY_PREFIX}{id}")
}

fn email_key(email_key: &str) -> String {
    format!("{EMAIL_KEY_PREFIX}{email_key}")
}

#[async_trait::async_trait]
impl UserStore for RedisStore {
    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let key = user.email.key();
        let script = &self.scripts.create;
        let mut call = script_call(script, &[&user_key(&user.id), BY_CREATED_KEY, &email_key(&key)]);
        call.arg(user.id.as_str())
            .arg(user.name.as_str())
            .arg(user.email.as_str())
            .arg(user.role.as_str())
            .arg(format_timestamp(user.created_at))
            .arg(format_timestamp(user.updated_at))
            .arg(user.created_millis())
            .arg(&key);
        match self.write::<i64>("create", script, call).await? {
            1 => Ok(()),
            0 => Err(StoreError::EmailTaken),
            // A random UUID collided: vanishingly rare, and safe to report as a retryable failure.
            _ => Err(StoreError::Unavailable(format!("user id {} already exists", user.id))),
        }
    }

    async fn get(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        // HMGET of fixed fields, not HGETALL: half the reply to parse, no map to build.
        let values: Vec<Option<String>> = self
            .query("get", redis::cmd("HMGET").arg(user_key(id)).arg(&READ_FIELDS))
            .await?;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        user_from_values(values).map(Some)
    }

    async fn update(&self, id: &UserId, patch: &UserPatch, now: OffsetDateTime) -> Result<User, StoreError> {
        let new_key = patch.email.as_ref().map(Email::key).unwrap_or_default();
        let index_key = if new_key.is_empty() {
            String::new()
        } else {
            email_key(&new_key)
        };
        let script = &self.scripts.update;
        let mut call = script_call(script, &[&user_key(id), &index_key]);
        call.arg(id.as_str())
            .arg(patch.name.as_ref().map_or("", UserName::as_str))
            .arg(patch.email.as_ref().map_or("", Email::as_str))
            .arg(patch.role.map_or("", Role::as_str))
            .arg(format_timestamp(truncate_to_millis(now)))
            .arg(&new_key)
            .arg(EMAIL_KEY_PREFIX)
            .arg(&READ_FIELDS);
        let reply: Vec<Value> = self.write("update", script, call).await?;
        let mut items = reply.into_iter();
        let status: String = from_reply(items.next().unwrap_or(Value::Nil))?;
        match (status.as_str(), items.next()) {
            ("ok", Some(values)) => user_from_values(from_reply(values)?),
            ("not_found", _) => Err(StoreError::NotFound),
            ("email_taken", _) => Err(StoreError::EmailTaken),
            (other, _) => Err(StoreError::Unavailable(format!("unexpected update reply {other:?}"))),
        }
    }

    async fn delete(&self, id: &UserId) -> Result<(), StoreError> {
        let script = &self.scripts.delete;
        let mut call = script_call(script, &[&user_key(id), BY_CREATED_KEY]);
        call.arg(id.as_str()).arg(EMAIL_KEY_PREFIX);
        match self.write::<i64>("delete", script, call).await? {
            1 => Ok(()),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn list(&self, page: &PageRequest) -> Result<Page, StoreError> {
        let (millis, id) = match &page.after {
            Some(cursor) => (cursor.created_millis.to_string(), cursor.id.as_str().to_owned()),
            None => (String::new(), String::new()),
        };
        let mut invocation = self.scripts.list.prepare_invoke();
        invocation
            .key(BY_CREATED_KEY)
            .arg(page.limit)
            .arg(millis)
            .arg(id)
            .arg(USER_KEY_PREFIX)
            .arg(&READ_FIELDS);
        let reply: Vec<Value> = self.invoke("list", invocation).await?;
        let mut items = reply.into_iter();
        let total: u64 = match items.next() {
            Some(value) => from_reply(value)?,
            None => return Err(StoreError::Unavailable("empty list reply".into())),
        };
        let mut users = Vec::with_capacity(page.limit.min(items.len()));
        for item in items {
            users.push(user_from_values(from_reply(item)?)?);
        }
        let more = users.len() > page.limit;
        users.truncate(page.limit);
        let next = if more { users.last().map(Cursor::after) } else { None };
        Ok(Page { users, total, next })
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.query("count", redis::cmd("ZCARD").arg(BY_CREATED_KEY)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The write connection too: it only sees writes, so after a Redis restart the first
        // write would otherwise be the one to find it broken (and answer 503).
        self.timed("ping", Lane::Write, |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map_err(OperationError::Redis)
        })
        .await?;
        if matches!(self.locator.as_ref(), Locator::Fixed) {
            let _: String = self.query("ping", &redis::cmd("PING")).await?;
            return Ok(());
        }
        // Through Sentinel the node must also still be the primary: an old primary that came
        // back is demoted by the Sentinels, and finding that out here (every readiness check)
        // moves the service to the new primary even without traffic.
        self.timed("ping", Lane::Read, |mut connection| async move {
            let role: Vec<Value> = redis::cmd("ROLE")
                .query_async(&mut connection)
                .await
                .map_err(OperationError::Redis)?;
            match role.first() {
                Some(Value::BulkString(role)) if role.as_slice() == b"master" => Ok(()),
                _ => Err(OperationError::NotPrimary),
            }
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn primary_address(&self) -> Option<String> {
        RedisStore::primary_address(self)
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        legacy::migrate(self).await.map(drop)
    }

    async fn diagnose(&self) -> Option<String> {
        let Some(primary) = self.current() else {
            let reason = self.last_lookup_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
            return Some(reason.unwrap_or_else(|| "no Redis primary found yet".into()));
        };
        let attempt = async {
            let mut connection = primary.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut connection).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(format!("{}: {err}", primary.address)),
            Err(_) => Some(format!("{}: no answer within {:?}", primary.address, self.timeout)),
        }
    }
}

/// One element of a script's reply, converted; a reply of another shape means the script and
/// this code disagree, reported like any other store failure.
fn from_reply<T: redis::FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(|err| StoreError::Unavailable(err.to_string()))
}

/// The hash fields a user is read back from, in the order `HMGET` (in `get`, list.lua and
/// update.lua) returns them; `user_from_values` takes them apart in this order.
const READ_FIELDS: [&str; 6] = ["id", "name", "email", "role", "createdAt", "updatedAt"];

/// Rebuilds a user from the values of [`READ_FIELDS`] (`None` = field missing). Stored data
/// was validated on the way in, so a missing or invalid field means someone edited Redis by
/// hand: reported as unavailable (logged), never half-shown.
fn user_from_values(values: Vec<Option<String>>) -> Result<User, StoreError> {
    let corrupt = |field: &str| StoreError::Unavailable(format!("stored user has an invalid {field}"));
    let [id, name, email, role, created_at, updated_at]: [Option<String>; 6] = values
        .try_into()
        .map_err(|_| StoreError::Unavailable("unexpected HMGET reply".into()))?;
    let time = |value: Option<String>, field: &str| {
        value
            .as_deref()
            .and_then(timestamp::parse)
            .ok_or_else(|| corrupt(field))
    };
    Ok(User {
        id: id.as_deref().and_then(UserId::parse).ok_or_else(|| corrupt("id"))?,
        // Migrated records keep what the old service stored, even where today's rules are stricter.
        name: UserName::stored(name.ok_or_else(|| corrupt("name"))?),
        email: Email::stored(email.ok_or_else(|| corrupt("email"))?),
        role: Role::parse(role.as_deref().ok_or_else(|| corrupt("role"))?).unwrap_or_default(),
        created_at: time(created_at, "createdAt")?,
        updated_at: time(updated_at, "updatedAt")?,
    })
}
