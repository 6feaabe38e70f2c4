//! MySQL/MariaDB logical backups end to end: a real MariaDB 10.11 streamed by `logship run`,
//! `logship backup` while a writer commits, the stored backup checked against the snapshot's
//! GTID position, and loaded into a second, fresh MariaDB, table by table and row by row.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logship::mysql::backup::list_backups;
use logship::mysql::conn::ConnectOptions;
use logship::mysql::load::load_backup;
use logship_protocol::archive::key::ArchiveKey;
use logship_protocol::mysql::backup::MysqlBackupMeta;
use logship_tests::agent::logship_within;
use logship_tests::archive::TestStore;
use logship_tests::binlog::{inline_source, start_mysql_agent};
use logship_tests::mariadb::{MariaDb, MariaDbOptions};
use logship_tests::util::temp_dir;
use mysql_async::prelude::Queryable;

/// What the backup user needs: the binlog, and reading everything a logical backup holds.
const BACKUP_PRIVILEGES: &str =
    "REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD, SHOW VIEW, EVENT, TRIGGER";

/// Rows of `shop.big`, 1000 bytes each: over 16 MiB, so several chunks and key ranges.
const BIG_ROWS: u32 = 40_000;

/// How long a load of the test data may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(180);

/// Tables whose content does not change after `populate`.
const STATIC_TABLES: &[(&str, &str)] = &[
    ("shop.kinds", "id"),
    ("shop.nopk", "a, b"),
    ("shop.big", "id"),
    ("other.t", "id"),
];

async fn populate(db: &MariaDb) {
    db.exec(
        "CREATE DATABASE shop; CREATE DATABASE other; CREATE DATABASE app; \
         CREATE TABLE shop.kinds (
            id INT PRIMARY KEY AUTO_INCREMENT,
            n INT NULL,
            bin VARBINARY(300),
            txt TEXT CHARACTER SET utf8mb4,
            lat VARCHAR(50) CHARACTER SET latin1,
            num DECIMAL(30,10),
            dt DATETIME(6),
            ts TIMESTAMP(3) NULL,
            js JSON,
            f FLOAT,
            d DOUBLE,
            e ENUM('a','b','c'),
            s SET('x','y','z'),
            b BIT(10),
            gen INT AS (n * 2) VIRTUAL,
            KEY kn (n),
            KEY kd (dt, n)
         ) ENGINE=InnoDB; \
         CREATE TABLE shop.nopk (a INT, b VARCHAR(10)) ENGINE=InnoDB; \
         CREATE TABLE shop.big (id BIGINT PRIMARY KEY, pad VARCHAR(1000), KEY kp (pad(10))) ENGINE=InnoDB; \
         CREATE TABLE other.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB; \
         CREATE TABLE app.w (id INT PRIMARY KEY) ENGINE=InnoDB",
    )
    .await;
    let every_byte: String = (0..=255u8).map(|b| format!("{b:02X}")).collect();
    db.exec(&format!(
        "INSERT INTO shop.kinds (id, n, bin, txt, lat, num, dt, ts, js, f, d, e, s, b) VALUES \
         (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         (2, 7, UNHEX('{every_byte}'), 'tab\\there\\nnew line\\\\ back\\\\slash \\\\N', \
          CONVERT(_utf8mb4'café crème' USING latin1), 12345678901234567890.0123456789, \
          '2026-11-21 10:15:00.123456', '2026-11-21 10:15:00.125', '{{\"k\": [1, \"два\", null]}}', \
          3.14159, 2.718281828459045, 'b', 'x,z', b'1010101010'), \
         (3, -1, '', '', '', -0.0000000001, '1000-01-01 00:00:00', NULL, '[]', -1.5e-10, 1e300, \
          'c', '', b'0'), \
         (0, 0, X'00', 'emoji 🐬 and NUL', 'N', 0, '9999-12-31 23:59:59.999999', NULL, 'null', 0, \
          -0.0, 'a', 'y', b'1111111111')"
    ))
    .await;
    db.exec(
        "INSERT INTO shop.nopk VALUES (1, 'one'), (1, 'one'), (NULL, NULL), (2, 'two'); \
         INSERT INTO other.t VALUES (1, 'x'), (2, 'y')",
    )
    .await;
    db.exec(&format!(
        "INSERT INTO shop.big SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) \
         FROM shop.seq_1_to_{BIG_ROWS}; ANALYZE TABLE shop.big"
    ))
    .await;
    db.exec(
        "CREATE VIEW shop.v_kinds AS SELECT id, n FROM shop.kinds WHERE n IS NOT NULL; \
         CREATE VIEW other.v_t AS SELECT COUNT(*) AS c FROM other.t; \
         CREATE TRIGGER shop.upper_b BEFORE INSERT ON shop.nopk FOR EACH ROW SET NEW.b = UPPER(NEW.b); \
         CREATE PROCEDURE shop.p_count(OUT c INT) BEGIN SELECT COUNT(*) INTO c FROM shop.kinds; END; \
         CREATE FUNCTION shop.f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
         CREATE EVENT shop.ev ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM shop.nopk WHERE a < 0; \
         CREATE ROLE reader; GRANT SELECT ON other.* TO reader; \
         CREATE USER 'app'@'%' IDENTIFIED BY 'app-secret'; \
         GRANT SELECT, INSERT ON shop.* TO 'app'@'%'; GRANT reader TO 'app'@'%'",
    )
    .await;
}

