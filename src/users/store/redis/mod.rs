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
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus::{HistogramVec, Registry};
use redis::{Script, Value, aio::ConnectionManager, aio::ConnectionManagerConfig};
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

/// The Lua scripts, loaded once; `invoke_async` uses EVALSHA and falls back to EVAL after a
/// Redis restart flushed the script cache.
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

/// Redis command latency, by operation and outcome.
#[derive(Clone)]
pub struct RedisMetrics {
    duration: HistogramVec,
}

impl RedisMetrics {
    pub fn register(registry: &Registry) -> Self {
        Self {
            duration: metrics::histogram(
                registry,
                "redis_command_duration_seconds",
                "Redis round trips by operation (a Lua script counts as one) and outcome",
                &["command", "outcome"],
            ),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    /// For one-off diagnostic connections; requests go through `connection`.
    client: redis::Client,
    timeout: Duration,
    scripts: Arc<Scripts>,
    metrics: RedisMetrics,
}

impl RedisStore {
    /// Connects lazily: the service starts (and reports not ready) even while Redis is down.
    pub fn connect(config: &RedisConfig, metrics: RedisMetrics) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(config.connection.clone()).map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // Reconnect attempts back off up to 1 s, so recovery after an outage is quick, and
            // never give up: a connection that failed for good (e.g. LOADING during the
            // handshake after a restart) would otherwise stay failed until the process restarts.
            // The price is that callers only see their deadline pass; `diagnose` tells why.
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        Ok(Self {
            connection,
            client,
            timeout: config.command_timeout,
            scripts: Arc::new(Scripts::load()),
            metrics,
        })
    }

    /// Runs one Redis operation under the deadline and records its latency.
    async fn timed<T, F>(&self, command: &'static str, operation: F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, operation).await;
        let (outcome, result) = match result {
            Ok(Ok(value)) => ("ok", Ok(value)),
            Ok(Err(err)) => ("error", Err(StoreError::Unavailable(format!("redis {command}: {err}")))),
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

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs a raw command under the deadline.
    async fn query<T: redis::FromRedisValue>(&self, command: &'static str, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut connection = self.connection();
        self.timed(command, async move { cmd.query_async(&mut connection).await })
            .await
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        command: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection();
        self.timed(command, async move { invocation.invoke_async(&mut connection).await })
            .await
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
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(user_key(&user.id))
            .key(BY_CREATED_KEY)
            .key(email_key(&key))
            .arg(user.id.as_str())
            .arg(user.name.as_str())
            .arg(user.email.as_str())
            .arg(user.role.as_str())
            .arg(format_timestamp(user.created_at))
            .arg(format_timestamp(user.updated_at))
            .arg(user.created_millis())
            .arg(&key);
        match self.invoke::<i64>("create", invocation).await? {
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
        let mut invocation = self.scripts.update.prepare_invoke();
        invocation
            .key(user_key(id))
            .key(index_key)
            .arg(id.as_str())
            .arg(patch.name.as_ref().map_or("", UserName::as_str))
            .arg(patch.email.as_ref().map_or("", Email::as_str))
            .arg(patch.role.map_or("", Role::as_str))
            .arg(format_timestamp(truncate_to_millis(now)))
            .arg(&new_key)
            .arg(EMAIL_KEY_PREFIX)
            .arg(&READ_FIELDS);
        let reply: Vec<Value> = self.invoke("update", invocation).await?;
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
        let mut invocation = self.scripts.delete.prepare_invoke();
        invocation
            .key(user_key(id))
            .key(BY_CREATED_KEY)
            .arg(id.as_str())
            .arg(EMAIL_KEY_PREFIX);
        match self.invoke::<i64>("delete", invocation).await? {
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
        let _: String = self.query("ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        legacy::migrate(self).await.map(drop)
    }

    async fn diagnose(&self) -> Option<String> {
        let attempt = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut connection).await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!("no answer within {:?}", self.timeout)),
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
