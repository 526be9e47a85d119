//! users-platform: a user-management API made of an api-gateway and a Redis-backed user-service,
//! shipped as one binary whose subcommand picks the deployment target.

pub mod config;
pub mod gateway;
pub mod http;
pub mod redis_node;
pub mod service_name;
pub mod startup;
pub mod telemetry;
pub mod timestamp;
pub mod users;

/// The crate version, reported by `/health` and `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source revision, when the build provides one (`USERS_PLATFORM_REVISION` at compile time).
/// Images are built without it on purpose, so their bytes do not depend on the commit.
pub const REVISION: &str = match option_env!("USERS_PLATFORM_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};
