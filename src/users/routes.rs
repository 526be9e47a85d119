//! user-service handlers: extract, call the store, return `Result<_, ApiError>`.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header::LOCATION},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{
    model::{InvalidFields, NewUser, User, UserId, UserPatch},
    store::{Cursor, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest, StoreError, UserStore},
};
use crate::http::{
    ApiError,
    json::{JsonBody, QueryParams},
};

pub type SharedStore = Arc<dyn UserStore>;

/// Query of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of users, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub data: Vec<User>,
    /// Number of users in the store.
    pub total: u64,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl ListParams {
    fn into_page_request(self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_PAGE_SIZE}")))?,
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| ApiError::BadRequest("cursor is not valid".into()))?),
        };
        Ok(PageRequest { limit, after })
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::UserNotFound,
            StoreError::EmailTaken => ApiError::EmailTaken,
            StoreError::Unavailable(detail) => {
                // The detail is for operators; clients get a generic 503.
                tracing::warn!(error = %detail, "store unavailable");
                ApiError::StoreUnavailable
            }
        }
    }
}

impl From<InvalidFields> for ApiError {
    fn from(invalid: InvalidFields) -> Self {
        ApiError::Validation(invalid.into_map())
    }
}

/// Ids that cannot exist are simply not found: a malformed id is no different to a client.
fn parse_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).ok_or(ApiError::UserNotFound)
}

pub async fn list_users(
    State(store): State<SharedStore>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let page = store.list(&params.into_page_request()?).await?;
    Ok(Json(UserPage {
        data: page.users,
        total: page.total,
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

pub async fn get_user(State(store): State<SharedStore>, Path(id): Path<String>) -> Result<Json<User>, ApiError> {
    let id = parse_id(&id)?;
    store.get(&id).await?.map(Json).ok_or(ApiError::UserNotFound)
}

pub async fn create_user(
    State(store): State<SharedStore>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 1], Json<User>), ApiError> {
    let new_user = NewUser::parse(&body)?;
    let user = User::create(new_user, OffsetDateTime::now_utc());
    store.create(&user).await?;
    tracing::info!(user_id = %user.id, "user created");
    Ok((
        StatusCode::CREATED,
        [(LOCATION, format!("/users/{}", user.id))],
        Json(user),
    ))
}

pub async fn update_user(
    State(store): State<SharedStore>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<User>, ApiError> {
    let id = parse_id(&id)?;
    let patch = UserPatch::parse(&body)?;
    Ok(Json(store.update(&id, &patch, OffsetDateTime::now_utc()).await?))
}

pub async fn delete_user(State(store): State<SharedStore>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    store.delete(&id).await?;
    tracing::info!(user_id = %id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
