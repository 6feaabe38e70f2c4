//! Binlog streaming end to end: a real MariaDB 10.11, the `logship` binary, and the store
//! read back independently of the agent.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use logship::archive::read_object;
use logship::mysql::catalog::{BinlogCatalog, FileObjects};
use logship::store::Store;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::mysql::index;
use logship_protocol::mysql::key::{BinlogKey, SPAN_BYTES, ServerNo};
use logship_protocol::mysql::{BinlogFileName, BinlogPos, BinlogReader, TransactionTracker};
use logship_tests::agent::{Agent, last_stderr_line, logship};
use logship_tests::archive::TestStore;
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::temp_dir;

fn source() -> SourceName {
    SourceName::new("default").unwrap()
}

fn start_agent(db: &MariaDb, store: &TestStore, log_dir: &Path) -> Agent {
    let mut env = store.env();
    env.push((
        "LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL".into(),
        "200ms".into(),
    ));
    Agent::start(
        &[
            "--mysql",
            &db.url("logship", Some("secret")),
            "--store",
            &store.url(),
        ],
        &env,
        log_dir,
    )
}

async fn replication_user(db: &MariaDb) {
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
}

/// A binlog file as archived: the complete object, or its pieces from offset 0.
async fn archived_file(store: &dyn Store, name: &str) -> Option<Vec<u8>> {
    let file = BinlogFileName::new(name).unwrap();
    let catalog = BinlogCatalog::load(store, &source()).await.unwrap();
    let objects = catalog.file(ServerNo::FIRST, &file)?;
    if objects.complete {
        let key = BinlogKey::File {
            server: ServerNo::FIRST,
            file,
        }
        .format(&source());
        return read_object(store, &key).await.unwrap();
    }
    let mut bytes = Vec::new();
    for range in objects.chain() {
        let key = BinlogKey::Piece {
            server: ServerNo::FIRST,
            file: file.clone(),
            range,
        }
        .format(&source());
        bytes.extend(read_object(store, &key).await.unwrap()?);
    }
    Some(bytes)
}

