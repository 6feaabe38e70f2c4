//! `logship restore` of a MariaDB source end to end: a real MariaDB 10.11 streamed by
//! `logship run`, a logical backup, then batch A, the target T, and batch B (UPDATE of every
//! row, DELETE, ALTER TABLE, DROP TABLE, a rotation); restores into new servers by time, GTID,
//! position and latest, each compared with the original's state at its target, and the
//! refusals of targets outside the window.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use logship_tests::agent::{last_stderr_line, logship_within};
use logship_tests::archive::TestStore;
use logship_tests::binlog::{durable_len, start_mysql_agent};
use logship_tests::mariadb::{MariaDb, MariaDbOptions};
use logship_tests::util::{free_port, temp_dir};

const BACKUP_PRIVILEGES: &str =
    "REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, SHOW VIEW, EVENT, TRIGGER";

/// What is compared between the original at a target and a restored server.
const STATE_SQL: &str = "SELECT (SELECT COUNT(*) FROM shop.t), \
     (SELECT COALESCE(SUM(CRC32(CONCAT_WS('|', id, v))), 0) FROM shop.t), \
     (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'shop'), \
     (SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 't')";

/// The state of the original server now, as one tab-separated line.
async fn state(db: &MariaDb) -> String {
    db.query(STATE_SQL).await.concat().join("\t")
}

/// The state of a restored server reached over its socket as the OS user root.
fn restored_state(dir: &Path) -> String {
    let socket = dir.join("mysqld.sock");
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "-N", "-B", "-e", STATE_SQL])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn shutdown(dir: &Path) {
    let socket = dir.join("mysqld.sock");
    let out = Command::new("mariadb-admin")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "shutdown"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Waits until the archive holds the server's binlog up to its current position.
async fn wait_archived(db: &MariaDb, store: &TestStore) {
    let (file, pos) = db.current_binlog().await;
    let opened = store.open().await;
    let started = Instant::now();
    while durable_len(opened.as_ref(), &file).await < pos {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{file}:{pos} not archived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn restore(store: &TestStore, to: &Path, target: &[&str], start: bool) -> std::process::Output {
    let port = free_port().to_string();
    let to = to.display().to_string();
    let url = store.url();
    let mut args = vec!["--store", url.as_str(), "restore", "--to", to.as_str()];
    args.extend_from_slice(target);
    if start {
        args.extend_from_slice(&["--start", "--port", &port]);
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    logship_within(&args, &store.env(), Duration::from_secs(300))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_reach_exactly_their_target() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", BACKUP_PRIVILEGES).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-restore");
    let url = db.url("logship", Some("secret"));
    let mut agent = start_mysql_agent(&url, &store, "200ms", &[], logs.path());
    agent.wait_streaming();
    db.exec(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(40)); \
         CREATE TABLE shop.gone (id INT PRIMARY KEY); INSERT INTO shop.gone VALUES (1), (2); \
         INSERT INTO shop.t SELECT seq, CONCAT('a', seq) FROM shop.seq_1_to_100",
    )
    .await;
    let store_url = store.url();
    let args = ["--mysql", &url, "--store", &store_url, "backup"];
    let out = logship_within(&args, &store.env(), Duration::from_secs(300));
    assert!(out.status.success(), "{out:?}\n{}", agent.log());

    // Batch A, one commit each, then the target time T.
    let first = db
        .commit_each((101..=110).map(|i| format!("INSERT INTO shop.t VALUES ({i}, 'a{i}')")))
        .await;
    let gtid_mid = first.last().unwrap().clone();
    let at_gtid_mid = state(&db).await;
    db.commit_each((111..=120).map(|i| format!("INSERT INTO shop.t VALUES ({i}, 'a{i}')")))
        .await;
    wait_archived(&db, &store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let target_time = jiff::Timestamp::now();
    let at_target = state(&db).await;
    let position_at_target = db.current_binlog().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Batch B: everything a restore to T must not show.
    db.exec(
        "UPDATE shop.t SET v = CONCAT('b', id); DELETE FROM shop.t WHERE id % 7 = 0; \
         ALTER TABLE shop.t ADD COLUMN w INT; DROP TABLE shop.gone; FLUSH BINARY LOGS; \
         INSERT INTO shop.t (id, v) VALUES (1000, 'late')",
    )
    .await;
    wait_archived(&db, &store).await;
    let at_latest = state(&db).await;

    // list shows the backup and a window from its snapshot to the newest commit.
    let listed = logship_within(
        &["--store", &store_url, "list", "--json"],
        &store.env(),
        Duration::from_secs(60),
    );
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let source = &listed["sources"][0];
    assert_eq!(source["backups"].as_array().unwrap().len(), 1, "{source}");
    let start: jiff::Timestamp = source["window"]["start"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = source["window"]["end"].as_str().unwrap().parse().unwrap();
    assert!(start < target_time && target_time < end, "{source}");

    let dirs = temp_dir("mysql-restored");
    let by_time = dirs.path().join("by-time");
    let out = restore(
        &store,
        &by_time,
        &["--target-time", &target_time.to_string()],
        true,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_state(&by_time), at_target);
    shutdown(&by_time);

    let by_position = dirs.path().join("by-position");
    let position = format!("{}:{}", position_at_target.0, position_at_target.1);
    let out = restore(
        &store,
        &by_position,
        &["--target-position", &position],
        true,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_state(&by_position), at_target);
    shutdown(&by_position);

    let by_gtid = dirs.path().join("by-gtid");
    let out = restore(&store, &by_gtid, &["--target-gtid", &gtid_mid], true);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_state(&by_gtid), at_gtid_mid);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("just past the transaction {gtid_mid} ")),
        "{report}"
    );
    shutdown(&by_gtid);

    let latest = dirs.path().join("latest");
    let out = restore(&store, &latest, &["--latest"], true);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(restored_state(&latest), at_latest);
    shutdown(&latest);

    // A target after the newest commit is refused before anything is written.
    let refused = dirs.path().join("refused");
    let late = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let out = restore(
        &store,
        &refused,
        &["--target-time", &late.to_string()],
        false,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        last_stderr_line(&out).starts_with(&format!(
            "error: target time {late} is after the restorable window "
        )),
        "{out:?}"
    );
    assert!(!refused.exists());
}