/// Commits `INSERT INTO app.w VALUES (i)` for i = 1, 2, … until `stop`; returns each
/// commit's GTID sequence number, in id order.
async fn write_until(mut conn: mysql_async::Conn, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        conn.query_drop(format!("INSERT INTO app.w VALUES ({id})"))
            .await
            .unwrap();
        let gtid: String = conn
            .query_first("SELECT @@last_gtid")
            .await
            .unwrap()
            .unwrap();
        seqs.push(gtid.rsplit('-').next().unwrap().parse().unwrap());
        id += 1;
    }
    seqs
}

/// The sequence number of domain 0 in a MariaDB GTID position.
fn domain0_seq(gtid_position: &str) -> u64 {
    gtid_position
        .split(',')
        .find_map(|g| g.trim().strip_prefix("0-"))
        .and_then(|rest| rest.rsplit('-').next())
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("no domain 0 in {gtid_position:?}"))
}

fn restored_options(db: &MariaDb) -> ConnectOptions {
    ConnectOptions::from_url(&db.root_url(), None).unwrap()
}

async fn assert_same_rows(source: &MariaDb, restored: &MariaDb, table: &str, order: &str) {
    let sql = format!("SELECT * FROM {table} ORDER BY {order}");
    assert_eq!(
        source.query(&sql).await,
        restored.query(&sql).await,
        "rows of {table}"
    );
    let checksum = format!("CHECKSUM TABLE {table}");
    assert_eq!(
        source.query(&checksum).await,
        restored.query(&checksum).await,
        "CHECKSUM TABLE {table}"
    );
}

