//! Acceptance: a restore to an LSN at the very end of the archive reaches it. A user who
//! notes `pg_current_wal_lsn()` right after the last commit before a disaster, and restores
//! to exactly that position, gets every committed row back, although no archived record
//! starts at or after it for PostgreSQL to stop at. So does an LSN inside the last record;
//! one byte past the archive's end is refused. A prepared transaction as the last record is
//! part of the state restored. The window's start, the oldest backup's end, is reachable
//! by LSN too.

use std::time::Duration;

use logship::pg::window::{RecordSpan, load_source};
use logship_protocol::pg::walrecord::next_record_start;
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};
use logship_tests::agent::Agent;
use logship_tests::archive::{TestStore, durable_end, wait_durable};
use logship_tests::pg::{PgOptions, PgServer};
use logship_tests::restore::{
    Archiving, assert_refused, commit_returning_xid, commit_time, default_source, reached,
    restorable_window, restore, restore_and_start, rows_sql,
};
use logship_tests::util::temp_dir;

/// How many times the last statement is run before a background record (a standby
/// snapshot, every 15 s) landing after it in the archive fails the test.
const ATTEMPTS: u32 = 5;

/// A server with commit timestamps and room for prepared transactions, no autovacuum, a
/// table of 1000 rows and `pg_walinspect`, archived by a running agent with a backup taken.
async fn archived_server(store: &TestStore) -> (PgServer, Archiving) {
    let pg = PgServer::start_with(PgOptions {
        conf: vec![
            ("track_commit_timestamp".into(), "on".into()),
            ("max_prepared_transactions".into(), "4".into()),
            ("autovacuum".into(), "off".into()),
        ],
        ..PgOptions::default()
    });
    pg.sql(
        "CREATE EXTENSION pg_walinspect;
         CREATE TABLE t (id int PRIMARY KEY, note text);
         INSERT INTO t SELECT g, 'before the backup ' || g FROM generate_series(1, 1000) g",
    );
    let archiving = Archiving::start(&pg, store, &[]).await;
    (pg, archiving)
}

/// Runs `last` (given the attempt number) on `pg` as the last thing archived: waits until
/// the store holds the WAL up to `pg_current_wal_lsn()` after it, stops the agent with
/// SIGTERM, and checks that the archive ends exactly there. Returns what `last` returned
/// and that position.
async fn end_archive_with<T>(
    pg: &PgServer,
    store: &TestStore,
    agent: &mut Agent,
    mut last: impl FnMut(u32) -> T,
) -> (T, Lsn) {
    let opened = store.open().await;
    let source = default_source();
    for attempt in 1..=ATTEMPTS {
        let value = last(attempt);
        let lsn: Lsn = pg.sql("SELECT pg_current_wal_lsn()").parse().unwrap();
        wait_durable(opened.as_ref(), &source, lsn, Duration::from_secs(60)).await;
        let (status, _) = agent.sigterm();
        assert!(status.success(), "{}", agent.log());
        let end = durable_end(opened.as_ref(), &source).await;
        if end == Some((TimelineId::FIRST, lsn)) {
            return (value, lsn);
        }
        eprintln!("attempt {attempt}: the archive ends at {end:?}, after {lsn}: again");
        agent.restart();
    }
    panic!("WAL written in the background followed the last statement {ATTEMPTS} times");
}

