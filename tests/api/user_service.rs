//! The user-service router, in process, on both stores: every endpoint and error path.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{Backend, UserServiceUnderTest, user_service};

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(svc: &UserServiceUnderTest, request: Request<Body>) -> Reply {
    let response = svc.app.router().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply { status, headers, body }
}

fn json_request(method: &str, uri: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

/// POSTs `body` to `/users`, whatever it holds.
async fn post_user(svc: &UserServiceUnderTest, body: &Value) -> Reply {
    send(svc, json_request("POST", "/users", body)).await
}

/// PATCHes the user at `path` with `body`.
async fn patch_user(svc: &UserServiceUnderTest, path: &str, body: &Value) -> Reply {
    send(svc, json_request("PATCH", path, body)).await
}

async fn create(svc: &UserServiceUnderTest, name: &str, email: &str) -> Value {
    let reply = post_user(svc, &json!({"name": name, "email": email})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

on_both_stores!(
    create_returns_the_user_with_defaults_and_location,
    duplicate_email_in_any_case_is_409,
    invisible_characters_and_repeated_keys_are_refused,
    invalid_fields_are_422_with_details,
    malformed_bodies_get_json_errors,
    get_finds_users_and_404s_unknown_or_malformed_ids,
    patch_changes_fields_and_keeps_emails_unique,
    delete_removes_and_frees_the_email,
    list_pages_through_everyone_in_creation_order,
    list_rejects_bad_parameters,
    unknown_routes_and_methods_are_json,
    health_and_metrics_endpoints_answer,
    request_ids_are_echoed_or_replaced,
);

async fn create_returns_the_user_with_defaults_and_location(backend: Backend) {
    let svc = user_service(backend).await;
    let reply = post_user(&svc, &json!({"name": "  Ada Lovelace ", "email": "Ada@Example.com"})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let user = reply.body;
    assert_eq!(user["name"], "Ada Lovelace", "names are trimmed");
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["role"], "user", "role defaults to user");
    assert_eq!(user["createdAt"], user["updatedAt"]);
    let id = user["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(reply.headers[header::LOCATION], format!("/users/{id}").as_str());
    let fetched = send(&svc, get(&format!("/users/{id}"))).await;
    assert_eq!(fetched.body, user);
}

async fn duplicate_email_in_any_case_is_409(backend: Backend) {
    let svc = user_service(backend).await;
    create(&svc, "Ada", "ada@example.com").await;
    let reply = post_user(&svc, &json!({"name": "Imposter", "email": "ADA@example.COM"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body, json!({"error": "a user with this email already exists"}));
}

async fn invisible_characters_and_repeated_keys_are_refused(backend: Backend) {
    let svc = user_service(backend).await;
    create(&svc, "Case", "case1@example.com").await;
    // A zero-width space would register a second account that looks like the first.
    let twin = post_user(&svc, &json!({"name": "Twin", "email": "case\u{200b}1@example.com"})).await;
    assert_eq!(twin.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", twin.body);
    assert_eq!(twin.body["details"]["email"], "is not a valid email address");
    for name in ["\u{200b}\u{200b}", "\u{3164}", "Eve\u{202e}gnp.exe", "\u{feff}Bom"] {
        let reply = post_user(&svc, &json!({"name": name, "email": "n@example.com"})).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {}",
            reply.body
        );
        assert!(reply.body["details"]["name"].is_string(), "{}", reply.body);
    }
    let repeated = Request::post("/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"name": "A", "email": "a@example.com", "email": "b@example.com"}"#,
        ))
        .expect("request");
    let reply = send(&svc, repeated).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        reply.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("duplicate key")),
        "{}",
        reply.body
    );
}

async fn invalid_fields_are_422_with_details(backend: Backend) {
    let svc = user_service(backend).await;
    let reply = post_user(
        &svc,
        &json!({"name": "x".repeat(101), "email": "not-an-email", "role": "root", "id": "1"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["error"], "validation failed");
    let details = reply.body["details"].as_object().expect("details");
    assert_eq!(details.len(), 4, "{details:?}");
    assert_eq!(details["id"], "unknown field");
    let reply = post_user(&svc, &json!({"name": 5})).await;
    assert_eq!(reply.body["details"]["name"], "must be a string");
    assert_eq!(reply.body["details"]["email"], "is required");
}

async fn malformed_bodies_get_json_errors(backend: Backend) {
    let svc = user_service(backend).await;
    let no_type = Request::post("/users")
        .body(Body::from(r#"{"name":"a","email":"a@b.co"}"#))
        .expect("request");
    let reply = send(&svc, no_type).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.body["error"].is_string());

    let broken = Request::post("/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\":"))
        .expect("request");
    let reply = send(&svc, broken).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("malformed JSON"))
    );

    let huge = json!({"name": "a".repeat(70_000), "email": "a@b.co"});
    let reply = post_user(&svc, &huge).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body, json!({"error": "request body too large"}));

    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep = Request::post("/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(nested))
        .expect("request");
    assert_eq!(send(&svc, deep).await.status, StatusCode::BAD_REQUEST);

    let not_object = post_user(&svc, &json!(["a"])).await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn get_finds_users_and_404s_unknown_or_malformed_ids(backend: Backend) {
    let svc = user_service(backend).await;
    let user = create(&svc, "Ada", "ada@example.com").await;
    let reply = send(&svc, get(&format!("/users/{}", user["id"].as_str().expect("id")))).await;
    assert_eq!(reply.status, StatusCode::OK);
    for path in [
        "/users/6f1c3e2a-8b1d-4c47-9a43-1f0a3b8e2c11",
        "/users/has%20space",
        "/users/..",
        &format!("/users/{}", "x".repeat(300)),
    ] {
        let reply = send(&svc, get(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body, json!({"error": "user not found"}));
    }
}

async fn patch_changes_fields_and_keeps_emails_unique(backend: Backend) {
    let svc = user_service(backend).await;
    let ada = create(&svc, "Ada", "ada@example.com").await;
    let bob = create(&svc, "Bob", "bob@example.com").await;
    let ada_path = format!("/users/{}", ada["id"].as_str().expect("id"));

    let reply = patch_user(&svc, &ada_path, &json!({"name": " Ada King ", "role": "admin"})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["name"], "Ada King");
    assert_eq!(reply.body["role"], "admin");
    assert_eq!(reply.body["email"], "ada@example.com");
    assert_eq!(reply.body["createdAt"], ada["createdAt"]);

    let taken = patch_user(&svc, &ada_path, &json!({"email": "BOB@example.com"})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);

    let own_in_other_case = patch_user(&svc, &ada_path, &json!({"email": "ADA@example.com"})).await;
    assert_eq!(own_in_other_case.status, StatusCode::OK, "{}", own_in_other_case.body);

    let moved = patch_user(&svc, &ada_path, &json!({"email": "ada.king@example.com"})).await;
    assert_eq!(moved.status, StatusCode::OK);
    // The old address is free again, the new one is taken.
    create(&svc, "Another Ada", "ada@example.com").await;
    let bob_path = format!("/users/{}", bob["id"].as_str().expect("id"));
    let reply = patch_user(&svc, &bob_path, &json!({"email": "Ada.King@example.com"})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    let empty = patch_user(&svc, &ada_path, &json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = patch_user(&svc, &ada_path, &json!({"email": "nope"})).await;
    assert_eq!(bad.body["details"]["email"], "is not a valid email address");
    let unknown = patch_user(&svc, "/users/missing", &json!({"name": "x"})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn delete_removes_and_frees_the_email(backend: Backend) {
    let svc = user_service(backend).await;
    let user = create(&svc, "Ada", "ada@example.com").await;
    let path = format!("/users/{}", user["id"].as_str().expect("id"));
    let delete = || Request::delete(path.as_str()).body(Body::empty()).expect("request");
    let reply = send(&svc, delete()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, Value::Null);
    assert_eq!(send(&svc, get(&path)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&svc, delete()).await.status, StatusCode::NOT_FOUND);
    create(&svc, "Ada again", "ADA@example.com").await;
}

async fn list_pages_through_everyone_in_creation_order(backend: Backend) {
    let svc = user_service(backend).await;
    let mut created = Vec::new();
    for i in 0..7 {
        let user = create(&svc, &format!("User {i}"), &format!("user{i}@example.com")).await;
        created.push((
            user["createdAt"].as_str().expect("time").to_owned(),
            user["id"].as_str().expect("id").to_owned(),
        ));
    }
    // Oldest first; users created in the same millisecond are ordered by id.
    created.sort();
    let created: Vec<Value> = created.into_iter().map(|(_, id)| Value::String(id)).collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/users?limit=3&cursor={c}"),
            None => "/users?limit=3".to_owned(),
        };
        let reply = send(&svc, get(&uri)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["total"], 7);
        let page = reply.body["data"].as_array().expect("data");
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|u| u["id"].clone()));
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created, "every user once, oldest first");
    let default = send(&svc, get("/users")).await;
    assert_eq!(default.body["data"].as_array().expect("data").len(), 7);
    assert_eq!(default.body["next_cursor"], Value::Null);
}

async fn list_rejects_bad_parameters(backend: Backend) {
    let svc = user_service(backend).await;
    for query in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "cursor=garbage",
        "cursor=12:has%20space",
    ] {
        let reply = send(&svc, get(&format!("/users?{query}"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.body["error"].is_string(), "{query}");
    }
    assert_eq!(
        send(&svc, get("/users?limit=1000&unknown=1")).await.status,
        StatusCode::OK
    );
}

async fn unknown_routes_and_methods_are_json(backend: Backend) {
    let svc = user_service(backend).await;
    let reply = send(&svc, get("/nope")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, json!({"error": "no route for GET /nope"}));
    let reply = send(&svc, Request::put("/users").body(Body::empty()).expect("request")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.body, json!({"error": "method not allowed"}));
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
}

async fn health_and_metrics_endpoints_answer(backend: Backend) {
    let svc = user_service(backend).await;
    let health = send(&svc, get("/health")).await;
    assert_eq!(health.body["status"], "healthy");
    assert_eq!(health.body["service"], "user-service");
    assert_eq!(send(&svc, get("/health/live")).await.body, json!({"status": "alive"}));
    let ready = send(&svc, get("/health/ready")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");

    create(&svc, "Ada", "ada@example.com").await;
    send(&svc, get("/users/some-id")).await;
    let response = svc.app.router().oneshot(get("/metrics")).await.expect("infallible");
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text =
        String::from_utf8(response.into_body().collect().await.expect("body").to_bytes().to_vec()).expect("utf8");
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/users",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/users/{id}",status="404"} 1"#),
        "raw ids never become labels"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("build_info{"));
    assert!(text.contains("process_resident_memory_bytes"));
    assert!(text.contains("users_total"));

    svc.shutdown.start_draining();
    let draining = send(&svc, get("/health/ready")).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        draining.body,
        json!({"error": "not ready", "details": {"shutdown": "draining"}})
    );
    assert_eq!(
        send(&svc, get("/health/live")).await.status,
        StatusCode::OK,
        "liveness ignores draining"
    );
}

async fn request_ids_are_echoed_or_replaced(backend: Backend) {
    let svc = user_service(backend).await;
    let with_id = Request::get("/health/live")
        .header("x-request-id", "client-id-1")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&svc, with_id).await.headers["x-request-id"], "client-id-1");
    let hostile = Request::get("/health/live")
        .header("x-request-id", "a".repeat(500))
        .body(Body::empty())
        .expect("request");
    let replaced = send(&svc, hostile).await.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
}

/// `router` behind the middleware both services use, with `request_timeout` as its deadline.
fn with_common_layers(router: axum::Router, request_timeout: std::time::Duration) -> axum::Router {
    use users_platform::{
        http::middleware::{Observer, common_layers},
        telemetry::metrics,
    };
    let registry = metrics::new_registry();
    let observer = Observer {
        service: "test",
        metrics: metrics::HttpMetrics::register(&registry),
    };
    common_layers(router, observer, request_timeout)
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_json_500() {
    async fn boom() -> &'static str {
        panic!("boom")
    }
    let router = axum::Router::new().route("/boom", axum::routing::get(boom));
    let router = with_common_layers(router, std::time::Duration::from_secs(1));
    let response = router.oneshot(get("/boom")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.expect("body").to_bytes()).expect("json");
    assert_eq!(body, json!({"error": "internal error"}));
}

#[tokio::test]
async fn a_handler_past_the_request_deadline_becomes_a_json_504() {
    let router = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            "late"
        }),
    );
    let router = with_common_layers(router, std::time::Duration::from_millis(50));
    let response = router.oneshot(get("/slow")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}
