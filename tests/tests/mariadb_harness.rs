//! The MariaDB harness against real MariaDB 10.11 servers: the options reach
//! the server, writes land in the binlog files on disk, rotation, a crash and
//! a restart, and GTID replication with a promotion.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use logship_tests::mariadb::{
    BinlogChecksum, BinlogFormat, MariaDb, MariaDbOptions, REPL_PASSWORD, REPL_USER,
};

/// The first four bytes of every binlog file.
const BINLOG_MAGIC: &[u8] = b"\xfebin";

async fn create_table(db: &MariaDb) {
    db.exec(
        "CREATE DATABASE app; \
         CREATE TABLE app.t (id INT PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB",
    )
    .await;
}

async fn count_rows(db: &MariaDb) -> u64 {
    db.query_value("SELECT COUNT(*) FROM app.t")
        .await
        .parse()
        .unwrap()
}

fn disk_size(db: &MariaDb, name: &str) -> u64 {
    std::fs::metadata(db.binlog_path(name)).unwrap().len()
}

#[tokio::test]
async fn starts_with_the_binlog_on_and_a_write_grows_the_current_file() {
    let db = MariaDb::start(MariaDbOptions::default());
    let vars = db
        .query(
            "SELECT @@log_bin, @@binlog_format, @@server_id, @@binlog_checksum, \
             @@max_allowed_packet, @@port, @@log_bin_basename",
        )
        .await;
    let expected_base = db.binlog_dir().join(db.binlog_basename());
    assert_eq!(
        vars,
        vec![vec![
            "1".to_string(),
            "ROW".to_string(),
            "1".to_string(),
            "CRC32".to_string(),
            (256u64 << 20).to_string(),
            db.port().to_string(),
            expected_base.display().to_string(),
        ]]
    );

    let logs = db.binary_logs().await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let (file, size_before) = logs[0].clone();
    assert_eq!(file, "binlog.000001");
    assert_eq!(db.current_binlog().await, (file.clone(), size_before));
    assert_eq!(disk_size(&db, &file), size_before);
    assert!(db.binlog_file(&file).starts_with(BINLOG_MAGIC));
    assert_eq!(db.gtid_binlog_pos().await, "");

    create_table(&db).await;
    db.exec("INSERT INTO app.t VALUES (1, 'harness-row-marker')")
        .await;

    let logs = db.binary_logs().await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let size_after = logs[0].1;
    assert!(size_after > size_before, "{size_before} -> {size_after}");
    assert_eq!(disk_size(&db, &file), size_after);
    let bytes = db.binlog_file(&file);
    assert_eq!(bytes.len() as u64, size_after);
    assert!(
        bytes
            .windows(b"harness-row-marker".len())
            .any(|w| w == b"harness-row-marker"),
        "the row image is not in {file}"
    );
    // CREATE DATABASE, CREATE TABLE and the insert: three transactions of domain 0, server 1.
    assert_eq!(db.gtid_binlog_pos().await, "0-1-3");
    assert!(db.log().contains("ready for connections"));
}

#[tokio::test]
async fn a_row_over_16_mib_reaches_the_binlog() {
    let db = MariaDb::start(MariaDbOptions::default());
    create_table(&db).await;
    let (file, before) = db.current_binlog().await;
    db.exec("INSERT INTO app.t VALUES (1, REPEAT('x', 17 * 1024 * 1024))")
        .await;
    let (same, after) = db.current_binlog().await;
    assert_eq!(same, file);
    assert!(after - before > 17 << 20, "{before} -> {after}");
    assert_eq!(disk_size(&db, &file), after);
}

#[tokio::test]
async fn flush_binary_logs_rotates_and_a_repl_user_sees_it() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user(
        REPL_USER,
        REPL_PASSWORD,
        "REPLICATION SLAVE, REPLICATION CLIENT",
    )
    .await;
    db.exec("FLUSH BINARY LOGS").await;
    let logs = db.binary_logs().await;
    let names: Vec<&str> = logs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["binlog.000001", "binlog.000002"]);
    assert_eq!(db.current_binlog().await.0, "binlog.000002");
    for (name, size) in &logs {
        assert_eq!(disk_size(&db, name), *size, "{name}");
        assert!(db.binlog_file(name).starts_with(BINLOG_MAGIC), "{name}");
    }
    let index = std::fs::read_to_string(db.binlog_dir().join("binlog.index")).unwrap();
    assert_eq!(index.lines().count(), 2, "{index}");

    let mut repl = Conn::from_url(db.url(REPL_USER, Some(REPL_PASSWORD)))
        .await
        .unwrap();
    let rows: Vec<Row> = repl.query("SHOW BINARY LOGS").await.unwrap();
    assert_eq!(rows.len(), 2);
    repl.disconnect().await.unwrap();
}

