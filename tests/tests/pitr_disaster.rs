//! Acceptance: the primary is lost for good while a client commits, and `restore --latest`
//! brings back every commit acknowledged more than `flush_interval` before the loss.
//!
//! The primary is crashed (`pg_ctl -m immediate`) and its data directory deleted; `logship
//! run` is left running, as it would be on another host. Commits acknowledged within the
//! last `flush_interval` may be lost: how many were is printed, not asserted.

use std::time::{Duration, Instant};

use logship_tests::archive::TestStore;
use logship_tests::pg::{PgOptions, PgServer};
use logship_tests::restore::{Archiving, restore_and_start};
use logship_tests::util::temp_dir;

const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How long the client commits before the primary is lost.
const LOAD: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread")]
async fn latest_after_losing_the_primary_keeps_every_commit_older_than_the_flush_interval() {
    let pg = PgServer::start_with(PgOptions {
        conf: vec![("autovacuum".into(), "off".into())],
        ..PgOptions::default()
    });
    pg.sql("CREATE TABLE seq (n bigint PRIMARY KEY)");
    let store = TestStore::file();
    let _archiving = Archiving::start(
        &pg,
        &store,
        &[("LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL", "1s")],
    )
    .await;

    // One client, one row per commit, numbered 1, 2, 3…: each logged with when its COMMIT
    // returned, until the server is gone.
    let client = pg.client().await;
    let writer = tokio::spawn(async move {
        let mut acked: Vec<(i64, Instant)> = Vec::new();
        for n in 1_i64.. {
            if client
                .execute("INSERT INTO seq VALUES ($1)", &[&n])
                .await
                .is_err()
            {
                break;
            }
            acked.push((n, Instant::now()));
        }
        acked
    });
    tokio::time::sleep(LOAD).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| pg.stop_immediate());
    let acked = writer.await.unwrap();
    std::fs::remove_dir_all(pg.data_dir()).unwrap();
    // `logship run` outlives the primary: it has one flush interval to ship what it received.
    tokio::time::sleep(FLUSH_INTERVAL + Duration::from_millis(500)).await;

    let dir = temp_dir("disaster");
    let (server, _) = restore_and_start(&store, &dir.path().join("latest"), &["--latest"]);
    let row = server.sql("SELECT count(*), coalesce(min(n), 0), coalesce(max(n), 0) FROM seq");
    let fields: Vec<i64> = row.split('|').map(|f| f.parse().unwrap()).collect();
    let (count, min, present) = (fields[0], fields[1], fields[2]);
    assert!(
        count == present && (count == 0 || min == 1),
        "the restored rows are not a prefix 1..K of the sequence: {count} rows from {min} to {present}"
    );

    let cutoff = killed - FLUSH_INTERVAL;
    let old_enough = acked
        .iter()
        .take_while(|(_, at)| *at < cutoff)
        .last()
        .map_or(0, |(n, _)| *n);
    let last_acked = acked.last().map_or(0, |(n, _)| *n);
    assert!(
        old_enough > 0,
        "no commit was acknowledged before {FLUSH_INTERVAL:?} ahead of the kill"
    );
    assert!(
        present >= old_enough,
        "commits 1..{old_enough} were acknowledged more than {FLUSH_INTERVAL:?} before the kill, \
         but only 1..{present} were restored"
    );
    // At most the one commit in flight at the kill can be durable without its acknowledgement.
    assert!(
        present <= last_acked + 1,
        "{present} rows restored, but only {last_acked} commits were acknowledged"
    );
    let recent = acked.iter().filter(|(_, at)| *at >= cutoff).count();
    let lost = acked.iter().filter(|(n, _)| *n > present).count();
    eprintln!(
        "disaster: {lost} of {recent} commits acknowledged in the last {FLUSH_INTERVAL:?} before the kill \
         were lost; all {old_enough} older ones present ({} acknowledged in all, {present} restored)",
        acked.len()
    );
}
