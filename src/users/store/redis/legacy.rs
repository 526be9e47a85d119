//! One-time upgrade from the previous Node.js service, which kept every user in one JSON
//! array under the key `users` and rewrote it on each change. It is part of the Redis store
//! (its layout and scripts are the store's own business) and runs from
//! [`UserStore::prepare`](crate::users::store::UserStore::prepare).
//!
//! The array is parsed here (lenient: the old service validated little), then handed with
//! the exact value it was parsed from to one Lua script that writes the new layout and renames
//! the blob. If the blob changed in between (an old instance still writing), the script
//! refuses and we parse again. Records are never dropped: odd names and emails are kept as
//! they were; ids that are not URL-safe get a new id (logged); a duplicate email keeps the
//! record but only the oldest owner is indexed (logged).

use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::timestamp::{format as format_timestamp, truncate_to_millis, unix_millis};

use super::{BY_CREATED_KEY, EMAIL_KEY_PREFIX, RedisStore, USER_KEY_PREFIX, script_call};
use crate::users::{
    model::{Role, UserId},
    store::StoreError,
};

const LEGACY_KEY: &str = "users";
const BACKUP_KEY_PREFIX: &str = "users:legacy:";

/// What a migration did; logged, and returned for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MigrationReport {
    pub migrated: u64,
    pub already_present: u64,
    pub unindexed_duplicate_emails: u64,
    pub backup_key: String,
}

/// One record of the old format, normalised into the new hash fields.
#[derive(Debug)]
struct LegacyRecord {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    created_at: String,
    updated_at: String,
    created_millis: i64,
    email_key: String,
}

/// Migrates the legacy blob if there is one. `Ok(None)`: nothing to do.
pub(super) async fn migrate(store: &RedisStore) -> Result<Option<MigrationReport>, StoreError> {
    for _attempt in 0..5 {
        let kind: String = store.query("migrate", redis::cmd("TYPE").arg(LEGACY_KEY)).await?;
        match kind.as_str() {
            "none" => return Ok(None),
            "string" => {}
            other => {
                tracing::error!(
                    key = LEGACY_KEY,
                    kind = other,
                    "legacy key has an unexpected type; not migrating"
                );
                return Ok(None);
            }
        }
        let Some(blob): Option<String> = store.query("migrate", redis::cmd("GET").arg(LEGACY_KEY)).await? else {
            return Ok(None);
        };
        let mut records = match parse(&blob) {
            Ok(records) => records,
            Err(why) => {
                tracing::error!(key = LEGACY_KEY, error = %why, "legacy value is not the old JSON array; not migrating");
                return Ok(None);
            }
        };
        // Oldest first, so a legacy email shared by several records is indexed to its oldest
        // owner (the script indexes the first it writes). The sort is stable: ties keep blob order.
        records.sort_by_key(|r| r.created_millis);
        let backup_key = format!("{BACKUP_KEY_PREFIX}{}", unix_millis(OffsetDateTime::now_utc()));
        let script = &store.scripts.migrate_legacy;
        let mut call = script_call(script, &[LEGACY_KEY, &backup_key, BY_CREATED_KEY]);
        call.arg(&blob).arg(USER_KEY_PREFIX).arg(EMAIL_KEY_PREFIX);
        for r in &records {
            call.arg(&r.id)
                .arg(&r.name)
                .arg(&r.email)
                .arg(r.role)
                .arg(&r.created_at)
                .arg(&r.updated_at)
                .arg(r.created_millis)
                .arg(&r.email_key);
        }
        let reply: Vec<i64> = store.write("migrate", script, call).await?;
        match reply.as_slice() {
            [-2] => return Ok(None),
            [-1] => {
                tracing::warn!("legacy value changed while migrating; parsing it again");
                continue;
            }
            [migrated, existing, duplicates] => {
                let report = MigrationReport {
                    migrated: *migrated as u64,
                    already_present: *existing as u64,
                    unindexed_duplicate_emails: *duplicates as u64,
                    backup_key,
                };
                tracing::info!(
                    migrated = report.migrated,
                    already_present = report.already_present,
                    unindexed_duplicate_emails = report.unindexed_duplicate_emails,
                    backup_key = %report.backup_key,
                    "migrated legacy users"
                );
                return Ok(Some(report));
            }
            other => {
                return Err(StoreError::Unavailable(format!("unexpected migration reply {other:?}")));
            }
        }
    }
    Err(StoreError::Unavailable(
        "legacy value kept changing during migration".into(),
    ))
}

