//! Upgrade from the previous Node.js service: 500 users in its format (one JSON array under
//! the key `users`) are migrated at start by the real binary into the per-user layout, with
//! nothing lost, old ids kept, emails indexed and the blob kept under `users:legacy:*`.
//! A second start changes nothing, and two instances starting at once migrate exactly once.
//!
//! The data includes what the old read-modify-write races and lax validation left behind:
//! duplicate ids, the same email in two records (other case, stray spaces), numeric and
//! missing ids, ids that are not URL-safe, missing or odd roles and timestamps.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::helpers::{
    Process, RedisServer, client, free_port, get_json, index_problems, keyspace_dump, local, post, user_service_env,
    wait_ready,
};

const START: Duration = Duration::from_secs(10);
const RECORDS: usize = 500;

fn iso(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("format")
}

/// 500 records in the old format; see the module docs for the odd ones (index 470 on).
fn legacy_records() -> Vec<Value> {
    let base = OffsetDateTime::from_unix_timestamp(1_614_834_367).expect("time"); // 2021-03-04
    let at = |i: usize| iso(base + time::Duration::seconds(61 * i as i64) + time::Duration::milliseconds(i as i64));
    let mut records: Vec<Value> = (0..470)
        .map(|i| {
            let id = if i < 300 {
                (i + 1).to_string()
            } else {
                uuid::Uuid::new_v4().to_string()
            };
            json!({
                "id": id,
                "name": format!("Legacy {}", i + 1),
                "email": format!("legacy{}@example.com", i + 1),
                "role": if i % 7 == 0 { "admin" } else { "user" },
                // Ten records share one millisecond: pagination must not skip or repeat them.
                "createdAt": if (100..110).contains(&i) { at(100) } else { at(i) },
            })
        })
        .collect();
    let uuid_300 = records[300]["id"].clone();
    let oldest = iso(base - time::Duration::days(400));
    records.extend([
        json!({"id": "7", "name": "Duplicate id 7", "email": "dup-id-7@example.com", "role": "user", "createdAt": at(470)}),
        json!({"id": uuid_300, "name": "Duplicate uuid", "email": "dup-uuid@example.com", "role": "user", "createdAt": at(471)}),
        // Same address as record "5", other case, and older than it.
        json!({"id": "472", "name": "Older twin of 5", "email": "LEGACY5@Example.COM", "role": "user", "createdAt": oldest}),
        // Same address as record "6" once trimmed.
        json!({"id": "473", "name": "Spaced twin of 6", "email": "  legacy6@example.com ", "role": "user", "createdAt": at(473)}),
        json!({"id": 9001, "name": "Numeric id", "email": "numeric@example.com", "role": "user", "createdAt": at(474)}),
        json!({"id": "has space", "name": "Unsafe id", "email": "unsafe-id@example.com", "role": "user", "createdAt": at(475)}),
        json!({"name": "No id", "email": "no-id@example.com", "role": "user", "createdAt": at(476)}),
        json!({"id": "477", "name": "No role", "email": "no-role@example.com", "createdAt": at(477)}),
        json!({"id": "478", "name": "Odd role", "email": "odd-role@example.com", "role": "superuser", "createdAt": at(478)}),
        json!({"id": "479", "name": "Epoch millis", "email": "epoch@example.com", "role": "user", "createdAt": 1_600_000_000_000_i64}),
        json!({"id": "480", "name": "No createdAt", "email": "no-created@example.com", "role": "user"}),
        json!({"id": "481", "name": "Bad createdAt", "email": "bad-created@example.com", "role": "user", "createdAt": "yesterday"}),
        json!({"id": "482", "name": "  Padded name  ", "email": "padded@example.com", "role": "admin", "createdAt": at(482)}),
        json!({"id": "483", "name": "Zoë 🚀 Ünïcode", "email": "unicode@example.com", "role": "user", "createdAt": at(483)}),
        json!({"id": "484", "name": "Empty email", "email": "", "role": "user", "createdAt": at(484)}),
        json!({"id": "485", "name": "With updatedAt", "email": "updated@example.com", "role": "user",
               "createdAt": at(485), "updatedAt": at(486)}),
    ]);
    for n in 0..14 {
        records.push(json!({
            "id": format!("tie-{n}"),
            "name": format!("Tie {n}"),
            "email": format!("tie{n}@example.com"),
            "role": "user",
            "createdAt": "2021-06-01T00:00:00.000Z",
        }));
    }
    assert_eq!(records.len(), RECORDS);
    records
}

