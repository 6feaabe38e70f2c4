//! The MySQL/MariaDB replication connection against real MariaDB 10.11 servers: logins
//! (native password, ed25519, TLS modes), explained failures, server checks, and the
//! binlog dump: byte-exact events, a 16 MiB+ event, heartbeats, purged and impossible
//! positions, duplicate server ids and semi-sync acknowledgements.

use std::time::{Duration, Instant};

use bytes::Bytes;
use logship::mysql::conn::{
    ConnectOptions, DumpItem, DumpOptions, DumpStart, MysqlConnection, MysqlError,
};
use logship_protocol::mysql::{
    BINLOG_MAGIC, BinlogFileName, BinlogPos, ChecksumAlg, Event, EventDecoder, EventType,
};
use logship_tests::mariadb::{
    BinlogFormat, MariaDb, MariaDbOptions, REPL_PASSWORD, REPL_PRIVILEGES, REPL_USER, TestCerts,
};
use logship_tests::util::free_port;

/// How long any one read from the dump may take in these tests.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

fn opts(url: &str) -> ConnectOptions {
    ConnectOptions::from_url(url, None).unwrap()
}

async fn connect(url: &str) -> MysqlConnection {
    match MysqlConnection::connect(&opts(url)).await {
        Ok(conn) => conn,
        Err(e) => panic!("connect {url}: {e}"),
    }
}

async fn connect_err(url: &str) -> MysqlError {
    match MysqlConnection::connect(&opts(url)).await {
        Ok(_) => panic!("connecting to {url} must fail"),
        Err(e) => e,
    }
}

async fn with_repl(options: MariaDbOptions) -> MariaDb {
    let db = MariaDb::start(options);
    db.create_user(REPL_USER, REPL_PASSWORD, REPL_PRIVILEGES)
        .await;
    db
}

fn repl_url(db: &MariaDb) -> String {
    db.url(REPL_USER, Some(REPL_PASSWORD))
}

fn pos(file: &str, offset: u64) -> BinlogPos {
    BinlogPos::new(BinlogFileName::new(file).unwrap(), offset)
}

fn dump_opts(server_id: u32, start: BinlogPos) -> DumpOptions {
    DumpOptions::new(server_id, DumpStart::Position(start))
}

async fn next(stream: &mut logship::mysql::conn::BinlogStream) -> Result<DumpItem, MysqlError> {
    tokio::time::timeout(READ_TIMEOUT, stream.next())
        .await
        .expect("the dump sent nothing in time")
}

async fn next_event(stream: &mut logship::mysql::conn::BinlogStream) -> (Bytes, bool) {
    match next(stream).await {
        Ok(DumpItem::Event {
            event,
            ack_requested,
        }) => (event, ack_requested),
        Ok(DumpItem::Eof) => panic!("unexpected end of the binlog"),
        Err(e) => panic!("dump failed: {e}"),
    }
}

