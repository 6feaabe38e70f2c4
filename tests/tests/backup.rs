//! Base backups end to end: a real PostgreSQL 15 with a tablespace, `logship run` streaming
//! its WAL, `logship backup`, and the stored backup read back independently of the agent,
//! extracted and checked by PostgreSQL's own `pg_verifybackup`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use logship::store::Store;
use logship_protocol::archive::backup::{BackupId, BackupMeta, CheckpointMode};
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object;
use logship_protocol::pg::manifest::BackupManifest;
use logship_protocol::pg::{TimelineId, WalSegSize};
use logship_tests::agent::{Agent, last_stderr_line, logship};
use logship_tests::archive::{TestStore, backup_ids, durable_end, wait_for_backups};
use logship_tests::pg::PgServer;
use logship_tests::util::{is_root, temp_dir};

const SEG: WalSegSize = WalSegSize::DEFAULT;

fn source() -> SourceName {
    SourceName::new("default").unwrap()
}

/// Environment for a child `logship` with source `default` on `pg` (given through the
/// environment, so that its other settings can be too) and `store`.
fn env(pg: &PgServer, store: &TestStore, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = store.env();
    env.push(("LOGSHIP_STORE_URL".into(), store.url()));
    env.push(("LOGSHIP_SOURCE_DEFAULT_KIND".into(), "postgres".into()));
    env.push((
        "LOGSHIP_SOURCE_DEFAULT_URL".into(),
        pg.url("postgres", None),
    ));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn get_object(store: &dyn Store, key: ArchiveKey) -> Vec<u8> {
    let key = key.format(&source());
    store
        .get(&key)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"))
        .to_vec()
}

async fn read_meta(store: &dyn Store, id: BackupId) -> BackupMeta {
    let stored = get_object(store, ArchiveKey::BackupMeta { id }).await;
    BackupMeta::from_json(&object::decode(&stored).unwrap()).unwrap()
}

/// Checks every stored object of backup `id` against its meta and the server, then extracts
/// it and has `pg_verifybackup` check every file against the stored manifest.
async fn check_backup(store: &dyn Store, id: BackupId, pg: &PgServer, ts: (u32, &str)) {
    let meta = read_meta(store, id).await;
    assert_eq!(meta.id, id);
    assert_eq!(meta.timeline, TimelineId::FIRST);
    assert!(meta.start_lsn < meta.end_lsn, "{meta:?}");
    assert!(meta.start_time <= meta.end_time, "{meta:?}");
    assert!(meta.label.starts_with("logship "), "{}", meta.label);
    assert_eq!(
        meta.system_id.to_string(),
        pg.sql("SELECT system_identifier FROM pg_control_system()")
    );
    assert_eq!(
        meta.pg_version_num.to_string(),
        pg.sql("SHOW server_version_num")
    );
    assert_eq!(meta.wal_segment_size, SEG);
    assert_eq!(meta.checkpoint, CheckpointMode::Fast);
    let oids: Vec<u32> = meta.tablespaces.iter().map(|t| t.oid).collect();
    assert_eq!(oids, [0, ts.0]);
    assert_eq!(meta.tablespaces[0].location, None);
    assert_eq!(meta.tablespaces[1].location.as_deref(), Some(ts.1));
    assert_eq!(
        meta.raw_bytes,
        meta.tablespaces.iter().map(|t| t.raw_bytes).sum::<u64>()
    );
    assert_eq!(
        meta.stored_bytes,
        meta.tablespaces.iter().map(|t| t.stored_bytes).sum::<u64>()
    );
    // The WAL a restore needs is archived.
    let (_, archived) = durable_end(store, &source()).await.unwrap();
    assert!(archived >= meta.end_lsn, "archive ends at {archived}");

    let dir = temp_dir("backup-check");
    let data = dir.path().join("data");
    for ts_meta in &meta.tablespaces {
        let mut tar = Vec::new();
        let mut stored_bytes = 0;
        for chunk in 0..ts_meta.chunks {
            let stored = get_object(
                store,
                ArchiveKey::BackupChunk {
                    id,
                    tablespace: ts_meta.oid,
                    chunk,
                },
            )
            .await;
            let header = object::read_header(&stored).unwrap();
            assert_eq!(
                header.content_crc, ts_meta.chunk_crcs[chunk as usize],
                "tablespace {} chunk {chunk}",
                ts_meta.oid
            );
            stored_bytes += stored.len() as u64;
            tar.extend_from_slice(&object::decode(&stored).unwrap());
        }
        assert_eq!(
            tar.len() as u64,
            ts_meta.raw_bytes,
            "tablespace {}",
            ts_meta.oid
        );
        assert_eq!(
            stored_bytes, ts_meta.stored_bytes,
            "tablespace {}",
            ts_meta.oid
        );
        let target = match ts_meta.oid {
            0 => data.clone(),
            oid => dir.path().join(format!("ts_{oid}")),
        };
        std::fs::create_dir_all(&target).unwrap();
        tar::Archive::new(tar.as_slice()).unpack(&target).unwrap();
    }
    // A tar-format backup records tablespaces in tablespace_map instead of pg_tblspc's
    // symlinks; recreate the symlink as pg_basebackup's plain format would have it.
    let map = std::fs::read_to_string(data.join("tablespace_map")).unwrap();
    assert_eq!(map.trim(), format!("{} {}", ts.0, ts.1));
    std::os::unix::fs::symlink(
        dir.path().join(format!("ts_{}", ts.0)),
        data.join("pg_tblspc").join(ts.0.to_string()),
    )
    .unwrap();

    let stored = get_object(store, ArchiveKey::BackupManifest { id }).await;
    let manifest = object::decode(&stored).unwrap();
    let manifest_meta = meta.manifest.unwrap();
    assert_eq!(manifest_meta.raw_bytes, manifest.len() as u64);
    assert_eq!(manifest_meta.stored_bytes, stored.len() as u64);
    assert_eq!(
        manifest_meta.crc,
        object::read_header(&stored).unwrap().content_crc
    );
    BackupManifest::parse(&manifest).unwrap();
    let manifest_path = dir.path().join("backup_manifest");
    std::fs::write(&manifest_path, &manifest).unwrap();
    chown_postgres(dir.path());

    let out = pg.run_as_postgres(
        Command::new(PgServer::bin("pg_verifybackup"))
            .arg("-n")
            .arg("-m")
            .arg(&manifest_path)
            .arg(&data),
    );
    assert!(
        out.status.success(),
        "pg_verifybackup failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown -R postgres {}", path.display());
    }
}

