//! WAL streaming end to end: a real PostgreSQL 15, the `logship` binary, and
//! the store read back independently of the agent.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship_protocol::archive::key::SourceName;
use logship_protocol::pg::walrecord::WalRecordReader;
use logship_protocol::pg::xact::{XactKind, xact_event};
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize, xlog_file_name};
use logship_tests::agent::Agent;
use logship_tests::archive::{
    TestStore, assert_byte_identical, complete_segments, durable_end, fetch_segment, wait_durable,
};
use logship_tests::pg::PgServer;
use logship_tests::util::temp_dir;
use rand::Rng;

fn source() -> SourceName {
    SourceName::new("default").unwrap()
}

fn lsn(text: &str) -> Lsn {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn start_agent(
    pg: &PgServer,
    store: &TestStore,
    extra_env: &[(&str, &str)],
    log_dir: &std::path::Path,
) -> Agent {
    let mut env = store.env();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Agent::start(
        &[
            "--postgres",
            &pg.url("postgres", None),
            "--store",
            &store.url(),
        ],
        &env,
        log_dir,
    )
}

fn pgbench(pg: &PgServer, args: &[&str]) {
    let port = pg.port().to_string();
    let out = pg.run_as_postgres(
        Command::new(PgServer::bin("pgbench"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(args)
            .arg("postgres"),
    );
    assert!(
        out.status.success(),
        "pgbench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Ends the current segment and returns where the next one starts.
fn switch_wal(pg: &PgServer) -> Lsn {
    pg.sql("SELECT pg_switch_wal()");
    lsn(&pg.sql("SELECT pg_current_wal_flush_lsn()"))
}

/// Acceptance 1: after pgbench plus a bulk load (at least 6 segments), every
/// complete segment fetched back is byte-identical to the server's own file,
/// and pg_waldump reads the archived copies exactly as it reads the originals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_segments_are_byte_identical_to_pg_wal() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let mut agent = start_agent(&pg, &store, &[], logs.path());

    pgbench(&pg, &["-i", "-s", "5", "-q"]);
    pgbench(&pg, &["-c", "2", "-T", "3"]);
    pg.sql(
        "CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 200000) g",
    );
    let end = switch_wal(&pg);

    let opened = store.open().await;
    wait_durable(opened.as_ref(), &source(), end, Duration::from_secs(120)).await;
    let (status, took) = agent.sigterm();
    assert!(status.success(), "exit {status}; log:\n{}", agent.log());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");

    let pg_wal = pg.data_dir().join("pg_wal");
    let compared =
        assert_byte_identical(opened.as_ref(), &source(), TimelineId::FIRST, &pg_wal).await;
    assert!(compared >= 6, "only {compared} segments compared");

    // pg_waldump over the archived copies prints exactly what it prints over pg_wal.
    let names = complete_segments(opened.as_ref(), &source(), TimelineId::FIRST).await;
    let copies = temp_dir("waldump");
    for name in &names {
        std::fs::write(
            copies.path().join(name),
            fetch_segment(opened.as_ref(), &source(), name).await,
        )
        .unwrap();
    }
    let (first, last) = (names.first().unwrap(), names.last().unwrap());
    let waldump = |dir: &std::path::Path| {
        let out = Command::new(PgServer::bin("pg_waldump"))
            .arg("-p")
            .arg(dir)
            .args([first, last])
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    let (archived, _) = waldump(copies.path());
    let (original, _) = waldump(&pg_wal);
    assert!(
        archived.lines().count() > 1000,
        "pg_waldump printed too little:\n{archived}"
    );
    assert_eq!(
        archived, original,
        "pg_waldump reads the archived copies differently"
    );
}

/// Acceptance 2: with flush_interval=1s, 200 single-row commits at random
/// moments are durable in the store within 1.5 s at p99, measured by watching
/// the store itself; the partial segment served by wal-fetch holds the last commit.
async fn commits_become_durable_quickly(store: TestStore, label: &str) {
    let pg = PgServer::start();
    let logs = temp_dir("agent");
    let _agent = start_agent(
        &pg,
        &store,
        &[("LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL", "1s")],
        logs.path(),
    );
    let opened = store.open().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE rpo (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())",
        )
        .await
        .unwrap();
    let ready = switch_wal(&pg);
    wait_durable(opened.as_ref(), &source(), ready, Duration::from_secs(60)).await;

    // Watch the store: every few milliseconds, how far its WAL reaches.
    let samples: Arc<Mutex<Vec<(Instant, Lsn)>>> = Arc::default();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (store, samples, watching) = (opened.clone(), samples.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some((_, end)) = durable_end(store.as_ref(), &source()).await {
                    samples.lock().unwrap().push((Instant::now(), end));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut commits = Vec::new();
    let mut last_xid = 0i64;
    for _ in 0..200 {
        let pause = rand::rng().random_range(0..40);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let row = client
            .query_one(
                "INSERT INTO rpo DEFAULT VALUES RETURNING txid_current()",
                &[],
            )
            .await
            .unwrap();
        let committed = Instant::now();
        last_xid = row.get(0);
        let row = client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap();
        commits.push((committed, lsn(&row.get::<_, String>(0))));
    }
    let (_, last_lsn) = *commits.last().unwrap();
    wait_durable(
        opened.as_ref(),
        &source(),
        last_lsn,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.await.unwrap();

    let samples = samples.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = commits
        .iter()
        .map(|(committed, lsn)| {
            let (seen, _) = samples
                .iter()
                .find(|(at, end)| at >= committed && end >= lsn)
                .unwrap_or_else(|| panic!("commit at {lsn} never seen durable"));
            seen.duration_since(*committed)
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let (p50, p99, max) = (pick(0.50), pick(0.99), *latencies.last().unwrap());
    eprintln!(
        "{label}: commit → durable over {} commits: p50 {p50:?}, p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    assert!(
        p99 <= Duration::from_millis(1500),
        "{label}: p99 {p99:?} exceeds 1.5 s"
    );

    // The segment in progress, served by wal-fetch, holds the last commit's record.
    let seg = WalSegSize::DEFAULT;
    let name = xlog_file_name(TimelineId::FIRST, last_lsn.segment_no(seg), seg);
    let bytes = fetch_segment(opened.as_ref(), &source(), &name).await;
    assert_eq!(bytes.len() as u64, seg.bytes());
    let mut reader = WalRecordReader::new(last_lsn.segment_start(seg), seg);
    reader.feed(&bytes);
    let mut found = false;
    while let Some(record) = reader.next_record().unwrap() {
        if let Some(event) = xact_event(&record)
            && event.kind == XactKind::Commit
            && i64::from(event.xid) == last_xid
        {
            found = true;
        }
    }
    assert!(
        found,
        "{label}: the commit of xid {last_xid} is not in the fetched {name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_become_durable_within_a_second_file_store() {
    commits_become_durable_quickly(TestStore::file(), "file store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_become_durable_within_a_second_s3_store() {
    commits_become_durable_quickly(TestStore::s3(), "S3 store").await;
}

/// Acceptance 3: `kill -9` five times during a bulk load; after the last restart
/// catches up, the archive has no gap, is byte-identical, every object decodes,
/// and the slot's restart_lsn has moved forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_kill_9_without_gap_or_corruption() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let mut agent = start_agent(&pg, &store, &[], logs.path());
    let opened = store.open().await;
    let ready = switch_wal(&pg);
    wait_durable(opened.as_ref(), &source(), ready, Duration::from_secs(60)).await;
    let slot_before =
        lsn(&pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'logship'"));

    let load = {
        let url = pg.url("postgres", None);
        tokio::spawn(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute("CREATE TABLE big (g int, pad text)")
                .await
                .unwrap();
            for _ in 0..12 {
                client
                    .batch_execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g")
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..5 {
        let run_for = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(run_for)).await;
        agent.kill9();
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..200))).await;
        agent.restart();
    }
    load.await.unwrap();
    let end = switch_wal(&pg);
    wait_durable(opened.as_ref(), &source(), end, Duration::from_secs(120)).await;
    let (status, _) = agent.sigterm();
    assert!(status.success(), "log:\n{}", agent.log());
    assert_eq!(
        agent
            .log()
            .matches("resuming after the archived WAL")
            .count(),
        5,
        "log:\n{}",
        agent.log()
    );

    let compared = assert_byte_identical(
        opened.as_ref(),
        &source(),
        TimelineId::FIRST,
        &pg.data_dir().join("pg_wal"),
    )
    .await;
    assert!(compared >= 8, "only {compared} segments compared");
    for object in opened.list("").await.unwrap() {
        let stored = opened.get(&object.key).await.unwrap();
        logship_protocol::archive::object::decode(&stored)
            .unwrap_or_else(|e| panic!("{} is corrupt: {e}", object.key));
    }
    let slot_after =
        lsn(&pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'logship'"));
    assert!(slot_after > slot_before, "slot stayed at {slot_before}");
    assert!(slot_after <= durable_end(opened.as_ref(), &source()).await.unwrap().1);
}

/// `/metrics` carries DESIGN.md §5's series with the positions the store
/// really holds; `/healthz` and `/readyz` answer while streaming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_positions_lag_and_uploads() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let agent = start_agent(&pg, &store, &[], logs.path());
    let opened = store.open().await;
    pg.sql("CREATE TABLE m AS SELECT g FROM generate_series(1, 1000) g");
    let ready = switch_wal(&pg);
    wait_durable(opened.as_ref(), &source(), ready, Duration::from_secs(60)).await;
    // Idle now: one more flush interval lets the agent report everything.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, body) = agent.http_get("/metrics");
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
    };
    let durable = value("logship_durable_position{source=\"default\"}");
    let (_, stored_end) = durable_end(opened.as_ref(), &source()).await.unwrap();
    assert_eq!(
        durable as u64,
        stored_end.as_u64(),
        "durable position is not what the store holds"
    );
    assert!(durable >= ready.as_u64() as f64);
    assert!(value("logship_received_position{source=\"default\"}") >= durable);
    assert!(value("logship_server_position{source=\"default\"}") >= durable);
    assert_eq!(value("logship_lag_bytes{source=\"default\"}"), 0.0);
    assert_eq!(value("logship_lag_seconds{source=\"default\"}"), 0.0);
    assert!(value("logship_uploads_total{source=\"default\"}") >= 1.0);
    assert!(
        value("logship_shipped_bytes_total{source=\"default\",kind=\"raw\"}")
            >= 16.0 * 1024.0 * 1024.0
    );
    assert!(value("logship_shipped_bytes_total{source=\"default\",kind=\"stored\"}") > 0.0);
    assert!(
        body.contains("logship_upload_duration_seconds_bucket{source=\"default\""),
        "{body}"
    );
    assert_eq!(agent.http_get("/healthz").0, 200);
    assert_eq!(agent.http_get("/readyz").0, 200);
}

/// On SIGTERM, WAL that was received but not yet shipped becomes durable before exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_received_wal_durable() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    // A long flush interval: only the shutdown can ship the last commit.
    let mut agent = start_agent(
        &pg,
        &store,
        &[("LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL", "1h")],
        logs.path(),
    );
    let opened = store.open().await;
    let ready = switch_wal(&pg);
    wait_durable(opened.as_ref(), &source(), ready, Duration::from_secs(60)).await;

    pg.sql("CREATE TABLE last_words AS SELECT 'goodbye' AS said");
    let commit = lsn(&pg.sql("SELECT pg_current_wal_insert_lsn()"));
    let started = Instant::now();
    while lsn(&pg.sql("SELECT coalesce(max(sent_lsn), '0/0') FROM pg_stat_replication")) < commit {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never sent {commit}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        durable_end(opened.as_ref(), &source()).await.unwrap().1 < commit,
        "shipped before the shutdown"
    );
    let (status, took) = agent.sigterm();
    assert!(status.success(), "log:\n{}", agent.log());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(durable_end(opened.as_ref(), &source()).await.unwrap().1 >= commit);
}

/// Acceptance 4: the agent streams from a standby that gets promoted; it
/// follows onto timeline 2 like pg_receivewal. The archive holds
/// 00000002.history and both timelines with no gap, and the old timeline's
/// last segment stays the partial it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_promotion_onto_the_next_timeline() {
    let primary = PgServer::start();
    let standby = PgServer::standby_of(&primary);
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let mut agent = start_agent(&standby, &store, &[], logs.path());
    let opened = store.open().await;
    let seg = WalSegSize::DEFAULT;

    primary.sql(
        "CREATE TABLE history AS SELECT g, 'timeline 1' AS tl FROM generate_series(1, 50000) g",
    );
    switch_wal(&primary);
    primary
        .sql("INSERT INTO history SELECT g, 'timeline 1, later' FROM generate_series(1, 1000) g");
    let primary_end = lsn(&primary.sql("SELECT pg_current_wal_flush_lsn()"));
    let started = Instant::now();
    while lsn(&standby.sql("SELECT pg_last_wal_replay_lsn()")) < primary_end {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "standby did not replay {primary_end}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_durable(
        opened.as_ref(),
        &source(),
        primary_end,
        Duration::from_secs(30),
    )
    .await;

    standby.promote();
    let tli2 = TimelineId::new(2).unwrap();
    standby.sql("INSERT INTO history SELECT g, 'timeline 2' FROM generate_series(1, 50000) g");
    let end = switch_wal(&standby);
    let started = Instant::now();
    loop {
        match durable_end(opened.as_ref(), &source()).await {
            Some((tli, at)) if tli == tli2 && at >= end => break,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "timeline 2 not archived up to {end}: {other:?}\n{}",
                    agent.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let (status, _) = agent.sigterm();
    assert!(status.success(), "log:\n{}", agent.log());

    // The history file, archived byte for byte.
    let history = opened
        .get("default/timelines/00000002.history")
        .await
        .expect("00000002.history is archived");
    let history = logship_protocol::archive::object::decode(&history).unwrap();
    assert_eq!(history, standby.wal_file("00000002.history"));
    let switchpoint = lsn(std::str::from_utf8(&history)
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap());

    // Timeline 1: complete segments byte-identical, no gap, last one partial.
    let pg_wal = standby.data_dir().join("pg_wal");
    let tli1 = TimelineId::FIRST;
    assert!(assert_byte_identical(opened.as_ref(), &source(), tli1, &pg_wal).await >= 1);
    let switch_segment = switchpoint.segment_no(seg);
    let partial_name = xlog_file_name(tli1, switch_segment, seg);
    assert!(
        !complete_segments(opened.as_ref(), &source(), tli1)
            .await
            .contains(&partial_name),
        "the old timeline's last segment must stay partial"
    );
    let partial = fetch_segment(opened.as_ref(), &source(), &partial_name).await;
    // With archiving on, PostgreSQL renames it `.partial` at promotion; without, it keeps its name.
    let renamed = standby
        .data_dir()
        .join("pg_wal")
        .join(format!("{partial_name}.partial"));
    let original = if renamed.exists() {
        std::fs::read(renamed).unwrap()
    } else {
        standby.wal_file(&partial_name)
    };
    let upto = switchpoint.segment_offset(seg) as usize;
    assert_eq!(
        partial[..upto],
        original[..upto],
        "the old timeline's partial differs"
    );
    assert!(
        partial[upto..].iter().all(|b| *b == 0),
        "the partial is padded with zeros"
    );

    // Timeline 2: starts at the switch segment, byte-identical, no gap.
    let names = complete_segments(opened.as_ref(), &source(), tli2).await;
    assert_eq!(
        names.first(),
        Some(&xlog_file_name(tli2, switch_segment, seg))
    );
    assert!(assert_byte_identical(opened.as_ref(), &source(), tli2, &pg_wal).await >= 1);
}
