//! Bad input to `logship run --mysql URL`, seen from the binary: each case ends with one
//! exact line on stderr and exit status 1 (or, for what only deserves a warning, one
//! warning line while streaming goes on), and writes nothing to the store.

use std::process::Output;
use std::time::{Duration, Instant};

use logship_tests::agent::last_stderr_line;
use logship_tests::archive::{TestStore, snapshot};
use logship_tests::binlog::{
    archived_file, assert_closed_files_identical, complete_files, durable_len, run_mysql_once,
    start_mysql_agent, wait_closed_files_archived,
};
use logship_tests::mariadb::{
    BinlogChecksum, BinlogFormat, MariaDb, MariaDbOptions, REPL_PRIVILEGES,
};
use logship_tests::util::{free_port, logship_bin, temp_dir};

/// How long a refusal may take: it must come at once, without retries.
const AT_ONCE: Duration = Duration::from_secs(10);

async fn with_logship_user(options: MariaDbOptions) -> MariaDb {
    let db = MariaDb::start(options);
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    db
}

fn logship_url(db: &MariaDb) -> String {
    db.url("logship", Some("secret"))
}

/// Asserts that a run failed with status 1 and `line` as its last line on stderr.
fn assert_refused(out: &Output, line: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(last_stderr_line(out), line, "{out:?}");
}

