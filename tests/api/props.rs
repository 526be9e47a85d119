//! Property tests: no input makes a handler panic or answer 5xx.

use axum::{body::Body, http::Request};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{Backend, user_service};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::String),
        "[ a-zA-Z0-9._%+-]{0,20}@[a-zA-Z0-9.-]{0,20}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!(["a"])),
        Just(json!({"nested": true})),
        "[ \\PC]{0,120}".prop_map(Value::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn create_and_patch_never_fail_with_5xx(name in field(), email in field(), role in field(), extra in proptest::option::of("[a-z]{1,8}")) {
        let rt = runtime();
        rt.block_on(async {
            let svc = user_service(Backend::Memory).await;
            let mut body = json!({"name": name, "email": email, "role": role});
            if let Some(key) = extra {
                body[key] = json!(1);
            }
            for (method, uri) in [("POST", "/users"), ("PATCH", "/users/some-id")] {
                let request = Request::builder().method(method).uri(uri).header("content-type", "application/json").body(Body::from(body.to_string())).expect("request");
                let status = svc.app.router().oneshot(request).await.expect("infallible").status();
                prop_assert!(status.is_client_error() || status.is_success(), "{} {} -> {}", method, body, status);
            }
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_are_client_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512), content_type in prop_oneof![Just("application/json"), Just("text/plain"), Just("application/json; charset=utf-8"), Just("")]) {
        let rt = runtime();
        rt.block_on(async {
            let svc = user_service(Backend::Memory).await;
            let mut request = Request::post("/users");
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            let response = svc.app.router().oneshot(request.body(Body::from(bytes)).expect("request")).await.expect("infallible");
            prop_assert!(response.status().is_client_error() || response.status().is_success());
            Ok(())
        })?;
    }
}
