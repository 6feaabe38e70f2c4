//! Acceptance: a restore to a time after a promotion follows the timeline switch. `logship
//! run` and `logship backup` work against a standby; the standby is promoted; the restore
//! to a commit time on timeline 2 replays the backup's timeline 1 WAL, then timeline 2's.

use std::time::{Duration, Instant};

use logship::timefmt::format_time;
use logship_tests::archive::TestStore;
use logship_tests::pg::{PgOptions, PgServer};
use logship_tests::restore::{
    Archiving, commit_returning_xid, commit_time, reached, restore_and_start, wait_archived,
    wal_end,
};
use logship_tests::util::temp_dir;

/// Waits until `standby` has replayed everything `primary` flushed.
fn wait_replayed(primary: &PgServer, standby: &PgServer) {
    let end = wal_end(primary);
    let started = Instant::now();
    while wal_end(standby) < end {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby did not replay {end}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Inserts `ids` on `pg` in one transaction marked with timeline `tl`; returns its xid.
fn insert(pg: &PgServer, ids: (u32, u32), tl: u32) -> String {
    commit_returning_xid(
        pg,
        &format!(
            "INSERT INTO events SELECT g, {tl}, md5(g::text), now() FROM generate_series({}, {}) g",
            ids.0, ids.1
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_to_a_time_on_the_timeline_after_a_promotion() {
    let primary = PgServer::start_with(PgOptions {
        // Copied to the standby by pg_basebackup.
        conf: vec![
            ("track_commit_timestamp".into(), "on".into()),
            ("autovacuum".into(), "off".into()),
        ],
        ..PgOptions::default()
    });
    primary.sql(
        "CREATE TABLE events (id int PRIMARY KEY, tl int NOT NULL, note text, at timestamptz)",
    );
    insert(&primary, (1, 1000), 1);
    let standby = PgServer::standby_of(&primary);
    let store = TestStore::file();
    let archiving = Archiving::stream(&standby, &store, &[]).await;
    // A standby's backup starts at its last restartpoint: have it replay a checkpoint the
    // archive holds.
    primary.sql("CHECKPOINT");
    wait_replayed(&primary, &standby);
    wait_archived(&standby, &store).await;
    archiving.backup(&standby, &store);

    insert(&primary, (1001, 1500), 1);
    wait_replayed(&primary, &standby);
    wait_archived(&standby, &store).await;
    primary.stop_fast();
    standby.promote();
    let target = commit_time(&standby, &insert(&standby, (2001, 2100), 2));
    insert(&standby, (2101, 2200), 2);
    wait_archived(&standby, &store).await;

    let dir = temp_dir("pitr-timeline");
    let (server, out) = restore_and_start(
        &store,
        &dir.path().join("restored"),
        &[
            "--target-time",
            &format_time(target),
            "--target-timeline",
            "latest",
        ],
    );
    assert!(out.contains("recovery replays timeline 2 to"), "{out}");
    assert_eq!(reached(&out).0, target, "{out}");
    assert_eq!(
        server.sql("SELECT tl, count(*), min(id), max(id) FROM events GROUP BY tl ORDER BY tl"),
        "1|1500|1|1500\n2|100|2001|2100"
    );
}