#[tokio::test]
async fn logs_in_with_native_password_and_reads_the_server_info() {
    let db = with_repl(MariaDbOptions::default()).await;
    let mut conn = connect(&repl_url(&db)).await;
    let info = conn.info().clone();
    assert!(info.is_mariadb, "{info:?}");
    assert!(info.version.starts_with("10.11."), "{}", info.version);
    assert_eq!(info.server_id, 1);
    assert_eq!(info.gtid_domain_id, Some(0));
    assert_eq!(info.server_uuid, None);
    assert_eq!(info.binlog_format, "ROW");
    assert_eq!(info.binlog_checksum, ChecksumAlg::Crc32);
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    let (file, offset) = db.current_binlog().await;
    assert_eq!(info.current, pos(&file, offset));
    assert_eq!(
        info.binlogs
            .iter()
            .map(|(f, s)| (f.to_string(), *s))
            .collect::<Vec<_>>(),
        db.binary_logs().await
    );
    assert_eq!(info.gtid_position, db.gtid_binlog_pos().await);
    // Without certificates the server offers no TLS, and prefer falls back to plain.
    assert!(!conn.is_tls());
    let rows = conn.query("SELECT 1, NULL, 'x'").await.unwrap();
    assert_eq!(
        rows,
        vec![vec![Some("1".to_string()), None, Some("x".to_string())]]
    );
    let user = conn.query("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user[0][0].as_deref(), Some("repl@%"));
    conn.close().await;
}

#[tokio::test]
async fn logs_in_as_an_ed25519_user() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.exec(
        "INSTALL SONAME 'auth_ed25519'; \
         CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('s3cret'); \
         GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'ed'@'%'",
    )
    .await;
    let mut conn = connect(&db.url("ed", Some("s3cret"))).await;
    let user = conn.query("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user[0][0].as_deref(), Some("ed@%"));
    let err = connect_err(&db.url("ed", Some("wrong"))).await;
    assert!(err.is_config(), "{err}");
    assert!(
        err.to_string().contains("Access denied for user 'ed'"),
        "{err}"
    );
}

#[tokio::test]
async fn logs_in_over_tls_and_verifies_the_certificate() {
    let certs = TestCerts::generate(&["localhost"]);
    let db = with_repl(MariaDbOptions {
        cnf: certs.cnf(),
        ..Default::default()
    })
    .await;
    let port = db.port();
    let ca = certs.ca_path();
    let ca = ca.display();

    let require = connect(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=require"
    ))
    .await;
    assert!(require.is_tls());
    let cipher = connect(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=prefer"
    ))
    .await;
    assert!(cipher.is_tls(), "prefer uses TLS when the server offers it");
    let mut verify_ca = connect(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=verify-ca&sslrootcert={ca}"
    ))
    .await;
    assert!(verify_ca.is_tls());
    let status = verify_ca
        .query("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .unwrap();
    assert!(
        status[0][1].as_deref().unwrap_or("").starts_with("TLS"),
        "{status:?}"
    );
    let full = connect(&format!(
        "mysql://repl:repl@localhost:{port}?sslmode=verify-full&sslrootcert={ca}"
    ))
    .await;
    assert!(full.is_tls());

    let err = connect_err(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=verify-full&sslrootcert={ca}"
    ))
    .await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to mysql at 127.0.0.1:{port}: the server certificate is not valid for host \"127.0.0.1\" \
             (connect with a host name the certificate lists, or use sslmode=verify-ca to skip the host name check)"
        )
    );
    assert!(err.is_config());

    let err = connect_err(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=verify-ca"
    ))
    .await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to mysql at 127.0.0.1:{port}: sslmode=verify-ca needs a CA certificate to verify the server with \
             (set sslrootcert=PATH in the source URL, or use sslmode=require)"
        )
    );
}

#[tokio::test]
async fn require_fails_against_a_server_without_tls() {
    let db = with_repl(MariaDbOptions::default()).await;
    let port = db.port();
    let err = connect_err(&format!(
        "mysql://repl:repl@127.0.0.1:{port}?sslmode=require"
    ))
    .await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to mysql at 127.0.0.1:{port}: the server does not offer TLS but sslmode=require requires it \
             (configure ssl_cert and ssl_key on the server, or use sslmode=prefer or disable)"
        )
    );
    assert!(err.is_config());
}

