//! Binlog streaming end to end: a real MariaDB 10.11, the `logship` binary, and the store
//! read back independently of the agent. Bad input is in `mysql_bad_input.rs`, the
//! commit-to-durable latency in `mysql_rpo.rs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use logship::mysql::catalog::BinlogCatalog;
use logship_protocol::mysql::BinlogFileName;
use logship_protocol::mysql::key::{SPAN_BYTES, ServerNo};
use logship_tests::agent::Agent;
use logship_tests::archive::TestStore;
use logship_tests::binlog::{
    archived_file, archived_index, assert_closed_files_identical, binlog_fetch, committed_ends,
    inline_source, start_mysql_agent, wait_closed_files_archived,
};
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::temp_dir;

fn start_agent(db: &MariaDb, store: &TestStore, log_dir: &Path) -> Agent {
    start_mysql_agent(
        &db.url("logship", Some("secret")),
        store,
        "200ms",
        &[],
        log_dir,
    )
}

async fn replication_user(db: &MariaDb) {
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
}

fn mariadb_binlog(path: &Path) -> String {
    let out = Command::new(MariaDb::bin("mariadb-binlog"))
        .arg(path)
        .output()
        .expect("run mariadb-binlog");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_binlogs_are_byte_identical_to_the_servers() {
    let db = MariaDb::start(MariaDbOptions::default());
    replication_user(&db).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-streaming");
    let mut agent = start_agent(&db, &store, logs.path());

    db.exec(
        "CREATE DATABASE app; \
         CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v LONGTEXT) ENGINE=InnoDB",
    )
    .await;
    for i in 0..50 {
        db.exec(&format!("INSERT INTO app.t (v) VALUES ('row {i}')"))
            .await;
    }
    db.exec(
        "SET SESSION binlog_format = 'STATEMENT'; INSERT INTO app.t (v) VALUES ('statement'); \
         SET SESSION binlog_format = 'MIXED'; INSERT INTO app.t (v) VALUES (UUID()); \
         SET SESSION binlog_format = 'ROW'",
    )
    .await;
    // One transaction whose row event is over 16 MiB, the largest packet size.
    db.exec("BEGIN; INSERT INTO app.t (v) VALUES (REPEAT('x', 17 * 1024 * 1024)); COMMIT")
        .await;
    db.exec("FLUSH BINARY LOGS; ALTER TABLE app.t ADD COLUMN w INT")
        .await;
    for i in 0..20 {
        db.exec(&format!(
            "INSERT INTO app.t (v, w) VALUES ('after flush', {i})"
        ))
        .await;
    }
    // A server restart while streaming: the agent reconnects, the server starts a new file.
    db.restart();
    for i in 0..20 {
        db.exec(&format!(
            "INSERT INTO app.t (v, w) VALUES ('after restart', {i})"
        ))
        .await;
    }
    db.exec("FLUSH BINARY LOGS").await;

    let test_store = store;
    let store = test_store.open().await;
    let closed = wait_closed_files_archived(&db, store.as_ref(), &mut agent).await;
    assert!(closed.len() >= 3, "{closed:?}");
    let mut transactions = 0;
    let catalog = BinlogCatalog::load(store.as_ref(), &inline_source())
        .await
        .unwrap();
    let mut long_files = 0;
    for name in &closed {
        let server = db.binlog_file(name);
        // A file longer than a span is stored as its pieces and an end marker, never whole.
        let objects = catalog
            .file(ServerNo::FIRST, &BinlogFileName::new(name).unwrap())
            .unwrap();
        if server.len() > SPAN_BYTES as usize {
            long_files += 1;
            assert!(!objects.complete, "{name} stored whole");
            assert_eq!(objects.ends, vec![server.len() as u32], "{name}");
            assert!(
                objects.chain().iter().all(|p| p.len() <= SPAN_BYTES),
                "{name}: {:?}",
                objects.chain()
            );
        } else {
            assert!(objects.complete && objects.ends.is_empty(), "{name}");
        }
        let archived = archived_file(store.as_ref(), name).await.unwrap();
        assert!(
            archived == server,
            "{name}: archived {} bytes, server {} bytes",
            archived.len(),
            server.len()
        );
        // The index lists every committed transaction of the file, at its end offset.
        let index = archived_index(store.as_ref(), name).await;
        let ends: Vec<u64> = index.iter().map(|e| u64::from(e.end)).collect();
        assert_eq!(ends, committed_ends(name, &server), "{name}");
        assert!(
            index
                .iter()
                .all(|e| e.gtid.as_deref().is_some_and(|g| g.starts_with("0-1-")))
        );
        transactions += index.len();
    }
    assert!(transactions >= 94, "{transactions} transactions indexed");

    assert_eq!(long_files, 1, "the file with the 17 MiB transaction");
    // binlog-fetch writes each archived copy, the long one too, and mariadb-binlog reads
    // it exactly as it reads the server's file.
    for name in &closed {
        let copy = logs.path().join(name);
        binlog_fetch(&test_store, name, &copy, 0);
        assert!(
            std::fs::read(&copy).unwrap() == db.binlog_file(name),
            "{name}"
        );
        assert_eq!(mariadb_binlog(&copy), mariadb_binlog(&db.binlog_path(name)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_kill_9_without_gap_or_duplicate() {
    let db = MariaDb::start(MariaDbOptions::default());
    replication_user(&db).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-kill");
    let mut agent = start_agent(&db, &store, logs.path());
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v MEDIUMTEXT)")
        .await;
    let mut id = 0;
    for round in 0..5 {
        for _ in 0..20 {
            db.exec(&format!(
                "INSERT INTO app.t VALUES ({id}, REPEAT('k', 2000))"
            ))
            .await;
            id += 1;
        }
        // After the flush, the file in progress grows past a span while the agent is
        // killed and restarted: it resumes within its second span.
        if round >= 3 {
            db.exec(&format!(
                "INSERT INTO app.t VALUES ({id}, REPEAT('m', 5000000))"
            ))
            .await;
            id += 1;
        }
        if round == 2 {
            db.exec("FLUSH BINARY LOGS").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        agent.kill9();
        agent.restart();
    }
    db.exec("FLUSH BINARY LOGS").await;
    let store = store.open().await;
    let closed = wait_closed_files_archived(&db, store.as_ref(), &mut agent).await;
    let ends = assert_closed_files_identical(&db, store.as_ref(), &closed).await;
    // The harness's CREATE USER and GRANT, two DDL statements and 102 inserts.
    assert_eq!(ends, 106);
    let long = closed.last().unwrap();
    assert!(db.binlog_file(long).len() > SPAN_BYTES as usize, "{long}");
}
