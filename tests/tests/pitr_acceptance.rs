//! Acceptance: a point-in-time restore is exact. Tables of varied types are changed by a
//! batch of transactions A, then wrecked by a batch B (a drop, an update of every row, a
//! truncate). Restoring to the commit time of A's last transaction, or to the WAL position
//! right after it, gives back every table row for row as it was after A, from the segment
//! still in progress (served from its pieces), on a file store and on S3. The window's end,
//! the newest archived commit, is reachable too: nothing follows it for PostgreSQL to stop
//! before.

use logship::pg::catalog::WalCatalog;
use logship::timefmt::format_time;
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};
use logship_tests::archive::TestStore;
use logship_tests::pg::{PgOptions, PgServer};
use logship_tests::restore::{
    Archiving, RestoredServer, commit_returning_xid, commit_time, default_source, reached,
    restorable_window, restore_and_start, rows_sql, wait_archived,
};
use logship_tests::util::temp_dir;

const TABLES: [&str; 3] = ["accounts", "orders", "audit"];

/// Three tables of varied types (text, numeric, timestamptz, arrays, jsonb, floats, NULLs).
const SCHEMA: &str = "
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(14,2),
                       opened timestamptz, note text);
INSERT INTO accounts
  SELECT g, 'owner ' || g, (g * 13.37)::numeric(14,2),
         timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour 1.000001 second',
         CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END
  FROM generate_series(1, 3000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, account_id int, amount numeric, placed_at timestamptz,
                     status text, tags text[]);
INSERT INTO orders
  SELECT g, g % 3000 + 1, round(g * 0.731, 3),
         timestamptz '2021-06-01 12:00:00.123456+00' + g * interval '37 seconds',
         (ARRAY['new', 'paid', 'shipped', NULL])[g % 4 + 1],
         CASE WHEN g % 3 = 0 THEN NULL ELSE ARRAY['a' || g, 'b'] END
  FROM generate_series(1, 4000) g;
CREATE TABLE audit (id int PRIMARY KEY, at timestamptz, actor text, detail jsonb,
                    ratio double precision);
INSERT INTO audit
  SELECT g, now() - g * interval '1 minute', CASE WHEN g % 7 = 0 THEN NULL ELSE 'user' || g % 50 END,
         jsonb_build_object('g', g, 'odd', g % 2 = 1), g / 7.0
  FROM generate_series(1, 2000) g;
";

/// Batch A: several transactions, then `A_LAST` in one whose xid is kept.
const BATCH_A: [&str; 3] = [
    "UPDATE accounts SET balance = balance - 10.5, note = 'debited' WHERE id % 10 = 0",
    "INSERT INTO orders SELECT 4000 + g, g, g * 1.5, now(), 'new', ARRAY['late'] FROM generate_series(1, 50) g",
    "DELETE FROM audit WHERE id % 9 = 0",
];
const A_LAST: &str =
    "INSERT INTO audit VALUES (5001, now(), 'last of A', '{\"a\": [1, null]}', NULL);
UPDATE accounts SET balance = 0, note = NULL WHERE id = 1";

/// Batch B: everything a restore to the end of A must undo.
const BATCH_B: [&str; 4] = [
    "DROP TABLE audit",
    "UPDATE orders SET amount = amount * 2, status = 'changed'",
    "TRUNCATE accounts",
    "INSERT INTO accounts SELECT g, 'after', 1, now(), NULL FROM generate_series(1, 100) g",
];