/// Runs the agent against `url` with an empty store, which must stay empty.
async fn assert_refused_at_once(url: &str, env: &[(String, String)], line: &str) {
    let store = TestStore::file();
    logship_bin(); // built before the clock starts
    let started = Instant::now();
    let out = run_mysql_once(url, &store, env);
    assert_refused(&out, line);
    assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
    let opened = store.open().await;
    assert!(
        snapshot(opened.as_ref()).await.is_empty(),
        "nothing is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_missing_privileges_and_an_unreachable_port_fail_at_once() {
    let db = with_logship_user(MariaDbOptions::default()).await;
    db.create_user("client_only", "pw", "REPLICATION CLIENT")
        .await;
    db.create_user("slave_only", "pw", "REPLICATION SLAVE")
        .await;
    let port = db.port();
    assert_refused_at_once(
        &db.url("logship", Some("wrong")),
        &[],
        &format!(
            "error: source default: cannot connect to mysql at 127.0.0.1:{port}: Access denied for \
             user 'logship'@'localhost' (using password: YES) (check the password in the source \
             URL or MYSQL_PWD)"
        ),
    )
    .await;
    assert_refused_at_once(
        &db.url("client_only", Some("pw")),
        &[],
        &format!(
            "error: source default: cannot replicate from mysql at 127.0.0.1:{port}: user \
             'client_only'@'%' lacks the REPLICATION SLAVE privilege, which reading the binlog \
             (COM_BINLOG_DUMP) needs (run GRANT REPLICATION SLAVE ON *.* TO 'client_only'@'%' as \
             an administrator)"
        ),
    )
    .await;
    // MariaDB 10.5.2 renamed REPLICATION CLIENT to BINLOG MONITOR.
    assert_refused_at_once(
        &db.url("slave_only", Some("pw")),
        &[],
        &format!(
            "error: source default: cannot replicate from mysql at 127.0.0.1:{port}: user \
             'slave_only'@'%' lacks the BINLOG MONITOR privilege, which listing the binlogs \
             (SHOW BINARY LOGS) needs (run GRANT BINLOG MONITOR ON *.* TO 'slave_only'@'%' as an \
             administrator)"
        ),
    )
    .await;
    let closed = free_port();
    assert_refused_at_once(
        &format!("mysql://logship:secret@127.0.0.1:{closed}"),
        &[],
        &format!(
            "error: source default: cannot connect to mysql at 127.0.0.1:{closed}: connection \
             refused (check the host and port in the source URL and that the server is running)"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_binlog_is_refused() {
    let db = with_logship_user(MariaDbOptions {
        binlog: false,
        ..Default::default()
    })
    .await;
    assert_refused_at_once(
        &logship_url(&db),
        &[],
        &format!(
            "error: source default: cannot replicate from mysql at 127.0.0.1:{}: binary logging \
             is off (set log_bin in the server's configuration, then restart it)",
            db.port()
        ),
    )
    .await;
}

/// The id of the server's binlog dump thread, once there is one other than `not`.
async fn dump_thread(db: &MariaDb, not: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids = db
            .query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
            .await;
        if let Some(id) = ids
            .into_iter()
            .map(|row| row[0].clone())
            .find(|id| Some(id.as_str()) != not)
        {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "no new binlog dump thread within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const STATEMENT_WARNING: &str = "binlog_format is STATEMENT, not ROW: the archive is complete, \
     but statement events are harder to inspect and may replay differently (SET GLOBAL \
     binlog_format = ROW and persist it in the server's configuration)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_binlog_format_is_warned_about_once_and_streamed() {
    let db = with_logship_user(MariaDbOptions {
        binlog_format: BinlogFormat::Statement,
        ..Default::default()
    })
    .await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-statement");
    let mut agent = start_mysql_agent(&logship_url(&db), &store, "200ms", &[], logs.path());
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    db.exec("INSERT INTO app.t VALUES (1, 'before the reconnect')")
        .await;
    // Drop the dump connection: the agent reconnects, and checks the server again.
    let first = dump_thread(&db, None).await;
    db.exec(&format!("KILL CONNECTION {first}")).await;
    dump_thread(&db, Some(&first)).await;
    db.exec("INSERT INTO app.t VALUES (2, 'after the reconnect'); FLUSH BINARY LOGS")
        .await;
    let opened = store.open().await;
    let closed = wait_closed_files_archived(&db, opened.as_ref(), &mut agent).await;
    // The harness's CREATE USER and GRANT, two DDL statements and two inserts.
    assert_eq!(
        assert_closed_files_identical(&db, opened.as_ref(), &closed).await,
        6
    );
    let log = agent.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("binlog_format is"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning line:\n{log}");
    assert!(
        warnings[0].contains(" WARN ") && warnings[0].ends_with(STATEMENT_WARNING),
        "{}",
        warnings[0]
    );
    assert!(
        log.contains("replication interrupted; reconnecting"),
        "{log}"
    );
    let (status, _) = agent.sigterm();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_checksum_none_is_archived_byte_for_byte() {
    let db = with_logship_user(MariaDbOptions {
        binlog_checksum: BinlogChecksum::None,
        ..Default::default()
    })
    .await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-no-checksum");
    let mut agent = start_mysql_agent(&logship_url(&db), &store, "200ms", &[], logs.path());
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v LONGTEXT)")
        .await;
    for i in 0..20 {
        db.exec(&format!(
            "INSERT INTO app.t VALUES ({i}, REPEAT('n', 3000))"
        ))
        .await;
    }
    db.exec("FLUSH BINARY LOGS").await;
    db.exec("INSERT INTO app.t VALUES (100, 'second file'); FLUSH BINARY LOGS")
        .await;
    let opened = store.open().await;
    let closed = wait_closed_files_archived(&db, opened.as_ref(), &mut agent).await;
    assert_eq!(closed.len(), 2, "{closed:?}");
    // The harness's CREATE USER and GRANT, two DDL statements and 21 inserts.
    assert_eq!(
        assert_closed_files_identical(&db, opened.as_ref(), &closed).await,
        25
    );
    assert!(!agent.log().contains(" WARN "), "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_servers_archive_under_the_same_name_is_refused() {
    let a = with_logship_user(MariaDbOptions::default()).await;
    let b = with_logship_user(MariaDbOptions {
        server_id: 2,
        gtid_domain_id: 2,
        ..Default::default()
    })
    .await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-identity");
    let mut agent = start_mysql_agent(&logship_url(&a), &store, "200ms", &[], logs.path());
    a.exec("CREATE DATABASE app").await;
    let opened = store.open().await;
    let (file, end) = a.current_binlog().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while durable_len(opened.as_ref(), &file).await < end {
        assert!(
            Instant::now() < deadline && agent.is_running(),
            "server A's binlog not archived; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = agent.sigterm();
    assert!(status.success(), "{status}");

    let before = snapshot(opened.as_ref()).await;
    let out = run_mysql_once(&logship_url(&b), &store, &[]);
    assert_refused(
        &out,
        &format!(
            "error: source default: store {} already holds source \"default\" for mariadb gtid \
             domain 0, but the server is mariadb gtid domain 2 (give this server its own source \
             name or store prefix)",
            store.url()
        ),
    );
    assert!(
        snapshot(opened.as_ref()).await == before,
        "nothing is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_id_another_replica_uses_is_refused_not_fought_over() {
    let primary = with_logship_user(MariaDbOptions::default()).await;
    let replica = MariaDb::start_replica_of(
        &primary,
        MariaDbOptions {
            server_id: 7,
            cnf: vec!["report_host=replica-7".into()],
            ..Default::default()
        },
    )
    .await;
    let same_id = [(
        "LOGSHIP_SOURCE_DEFAULT_SERVER_ID".to_string(),
        "7".to_string(),
    )];
    let port = primary.port();

    // Without REPLICATION MASTER ADMIN the agent cannot list the replicas first: the server
    // drops the replica for the agent, the replica reconnects and the server drops the
    // agent, which then stops with one line instead of knocking the replica off again.
    let store = TestStore::file();
    logship_bin(); // built before the clock starts
    let started = Instant::now();
    let out = run_mysql_once(&logship_url(&primary), &store, &same_id);
    assert_refused(
        &out,
        &format!(
            "error: source default: binlog dump from mysql at 127.0.0.1:{port} failed: another \
             replica connected with server_id 7 and the server dropped this one (set server_id \
             in the source config to a value no other replica or server uses)"
        ),
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    primary.exec("CREATE DATABASE after_the_agent").await;
    replica.wait_caught_up(&primary).await;
    let status = replica.slave_status().await.unwrap();
    assert_eq!(status["Slave_IO_Running"], "Yes", "{status:?}");

    // With it, the agent sees the replica before it connects and writes nothing.
    primary
        .exec("GRANT REPLICATION MASTER ADMIN ON *.* TO 'logship'@'%'")
        .await;
    assert_refused_at_once(
        &logship_url(&primary),
        &same_id,
        &format!(
            "error: source default: cannot replicate from mysql at 127.0.0.1:{port}: another \
             replica (host \"replica-7\", port {}) is registered with server_id 7 (set server_id \
             in the source config to a value no other replica or server uses)",
            replica.port()
        ),
    )
    .await;
}

/// `PURGE BINARY LOGS TO file`, repeated until the server really dropped the older files:
/// MariaDB keeps one that crash recovery may still need, and says so only in a warning.
async fn purge_to(db: &MariaDb, file: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        db.exec(&format!("PURGE BINARY LOGS TO '{file}'")).await;
        let logs = db.binary_logs().await;
        if logs.first().map(|(name, _)| name.as_str()) == Some(file) {
            return;
        }
        assert!(Instant::now() < deadline, "PURGE TO {file} left {logs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn insert(db: &MariaDb, from: u32, count: u32) {
    for id in from..from + count {
        db.exec(&format!(
            "INSERT INTO app.t VALUES ({id}, REPEAT('p', 500))"
        ))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_binlogs_continue_when_nothing_is_lost_and_stop_naming_the_range_when_it_is() {
    let db = with_logship_user(MariaDbOptions::default()).await;
    let store = TestStore::file();
    let opened = store.open().await;
    let logs = temp_dir("mysql-purged");
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    insert(&db, 0, 10).await;

    // The archive holds binlog.000001 complete and nothing of binlog.000002: the file in
    // progress is shipped every 30 s only, the complete one at once, then kill -9.
    let mut agent = start_mysql_agent(&logship_url(&db), &store, "30s", &[], logs.path());
    dump_thread(&db, None).await;
    db.exec("FLUSH BINARY LOGS").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while complete_files(opened.as_ref()).await.is_empty() {
        assert!(
            Instant::now() < deadline && agent.is_running(),
            "binlog.000001 not archived complete; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.kill9();
    assert_eq!(complete_files(opened.as_ref()).await, ["binlog.000001"]);
    assert_eq!(durable_len(opened.as_ref(), "binlog.000002").await, 0);
    let first = db.binlog_file("binlog.000001");

    // The server purges binlog.000001, which the archive holds: nothing is lost, and the
    // agent continues with binlog.000002 from its start.
    insert(&db, 10, 10).await;
    db.exec("FLUSH BINARY LOGS").await;
    insert(&db, 20, 10).await;
    purge_to(&db, "binlog.000002").await;
    agent.restart();
    db.exec("FLUSH BINARY LOGS").await;
    let closed = wait_closed_files_archived(&db, opened.as_ref(), &mut agent).await;
    assert_eq!(closed, ["binlog.000002", "binlog.000003"]);
    assert_eq!(
        complete_files(opened.as_ref()).await,
        ["binlog.000001", "binlog.000002", "binlog.000003"]
    );
    assert!(archived_file(opened.as_ref(), "binlog.000001").await == Some(first));
    // 10 inserts in each file after the first.
    assert_eq!(
        assert_closed_files_identical(&db, opened.as_ref(), &closed).await,
        20
    );
    let (status, _) = agent.sigterm();
    assert!(status.success(), "{status}");

    // The server purges binlog the archive does not hold: the agent names the lost range
    // and stops, writing nothing.
    let archived = durable_len(opened.as_ref(), "binlog.000004").await;
    assert!(
        archived > 4,
        "the agent shipped binlog.000004 up to its end"
    );
    insert(&db, 30, 5).await;
    db.exec("FLUSH BINARY LOGS").await;
    insert(&db, 35, 5).await;
    db.exec("FLUSH BINARY LOGS").await;
    purge_to(&db, "binlog.000006").await;
    let before = snapshot(opened.as_ref()).await;
    let started = Instant::now();
    let out = run_mysql_once(&logship_url(&db), &store, &[]);
    assert_refused(
        &out,
        &format!(
            "error: source default: binlog binlog.000004:{archived} up to binlog.000006:4 is \
             lost: the server purged it before it was archived (the archive ends at \
             binlog.000004:{archived}; the server's oldest binlog is binlog.000006); to archive \
             this server again, move this source's prefix in store {} aside or give the source a \
             new name, take a new base backup, and keep binlogs longer on the server \
             (binlog_expire_logs_seconds)",
            store.url()
        ),
    );
    assert!(started.elapsed() < AT_ONCE, "took {:?}", started.elapsed());
    assert!(
        snapshot(opened.as_ref()).await == before,
        "nothing is written"
    );
}
