//! The stores a scenario runs against, and checks of what an archive holds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship::pg::catalog::WalCatalog;
use logship::pg::walfetch;
use logship::store::s3::S3Store;
use logship::store::{self, Store, StoreConfig};
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::key::{self, ArchiveKey, SourceName};
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize, xlog_file_name};
use tempfile::TempDir;

use crate::agent::Agent;
use crate::s3::S3Server;
use crate::util::temp_dir;

/// A store for one scenario: a directory, or a bucket prefix on a real s3s-fs.
pub enum TestStore {
    File(TempDir),
    S3(S3Server),
}

impl TestStore {
    /// An empty file store in a temp dir.
    pub fn file() -> TestStore {
        TestStore::File(temp_dir("store"))
    }

    /// An empty prefix on a fresh s3s-fs.
    pub fn s3() -> TestStore {
        TestStore::S3(S3Server::start())
    }

    /// The `--store` URL.
    pub fn url(&self) -> String {
        match self {
            TestStore::File(dir) => format!("file://{}", dir.path().join("archive").display()),
            TestStore::S3(server) => server.store_url("archive"),
        }
    }

    /// Environment a child `logship` needs to reach the store.
    pub fn env(&self) -> Vec<(String, String)> {
        match self {
            TestStore::File(_) => Vec::new(),
            TestStore::S3(server) => {
                let mut env = server.env();
                env.push(("LOGSHIP_STORE_ENDPOINT".into(), server.endpoint()));
                env.push(("LOGSHIP_STORE_PATH_STYLE".into(), "true".into()));
                env
            }
        }
    }

    /// The same store, opened in this process.
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            TestStore::File(_) => store::open(&StoreConfig {
                url: self.url(),
                ..StoreConfig::default()
            })
            .await
            .expect("open the file store"),
            TestStore::S3(server) => Arc::new(
                S3Store::new(server.options("archive"))
                    .await
                    .expect("open the S3 store"),
            ),
        }
    }
}

/// Every object in the store, key and content, in key order: compare two snapshots to
/// show that a command wrote nothing.
pub async fn snapshot(store: &dyn Store) -> Vec<(String, Vec<u8>)> {
    let mut objects = Vec::new();
    for info in store.list("").await.expect("list the store") {
        let content = store.get(&info.key).await.expect("read an object");
        objects.push((info.key, content.to_vec()));
    }
    objects
}

/// The end of the newest durable WAL, read from the store itself.
pub async fn durable_end(store: &dyn Store, source: &SourceName) -> Option<(TimelineId, Lsn)> {
    let catalog = WalCatalog::load(store, source, WalSegSize::DEFAULT)
        .await
        .ok()?;
    catalog.newest_end().map(|end| (end.tli, end.end))
}

/// Waits until the store holds WAL up to `lsn`; panics after `timeout`.
pub async fn wait_durable(store: &dyn Store, source: &SourceName, lsn: Lsn, timeout: Duration) {
    let started = Instant::now();
    loop {
        if let Some((_, end)) = durable_end(store, source).await
            && end >= lsn
        {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the store did not reach {lsn} within {timeout:?} (it holds up to {:?})",
            durable_end(store, source).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The complete backups of `source` in the store, oldest first.
pub async fn backup_ids(store: &dyn Store, source: &SourceName) -> Vec<BackupId> {
    let mut ids: Vec<BackupId> = store
        .list(&key::backups_prefix(source))
        .await
        .expect("list the backups")
        .into_iter()
        .filter_map(|o| match ArchiveKey::parse(&o.key) {
            Ok((_, ArchiveKey::BackupMeta { id })) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

/// Waits until the store holds at least `count` complete backups of `source`; panics with
/// `agent`'s log after `timeout`.
pub async fn wait_for_backups(
    store: &dyn Store,
    source: &SourceName,
    count: usize,
    timeout: Duration,
    agent: &Agent,
) -> Vec<BackupId> {
    let started = Instant::now();
    loop {
        let ids = backup_ids(store, source).await;
        if ids.len() >= count {
            return ids;
        }
        assert!(
            started.elapsed() < timeout,
            "{} backups after {timeout:?}, expected {count}; agent log:\n{}",
            ids.len(),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every complete segment of `tli` in the archive, in order, checked to have no gap.
pub async fn complete_segments(
    store: &dyn Store,
    source: &SourceName,
    tli: TimelineId,
) -> Vec<String> {
    let seg = WalSegSize::DEFAULT;
    let catalog = WalCatalog::load(store, source, seg)
        .await
        .expect("list the archive");
    let mut names = Vec::new();
    let mut previous = None;
    for (segno, objects) in catalog.segments(tli) {
        if let Some(previous) = previous {
            assert_eq!(
                segno.as_u64(),
                u64::from(previous) + 1,
                "gap in the archive of timeline {tli} before {}",
                xlog_file_name(tli, segno, seg)
            );
        }
        previous = Some(u32::try_from(segno.as_u64()).expect("small segment numbers"));
        if objects.complete {
            names.push(xlog_file_name(tli, segno, seg));
        }
    }
    names
}

/// Fetches a segment back through the read path `wal-fetch` uses.
pub async fn fetch_segment(store: &dyn Store, source: &SourceName, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join(name);
    let fetched = walfetch::wal_fetch(store, source, name, &dest)
        .await
        .expect("wal-fetch");
    assert_eq!(
        fetched,
        walfetch::Fetched::Found,
        "{name} is not in the archive"
    );
    std::fs::read(&dest).expect("read the fetched segment")
}

/// Asserts that every complete segment equals the server's own file in `pg_wal`.
/// Returns how many were compared.
pub async fn assert_byte_identical(
    store: &dyn Store,
    source: &SourceName,
    tli: TimelineId,
    pg_wal: &Path,
) -> usize {
    let names = complete_segments(store, source, tli).await;
    let mut compared = 0;
    for name in &names {
        let original = match std::fs::read(pg_wal.join(name)) {
            Ok(bytes) => bytes,
            // Recycled by a checkpoint after the slot moved past it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => panic!("read {name} from pg_wal: {err}"),
        };
        let fetched = fetch_segment(store, source, name).await;
        assert!(
            fetched == original,
            "archived {name} differs from the server's file"
        );
        compared += 1;
    }
    compared
}
