//! Replay end to end: a MariaDB 10.11 primary streamed by the `logship` binary into a file
//! store, then fresh MariaDB servers that apply the archive with their own replication,
//! logship serving it as their primary, up to a transaction boundary from the index.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship::mysql::catalog::BinlogCatalog;
use logship::mysql::conn::{ConnectOptions, MysqlConnection};
use logship::mysql::read::ArchivedFile;
use logship::mysql::replay::{ReplayOptions, Replayed, replay};
use logship::store::Store;
use logship_protocol::mysql::index::IndexEntry;
use logship_protocol::mysql::key::{BinlogKey, ServerNo};
use logship_protocol::mysql::{BinlogFileName, BinlogPos};
use logship_tests::archive::TestStore;
use logship_tests::binlog::{inline_source, start_mysql_agent};
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::temp_dir;

const TABLES: [&str; 3] = ["app.small", "app.orders", "app.big"];

/// What a server holds of the workload: per table its CHECKSUM TABLE and row count, and
/// the rows of the small table.
#[derive(Debug, PartialEq, Eq)]
struct State {
    tables: Vec<(String, String, String)>,
    small_rows: Vec<Vec<String>>,
}

async fn state(db: &MariaDb) -> State {
    let mut tables = Vec::new();
    for table in TABLES {
        let checksum = db.query(&format!("CHECKSUM TABLE {table}")).await;
        let count = db
            .query_value(&format!("SELECT COUNT(*) FROM {table}"))
            .await;
        tables.push((table.to_string(), checksum[0][1].clone(), count));
    }
    let small_rows = db.query("SELECT * FROM app.small ORDER BY id").await;
    State { tables, small_rows }
}

/// The transactions the archive's index lists for `name` of the first server so far.
async fn index(store: &dyn Store, name: &str) -> Vec<IndexEntry> {
    let source = inline_source();
    let file = BinlogFileName::new(name).unwrap();
    let catalog = BinlogCatalog::load(store, &source).await.unwrap();
    let Some(objects) = catalog.file(ServerNo::FIRST, &file) else {
        return Vec::new();
    };
    ArchivedFile {
        source: &source,
        server: ServerNo::FIRST,
        file: &file,
        objects,
    }
    .index(store)
    .await
    .unwrap_or_default()
}

