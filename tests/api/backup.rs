//! Backups and the documented restore (docs/runbook.md, "Restore from backup"), with the real
//! tools: a populated Redis is backed up with `redis-cli --rdb` (a consistent snapshot taken
//! over the replication protocol, as the backup job does), the file is verified with
//! `redis-check-rdb` and filed by `users-platform redis-backup` (the job's three steps), Redis
//! is wiped, and the runbook's steps bring every user and the email index back.

use std::{process::Command, time::Duration};

use serde_json::json;

use crate::helpers::{self, PASSWORD, eventually, figure};

#[tokio::test]
async fn a_backup_restores_every_user_and_the_email_index() {
    let mut stack = helpers::redis_stack(Duration::from_secs(2)).await;
    let http = helpers::client();
    let mut users = Vec::new();
    for n in 0..200 {
        let body = json!({"name": format!("Backed Up {n}"), "email": format!("Backup.{n}@Example.com")});
        let response = helpers::post(&http, stack.api("/users"), &body).await;
        assert_eq!(response.status(), 201);
        users.push(response.json::<serde_json::Value>().await.expect("user"));
    }
    let redis = stack.user_service.redis.as_mut().expect("redis backend");
    let before = helpers::keyspace_dump(&mut redis.connection());

    // Back up and verify, as the backup job does.
    let backups = helpers::temp_dir("backup");
    let incoming = backups.path().join("incoming.rdb");
    let taken = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
            "--no-auth-warning",
            "-a",
            PASSWORD,
        ])
        .arg("--rdb")
        .arg(&incoming)
        .output()
        .expect("redis-cli on PATH");
    assert!(taken.status.success(), "redis-cli --rdb: {taken:?}");
    let checked = Command::new("redis-check-rdb")
        .arg(&incoming)
        .output()
        .expect("redis-check-rdb on PATH");
    assert!(checked.status.success(), "redis-check-rdb: {checked:?}");
    let filed = Command::new(env!("CARGO_BIN_EXE_users-platform"))
        .arg("redis-backup")
        .env("BACKUP_DIR", backups.path())
        .env("BACKUP_INCOMING", &incoming)
        .env("BACKUP_KEEP", "7")
        .output()
        .expect("users-platform redis-backup");
    assert!(filed.status.success(), "redis-backup: {filed:?}");
    let snapshots: Vec<std::path::PathBuf> = std::fs::read_dir(backups.path())
        .expect("backup dir")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rdb"))
        .collect();
    let [backup] = snapshots.as_slice() else {
        panic!("one filed snapshot and no incoming file: {snapshots:?}")
    };
    assert!(
        backup
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("users-")),
        "{backup:?}"
    );
    figure(
        "backup: RDB bytes for 200 users",
        std::fs::metadata(backup).expect("backup file").len(),
    );

    // Lose everything: the data and the files.
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.connection()).expect("FLUSHALL");
    redis.kill();
    for entry in std::fs::read_dir(redis.dir()).expect("data dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove");
        } else {
            std::fs::remove_file(&path).expect("remove");
        }
    }

    // The runbook's restore: the RDB as dump.rdb, start with the AOF off so Redis loads it,
    // turn the AOF on (Redis writes a fresh one from memory), then run as always.
    std::fs::copy(backup, redis.dir().join("dump.rdb")).expect("copy backup");
    redis.restart_with(&["--appendonly", "no"]).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut redis.connection())
        .expect("CONFIG SET appendonly yes");
    eventually(
        Duration::from_secs(20),
        "the new append-only file to be written",
        || {
            let info = redis.info("persistence");
            std::future::ready(
                info.contains("aof_enabled:1")
                    && info.contains("aof_rewrite_in_progress:0")
                    && info.contains("aof_rewrite_scheduled:0")
                    && info.contains("aof_last_bgrewrite_status:ok"),
            )
        },
    )
    .await;
    redis.restart().await;

    let after = helpers::keyspace_dump(&mut redis.connection());
    assert_eq!(after, before, "the restored keyspace is the backed-up one");
    let problems = helpers::index_problems(&mut redis.connection(), false);
    assert!(problems.is_empty(), "{problems:#?}");

    // Through the API: every user, and the email index (a duplicate in another case is refused).
    helpers::wait_ready(&http, &stack.users.url("/health/ready"), Duration::from_secs(10)).await;
    for user in &users {
        let id = user["id"].as_str().expect("id");
        assert_eq!(
            helpers::get_json(&http, stack.api(&format!("/users/{id}"))).await,
            *user
        );
    }
    let duplicate = helpers::post(
        &http,
        stack.api("/users"),
        &json!({"name": "Imposter", "email": "BACKUP.7@example.COM"}),
    )
    .await;
    let status = duplicate.status();
    assert_eq!(status, 409, "{:?}", duplicate.text().await);
}
