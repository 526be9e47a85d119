//! The names the services go by in log lines, health bodies and metrics. They sit below every
//! module that prints them, so configuration and telemetry need not know the services.

pub const API_GATEWAY: &str = "api-gateway";
pub const USER_SERVICE: &str = "user-service";
/// Lines of an `all` process that belong to neither service (start-up, signals).
pub const ALL_IN_ONE: &str = "users-platform";
/// The one-shot commands of the Redis StatefulSet's init container and the backup CronJob.
pub const REDIS_CONFIG: &str = "redis-config";
pub const REDIS_BACKUP: &str = "redis-backup";
