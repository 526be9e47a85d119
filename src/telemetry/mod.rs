//! Logs (one JSON object per line) and metrics (one Prometheus registry per app).

pub mod logging;
pub mod metrics;
