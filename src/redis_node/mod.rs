//! One-shot commands for the replicated Redis of prod (docs/architecture.md, "Redis"), run by
//! this binary because the Redis image has no shell to run a script:
//!
//! - [`node`] (`users-platform redis-config`): the init container of every Redis pod writes
//!   its redis.conf and sentinel.conf. The primary is whoever the running Sentinels name; a
//!   pod that restarts after a failover therefore comes back as a replica of the new primary
//!   instead of a second primary. Only when no Sentinel answers (a cold start of all pods)
//!   does it fall back to what its own Sentinel knew last, and then to pod 0.
//! - [`backup`] (`users-platform redis-backup`): the last step of the backup CronJob files a
//!   snapshot that `redis-cli --rdb` took and `redis-check-rdb` verified under a dated name,
//!   and deletes all but the newest N.
//!
//! Neither knows anything of the services or the web layer.

pub mod backup;
pub mod node;