/// What a migrated record must look like: (trimmed name, trimmed email).
fn identity(record: &Value) -> (String, String) {
    (
        record["name"].as_str().unwrap_or_default().trim().to_owned(),
        record["email"].as_str().unwrap_or_default().trim().to_owned(),
    )
}

fn put_legacy_blob(redis: &RedisServer) -> String {
    let blob = serde_json::to_string(&legacy_records()).expect("json");
    let mut conn = redis.connection();
    redis::cmd("SET")
        .arg("users")
        .arg(&blob)
        .exec(&mut conn)
        .expect("SET users");
    blob
}

/// Every user through the API, page by page (small pages, so cursors cross the ties).
async fn list_all(http: &reqwest::Client, port: u16) -> Vec<Value> {
    let mut users = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{}/users?limit=37", local(port));
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = get_json(http, &url).await;
        users.extend(page["data"].as_array().expect("data").iter().cloned());
        assert_eq!(page["total"], RECORDS, "total");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return users,
        }
    }
    panic!("pagination did not end");
}

fn migration_lines(process: &Process) -> Vec<Value> {
    process
        .log_lines()
        .into_iter()
        .filter(|line| line["message"] == "migrated legacy users")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_legacy_users_are_migrated_once_and_nothing_is_lost() {
    let redis = RedisServer::start().await;
    let blob = put_legacy_blob(&redis);
    let records = legacy_records_from(&blob);
    let port = free_port();
    let spawned = std::time::Instant::now();
    let first = Process::spawn(&["user-service"], &user_service_env(&redis, port));
    let http = client();
    wait_ready(&http, &format!("{}/health/ready", local(port)), START).await;
    crate::helpers::figure("legacy_500_start_to_ready_ms", spawned.elapsed().as_millis());

    let users = list_all(&http, port).await;
    assert_eq!(users.len(), RECORDS, "every record became a user");
    let ids: HashSet<&str> = users.iter().map(|u| u["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), RECORDS, "no user listed twice");
    let created: Vec<&str> = users
        .iter()
        .map(|u| u["createdAt"].as_str().expect("createdAt"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // Nothing lost: the migrated (name, email) pairs are exactly the legacy ones.
    let mut expected: Vec<(String, String)> = records.iter().map(identity).collect();
    let mut got: Vec<(String, String)> = users.iter().map(identity).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // Old ids are kept where they were usable; the rest got fresh ones.
    let by_identity: HashMap<(String, String), &Value> = users.iter().map(|u| (identity(u), u)).collect();
    let mut seen_ids = HashSet::new();
    for record in &records {
        let user = by_identity
            .get(&identity(record))
            .unwrap_or_else(|| panic!("{record} was migrated"));
        let old_id = match &record["id"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let usable = old_id
            .as_ref()
            .is_some_and(|id| !id.contains(' ') && seen_ids.insert(id.clone()));
        if usable {
            assert_eq!(user["id"].as_str(), old_id.as_deref(), "{record} keeps its id");
        } else {
            assert_ne!(user["id"].as_str(), old_id.as_deref(), "{record} needs a new id");
        }
        let fetched = http
            .get(format!("{}/users/{}", local(port), user["id"].as_str().expect("id")))
            .send()
            .await
            .expect("get");
        assert_eq!(fetched.status(), 200, "{record}");
        assert_eq!(&fetched.json::<Value>().await.expect("json"), *user);
    }
    let user = |email: &str| -> &Value {
        users
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("a user with {email}"))
    };
    let parse = |v: &Value| OffsetDateTime::parse(v.as_str().expect("timestamp"), &Rfc3339).expect("RFC 3339");
    assert_eq!(user("legacy1@example.com")["role"], "admin");
    assert_eq!(user("no-role@example.com")["role"], "user");
    assert_eq!(user("odd-role@example.com")["role"], "user");
    assert_eq!(user("padded@example.com")["name"], "Padded name");
    assert_eq!(user("epoch@example.com")["createdAt"], "2020-09-13T12:26:40.000Z");
    assert_eq!(
        parse(&user("updated@example.com")["updatedAt"]),
        parse(&records[485]["updatedAt"])
    );
    assert_eq!(
        parse(&user("legacy2@example.com")["createdAt"]),
        parse(&records[1]["createdAt"])
    );

    // Emails are indexed: every legacy address (in any case) is taken.
    for email in [
        "legacy1@example.com",
        "LEGACY5@example.com",
        "Legacy6@Example.com",
        "tie3@example.com",
        "numeric@example.com",
    ] {
        let response = post(
            &http,
            format!("{}/users", local(port)),
            &json!({"name": "Newcomer", "email": email}),
        )
        .await;
        assert_eq!(response.status(), 409, "{email} is already registered");
    }

    // The layout is consistent (two legacy records may share an address; one owns the entry).
    let mut conn = redis.connection();
    assert_eq!(index_problems(&mut conn, true), Vec::<String>::new());
    let email_keys: Vec<String> = redis::cmd("KEYS").arg("users:email:*").query(&mut conn).expect("KEYS");
    assert_eq!(email_keys.len(), RECORDS - 2, "one entry per distinct address");

    // The blob is kept, renamed, byte for byte; the old key is gone.
    let old: bool = redis::cmd("EXISTS").arg("users").query(&mut conn).expect("EXISTS");
    assert!(!old, "`users` is gone");
    let backups: Vec<String> = redis::cmd("KEYS").arg("users:legacy:*").query(&mut conn).expect("KEYS");
    assert_eq!(backups.len(), 1, "{backups:?}");
    let kept: String = redis::cmd("GET").arg(&backups[0]).query(&mut conn).expect("GET");
    assert_eq!(kept, blob);
    let reported = migration_lines(&first);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0]["migrated"], RECORDS);

    // A second start changes nothing.
    let before = keyspace_dump(&mut conn);
    drop(first);
    let port = free_port();
    let second = Process::spawn(&["user-service"], &user_service_env(&redis, port));
    wait_ready(&http, &format!("{}/health/ready", local(port)), START).await;
    assert_eq!(list_all(&http, port).await.len(), RECORDS);
    let after = keyspace_dump(&mut conn);
    assert_eq!(before.len(), after.len());
    assert!(before == after, "the second start changed the keyspace");
    assert!(
        migration_lines(&second).is_empty(),
        "nothing to migrate the second time"
    );
}

/// Parses the blob back (the test's own view of the data it stored).
fn legacy_records_from(blob: &str) -> Vec<Value> {
    serde_json::from_str(blob).expect("json array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_starting_at_once_migrate_exactly_once() {
    let redis = RedisServer::start().await;
    let blob = put_legacy_blob(&redis);
    let (port_a, port_b) = (free_port(), free_port());
    let a = Process::spawn(&["user-service"], &user_service_env(&redis, port_a));
    let b = Process::spawn(&["user-service"], &user_service_env(&redis, port_b));
    let http = client();
    wait_ready(&http, &format!("{}/health/ready", local(port_a)), START).await;
    wait_ready(&http, &format!("{}/health/ready", local(port_b)), START).await;

    let via_a = list_all(&http, port_a).await;
    let via_b = list_all(&http, port_b).await;
    assert_eq!(via_a.len(), RECORDS);
    assert_eq!(via_a, via_b, "both instances see the same users");
    let mut conn = redis.connection();
    let hashes: Vec<String> = redis::cmd("KEYS").arg("users:user:*").query(&mut conn).expect("KEYS");
    let created: u64 = redis::cmd("ZCARD")
        .arg("users:by_created")
        .query(&mut conn)
        .expect("ZCARD");
    assert_eq!((hashes.len(), created), (RECORDS, RECORDS as u64), "no duplicates");
    let backups: Vec<String> = redis::cmd("KEYS").arg("users:legacy:*").query(&mut conn).expect("KEYS");
    assert_eq!(backups.len(), 1, "{backups:?}");
    let kept: String = redis::cmd("GET").arg(&backups[0]).query(&mut conn).expect("GET");
    assert_eq!(kept, blob);
    assert_eq!(index_problems(&mut conn, true), Vec::<String>::new());
    let reports: Vec<Value> = migration_lines(&a).into_iter().chain(migration_lines(&b)).collect();
    assert_eq!(reports.len(), 1, "exactly one instance migrated: {reports:?}");
    assert_eq!(reports[0]["migrated"], RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_during_start_up_leaves_a_state_the_next_one_completes() {
    // The migration is one Lua script: a crash lands before it (nothing written) or after it
    // (everything written). Kill a first instance as early as possible, start another.
    let redis = RedisServer::start().await;
    put_legacy_blob(&redis);
    let port = free_port();
    let mut doomed = Process::spawn(&["user-service"], &user_service_env(&redis, port));
    doomed.signal(libc::SIGKILL);
    doomed.wait_exit(Duration::from_secs(5)).await;
    let mut conn = redis.connection();
    let partial: u64 = redis::cmd("ZCARD")
        .arg("users:by_created")
        .query(&mut conn)
        .expect("ZCARD");
    let legacy_left: bool = redis::cmd("EXISTS").arg("users").query(&mut conn).expect("EXISTS");
    assert!(
        (partial == 0 && legacy_left) || (partial == RECORDS as u64 && !legacy_left),
        "all or nothing: {partial} users, legacy key present: {legacy_left}"
    );
    crate::helpers::figure("legacy_kill_during_start_up_found_users", partial);
    let port = free_port();
    let _next = Process::spawn(&["user-service"], &user_service_env(&redis, port));
    let http = client();
    wait_ready(&http, &format!("{}/health/ready", local(port)), START).await;
    assert_eq!(list_all(&http, port).await.len(), RECORDS);
    assert_eq!(index_problems(&mut conn, true), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_legacy_email_is_indexed_to_its_oldest_owner() {
    // src/users/store/redis/legacy.rs: "a duplicate email keeps the record but only the oldest owner is
    // indexed". Record "472" (LEGACY5@Example.COM) is older than record "5" but comes later
    // in the array.
    let redis = RedisServer::start().await;
    put_legacy_blob(&redis);
    let port = free_port();
    let _service = Process::spawn(&["user-service"], &user_service_env(&redis, port));
    let http = client();
    wait_ready(&http, &format!("{}/health/ready", local(port)), START).await;
    let mut conn = redis.connection();
    let owners: BTreeMap<&str, Option<String>> = ["legacy5@example.com", "legacy6@example.com"]
        .into_iter()
        .map(|email| {
            let owner = redis::cmd("GET")
                .arg(format!("users:email:{email}"))
                .query(&mut conn)
                .expect("GET");
            (email, owner)
        })
        .collect();
    assert_eq!(
        owners["legacy6@example.com"].as_deref(),
        Some("6"),
        "record 6 is older than 473"
    );
    assert_eq!(
        owners["legacy5@example.com"].as_deref(),
        Some("472"),
        "the oldest owner of legacy5@example.com is record 472 (2020), not record 5 (2021)"
    );
}
