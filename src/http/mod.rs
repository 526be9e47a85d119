//! HTTP pieces both services share: the error model, request ids, trace context, the
//! observing middleware, load shedding, health state and the server with graceful shutdown.

pub mod error;
pub mod health;
pub mod json;
pub mod middleware;
pub mod request_id;
pub mod server;
pub mod shutdown;
pub mod trace_context;

pub use error::ApiError;
