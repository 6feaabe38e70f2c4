//! Near-zero RPO for MySQL sources (issue acceptance 2): single-row commits at random
//! moments with `flush_interval = 1s`, each timed from its commit until the store holds
//! it, for the file store and for S3 (s3s-fs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::Row;
use mysql_async::prelude::Queryable;
use rand::Rng;

use logship_tests::archive::TestStore;
use logship_tests::binlog::{
    assert_live_prefix_equal, binlog_fetch, committed_ends, durable_len, start_mysql_agent,
};
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::temp_dir;

/// How many commits are timed.
const COMMITS: usize = 250;

async fn commit_to_durable(store: TestStore, label: &str) {
    let db = MariaDb::start(MariaDbOptions::default());
    db.create_user("logship", "secret", REPL_PRIVILEGES).await;
    let logs = temp_dir("mysql-rpo");
    let mut agent = start_mysql_agent(
        &db.url("logship", Some("secret")),
        &store,
        "1s",
        &[],
        logs.path(),
    );
    db.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    let opened = store.open().await;
    let (file, ready) = db.current_binlog().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while durable_len(opened.as_ref(), &file).await < ready {
        assert!(
            Instant::now() < deadline && agent.is_running(),
            "{label}: the agent did not start archiving; its log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Watch the store: every few milliseconds, how far it holds the file in progress.
    let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (store, samples, watching, file) = (
            opened.clone(),
            samples.clone(),
            watching.clone(),
            file.clone(),
        );
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let end = durable_len(store.as_ref(), &file).await;
                samples.lock().unwrap().push((Instant::now(), end));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut conn = db.conn().await;
    let mut commits = Vec::with_capacity(COMMITS);
    for id in 0..COMMITS {
        let pause = rand::rng().random_range(0..50);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        conn.query_drop(format!("INSERT INTO app.t VALUES ({id}, 'commit {id}')"))
            .await
            .unwrap();
        let committed = Instant::now();
        let status: Row = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        let (now_file, end): (String, u64) = (status.get(0).unwrap(), status.get(1).unwrap());
        assert_eq!(now_file, file, "the server stayed in one file");
        commits.push((committed, end));
    }
    let _ = conn.disconnect().await;
    let (_, last_end) = *commits.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while durable_len(opened.as_ref(), &file).await < last_end {
        assert!(
            Instant::now() < deadline,
            "{label}: the last commit not durable after 10 s; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();

    let samples = samples.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = commits
        .iter()
        .map(|(committed, end)| {
            let (seen, _) = samples
                .iter()
                .find(|(at, durable)| at >= committed && durable >= end)
                .unwrap_or_else(|| {
                    panic!("{label}: the commit ending at {end} never seen durable")
                });
            seen.duration_since(*committed)
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let (p50, p99, max) = (pick(0.50), pick(0.99), *latencies.last().unwrap());
    eprintln!(
        "{label}: commit → durable over {} commits (flush_interval 1s): p50 {p50:?}, p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    assert!(
        p99 <= Duration::from_millis(1500),
        "{label}: p99 {p99:?} exceeds 1.5 s"
    );

    // binlog-fetch serves the file in progress, up to and with the last commit.
    let fetched = logs.path().join(&file);
    binlog_fetch(&store, &file, &fetched, 0);
    let fetched = std::fs::read(&fetched).unwrap();
    assert_eq!(fetched.len() as u64, last_end);
    assert_live_prefix_equal(&fetched, &db.binlog_file(&file)[..last_end as usize]);
    assert_eq!(committed_ends(&file, &fetched).last(), Some(&last_end));
    binlog_fetch(&store, "binlog.999999", &logs.path().join("missing"), 1);
    assert!(!logs.path().join("missing").exists());
    let (status, _) = agent.sigterm();
    assert!(status.success(), "{label}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_holds_each_commit_within_a_flush_interval() {
    commit_to_durable(TestStore::file(), "file store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_holds_each_commit_within_a_flush_interval() {
    commit_to_durable(TestStore::s3(), "s3s-fs").await;
}
