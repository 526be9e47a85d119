//! Where users live. One trait, two implementations with identical semantics: Redis for
//! deployments, and an embedded in-memory store so `cargo run` works with nothing installed.
//! The shared behaviour is pinned by one test suite run against both (tests/api/store_contract.rs).

use time::OffsetDateTime;

use super::model::{User, UserId, UserPatch};

pub mod memory;
pub mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Default and maximum page sizes for listing.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user not found")]
    NotFound,
    #[error("email already taken")]
    EmailTaken,
    /// The backend failed or missed its deadline; the message is for logs only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Position after which a page starts: users are ordered by (creation millis, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_millis: i64,
    pub id: UserId,
}

impl Cursor {
    pub fn after(user: &User) -> Self {
        Self {
            created_millis: user.created_millis(),
            id: user.id.clone(),
        }
    }

    /// Cursors are opaque to clients; this is their wire form.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_millis, self.id)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (millis, id) = raw.split_once(':')?;
        Some(Self {
            created_millis: millis.parse().ok()?,
            id: UserId::parse(id)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub users: Vec<User>,
    pub total: u64,
    /// Set when more users follow this page.
    pub next: Option<Cursor>,
}

#[async_trait::async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user unless its email (case-insensitively) is taken.
    async fn create(&self, user: &User) -> Result<(), StoreError>;
    async fn get(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// Applies `patch` atomically: the email index and the user change together or not at all.
    async fn update(&self, id: &UserId, patch: &UserPatch, now: OffsetDateTime) -> Result<User, StoreError>;
    async fn delete(&self, id: &UserId) -> Result<(), StoreError>;
    async fn list(&self, page: &PageRequest) -> Result<Page, StoreError>;
    async fn count(&self) -> Result<u64, StoreError>;
    /// Whether the backend answers now.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Short name for logs and metrics.
    fn kind(&self) -> &'static str;
    /// Start-up work the backend needs before it may serve (Redis: the upgrade from the
    /// previous service's format). Readiness waits for it; the caller retries until it
    /// succeeds, so it must be safe to run again.
    async fn prepare(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The `host:port` of the node writes go to, when the backend has one (Redis).
    fn primary_address(&self) -> Option<String> {
        None
    }
    /// Why the backend is unreachable, found with a fresh connection (the pooled one only
    /// reports that its deadline passed). `None` when it answers.
    async fn diagnose(&self) -> Option<String> {
        None
    }
}