#[tokio::test]
async fn explains_wrong_passwords_and_missing_privileges() {
    let db = with_repl(MariaDbOptions::default()).await;
    let port = db.port();
    let err = connect_err(&db.url(REPL_USER, Some("wrong"))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to mysql at 127.0.0.1:{port}: Access denied for user 'repl'@'localhost' (using password: YES) \
             (check the password in the source URL or MYSQL_PWD)"
        )
    );
    assert!(err.is_config() && !err.is_transient());
    assert_eq!(err.code(), Some(1045));

    db.create_user("client_only", "pw", "REPLICATION CLIENT")
        .await;
    let err = connect_err(&db.url("client_only", Some("pw"))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot replicate from mysql at 127.0.0.1:{port}: user 'client_only'@'%' lacks the REPLICATION SLAVE privilege, \
             which reading the binlog (COM_BINLOG_DUMP) needs (run GRANT REPLICATION SLAVE ON *.* TO 'client_only'@'%' as an administrator)"
        )
    );
    assert!(err.is_config());

    db.create_user("slave_only", "pw", "REPLICATION SLAVE")
        .await;
    let err = connect_err(&db.url("slave_only", Some("pw"))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot replicate from mysql at 127.0.0.1:{port}: user 'slave_only'@'%' lacks the BINLOG MONITOR privilege, \
             which listing the binlogs (SHOW BINARY LOGS) needs (run GRANT BINLOG MONITOR ON *.* TO 'slave_only'@'%' as an administrator)"
        )
    );
    assert!(err.is_config());
}

#[tokio::test]
async fn refuses_a_server_without_binlog() {
    let db = with_repl(MariaDbOptions {
        binlog: false,
        ..Default::default()
    })
    .await;
    let err = connect_err(&repl_url(&db)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot replicate from mysql at 127.0.0.1:{}: binary logging is off \
             (set log_bin in the server's configuration, then restart it)",
            db.port()
        )
    );
    assert!(err.is_config());
}

#[tokio::test]
async fn warns_about_statement_binlog_format_but_connects() {
    let db = with_repl(MariaDbOptions {
        binlog_format: BinlogFormat::Statement,
        ..Default::default()
    })
    .await;
    let conn = connect(&repl_url(&db)).await;
    assert_eq!(conn.info().binlog_format, "STATEMENT");
    assert_eq!(conn.info().warnings.len(), 1, "{:?}", conn.info().warnings);
    assert!(
        conn.info().warnings[0].starts_with("binlog_format is STATEMENT, not ROW"),
        "{:?}",
        conn.info().warnings
    );
}

#[tokio::test]
async fn explains_an_unreachable_port() {
    let port = free_port();
    let started = Instant::now();
    let err = connect_err(&format!("mysql://repl:pw@127.0.0.1:{port}")).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to mysql at 127.0.0.1:{port}: connection refused \
             (check the host and port in the source URL and that the server is running)"
        )
    );
    assert!(err.is_transient() && !err.is_config());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Reads events until the non-stream-only ROTATE that ends `file`; returns the file's
/// bytes as the stream rebuilds them, and the largest event seen.
async fn rebuild_file(stream: &mut logship::mysql::conn::BinlogStream) -> (Vec<u8>, usize) {
    let mut decoder = EventDecoder::with_checksum(ChecksumAlg::Crc32);
    let mut file = BINLOG_MAGIC.to_vec();
    let mut largest = 0;
    loop {
        let (raw, _) = next_event(stream).await;
        let offset = file.len() as u64;
        let event: Event = decoder
            .decode(raw.clone(), offset)
            .unwrap_or_else(|e| panic!("event at {offset} does not decode: {e}"));
        if event.is_stream_only() {
            continue;
        }
        // Every event starts where the previous one ended: MariaDB leaves ANNOTATE_ROWS
        // events out unless the dump asks for them.
        assert_eq!(
            u64::from(event.header().log_pos),
            offset + raw.len() as u64,
            "event {:?} does not follow the previous one",
            event.event_type()
        );
        largest = largest.max(raw.len());
        file.extend_from_slice(&raw);
        if event.event_type() == EventType::ROTATE {
            return (file, largest);
        }
    }
}

