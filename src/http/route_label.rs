//! The `route` and `method` of metrics and log lines: the matched route template
//! (`/users/{id}`), never the raw path, and the method only from a fixed set, so scanners
//! cannot explode label cardinality.

use axum::{
    extract::MatchedPath,
    http::{Extensions, Method},
};

/// The label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The matched route of a request (an `Arc<str>` inside: cloning it allocates nothing).
pub fn matched_route(extensions: &Extensions) -> Option<MatchedPath> {
    extensions.get::<MatchedPath>().cloned()
}

pub fn route_label(route: Option<&MatchedPath>) -> &str {
    route.map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// The `method` label of requests whose method is not a standard one.
pub const OTHER_METHOD: &str = "OTHER";

/// The `method` label: the RFC 9110 methods and PATCH by name, anything else [`OTHER_METHOD`].
/// hyper accepts any token as a method, and each distinct value would be a new series.
pub fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => OTHER_METHOD,
    }
}
