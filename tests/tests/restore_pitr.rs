//! Point-in-time restore end to end: a real PostgreSQL 15 streamed by `logship run`, a base
//! backup by `logship backup`, then `logship restore --start` to a time, to an LSN and to
//! the latest WAL, each checked on the restored server; and the failure paths with their
//! exact messages, none of which leaves a restored-looking directory behind.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object;
use logship_protocol::pg::Lsn;
use logship_tests::agent::last_stderr_line;
use logship_tests::archive::TestStore;
use logship_tests::pg::PgServer;
use logship_tests::restore::{
    self, Archiving, RestoredServer, assert_refused, reached, wait_archived,
};
use logship_tests::util::temp_dir;

struct Scenario {
    /// The original server, running until the scenario ends.
    _pg: PgServer,
    store: TestStore,
    _archiving: Archiving,
    /// Where restores go.
    dir: tempfile::TempDir,
    /// A time between the two batches' commits.
    between: String,
    /// The WAL position just after the first batch's commit.
    after_first: Lsn,
}

const FIRST: u32 = 1000;
const SECOND: u32 = 500;

impl Scenario {
    async fn start(store: TestStore) -> Scenario {
        let pg = PgServer::start();
        pg.sql("CREATE TABLE t (i int)");
        let archiving = Archiving::start(&pg, &store, &[]).await;

        pg.sql(&format!("INSERT INTO t SELECT generate_series(1, {FIRST})"));
        let after_first: Lsn = pg
            .sql("SELECT pg_current_wal_insert_lsn()")
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let between =
            pg.sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')");
        std::thread::sleep(Duration::from_millis(1100));
        pg.sql(&format!(
            "INSERT INTO t SELECT generate_series(1, {SECOND})"
        ));
        wait_archived(&pg, &store).await;
        Scenario {
            _pg: pg,
            store,
            _archiving: archiving,
            dir: temp_dir("restore"),
            between,
            after_first,
        }
    }

    fn restore(&self, to: &Path, args: &[&str]) -> Output {
        restore::restore(&self.store, to, args)
    }

    /// Restores with `--start` on a free port and returns the server and what was printed.
    fn restore_and_start(&self, name: &str, args: &[&str]) -> (RestoredServer, String) {
        restore::restore_and_start(&self.store, &self.dir.path().join(name), args)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_to_a_time_an_lsn_and_the_latest_wal() {
    let s = Scenario::start(TestStore::file()).await;

    let (server, out) = s.restore_and_start("to-time", &["--target-time", &s.between]);
    assert_eq!(server.sql("SELECT count(*) FROM t"), FIRST.to_string());
    assert_eq!(server.sql("SELECT pg_is_in_recovery()"), "f");
    let (time, _) = reached(&out);
    let between = logship::timefmt::parse_time(&s.between).unwrap();
    assert!(time < between, "reached {time}, after the target {between}");
    assert!(out.contains("promoted, accepting writes"), "{out}");
    drop(server);

    let lsn = s.after_first.to_string();
    let (server, out) = s.restore_and_start(
        "to-lsn",
        &["--target-lsn", &lsn, "--target-action", "pause"],
    );
    assert_eq!(server.sql("SELECT count(*) FROM t"), FIRST.to_string());
    assert_eq!(
        server.sql("SELECT pg_get_wal_replay_pause_state()"),
        "paused"
    );
    let (_, at) = reached(&out);
    assert!(at >= s.after_first, "{at} < {}", s.after_first);
    drop(server);

    let (server, out) = s.restore_and_start("latest", &["--latest"]);
    assert_eq!(
        server.sql("SELECT count(*) FROM t"),
        (FIRST + SECOND).to_string()
    );
    // Recovery no longer needs the read-ahead spool.
    assert!(!server.data_dir().join("pg_wal/logship-spool").exists());
    assert!(out.contains("stop it with: "), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_name_the_cause_and_leave_no_restored_directory() {
    let s = Scenario::start(TestStore::file()).await;

    // Outside the window: planned and refused before anything is created.
    let to = s.dir.path().join("never");
    let out = s.restore(&to, &["--target-time", "2001-01-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let line = last_stderr_line(&out);
    assert!(
        line.starts_with(
            "error: target time 2001-01-01T00:00:00Z is before the restorable window "
        ) && line.ends_with(" (pick a time inside it; see logship list)"),
        "{line}"
    );
    assert!(!to.exists());

    // A directory in use.
    let used = s.dir.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep"), b"x").unwrap();
    let out = s.restore(&used, &["--latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: directory {} is not empty (choose an empty directory, or pass --force to replace its contents)",
            used.display()
        )
    );
    assert!(used.join("keep").exists());

    // Usage errors exit 2.
    let out = s.restore(&to, &["--target-time", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    let out = s.restore(&to, &[]);
    assert_eq!(out.status.code(), Some(2));

    // A flipped byte in a stored chunk: the restore names the object and removes DIR.
    let store = s.store.open().await;
    let source = SourceName::new("default").unwrap();
    let chunks: Vec<String> = store
        .list(&logship_protocol::archive::key::backups_prefix(&source))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| {
            matches!(
                ArchiveKey::parse(k),
                Ok((_, ArchiveKey::BackupChunk { .. }))
            )
        })
        .collect();
    assert!(!chunks.is_empty());
    let mut first = None;
    for key in &chunks {
        let mut stored = store.get(key).await.unwrap().to_vec();
        let middle = stored.len() / 2;
        stored[middle] ^= 1;
        if key.ends_with("/tar/00000000/00000000") {
            let reason = object::decode(&stored).unwrap_err().to_string();
            first = Some((key.clone(), reason));
        }
        store.put(key, stored.into()).await.unwrap();
    }
    // The data directory's first chunk fails first, with the restore's fix only.
    let (key, reason) = first.unwrap();
    let out = s.restore(&to, &["--latest"]);
    assert_refused(
        &out,
        &to,
        &format!(
            "error: object {key} is corrupt: {reason} (the stored backup is damaged; pick a target another backup reaches, see logship list, or take a new backup)"
        ),
    );

    // With --force on a directory that held something, it is left empty.
    let out = s.restore(&used, &["--latest", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&used).unwrap().count(), 0);
}

/// From S3, the restored server's `restore_command` reaches the store with the endpoint and
/// path style the restore was given, and credentials from the server's environment.
#[tokio::test(flavor = "multi_thread")]
async fn restores_from_s3() {
    let s = Scenario::start(TestStore::s3()).await;
    let (server, _) = s.restore_and_start("from-s3", &["--latest"]);
    assert_eq!(
        server.sql("SELECT count(*) FROM t"),
        (FIRST + SECOND).to_string()
    );
    let auto = std::fs::read_to_string(server.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("LOGSHIP_STORE_PATH_STYLE=true"), "{auto}");
    assert!(!auto.contains("AWS_SECRET_ACCESS_KEY"), "{auto}");
}
