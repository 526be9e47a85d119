//! The `route` of metrics and log lines: the matched route template (`/users/{id}`), never the
//! raw path, so scanners cannot explode label cardinality.

use axum::{extract::MatchedPath, http::Extensions};

/// The label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The matched route of a request (an `Arc<str>` inside: cloning it allocates nothing).
pub fn matched_route(extensions: &Extensions) -> Option<MatchedPath> {
    extensions.get::<MatchedPath>().cloned()
}

pub fn route_label(route: Option<&MatchedPath>) -> &str {
    route.map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}
