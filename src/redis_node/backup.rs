//! `users-platform redis-backup`: the last step of the backup CronJob. The steps before it run
//! the Redis image's own binaries (no shell needed): `redis-cli --rdb` writes the snapshot to
//! the incoming path, `redis-check-rdb` verifies it; a Job runs its init containers in order
//! and stops at the first failure, so this step only ever sees a verified snapshot. It files
//! it as `users-<UTC time>.rdb` and deletes all but the newest `keep`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use time::{OffsetDateTime, macros::format_description};

use crate::config::RedisBackupConfig;

const PREFIX: &str = "users-";
const SUFFIX: &str = ".rdb";
/// Every RDB file starts with these bytes (then a four-digit version).
const RDB_MAGIC: &[u8] = b"REDIS";

/// What one rotation did.
#[derive(Debug, PartialEq, Eq)]
pub struct Rotation {
    pub filed: PathBuf,
    pub kept: usize,
    pub removed: Vec<PathBuf>,
}

/// The name a snapshot taken at `at` is kept under; names sort like times.
pub fn snapshot_name(at: OffsetDateTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = at
        .to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// Files `incoming` in `dir` as the snapshot of `at`, then deletes the oldest snapshots beyond
/// `keep`. Files that are not snapshots (other names) are never touched.
pub fn rotate(incoming: &Path, dir: &Path, keep: usize, at: OffsetDateTime) -> anyhow::Result<Rotation> {
    let mut head = [0u8; 5];
    let read = std::fs::File::open(incoming)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
        .with_context(|| format!("reading {}", incoming.display()));
    if read.is_err() || head != RDB_MAGIC {
        read?;
        bail!("{} is not an RDB file", incoming.display());
    }
    let filed = dir.join(snapshot_name(at));
    if filed.exists() {
        bail!("{} exists already; one snapshot per second at most", filed.display());
    }
    std::fs::rename(incoming, &filed)
        .with_context(|| format!("moving {} to {}", incoming.display(), filed.display()))?;
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(PREFIX) && name.ends_with(SUFFIX))
        })
        .collect();
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = snapshots.drain(..excess).collect();
    for path in &removed {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(Rotation {
        filed,
        kept: snapshots.len(),
        removed,
    })
}

/// The `redis-backup` command.
pub fn run(config: &RedisBackupConfig) -> anyhow::Result<()> {
    let rotation = rotate(
        &config.incoming,
        &config.backup_dir,
        config.keep,
        OffsetDateTime::now_utc(),
    )?;
    let bytes = std::fs::metadata(&rotation.filed).map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        snapshot = %rotation.filed.display(),
        bytes,
        kept = rotation.kept,
        removed = rotation.removed.len(),
        "filed the Redis snapshot"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).expect("valid time")
    }

    fn temp() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("incoming")).expect("incoming dir");
        dir
    }

    #[test]
    fn names_sort_like_times() {
        assert_eq!(snapshot_name(at(0)), "users-20231114T221320Z.rdb");
        assert!(snapshot_name(at(59)) < snapshot_name(at(60)));
    }

    #[test]
    fn keeps_the_newest_and_leaves_other_files_alone() {
        let temp = temp();
        let dir = temp.path();
        let incoming = dir.join("incoming/dump.rdb");
        std::fs::write(dir.join("notes.txt"), "not a snapshot").expect("write");
        for second in 0..4 {
            std::fs::write(&incoming, b"REDIS0011...").expect("write");
            let rotation = rotate(&incoming, dir, 2, at(second)).expect("rotate");
            assert_eq!(rotation.kept, (second as usize + 1).min(2));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["notes.txt", &snapshot_name(at(2)), &snapshot_name(at(3))]);
        assert!(!incoming.exists());
    }

    #[test]
    fn refuses_what_is_not_an_rdb_file() {
        let temp = temp();
        let incoming = temp.path().join("incoming/dump.rdb");
        assert!(rotate(&incoming, temp.path(), 7, at(0)).is_err(), "missing file");
        std::fs::write(&incoming, b"<html>").expect("write");
        let err = rotate(&incoming, temp.path(), 7, at(0)).expect_err("not RDB");
        assert!(err.to_string().contains("not an RDB file"), "{err}");
        assert!(incoming.exists(), "left for inspection");
    }
}
