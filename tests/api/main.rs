//! One test binary (faster to link than one per file) with shared helpers.

mod helpers;

/// Runs each listed test against the memory store and against a real Redis.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $name() { super::$name(crate::helpers::Backend::Memory).await } )*
        }
        mod redis {
            $( #[tokio::test] async fn $name() { super::$name(crate::helpers::Backend::Redis).await } )*
        }
    };
}

mod backup;
mod concurrency;
mod drain;
mod failover;
mod fuzz;
mod gateway;
mod hostile;
mod legacy;
mod module_map;
mod outage;
mod process;
mod redis_node;
mod store_contract;
mod user_service;