#[tokio::test]
async fn kill_and_restart_keep_committed_rows_and_open_a_new_binlog() {
    let db = MariaDb::start(MariaDbOptions::default());
    create_table(&db).await;
    db.exec("INSERT INTO app.t SELECT seq, 'x' FROM app.seq_1_to_100")
        .await;
    let before = db.binary_logs().await;

    db.kill();
    assert!(!db.is_running());
    assert!(
        Conn::from_url(db.root_url()).await.is_err(),
        "a killed server still answers"
    );
    db.restart();
    assert!(db.is_running());
    assert_eq!(count_rows(&db).await, 100);
    let after = db.binary_logs().await;
    assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
    let names = |logs: &[(String, u64)]| logs.iter().map(|l| l.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after[..before.len()]), names(&before));

    // A clean stop and start on the same port works too, and rotates again.
    db.exec("INSERT INTO app.t VALUES (101, 'y')").await;
    db.stop();
    assert!(!db.is_running());
    db.restart();
    assert_eq!(count_rows(&db).await, 101);
    assert_eq!(db.binary_logs().await.len(), before.len() + 2);
    assert!(db.log().contains("Shutdown complete"));
}

#[tokio::test]
async fn options_reach_the_server() {
    let db = MariaDb::start(MariaDbOptions {
        binlog_format: BinlogFormat::Mixed,
        server_id: 42,
        binlog_checksum: BinlogChecksum::None,
        gtid_domain_id: 7,
        log_slave_updates: true,
        max_allowed_packet: "64M".to_string(),
        cnf: vec!["binlog_row_image=MINIMAL".to_string()],
        ..MariaDbOptions::default()
    });
    let vars = db
        .query(
            "SELECT @@binlog_format, @@server_id, @@binlog_checksum, @@gtid_domain_id, \
             @@log_slave_updates, @@max_allowed_packet, @@binlog_row_image",
        )
        .await;
    assert_eq!(
        vars[0],
        [
            "MIXED",
            "42",
            "NONE",
            "7",
            "1",
            &(64u64 << 20).to_string(),
            "MINIMAL"
        ]
    );
    db.exec("CREATE DATABASE d").await;
    assert_eq!(db.gtid_binlog_pos().await, "7-42-1");

    let off = MariaDb::start(MariaDbOptions {
        binlog: false,
        binlog_format: BinlogFormat::Statement,
        ..MariaDbOptions::default()
    });
    assert_eq!(off.query_value("SELECT @@log_bin").await, "0");
    assert!(off.query("SHOW MASTER STATUS").await.is_empty());
    assert!(!off.binlog_path("binlog.000001").exists());
}

#[tokio::test]
async fn a_replica_follows_by_gtid_and_can_be_promoted() {
    let primary = MariaDb::start(MariaDbOptions::default());
    create_table(&primary).await;
    let replica = MariaDb::start_replica_of(
        &primary,
        MariaDbOptions {
            server_id: 2,
            log_slave_updates: true,
            ..MariaDbOptions::default()
        },
    )
    .await;
    primary
        .exec("INSERT INTO app.t VALUES (1, 'from the primary')")
        .await;
    replica.wait_caught_up(&primary).await;
    assert_eq!(
        replica
            .query_value("SELECT v FROM app.t WHERE id = 1")
            .await,
        "from the primary"
    );
    let pos = primary.gtid_binlog_pos().await;
    assert_eq!(
        replica.query_value("SELECT @@gtid_slave_pos").await,
        pos,
        "the replica's GTID position"
    );
    // log_slave_updates: the replica's binlog holds the primary's transactions, GTIDs and all.
    assert_eq!(replica.gtid_binlog_pos().await, pos);
    let status = replica.slave_status().await.unwrap();
    assert_eq!(status["Using_Gtid"], "Slave_Pos");

    replica.promote().await;
    assert!(replica.slave_status().await.is_none());
    replica.exec("INSERT INTO app.t VALUES (2, 'after')").await;
    assert_eq!(count_rows(&replica).await, 2);
    let seq: u64 = pos.rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(
        replica.gtid_binlog_pos().await,
        format!("0-2-{}", seq + 1),
        "the promoted server writes with its own server_id"
    );
}

#[test]
#[should_panic(expected = "unknown variable 'no_such_setting=1'")]
fn a_server_that_cannot_start_fails_with_its_log_tail() {
    MariaDb::start(MariaDbOptions {
        cnf: vec!["no_such_setting=1".to_string()],
        ..MariaDbOptions::default()
    });
}