fn parse(blob: &str) -> Result<Vec<LegacyRecord>, String> {
    let value: Value = serde_json::from_str(blob).map_err(|err| err.to_string())?;
    let Value::Array(items) = value else {
        return Err("not a JSON array".into());
    };
    let now = truncate_to_millis(OffsetDateTime::now_utc());
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut record = record(index, item, now)?;
            // The old read-modify-write races could duplicate an id; keep both records.
            if !seen.insert(record.id.clone()) {
                let id = UserId::generate();
                tracing::warn!(legacy_id = %record.id, new_id = %id, "duplicate legacy id; assigned a new id");
                record.id = id.as_str().to_owned();
                seen.insert(record.id.clone());
            }
            Ok(record)
        })
        .collect()
}

fn record(index: usize, item: &Value, now: OffsetDateTime) -> Result<LegacyRecord, String> {
    let object = item
        .as_object()
        .ok_or_else(|| format!("record {index} is not an object"))?;
    let text = |field: &str| match object.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let raw_id = text("id").unwrap_or_default();
    let id = match UserId::parse(&raw_id) {
        Some(id) => id,
        None => {
            let id = UserId::generate();
            tracing::warn!(legacy_id = %raw_id, new_id = %id, "legacy id is not URL-safe; assigned a new id");
            id
        }
    };
    let email = text("email").unwrap_or_default().trim().to_owned();
    let created = timestamp(object.get("createdAt")).unwrap_or(now);
    let updated = timestamp(object.get("updatedAt")).unwrap_or(created);
    Ok(LegacyRecord {
        id: id.as_str().to_owned(),
        name: text("name").unwrap_or_default().trim().to_owned(),
        email_key: email.to_lowercase(),
        email,
        role: text("role")
            .as_deref()
            .and_then(Role::parse)
            .unwrap_or_default()
            .as_str(),
        created_at: format_timestamp(created),
        updated_at: format_timestamp(updated),
        created_millis: unix_millis(created),
    })
}

/// The old service wrote `new Date().toISOString()`; some records hold epoch milliseconds.
fn timestamp(value: Option<&Value>) -> Option<OffsetDateTime> {
    let at = match value? {
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok()?,
        Value::Number(n) => OffsetDateTime::from_unix_timestamp_nanos(i128::from(n.as_i64()?) * 1_000_000).ok()?,
        _ => return None,
    };
    Some(truncate_to_millis(at.to_offset(time::UtcOffset::UTC)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_parse_keeps_every_record() {
        let blob = r#"[
            {"id": "1", "name": " Ada ", "email": "Ada@Example.com", "role": "admin", "createdAt": "2023-01-02T03:04:05.678Z"},
            {"id": 2, "name": "Bob", "email": "bob@example.com", "createdAt": 1700000000000},
            {"id": "has space", "name": "", "email": "weird", "role": "root"}
        ]"#;
        let records = parse(blob).expect("parses");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].id, "1");
        assert_eq!(records[0].email_key, "ada@example.com");
        assert_eq!(records[0].created_millis, 1_672_628_645_678);
        assert_eq!(records[1].id, "2");
        assert_eq!(records[1].role, "user");
        assert_ne!(records[2].id, "has space");
        assert_eq!(records[2].email, "weird");
    }

    #[test]
    fn non_arrays_are_refused() {
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }
}
