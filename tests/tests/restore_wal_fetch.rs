//! `wal-fetch` with read-ahead, as a restored server's `restore_command` runs it: a miss
//! spools the next complete segments, later requests are served from the spool, and the
//! spool never serves a segment replay has passed or one it could not verify.

use std::path::Path;
use std::sync::Arc;

use logship::store::Store;
use logship::store::fs::FsStore;
use logship::walfetch::spool::SPOOL_DIR;
use logship::walfetch::{Fetched, wal_fetch_prefetching};
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::{SegmentNo, TimelineId, WalSegSize, xlog_file_name};

const MIB: u64 = 1024 * 1024;

fn seg() -> WalSegSize {
    WalSegSize::new(MIB).unwrap()
}

fn tli() -> TimelineId {
    TimelineId::new(1).unwrap()
}

fn name(segno: u64) -> String {
    xlog_file_name(tli(), SegmentNo::new(segno), seg())
}

fn content(segno: u64) -> Vec<u8> {
    (0..MIB).map(|i| (i as u8) ^ (segno as u8)).collect()
}

fn segment_key(source: &SourceName, segno: u64) -> String {
    ArchiveKey::Segment {
        tli: tli(),
        segno: SegmentNo::new(segno),
    }
    .format(source, seg())
}

/// A file store holding complete segments `segnos` of timeline 1.
async fn store_with(segnos: &[u64]) -> (tempfile::TempDir, Arc<dyn Store>, SourceName) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FsStore::new(dir.path()).unwrap());
    let source = SourceName::new("main").unwrap();
    let identity = SourceIdentity::Postgres {
        system_id: 7,
        wal_seg_size: seg(),
    };
    logship::identity::record_identity(store.as_ref(), &source, &identity)
        .await
        .unwrap();
    for &segno in segnos {
        let stored = object::encode(&content(segno), Codec::Lz4);
        store
            .put(&segment_key(&source, segno), stored.into())
            .await
            .unwrap();
    }
    (dir, store, source)
}

fn spooled(pg_wal: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(pg_wal.join(SPOOL_DIR)) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[tokio::test]
async fn a_miss_spools_the_next_segments_and_later_requests_are_served_from_disk() {
    let (_store_dir, store, source) = store_with(&[3, 4, 5, 6, 7]).await;
    let data = tempfile::tempdir().unwrap();
    let pg_wal = data.path().join("pg_wal");
    std::fs::create_dir(&pg_wal).unwrap();
    let dest = pg_wal.join("RECOVERYXLOG");

    let fetch = |segno: u64| {
        let (store, source, dest) = (store.clone(), source.clone(), dest.clone());
        async move { wal_fetch_prefetching(store, &source, &name(segno), &dest, 3).await }
    };
    assert_eq!(fetch(3).await.unwrap(), Fetched::Found);
    assert_eq!(std::fs::read(&dest).unwrap(), content(3));
    assert_eq!(spooled(&pg_wal), [name(4), name(5), name(6)]);

    // Served from the spool: the store no longer needs to hold it.
    store.delete(&segment_key(&source, 4)).await.unwrap();
    assert_eq!(fetch(4).await.unwrap(), Fetched::Found);
    assert_eq!(std::fs::read(&dest).unwrap(), content(4));
    // A hit fetches nothing new.
    assert_eq!(spooled(&pg_wal), [name(5), name(6)]);

    // Replay jumped ahead (say, to a new timeline's segments): what it passed is dropped,
    // and a miss past the archive's end spools nothing.
    assert_eq!(fetch(7).await.unwrap(), Fetched::Found);
    assert_eq!(std::fs::read(&dest).unwrap(), content(7));
    assert!(spooled(&pg_wal).is_empty());
    assert_eq!(fetch(8).await.unwrap(), Fetched::NotInArchive);
}

#[tokio::test]
async fn only_verified_complete_segments_are_spooled() {
    let (store_dir, store, source) = store_with(&[3, 4]).await;
    // Segment 5 is damaged in the store, segment 6 is still in progress (a piece).
    let key5 = segment_key(&source, 5);
    let mut damaged = object::encode(&content(5), Codec::None);
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    store.put(&key5, damaged.into()).await.unwrap();
    let piece = ArchiveKey::Piece {
        tli: tli(),
        segno: SegmentNo::new(6),
        start: 0,
        end: 0x100,
    }
    .format(&source, seg());
    store
        .put(&piece, object::encode(&[9; 0x100], Codec::None).into())
        .await
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("RECOVERYXLOG");
    let fetch = |segno: u64| {
        let (store, source, dest) = (store.clone(), source.clone(), dest.clone());
        async move { wal_fetch_prefetching(store, &source, &name(segno), &dest, 8).await }
    };
    assert_eq!(fetch(3).await.unwrap(), Fetched::Found);
    assert_eq!(spooled(data.path()), [name(4)]);

    assert_eq!(fetch(4).await.unwrap(), Fetched::Found);
    // The damaged segment is reported by the request for it, naming the object.
    let err = fetch(5).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("object {key5} is corrupt: ")),
        "{err}"
    );
    // The segment in progress is served from its pieces, padded with zeros.
    assert_eq!(fetch(6).await.unwrap(), Fetched::Found);
    let served = std::fs::read(&dest).unwrap();
    assert_eq!(served.len() as u64, MIB);
    assert!(served[..0x100].iter().all(|&b| b == 9) && served[0x100..].iter().all(|&b| b == 0));
    drop(store_dir);
}

#[tokio::test]
async fn prefetch_zero_leaves_no_spool() {
    let (_store_dir, store, source) = store_with(&[3, 4]).await;
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("RECOVERYXLOG");
    let fetched = wal_fetch_prefetching(store, &source, &name(3), &dest, 0)
        .await
        .unwrap();
    assert_eq!(fetched, Fetched::Found);
    assert!(!data.path().join(SPOOL_DIR).exists());
}
