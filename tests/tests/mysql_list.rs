//! `logship list` and `/metrics` for a MySQL/MariaDB source: a real MariaDB 10.11 streamed by
//! `logship run --mysql`, compared with the server's own `SHOW BINARY LOGS`, its binlog files
//! and `@@gtid_binlog_pos`.

use std::path::Path;
use std::time::{Duration, Instant};

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::key::{self as binlog_key, ServerNo};
use logship_protocol::mysql::{BinlogFileName, BinlogPos, BinlogReader, TransactionTracker};
use logship_tests::agent::{Agent, logship};
use logship_tests::archive::TestStore;
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::temp_dir;
use serde_json::{Value, json};

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

/// Runs `logship list`, with `--json` when `json` is set.
fn run_list(store: &TestStore, json: bool) -> std::process::Output {
    let url = store.url();
    let mut args = vec!["--store", url.as_str(), "list"];
    if json {
        args.push("--json");
    }
    logship(&args, &store.env())
}

/// `logship list`'s text, which must succeed.
fn list(store: &TestStore, json: bool) -> String {
    let out = run_list(store, json);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn list_json(store: &TestStore) -> Value {
    let out = list(store, true);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --json printed {out:?}: {e}"))
}

/// Waits until the listing's archive reaches the server's current binlog position and
/// holds every closed file complete; returns that listing.
async fn wait_listed_up_to_the_server(db: &MariaDb, store: &TestStore, agent: &Agent) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (file, pos) = db.current_binlog().await;
        // The store holds nothing until the agent has checked the server.
        let out = run_list(store, true);
        let listing: Value = match out.status.code() {
            Some(0) => serde_json::from_slice(&out.stdout).unwrap(),
            _ => Value::Null,
        };
        let source = &listing["sources"][0];
        let files = source["files"].as_array().cloned().unwrap_or_default();
        let closed_complete = files
            .iter()
            .filter(|f| f["name"] != file.as_str())
            .all(|f| f["complete"] == true);
        // MariaDB writes a file's BINLOG_CHECKPOINT some time after FLUSH BINARY LOGS: the
        // listing counts only if the server did not move while it was taken.
        let still = db.current_binlog().await == (file.clone(), pos);
        if source["archive"][0]["to"] == format!("{file}:{pos}").as_str()
            && closed_complete
            && still
        {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "the listing did not reach {file}:{pos} within 60 s: {listing}\nagent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest committed transaction of a closed binlog file, read from the server's own file.
fn last_commit_in(db: &MariaDb, name: &str) -> Option<(u64, jiff::Timestamp)> {
    let file = BinlogFileName::new(name).unwrap();
    let mut tracker = TransactionTracker::new();
    BinlogReader::read_all(&db.binlog_file(name))
        .unwrap()
        .iter()
        .filter_map(|event| {
            tracker
                .push(event, &BinlogPos::new(file.clone(), event.end_offset()))
                .map(|t| (t.end.offset(), t.commit_time))
        })
        .last()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_the_archived_binlog_files_gaps_and_the_newest_commit() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-list");
    let mut agent = start_agent(&db, &store, logs.path());
    agent.wait_streaming();

    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    for batch in 0..3 {
        for i in 0..10 {
            let id = batch * 10 + i;
            db.exec(&format!("INSERT INTO app.t VALUES ({id}, 'batch {batch}')"))
                .await;
        }
        db.exec("FLUSH BINARY LOGS").await;
    }
    // Give the server time to write the new file's BINLOG_CHECKPOINT, which it does
    // shortly after the flush rather than with it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The newest file holds no transaction yet: the newest commit is in the one before.
    let listing = wait_listed_up_to_the_server(&db, &store, &agent).await;
    let logs_now = db.binary_logs().await;
    assert_eq!(
        logs_now.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        [
            "binlog.000001",
            "binlog.000002",
            "binlog.000003",
            "binlog.000004"
        ]
    );
    let (newest, newest_len) = logs_now.last().unwrap().clone();
    let (commit_end, commit_time) = last_commit_in(&db, "binlog.000003").unwrap();
    let gtid = db.gtid_binlog_pos().await;
    let files: Vec<Value> = logs_now
        .iter()
        .map(|(name, size)| {
            json!({"server": "1", "name": name, "length": size, "complete": name != &newest})
        })
        .collect();
    assert_eq!(
        listing,
        json!({"sources": [{
            "name": "default",
            "kind": "mysql",
            "system_id": "domain 0, server_id 1",
            "backups": [],
            "archive": [{
                "timeline_or_server": "1",
                "from": "binlog.000001:4",
                "to": format!("{newest}:{newest_len}"),
            }],
            "gaps": [],
            "window": null,
            "files": files,
            "newest_commit": {
                "time": commit_time.to_string(),
                "position": format!("binlog.000003:{commit_end}"),
                "gtid": gtid,
            },
        }]})
    );

    let (status, _) = agent.sigterm();
    assert!(status.success(), "log:\n{}", agent.log());
    let size = |name: &str| logs_now.iter().find(|(f, _)| f == name).unwrap().1;
    // The table as `list` lays it out: each column as wide as its widest cell.
    let table = |names: &[&str]| {
        let width = names
            .iter()
            .map(|name| size(name).to_string().len())
            .fold("bytes".len(), usize::max);
        let mut rows = format!("      file           {:<width$}  state\n", "bytes");
        for name in names {
            let state = if *name == newest {
                "in progress"
            } else {
                "complete"
            };
            rows.push_str(&format!("      {name}  {:<width$}  {state}\n", size(name)));
        }
        rows
    };
    let expected = |files: &str, gaps: &str| {
        format!(
            "source default (mysql, MariaDB GTID domain 0, server_id 1)
  backups: none
  archived binlog:
    server 1: binlog.000001:4 .. {newest}:{newest_len}
{files}  gaps:{gaps}
  newest durable commit: {} (GTID {gtid}, ending at binlog.000003:{commit_end})
  restorable window: none (there is no base backup yet; take one with logship backup)
",
            commit_time
        )
    };
    let all = [
        "binlog.000001",
        "binlog.000002",
        "binlog.000003",
        "binlog.000004",
    ];
    assert_eq!(list(&store, false), expected(&table(&all), " none"));

    // A middle file deleted from the store is a gap, from the end of the file before it to
    // the first event of the file after it.
    let opened = store.open().await;
    let source = SourceName::new("default").unwrap();
    let prefix = binlog_key::file_prefix(
        &source,
        ServerNo::FIRST,
        &BinlogFileName::new("binlog.000002").unwrap(),
    );
    let whole = prefix.trim_end_matches('.').to_owned();
    let mut deleted = 0;
    for object in opened.list(&whole).await.unwrap() {
        if object.key == whole || object.key.starts_with(&prefix) {
            opened.delete(&object.key).await.unwrap();
            deleted += 1;
        }
    }
    assert!(deleted >= 2, "the complete file and its index");
    let listing = list_json(&store);
    let source = &listing["sources"][0];
    assert_eq!(
        source["gaps"],
        json!([{
            "timeline_or_server": "1",
            "from": format!("binlog.000001:{}", size("binlog.000001")),
            "to": "binlog.000003:4",
            "missing": {"first": "binlog.000002", "last": "binlog.000002"},
        }])
    );
    assert_eq!(
        source["files"].as_array().unwrap().len(),
        3,
        "{}",
        source["files"]
    );
    assert_eq!(
        source["archive"][0]["to"],
        format!("{newest}:{newest_len}").as_str()
    );
    let gap = format!(
        "\n    server 1: binlog.000001:{} .. binlog.000003:4 (binlog.000002 is missing)",
        size("binlog.000001")
    );
    let three = ["binlog.000001", "binlog.000003", "binlog.000004"];
    assert_eq!(list(&store, false), expected(&table(&three), &gap));
}

/// The value of `series` (name and labels) in a `/metrics` body.
fn metric(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

/// The source's positions and lag, as `/metrics` shows them.
struct Positions {
    received: u64,
    durable: u64,
    server: u64,
    lag_bytes: f64,
    lag_seconds: f64,
}

/// The source's positions and lag on `/metrics` now.
fn scrape(agent: &Agent) -> Positions {
    let (status, body) = agent.http_get("/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| metric(&body, &format!("{name}{{source=\"default\"}}"));
    Positions {
        received: value("logship_received_position") as u64,
        durable: value("logship_durable_position") as u64,
        server: value("logship_server_position") as u64,
        lag_bytes: value("logship_lag_bytes"),
        lag_seconds: value("logship_lag_seconds"),
    }
}

/// Waits until `/metrics` shows everything durable up to `expected`.
async fn wait_idle_at(agent: &Agent, expected: u64) -> Positions {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let positions = scrape(agent);
        if positions.durable == expected && positions.server == expected {
            return positions;
        }
        assert!(
            Instant::now() < deadline,
            "durable {} and server {} did not reach {expected} within 30 s; agent log:\n{}",
            positions.durable,
            positions.server,
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every byte of the server's binlog: the sum of `SHOW BINARY LOGS` sizes. The archive
/// started with the first file, so this is the global offset of the binlog's end.
async fn binlog_bytes(db: &MariaDb) -> u64 {
    db.binary_logs().await.iter().map(|(_, size)| size).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_global_byte_offsets_and_no_lag_once_idle() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-metrics");
    let mut agent = start_agent(&db, &store, logs.path());
    agent.wait_streaming();
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;

    // Archived up to the server (so the agent serves /metrics by now).
    wait_listed_up_to_the_server(&db, &store, &agent).await;
    let before = binlog_bytes(&db).await;
    let idle = wait_idle_at(&agent, before).await;
    assert_eq!(idle.received, before);
    assert_eq!((idle.lag_bytes, idle.lag_seconds), (0.0, 0.0));

    // A batch within one file moves every position by the bytes it added to the file.
    let (file, start) = db.current_binlog().await;
    db.exec(
        "INSERT INTO app.t SELECT seq, REPEAT('m', 100) FROM app.seq_1_to_500; \
         INSERT INTO app.t VALUES (1000, 'one more')",
    )
    .await;
    let (same_file, end) = db.current_binlog().await;
    assert_eq!(same_file, file);
    let after = wait_idle_at(&agent, before + (end - start)).await;
    assert_eq!(after.received, after.durable);
    assert_eq!((after.lag_bytes, after.lag_seconds), (0.0, 0.0));

    // Across FLUSH BINARY LOGS too: the new file begins where the last one ended.
    let before = binlog_bytes(&db).await;
    db.exec(
        "INSERT INTO app.t SELECT 2000 + seq, 'before flush' FROM app.seq_1_to_50; \
         FLUSH BINARY LOGS; \
         INSERT INTO app.t SELECT 3000 + seq, 'after flush' FROM app.seq_1_to_50",
    )
    .await;
    let grown = binlog_bytes(&db).await - before;
    assert!(grown > 0);
    let flushed = wait_idle_at(&agent, before + grown).await;
    assert_eq!(flushed.received, flushed.durable);
    assert_eq!((flushed.lag_bytes, flushed.lag_seconds), (0.0, 0.0));
    assert_eq!(db.binary_logs().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_the_bytes_and_seconds_not_yet_durable() {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    let store = TestStore::file();
    let logs = temp_dir("mysql-lag");
    let mut env = store.env();
    // Only a complete file becomes durable while the agent runs.
    env.push(("LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL".into(), "1h".into()));
    let url = db.url("logship", Some("secret"));
    let mut agent = Agent::start(
        &["--mysql", &url, "--store", &store.url()],
        &env,
        logs.path(),
    );
    agent.wait_streaming();
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    db.exec("FLUSH BINARY LOGS").await;
    let first = binlog_bytes(&db).await - db.current_binlog().await.1;
    let (_, newest_durable) = last_commit_in(&db, "binlog.000001").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = run_list(&store, true);
        if listing.status.success()
            && serde_json::from_slice::<Value>(&listing.stdout).unwrap()["sources"][0]["files"][0]["complete"]
                == true
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "binlog.000001 not archived within 30 s; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    db.exec("INSERT INTO app.t VALUES (1, 'not durable yet')")
        .await;
    let (file, pos) = db.current_binlog().await;
    assert_eq!(file, "binlog.000002");
    let received = wait_received(&agent, first + pos).await;
    let scraped = jiff::Timestamp::now();
    // Behind by the whole of binlog.000002 so far, and by the time since the newest
    // commit of binlog.000001, as of the insert's arrival.
    assert_eq!(received.durable, first);
    assert_eq!(received.server, first + pos);
    assert_eq!(received.lag_bytes, pos as f64);
    let most = scraped.duration_since(newest_durable).as_secs_f64();
    assert!(
        received.lag_seconds >= 2.0 && received.lag_seconds <= most,
        "lag {} s, not within 2 s ..= {most} s",
        received.lag_seconds
    );
}

/// Waits until `/metrics` shows everything received up to `expected`.
async fn wait_received(agent: &Agent, expected: u64) -> Positions {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let positions = scrape(agent);
        if positions.received == expected {
            return positions;
        }
        assert!(
            Instant::now() < deadline,
            "received {} did not reach {expected} within 30 s; agent log:\n{}",
            positions.received,
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