fn flip_a_byte(store_dir: &Path, key: &str) {
    let path = store_dir.join("archive").join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logical_backup_loads_into_a_fresh_server_as_its_snapshot() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", BACKUP_PRIVILEGES).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-backup");
    let url = db.url("logship", Some("secret"));
    let mut agent = start_mysql_agent(&url, &store, "200ms", &[], logs.path());
    agent.wait_streaming();
    populate(&db).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(db.conn().await, stop.clone()));
    eprintln!("data written; backing up while a writer commits");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let args = ["--mysql", &url, "--store", &store.url(), "backup"];
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env = store.env();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        logship_within(&args, &env, Duration::from_secs(300))
    })
    .await
    .unwrap();
    let backup_took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let seqs = writer.await.unwrap();
    assert!(out.status.success(), "{out:?}\n{}", agent.log());
    let printed = String::from_utf8(out.stdout).unwrap();

    let opened = store.open().await;
    let metas = list_backups(opened.as_ref(), &inline_source())
        .await
        .unwrap();
    let [meta] = metas.as_slice() else {
        panic!("one backup expected: {metas:?}")
    };
    assert_eq!(printed.trim(), meta.id.to_string());
    assert_eq!(
        meta.id,
        MysqlBackupMeta::id_for(meta.server, &meta.position).unwrap()
    );
    assert!(meta.commit_block_seconds < 5.0, "{meta:?}");

    // The snapshot holds exactly the writer's commits up to its GTID position.
    let snapshot_seq = domain0_seq(&meta.gtid_position);
    let committed = seqs.iter().filter(|&&s| s <= snapshot_seq).count() as u64;
    assert!(
        committed > 0 && committed < seqs.len() as u64,
        "the writer committed before and after the snapshot: {committed} of {}",
        seqs.len()
    );
    let table = |name: &str| {
        meta.tables
            .iter()
            .find(|t| format!("{}.{}", t.db, t.name) == name)
            .unwrap_or_else(|| panic!("{name} in {meta:?}"))
    };
    assert_eq!(table("app.w").rows, committed);
    let big = table("shop.big");
    assert_eq!(big.rows, u64::from(BIG_ROWS));
    assert!(big.parts.len() >= 2, "{big:?}");
    assert!(big.parts.iter().all(|p| p.chunks >= 1), "{big:?}");
    assert!(
        big.parts.iter().map(|p| p.chunks).sum::<u32>() >= 3,
        "{big:?}"
    );
    assert_eq!(
        table("shop.kinds").columns.len(),
        14,
        "the generated column is left out"
    );
    assert_eq!(table("shop.kinds").bit_columns, ["b"]);

    let restored = MariaDb::start(MariaDbOptions::default());
    eprintln!("backup {} taken in {backup_took:?}; loading it", meta.id);
    let source = inline_source();
    let options = restored_options(&restored);
    let load = load_backup(opened.clone(), &source, meta, &options, 2);
    let loaded = tokio::time::timeout(LOAD_TIMEOUT, load)
        .await
        .expect("the load ends within its time")
        .unwrap_or_else(|e| panic!("{e}"));
    let backup_mb = meta.raw_bytes as f64 / 1e6;
    println!(
        "backup: {backup_mb:.1} MB raw ({:.1} MB stored) in {backup_took:?} = {:.1} MB/s; \
         commits blocked {:.1} ms; load: {:.1} MB of rows in {:?} = {:.1} MB/s",
        meta.stored_bytes as f64 / 1e6,
        backup_mb / backup_took.as_secs_f64(),
        meta.commit_block_seconds * 1000.0,
        loaded.raw_bytes as f64 / 1e6,
        loaded.took,
        loaded.raw_bytes as f64 / 1e6 / loaded.took.as_secs_f64()
    );
    assert_eq!(loaded.rows, meta.tables.iter().map(|t| t.rows).sum::<u64>());

    for (table, order) in STATIC_TABLES {
        assert_same_rows(&db, &restored, table, order).await;
    }
    assert_eq!(
        restored
            .query("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM app.w")
            .await,
        [[committed.to_string(), committed.to_string()]]
    );
    // The keys came back after the rows, the trigger after the rows too.
    for (table, key) in [("shop.kinds", "kd"), ("shop.big", "kp")] {
        let sql = format!("SHOW INDEX FROM {table} WHERE Key_name = '{key}'");
        assert!(!restored.query(&sql).await.is_empty(), "{sql}");
    }
    assert_eq!(
        restored.query("SELECT b FROM shop.nopk WHERE a = 1").await,
        [["one".to_string()], ["one".to_string()]]
    );
    restored
        .exec("INSERT INTO shop.nopk VALUES (9, 'nine')")
        .await;
    assert_eq!(
        restored
            .query_value("SELECT b FROM shop.nopk WHERE a = 9")
            .await,
        "NINE"
    );
    assert_eq!(
        restored.query_value("SELECT shop.f_double(21)").await,
        "42".to_string()
    );
    assert_eq!(
        restored
            .query_value("SELECT COUNT(*) FROM shop.v_kinds")
            .await,
        "3"
    );
    assert_eq!(restored.query_value("SELECT c FROM other.v_t").await, "2");
    let mut session = restored.conn().await;
    session.query_drop("CALL shop.p_count(@c)").await.unwrap();
    let counted: Option<i64> = session.query_first("SELECT @c").await.unwrap();
    assert_eq!(counted, Some(4));
    assert_eq!(
        restored
            .query_value("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_NAME = 'ev'")
            .await,
        "1"
    );
    for grants in ["SHOW GRANTS FOR 'app'@'%'", "SHOW GRANTS FOR reader"] {
        assert_eq!(
            db.query(grants).await,
            restored.query(grants).await,
            "{grants}"
        );
    }
    // The backup user came along too.
    assert_eq!(
        restored
            .query_value(
                "SELECT COUNT(*) FROM mysql.user WHERE User IN ('app', 'logship', 'reader')"
            )
            .await,
        "3"
    );

    // A damaged chunk fails the load, naming its key.
    let part = &big.parts[0];
    let key = ArchiveKey::DumpRows {
        id: meta.id,
        table: part.number,
        chunk: part.chunks - 1,
    }
    .format(&inline_source());
    let TestStore::File(dir) = &store else {
        unreachable!()
    };
    flip_a_byte(dir.path(), &key);
    let empty = MariaDb::start(MariaDbOptions::default());
    let options = restored_options(&empty);
    let load = load_backup(opened.clone(), &source, meta, &options, 2);
    let err = tokio::time::timeout(LOAD_TIMEOUT, load)
        .await
        .expect("the load ends within its time")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("object {key} is corrupt: ")),
        "{err}"
    );
}
