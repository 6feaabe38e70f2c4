//! A restore of a server with a tablespace, on the original's own host while the original
//! still runs: refused into the tablespace's directory in use, and done with
//! `--tablespace-mapping`, which moves the tablespace into a new directory. The restored
//! server's rows in that tablespace equal the original's, and the original's directory is
//! left alone.

use logship_tests::agent::last_stderr_line;
use logship_tests::archive::TestStore;
use logship_tests::pg::PgServer;
use logship_tests::restore::{
    Archiving, assert_refused, restore, restore_and_start, rows_sql, wait_archived,
};
use logship_tests::util::temp_dir;

/// The names of the entries of `dir`, sorted.
fn entries(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tablespace_is_restored_into_the_directory_its_mapping_names() {
    let pg = PgServer::start();
    let (oid, location) = pg.create_tablespace("ts1");
    pg.sql(
        "CREATE TABLE in_ts (id int PRIMARY KEY, note text) TABLESPACE ts1; \
         INSERT INTO in_ts SELECT g, md5(g::text) FROM generate_series(1, 5000) g",
    );
    let store = TestStore::file();
    let _archiving = Archiving::start(&pg, &store, &[]).await;
    // Replay writes into the tablespace too.
    pg.sql(
        "INSERT INTO in_ts SELECT g, md5(g::text) FROM generate_series(5001, 8000) g; \
         UPDATE in_ts SET note = 'changed' WHERE id % 7 = 0",
    );
    wait_archived(&pg, &store).await;

    let dir = temp_dir("restore-tablespace");
    let to = dir.path().join("restored");
    let moved = dir.path().join("ts1-restored").display().to_string();

    // Into the original's directory, in use: refused before anything is written.
    let out = restore(&store, &to, &["--latest"]);
    assert_refused(
        &out,
        &to,
        &format!(
            "error: tablespace {oid} goes to {location}, its directory on the original server, which is not empty (the original may still use it: restore the tablespace elsewhere with --tablespace-mapping {location}=NEWDIR)"
        ),
    );

    // A mapping that names no tablespace of the backup: refused, nothing written.
    let out = restore(
        &store,
        &to,
        &["--latest", "--tablespace-mapping", "/nowhere/ts=/tmp/ts"],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = last_stderr_line(&out);
    assert!(
        line.starts_with("error: --tablespace-mapping names /nowhere/ts, but backup ")
            && line.ends_with(&format!(
                " has no tablespace there (map one of its tablespace directories: {location})"
            )),
        "{line}"
    );
    assert!(!to.exists());

    let mapping = format!("{location}={moved}");
    let (restored, _) =
        restore_and_start(&store, &to, &["--latest", "--tablespace-mapping", &mapping]);
    assert_eq!(
        restored.sql(&format!("SELECT pg_tablespace_location({oid})")),
        moved
    );
    assert_eq!(
        std::fs::read_link(to.join("pg_tblspc").join(oid.to_string()))
            .unwrap()
            .display()
            .to_string(),
        moved
    );
    assert_eq!(restored.sql(&rows_sql("in_ts")), pg.sql(&rows_sql("in_ts")));
    assert_eq!(restored.sql("SELECT count(*) FROM in_ts"), "8000");
    assert_eq!(entries(&moved), entries(&location));
    // The two servers write into their own copies.
    restored.sql("INSERT INTO in_ts VALUES (9001, 'restored only')");
    assert_eq!(pg.sql("SELECT count(*) FROM in_ts WHERE id = 9001"), "0");
    pg.sql("INSERT INTO in_ts VALUES (9002, 'original only')");
    assert_eq!(
        restored.sql("SELECT count(*) FROM in_ts WHERE id = 9002"),
        "0"
    );
}