/// The last record ending at or before `end` as PostgreSQL reads it, and its kind; checked
/// to be the last record the archive's summary found.
async fn last_record(pg: &PgServer, store: &TestStore, end: Lsn) -> (RecordSpan, String) {
    let from = Lsn::new(end.as_u64() - 512);
    let row = pg.sql(&format!(
        "SELECT start_lsn, end_lsn, resource_manager || ' ' || record_type \
         FROM pg_get_wal_records_info('{from}', '{end}') ORDER BY start_lsn DESC LIMIT 1"
    ));
    let fields: Vec<&str> = row.split('|').collect();
    let [start, end, kind] = fields.as_slice() else {
        panic!("no WAL record before {end}: {row:?}");
    };
    let record = RecordSpan {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
    };
    let opened = store.open().await;
    let loaded = load_source(opened.as_ref(), &default_source())
        .await
        .unwrap();
    assert_eq!(loaded.last_record, Some(record));
    (record, kind.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_to_the_lsn_right_after_the_last_archived_commit() {
    let store = TestStore::file();
    let (pg, mut archiving) = archived_server(&store).await;
    let at_backup = pg.sql(&rows_sql("t"));
    for batch in 0..5 {
        pg.sql(&format!(
            "UPDATE t SET note = 'batch {batch}' WHERE id % 5 = {batch};
             INSERT INTO t SELECT 1000 + 100 * {batch} + g, 'new' FROM generate_series(1, 100) g"
        ));
    }
    let (xid, end) = end_archive_with(&pg, &store, &mut archiving.agent, |attempt| {
        commit_returning_xid(
            &pg,
            &format!(
                "DELETE FROM t WHERE id = {attempt}; INSERT INTO t VALUES (-{attempt}, 'last')"
            ),
        )
    })
    .await;
    let rows = pg.sql(&rows_sql("t"));
    let committed = commit_time(&pg, &xid);

    // PostgreSQL's own view: the commit is the last record, and ends where the archive does.
    let (record, kind) = last_record(&pg, &store, end).await;
    assert_eq!((record.end, kind.as_str()), (end, "Transaction COMMIT"));
    let window = restorable_window(&store).await;
    assert_eq!(window.end, committed);

    let dir = temp_dir("lsn-end");
    let inside = Lsn::new(record.start.as_u64() + 1);
    for (name, target) in [("at-end", end), ("inside-last", inside)] {
        let (server, out) = restore_and_start(
            &store,
            &dir.path().join(name),
            &["--target-lsn", &target.to_string()],
        );
        assert_eq!(server.sql(&rows_sql("t")), rows, "{name}");
        assert_eq!(reached(&out), (committed, end), "{name}: {out}");
    }

    // One byte past where the next record could start is refused before anything is
    // written (the same as one past the end, unless the end falls on a page boundary).
    let past = Lsn::new(next_record_start(end, WalSegSize::DEFAULT).as_u64() + 1);
    let to = dir.path().join("past-end");
    let out = restore(&store, &to, &["--target-lsn", &past.to_string()]);
    assert_refused(
        &out,
        &to,
        &format!(
            "error: target LSN {past} is beyond the archived WAL of timeline 1, which ends at {end} (pick an earlier LSN, or wait until the WAL is archived; see logship list)"
        ),
    );

    // The window's first LSN, where the oldest backup becomes consistent: its rows exactly.
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("window-start"),
        &["--target-lsn", &window.start_lsn.to_string()],
    );
    assert_eq!(server.sql(&rows_sql("t")), at_backup);
    assert!(
        out.contains("(no transaction was replayed after the backup)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prepared_transaction_as_the_last_record_is_restored() {
    let store = TestStore::file();
    let (pg, mut archiving) = archived_server(&store).await;
    let xid = commit_returning_xid(&pg, "UPDATE t SET note = 'committed' WHERE id <= 10");
    let committed = commit_time(&pg, &xid);
    let (_, end) = end_archive_with(&pg, &store, &mut archiving.agent, |attempt| {
        pg.sql(&format!(
            "BEGIN; INSERT INTO t VALUES (-{attempt}, 'prepared'); PREPARE TRANSACTION 'p{attempt}'"
        ))
    })
    .await;
    let (record, kind) = last_record(&pg, &store, end).await;
    assert_eq!((record.end, kind.as_str()), (end, "Transaction PREPARE"));
    let prepared_sql = "SELECT gid FROM pg_prepared_xacts ORDER BY gid";
    let prepared = pg.sql(prepared_sql);
    assert!(!prepared.is_empty());

    let dir = temp_dir("lsn-end-prepared");
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("at-end"),
        &["--target-lsn", &end.to_string()],
    );
    assert_eq!(server.sql(&rows_sql("t")), pg.sql(&rows_sql("t")));
    assert_eq!(server.sql(prepared_sql), prepared);
    assert_eq!(reached(&out), (committed, end), "{out}");
}