#[tokio::test]
async fn dump_rebuilds_a_closed_file_byte_for_byte_with_a_16_mib_event() {
    let db = with_repl(MariaDbOptions::default()).await;
    db.exec(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v LONGTEXT); \
         INSERT INTO app.t VALUES (1, 'one'), (2, 'two'); \
         INSERT INTO app.t VALUES (3, REPEAT('x', 20 * 1024 * 1024)); \
         UPDATE app.t SET v = 'uno' WHERE id = 1",
    )
    .await;
    // The live file's FORMAT_DESCRIPTION has LOG_EVENT_BINLOG_IN_USE_F set on disk, which the
    // stream clears: only a closed file compares byte for byte.
    db.exec("FLUSH BINARY LOGS").await;
    let conn = connect(&repl_url(&db)).await;
    let mut stream = conn
        .start_dump(&dump_opts(101, pos("binlog.000001", 4)))
        .await
        .unwrap();
    let (rebuilt, largest) = rebuild_file(&mut stream).await;
    assert!(largest > 16 * 1024 * 1024, "largest event {largest}");
    let on_disk = db.binlog_file("binlog.000001");
    assert_eq!(rebuilt.len(), on_disk.len());
    assert!(
        rebuilt == on_disk,
        "the rebuilt file differs from the server's"
    );
    stream.close().await;
}

