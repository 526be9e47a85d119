//! HTTP pieces both services share: the error model, request ids, trace context, the
//! middleware stack (one layer per file, composed in `middleware.rs`), load shedding, health
//! state and the server with graceful shutdown.

pub mod access_log;
pub mod error;
pub mod health;
pub mod http_metrics;
pub mod json;
pub mod json_errors;
pub mod layer;
pub mod load_shed;
pub mod middleware;
pub mod peer;
pub mod read_deadlines;
pub mod request_id;
pub mod route_label;
pub mod server;
pub mod shutdown;
pub mod timeout;
pub mod trace_context;
pub mod whole_body;

pub use error::ApiError;