/// `logship run` takes a first backup by itself, `logship backup` a second one; both are
/// complete, and the second passes `pg_verifybackup`, tablespace included.
async fn backup_scenario(store: TestStore) {
    let pg = PgServer::start();
    let (oid, location) = pg.create_tablespace("ts1");
    pg.sql(
        "CREATE TABLE in_ts TABLESPACE ts1 AS \
         SELECT g, repeat('t', 100) AS pad FROM generate_series(1, 20000) g",
    );
    pg.sql("CREATE TABLE in_main AS SELECT g FROM generate_series(1, 50000) g");
    let logs = temp_dir("agent");
    let env = env(
        &pg,
        &store,
        &[("LOGSHIP_SOURCE_DEFAULT_BASE_BACKUP_INTERVAL", "24h")],
    );
    let agent = Agent::start(&[], &env, logs.path());
    let st = store.open().await;

    let first = wait_for_backups(st.as_ref(), &source(), 1, Duration::from_secs(120), &agent).await;

    let out = logship(&["backup"], &env);
    assert!(
        out.status.success(),
        "logship backup failed: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log()
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let id: BackupId = printed.trim().parse().unwrap();
    assert_eq!(printed, format!("{id}\n"));
    assert_ne!(id, first[0]);
    assert_eq!(backup_ids(st.as_ref(), &source()).await, [first[0], id]);
    check_backup(st.as_ref(), id, &pg, (oid, &location)).await;
    check_backup(st.as_ref(), first[0], &pg, (oid, &location)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_with_a_tablespace_passes_pg_verifybackup_file_store() {
    backup_scenario(TestStore::file()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_with_a_tablespace_passes_pg_verifybackup_s3() {
    backup_scenario(TestStore::s3()).await;
}

/// With a short `base_backup_interval`, `logship run` takes the next backup that long after
/// the previous one ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_a_backup_every_interval() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let env = env(
        &pg,
        &store,
        &[("LOGSHIP_SOURCE_DEFAULT_BASE_BACKUP_INTERVAL", "3s")],
    );
    let agent = Agent::start(&[], &env, logs.path());
    let st = store.open().await;
    let ids = wait_for_backups(st.as_ref(), &source(), 2, Duration::from_secs(120), &agent).await;
    let first = read_meta(st.as_ref(), ids[0]).await;
    let second = read_meta(st.as_ref(), ids[1]).await;
    let gap = second.start_time.duration_since(first.end_time);
    assert!(
        gap >= jiff::SignedDuration::from_millis(2900),
        "the second backup started {gap:#} after the first ended"
    );
}

/// Without `logship run` having archived anything, a backup is refused with one line and
/// nothing is written.
#[test]
fn backup_before_any_archive_is_refused() {
    let pg = PgServer::start();
    let store = TestStore::file();
    let out = logship(&["backup"], &env(&pg, &store, &[]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        last_stderr_line(&out),
        "error: no archive for source \"default\" yet: start logship run first, so the WAL a \
         backup needs is archived"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listed = runtime.block_on(async { store.open().await.list("").await.unwrap() });
    assert!(listed.is_empty(), "the store was written to: {listed:?}");
}