#[tokio::test]
async fn heartbeats_arrive_when_idle() {
    let db = with_repl(MariaDbOptions::default()).await;
    let conn = connect(&repl_url(&db)).await;
    let current = conn.info().current.clone();
    let mut options = dump_opts(102, current);
    options.heartbeat = Duration::from_millis(200);
    let mut stream = conn.start_dump(&options).await.unwrap();
    let started = Instant::now();
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let (raw, _) = next_event(&mut stream).await;
        if raw.get(4) == Some(&EventType::HEARTBEAT.0) {
            heartbeats += 1;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn classifies_purged_files_and_impossible_positions() {
    let db = with_repl(MariaDbOptions::default()).await;
    db.exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS").await;
    // MariaDB keeps a file that crash recovery may still need (until its binlog checkpoint
    // moves on) and says so only in a warning: purge until the files are really gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        db.exec("PURGE BINARY LOGS TO 'binlog.000003'").await;
        let logs = db.binary_logs().await;
        if logs.first().map(|(name, _)| name.as_str()) == Some("binlog.000003") {
            break;
        }
        assert!(Instant::now() < deadline, "PURGE left {logs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port = db.port();
    let conn = connect(&repl_url(&db)).await;
    let mut stream = conn
        .start_dump(&dump_opts(103, pos("binlog.000001", 4)))
        .await
        .unwrap();
    // The fake ROTATE comes before the error.
    let err = loop {
        match next(&mut stream).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(err.is_purged() && !err.is_transient(), "{err}");
    assert_eq!(err.purged_file(), Some("binlog.000001:4"));
    assert_eq!(err.code(), Some(1236));
    assert_eq!(
        err.to_string(),
        format!(
            "binlog dump from mysql at 127.0.0.1:{port} failed: the binlog at binlog.000001:4 is no longer on the server: \
             Could not find first log file name in binary log index file (ERROR 1236; it was purged before it was archived: \
             take a new base backup, and make the server keep binlogs longer, e.g. binlog_expire_logs_seconds)"
        )
    );

    let conn = connect(&repl_url(&db)).await;
    let mut stream = conn
        .start_dump(&dump_opts(103, pos("binlog.000003", 99_999)))
        .await
        .unwrap();
    let err = loop {
        match next(&mut stream).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(!err.is_purged(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "binlog dump from mysql at 127.0.0.1:{port} failed: the server cannot start a dump at binlog.000003:99999: "
        )) && text.ends_with(
            "(ERROR 1236; the position is not the start of an event in that file: resume from an event boundary, e.g. the file's start at 4)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn refuses_a_duplicate_server_id() {
    let db = with_repl(MariaDbOptions::default()).await;
    // SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN on MariaDB 10.5.2 and later.
    db.exec("GRANT REPLICATION MASTER ADMIN ON *.* TO 'repl'@'%'")
        .await;
    let port = db.port();
    let conn = connect(&repl_url(&db)).await;
    let start = conn.info().current.clone();
    let mut first_opts = dump_opts(77, start.clone());
    first_opts.report_host = "host-a".into();
    let mut first = conn.start_dump(&first_opts).await.unwrap();
    next_event(&mut first).await; // registered and streaming

    let conn = connect(&repl_url(&db)).await;
    let mut other = dump_opts(77, start.clone());
    other.report_host = "host-b".into();
    let err = match conn.start_dump(&other).await {
        Ok(_) => panic!("a second replica with server_id 77 must be refused"),
        Err(e) => e,
    };
    assert_eq!(
        err.to_string(),
        format!(
            "cannot replicate from mysql at 127.0.0.1:{port}: another replica (host \"host-a\") is registered with server_id 77 \
             (set server_id in the source config to a value no other replica or server uses)"
        )
    );
    assert!(err.is_config());

    // The same name (a reconnect, or a second agent on this machine) passes the check, and
    // the server drops the older dump.
    let conn = connect(&repl_url(&db)).await;
    let mut second = conn.start_dump(&first_opts).await.unwrap();
    next_event(&mut second).await;
    let err = loop {
        match next(&mut first).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(
        err.to_string(),
        format!(
            "binlog dump from mysql at 127.0.0.1:{port} failed: another replica connected with server_id 77 and the server \
             dropped this one (set server_id in the source config to a value no other replica or server uses)"
        )
    );
    assert!(err.is_config());
}

#[tokio::test]
async fn rejects_server_id_zero() {
    let db = with_repl(MariaDbOptions::default()).await;
    let conn = connect(&repl_url(&db)).await;
    let start = conn.info().current.clone();
    let err = match conn.start_dump(&dump_opts(0, start)).await {
        Ok(_) => panic!("server_id 0 must be refused"),
        Err(e) => e,
    };
    assert!(err.is_config());
    assert!(
        err.to_string()
            .starts_with("invalid mysql source options: server_id 0 cannot replicate"),
        "{err}"
    );
}

#[tokio::test]
async fn semi_sync_events_ask_for_acks_and_acks_count() {
    let db = with_repl(MariaDbOptions {
        cnf: vec![
            "rpl_semi_sync_master_enabled=1".into(),
            "rpl_semi_sync_master_timeout=10000".into(),
        ],
        ..Default::default()
    })
    .await;
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await;
    let yes_tx = |rows: Vec<Vec<String>>| rows[0][1].parse::<u64>().unwrap();
    let before = yes_tx(
        db.query("SHOW STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
            .await,
    );
    let conn = connect(&repl_url(&db)).await;
    let current = conn.info().current.clone();
    let mut options = dump_opts(104, current.clone());
    options.semi_sync = true;
    let mut stream = conn.start_dump(&options).await.unwrap();
    // The fake ROTATE and the FORMAT_DESCRIPTION come first.
    next_event(&mut stream).await;
    assert_eq!(stream.is_semi_sync(), Some(true));

    let port = db.port();
    let writer = tokio::spawn(async move {
        let url = format!("mysql://root@127.0.0.1:{port}");
        let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
        use mysql_async::prelude::Queryable;
        conn.query_drop("INSERT INTO app.t VALUES (1)")
            .await
            .unwrap();
        let _ = conn.disconnect().await;
    });
    let mut acked = 0;
    while acked == 0 {
        let (raw, ack_requested) = next_event(&mut stream).await;
        if ack_requested {
            let log_pos = u32::from_le_bytes(raw[13..17].try_into().unwrap());
            stream
                .ack(&current.with_offset(u64::from(log_pos)))
                .await
                .unwrap();
            acked += 1;
        }
    }
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the commit waited for the semi-sync timeout: the ack was not taken")
        .unwrap();
    let after = yes_tx(
        db.query("SHOW STATUS LIKE 'Rpl_semi_sync_master_yes_tx'")
            .await,
    );
    assert!(
        after > before,
        "Rpl_semi_sync_master_yes_tx {before} -> {after}"
    );
}