/// The transactions the archive's index lists for a complete file: its whole-file index,
/// or the indexes of its pieces in order when it is stored as pieces.
async fn archived_index(store: &dyn Store, name: &str) -> Vec<index::IndexEntry> {
    let file = BinlogFileName::new(name).unwrap();
    let catalog = BinlogCatalog::load(store, &source()).await.unwrap();
    let objects = catalog.file(ServerNo::FIRST, &file).unwrap();
    let len = objects.complete_len().expect("a complete file");
    let ranges = match objects.chain() {
        chain if chain.is_empty() => vec![PieceRange::new(0, len).unwrap()],
        chain => chain,
    };
    let mut entries = Vec::new();
    for range in ranges {
        let key = BinlogKey::Index {
            server: ServerNo::FIRST,
            file: file.clone(),
            range,
        }
        .format(&source());
        let content = read_object(store, &key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no index {key}"));
        entries.extend(index::parse(&content).unwrap());
    }
    entries
}

/// Waits until every file the server has closed is stored complete and equal to it.
async fn wait_closed_files_archived(db: &MariaDb, store: &dyn Store, agent: &Agent) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = db.binary_logs().await;
        let closed: Vec<String> = logs[..logs.len() - 1]
            .iter()
            .map(|(f, _)| f.clone())
            .collect();
        let catalog = BinlogCatalog::load(store, &source()).await.unwrap();
        let all_complete = closed.iter().all(|name| {
            catalog
                .file(ServerNo::FIRST, &BinlogFileName::new(name).unwrap())
                .is_some_and(|o| o.complete_len().is_some() && superseded_gone(o))
        });
        if all_complete {
            return closed;
        }
        assert!(
            Instant::now() < deadline,
            "closed binlogs {closed:?} not archived completely within 60 s; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the objects a complete file's final form supersedes are deleted: every piece of
/// a file stored whole; every piece off the final chain of a file stored as pieces.
fn superseded_gone(objects: &FileObjects) -> bool {
    if objects.complete {
        objects.pieces.is_empty()
    } else {
        objects.pieces.len() == objects.chain().len()
    }
}

/// The committed transactions of a binlog file, by their end offsets, read independently.
fn committed_ends(name: &str, bytes: &[u8]) -> Vec<u64> {
    let file = BinlogFileName::new(name).unwrap();
    let mut tracker = TransactionTracker::new();
    BinlogReader::read_all(bytes)
        .unwrap()
        .iter()
        .filter_map(|event| {
            tracker
                .push(event, &BinlogPos::new(file.clone(), event.end_offset()))
                .map(|t| t.end.offset())
        })
        .collect()
}

/// Runs `logship binlog-fetch FILE DEST` and checks its exit status.
fn binlog_fetch(store: &TestStore, file: &str, dest: &Path, status: i32) {
    let dest = dest.to_str().unwrap();
    let out = logship(
        &["--store", &store.url(), "binlog-fetch", file, dest],
        &store.env(),
    );
    assert_eq!(out.status.code(), Some(status), "{out:?}");
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
    let agent = start_agent(&db, &store, logs.path());

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
    let closed = wait_closed_files_archived(&db, store.as_ref(), &agent).await;
    assert!(closed.len() >= 3, "{closed:?}");
    let mut transactions = 0;
    let catalog = BinlogCatalog::load(store.as_ref(), &source())
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

/// The FORMAT_DESCRIPTION's flags, at file offset 4 + 17.
const FDE_FLAGS: usize = 21;

/// Compares a prefix of a file the server still writes with the archived one. They differ
/// only in the FORMAT_DESCRIPTION: on disk it carries the in-use flag, which the server
/// clears when it closes the file and never sends; the CRC covers the event as if it were clear.
fn assert_live_prefix_equal(archived: &[u8], server: &[u8]) {
    let fde_end = u32::from_le_bytes(server[4 + 13..4 + 17].try_into().unwrap()) as usize;
    assert_eq!(
        server[FDE_FLAGS] & 1,
        1,
        "the live file's FDE carries the in-use flag"
    );
    assert_eq!(
        archived[FDE_FLAGS] & 1,
        0,
        "the archived FDE is as in a closed file"
    );
    let mut closed = server[..fde_end].to_vec();
    closed[FDE_FLAGS] &= !1;
    assert_eq!(archived[..fde_end], closed[..]);
    assert!(
        archived[fde_end..] == server[fde_end..],
        "the events after the FDE differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_in_progress_holds_the_last_commit_within_a_second() {
    let db = MariaDb::start(MariaDbOptions::default());
    replication_user(&db).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-rpo");
    let agent = start_agent(&db, &store, logs.path());
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    let test_store = store;
    let store = test_store.open().await;
    let mut waits = Vec::new();
    for i in 0..30 {
        db.exec(&format!("INSERT INTO app.t VALUES ({i}, 'commit {i}')"))
            .await;
        let (file, end) = db.current_binlog().await;
        let committed = Instant::now();
        loop {
            let archived = archived_file(store.as_ref(), &file)
                .await
                .unwrap_or_default();
            if archived.len() as u64 >= end {
                assert_live_prefix_equal(
                    &archived[..end as usize],
                    &db.binlog_file(&file)[..end as usize],
                );
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(10),
                "commit {i} not durable after 10 s; agent log:\n{}",
                agent.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        waits.push(committed.elapsed());
    }
    // binlog-fetch serves the file in progress, with the last commit in it.
    let (file, end) = db.current_binlog().await;
    let fetched = logs.path().join(&file);
    binlog_fetch(&test_store, &file, &fetched, 0);
    let fetched = std::fs::read(&fetched).unwrap();
    assert_eq!(fetched.len() as u64, end);
    assert_live_prefix_equal(&fetched, &db.binlog_file(&file)[..end as usize]);
    binlog_fetch(
        &test_store,
        "binlog.999999",
        &logs.path().join("missing"),
        1,
    );
    assert!(!logs.path().join("missing").exists());

    waits.sort();
    let p99 = waits[waits.len() * 99 / 100];
    eprintln!(
        "commit to durable in the file store: p50 {:?}, p99 {p99:?}, max {:?}",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    // flush_interval is 200 ms: a commit is in the store well within a second.
    assert!(
        p99 < Duration::from_millis(1500),
        "commit to durable waits: {waits:?}"
    );
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
    let closed = wait_closed_files_archived(&db, store.as_ref(), &agent).await;
    let mut ends = 0;
    for name in &closed {
        let server = db.binlog_file(name);
        assert!(
            archived_file(store.as_ref(), name).await.unwrap() == server,
            "{name} differs"
        );
        let index = archived_index(store.as_ref(), name).await;
        assert_eq!(
            index.iter().map(|e| u64::from(e.end)).collect::<Vec<_>>(),
            committed_ends(name, &server),
            "{name}: every transaction exactly once"
        );
        ends += index.len();
    }
    // The harness's CREATE USER and GRANT, two DDL statements and 102 inserts.
    assert_eq!(ends, 106);
    let long = closed.last().unwrap();
    assert!(db.binlog_file(long).len() > SPAN_BYTES as usize, "{long}");
}

fn run_once(db_url: &str, store: &TestStore) -> std::process::Output {
    let mut env = store.env();
    env.push((
        "LOGSHIP_METRICS_LISTEN".into(),
        format!("127.0.0.1:{}", logship_tests::util::free_port()),
    ));
    logship(&["--mysql", db_url, "--store", &store.url(), "run"], &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_at_once_and_writes_nothing() {
    let db = MariaDb::start(MariaDbOptions::default());
    replication_user(&db).await;
    let store = TestStore::file();
    let out = run_once(&db.url("logship", Some("wrong")), &store);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: source default: cannot connect to mysql at 127.0.0.1:{}: Access denied for user 'logship'@'localhost' (using password: YES) (check the password in the source URL or MYSQL_PWD)",
            db.port()
        )
    );
    let store = store.open().await;
    assert!(
        store.list("").await.unwrap().is_empty(),
        "nothing is written"
    );
}