/// Waits (60 s at most) until the index of `name` lists the transaction `gtid`; its entry.
async fn wait_indexed(store: &dyn Store, name: &str, gtid: &str) -> IndexEntry {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let entries = index(store, name).await;
        if let Some(entry) = entries.iter().find(|e| e.gtid.as_deref() == Some(gtid)) {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{gtid} not in the index of {name} within 60 s: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(db: &MariaDb) -> MysqlConnection {
    let opts = ConnectOptions::from_url(&db.root_url(), None).unwrap();
    MysqlConnection::connect(&opts).await.unwrap()
}

/// A fresh server to restore into, with its own server_id.
fn restored_server(server_id: u32) -> MariaDb {
    MariaDb::start(MariaDbOptions {
        server_id,
        ..MariaDbOptions::default()
    })
}

async fn replay_into(
    store: &Arc<dyn Store>,
    restored: &MariaDb,
    stop: &BinlogPos,
) -> Result<Replayed, logship::mysql::replay::ReplayError> {
    let mut conn = connect(restored).await;
    let from: BinlogPos = "binlog.000001:4".parse().unwrap();
    let options = ReplayOptions {
        stall_timeout: Duration::from_secs(30),
        ..ReplayOptions::new(1, 0)
    };
    replay(
        store.clone(),
        &inline_source(),
        ServerNo::FIRST,
        &from,
        stop,
        &mut conn,
        &options,
    )
    .await
}

fn report(label: &str, replayed: &Replayed) {
    let secs = replayed.elapsed.as_secs_f64();
    eprintln!(
        "{label}: {} bytes of binlog to {} in {secs:.2} s: {:.1} MB/s",
        replayed.bytes_served,
        replayed.reached,
        replayed.bytes_served as f64 / 1e6 / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_server_replays_the_archive_up_to_the_target_and_no_further() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    let test_store = TestStore::file();
    let logs = temp_dir("mysql-replay");
    let mut agent = start_mysql_agent(
        &db.url("logship", Some("secret")),
        &test_store,
        "200ms",
        &[],
        logs.path(),
    );
    agent.wait_streaming();
    let store = test_store.open().await;

    db.exec(
        "CREATE DATABASE app; \
         CREATE TABLE app.small (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB; \
         CREATE TABLE app.orders (id INT PRIMARY KEY AUTO_INCREMENT, amount INT, note TEXT) ENGINE=InnoDB; \
         CREATE TABLE app.big (id INT PRIMARY KEY AUTO_INCREMENT, v LONGTEXT) ENGINE=InnoDB",
    )
    .await;
    let mut statements: Vec<String> = (1..=10)
        .map(|i| format!("INSERT INTO app.small VALUES ({i}, 'row {i}')"))
        .collect();
    statements.extend((0..20).map(|i| {
        format!(
            "INSERT INTO app.orders (amount, note) SELECT seq * {i}, REPEAT('n', seq % 300) \
             FROM app.seq_1_to_200"
        )
    }));
    statements.push("UPDATE app.small SET name = 'renamed' WHERE id = 3".into());
    statements.push("DELETE FROM app.orders WHERE amount % 7 = 0".into());
    let mut conn_gtids = db.commit_each(statements).await;
    db.exec("FLUSH BINARY LOGS").await;
    // More than 16 MiB of row events in one transaction, the largest packet size.
    conn_gtids.extend(
        db.commit_each([
            "INSERT INTO app.big (v) VALUES (REPEAT('x', 17 * 1024 * 1024))".to_string(),
            "UPDATE app.orders SET amount = amount + 1 WHERE id % 3 = 0".into(),
            "INSERT INTO app.small VALUES (11, 'eleven')".into(),
        ])
        .await,
    );
    // The target: the state right after this transaction.
    let boundary_gtid = conn_gtids.last().unwrap().clone();
    let at_boundary = state(&db).await;
    // The transaction after it must not reach a server restored to the boundary.
    let after = db
        .commit_each(["INSERT INTO app.small VALUES (12, 'after the boundary')".to_string()])
        .await;
    let mut tail: Vec<String> = (13..=20)
        .map(|i| format!("INSERT INTO app.small VALUES ({i}, 'tail {i}')"))
        .collect();
    tail.push("DELETE FROM app.big".into());
    let last_gtid = db.commit_each(tail).await.pop().unwrap();
    let at_end = state(&db).await;
    let (current, _) = db.current_binlog().await;
    assert_eq!(current, "binlog.000002");

    let boundary = wait_indexed(store.as_ref(), "binlog.000002", &boundary_gtid).await;
    let last = wait_indexed(store.as_ref(), "binlog.000002", &last_gtid).await;
    let stop = BinlogPos::new(
        BinlogFileName::new("binlog.000002").unwrap(),
        u64::from(boundary.end),
    );

    // To the boundary in the middle: the state then, and not the transaction after it.
    let restored = restored_server(2);
    let replayed = replay_into(&store, &restored, &stop).await.unwrap();
    report("to the boundary", &replayed);
    assert_eq!(replayed.reached, stop);
    assert_eq!(replayed.last_gtid.as_deref(), Some(boundary_gtid.as_str()));
    assert_eq!(replayed.gtid_slave_pos, boundary_gtid);
    assert!(replayed.bytes_served > 17 << 20, "{replayed:?}");
    assert_eq!(state(&restored).await, at_boundary);
    assert_eq!(
        restored
            .query_value("SELECT COUNT(*) FROM app.small WHERE id = 12")
            .await,
        "0",
        "the transaction after the boundary ({}) was applied",
        after[0]
    );
    assert_eq!(restored.slave_status().await, None, "RESET SLAVE ALL ran");
    drop(restored);

    // To the last transaction of the file in progress.
    let restored = restored_server(3);
    let stop_last = stop.with_offset(u64::from(last.end));
    let replayed = replay_into(&store, &restored, &stop_last).await.unwrap();
    report("to the end", &replayed);
    assert_eq!(replayed.reached, stop_last);
    assert_eq!(replayed.gtid_slave_pos, last_gtid);
    assert_eq!(state(&restored).await, at_end);
    drop(restored);

    // A flipped byte in an object the replay reads fails it, naming that object.
    agent.sigterm();
    let catalog = BinlogCatalog::load(store.as_ref(), &inline_source())
        .await
        .unwrap();
    let objects = catalog
        .file(
            ServerNo::FIRST,
            &BinlogFileName::new("binlog.000002").unwrap(),
        )
        .unwrap();
    let first_piece = objects.chain()[0];
    let key = BinlogKey::Piece {
        server: ServerNo::FIRST,
        file: BinlogFileName::new("binlog.000002").unwrap(),
        range: first_piece,
    }
    .format(&inline_source());
    let TestStore::File(dir) = &test_store else {
        unreachable!("a file store")
    };
    let path: PathBuf = dir.path().join("archive").join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last_byte = bytes.len() - 1;
    bytes[last_byte] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let restored = restored_server(4);
    let err = replay_into(&store, &restored, &stop)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("object {key} is corrupt: ")),
        "{err}"
    );
    assert!(
        err.ends_with(
            "(the archived copy is damaged; recover the object from a replica of the store)"
        ),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    // Nothing of the damaged file was applied (of the file before it, what the server had
    // applied when the replay stopped).
    let small_exists = restored
        .query_value(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'small'",
        )
        .await;
    if small_exists == "1" {
        assert_eq!(
            restored
                .query_value("SELECT COUNT(*) FROM app.small WHERE id = 11")
                .await,
            "0"
        );
    }
    assert_eq!(restored.slave_status().await, None, "RESET SLAVE ALL ran");
}
