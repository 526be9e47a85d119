//! The embedded store: the same semantics as Redis, kept in one mutex-guarded structure.
//! Each operation holds the lock only for its in-memory work and never across an await, so
//! operations are atomic exactly as the Redis scripts are.

use std::{
    collections::{BTreeSet, HashMap},
    ops::Bound,
    sync::Mutex,
};

use time::OffsetDateTime;

use super::{Cursor, Page, PageRequest, StoreError, UserStore};
use crate::users::model::{User, UserId, UserPatch};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<UserId, User>,
    /// (created millis, id): the listing order, as Redis' sorted set orders (score, member).
    by_created: BTreeSet<(i64, UserId)>,
    /// Lowercased email -> owner.
    emails: HashMap<String, UserId>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // operation checks before it mutates. So a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl UserStore for MemoryStore {
    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = user.email.key();
        if inner.emails.contains_key(&key) {
            return Err(StoreError::EmailTaken);
        }
        inner.emails.insert(key, user.id.clone());
        inner.by_created.insert((user.created_millis(), user.id.clone()));
        inner.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn get(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(id).cloned())
    }

    async fn update(&self, id: &UserId, patch: &UserPatch, now: OffsetDateTime) -> Result<User, StoreError> {
        let mut inner = self.lock();
        let Some(current) = inner.users.get(id) else {
            return Err(StoreError::NotFound);
        };
        let old_key = current.email.key();
        let new_key = patch.email.as_ref().map(|email| email.key());
        if let Some(new_key) = &new_key
            && inner.emails.get(new_key).is_some_and(|owner| owner != id)
        {
            return Err(StoreError::EmailTaken);
        }
        let mut updated = current.clone();
        updated.apply(patch, now);
        if let Some(new_key) = new_key.filter(|k| *k != old_key) {
            if inner.emails.get(&old_key) == Some(id) {
                inner.emails.remove(&old_key);
            }
            inner.emails.insert(new_key, id.clone());
        }
        inner.users.insert(id.clone(), updated.clone());
        Ok(updated)
    }

    async fn delete(&self, id: &UserId) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Some(user) = inner.users.remove(id) else {
            return Err(StoreError::NotFound);
        };
        inner.by_created.remove(&(user.created_millis(), id.clone()));
        let key = user.email.key();
        if inner.emails.get(&key) == Some(id) {
            inner.emails.remove(&key);
        }
        Ok(())
    }

    async fn list(&self, page: &PageRequest) -> Result<Page, StoreError> {
        let inner = self.lock();
        let start = match &page.after {
            Some(cursor) => Bound::Excluded((cursor.created_millis, cursor.id.clone())),
            None => Bound::Unbounded,
        };
        let mut users: Vec<User> = inner
            .by_created
            .range((start, Bound::Unbounded))
            .take(page.limit + 1)
            .filter_map(|(_, id)| inner.users.get(id).cloned())
            .collect();
        let more = users.len() > page.limit;
        users.truncate(page.limit);
        let next = if more { users.last().map(Cursor::after) } else { None };
        Ok(Page {
            users,
            total: inner.users.len() as u64,
            next,
        })
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().users.len() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