/// The state right after batch A, and where it ends.
struct AfterA {
    /// Each table's rows, as [`rows_sql`] prints them.
    rows: Vec<(&'static str, String)>,
    /// The commit time of A's last transaction.
    time: jiff::Timestamp,
    /// The insert position right after A's last commit.
    lsn: Lsn,
}

/// Runs the schema, backup, batch A and batch B on a fresh server archived into `store`.
async fn scenario(store: &TestStore) -> (PgServer, Archiving, AfterA) {
    let pg = PgServer::start_with(PgOptions {
        conf: vec![
            ("track_commit_timestamp".into(), "on".into()),
            // No background commit lands between A and B.
            ("autovacuum".into(), "off".into()),
        ],
        ..PgOptions::default()
    });
    pg.sql(SCHEMA);
    let archiving = Archiving::start(&pg, store, &[]).await;

    for sql in BATCH_A {
        pg.sql(sql);
    }
    let xid = commit_returning_xid(&pg, A_LAST);
    let lsn: Lsn = pg
        .sql("SELECT pg_current_wal_insert_lsn()")
        .parse()
        .unwrap();
    let rows = TABLES.iter().map(|t| (*t, pg.sql(&rows_sql(t)))).collect();
    let time = commit_time(&pg, &xid);

    for sql in BATCH_B {
        pg.sql(sql);
    }
    wait_archived(&pg, store).await;
    (pg, archiving, AfterA { rows, time, lsn })
}

/// Asserts that `server` holds exactly the rows of `expected`, naming the first difference.
fn assert_same_rows(server: &RestoredServer, expected: &[(&str, String)]) {
    for (table, rows) in expected {
        assert!(!rows.is_empty(), "{table} was empty");
        let restored = server.sql(&rows_sql(table));
        if &restored != rows {
            let first = rows.lines().zip(restored.lines()).position(|(a, b)| a != b);
            panic!(
                "{table}: {} rows restored, {} expected; first difference at row {first:?}",
                restored.lines().count(),
                rows.lines().count()
            );
        }
    }
}

/// Asserts that the segment holding A's last commit is still in progress in the archive:
/// no complete object, only pieces.
async fn assert_in_progress(store: &TestStore, lsn: Lsn) {
    let seg = WalSegSize::DEFAULT;
    let opened = store.open().await;
    let catalog = WalCatalog::load(opened.as_ref(), &default_source(), seg)
        .await
        .unwrap();
    let segno = Lsn::new(lsn.as_u64() - 1).segment_no(seg);
    let objects = catalog
        .segment(TimelineId::FIRST, segno)
        .unwrap_or_else(|| panic!("segment {segno:?} of {lsn} is not archived"));
    assert!(
        !objects.complete && !objects.pieces.is_empty(),
        "the segment holding {lsn} must be in progress, served from pieces: {objects:?}"
    );
}

async fn restores_exactly(store: TestStore, every_target: bool) {
    let (pg, _archiving, after_a) = scenario(&store).await;
    let dir = temp_dir("pitr");

    assert_in_progress(&store, after_a.lsn).await;
    let target = format_time(after_a.time);
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("to-time"),
        &["--target-time", &target],
    );
    assert_in_progress(&store, after_a.lsn).await;
    assert_same_rows(&server, &after_a.rows);
    let (time, _) = reached(&out);
    assert_eq!(time, after_a.time, "{out}");
    drop(server);

    if !every_target {
        return;
    }
    let target = after_a.lsn.to_string();
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("to-lsn"),
        &["--target-lsn", &target],
    );
    assert_same_rows(&server, &after_a.rows);
    let (time, at) = reached(&out);
    assert_eq!(time, after_a.time, "{out}");
    assert!(at >= after_a.lsn, "reached {at}, before {}", after_a.lsn);
    drop(server);

    // The window ends at B's last commit, the last thing archived.
    let last_commit: jiff::Timestamp = pg
        .sql(
            "SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             FROM pg_last_committed_xact()",
        )
        .parse()
        .unwrap();
    let window = restorable_window(&store).await;
    assert_eq!(window.end, last_commit);
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("to-window-end"),
        &["--target-time", &format_time(window.end)],
    );
    assert_eq!(reached(&out).0, window.end, "{out}");
    let now: Vec<_> = ["accounts", "orders"]
        .into_iter()
        .map(|t| (t, pg.sql(&rows_sql(t))))
        .collect();
    assert_same_rows(&server, &now);
    assert_eq!(server.sql("SELECT to_regclass('audit') IS NULL"), "t");
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_to_a_commit_time_and_an_lsn_exactly_file_store() {
    restores_exactly(TestStore::file(), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_to_a_commit_time_exactly_s3() {
    restores_exactly(TestStore::s3(), false).await;
}
