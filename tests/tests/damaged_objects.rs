//! A damaged object in the store: each command's error line names the object and the cause,
//! then gives exactly one fix, the one that fits the command. Regression: the object
//! decoder used to add a fix of its own ("archive it again from the source") before the
//! command's.

use logship::store::Store;
use logship::store::fs::FsStore;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec, HEADER_LEN};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize, xlog_file_name};
use logship_tests::agent::{last_stderr_line, logship};

const MIB: u64 = 1 << 20;

fn seg() -> WalSegSize {
    WalSegSize::new(MIB).unwrap()
}

/// A file store holding the identity of source `main`.
async fn archive() -> (tempfile::TempDir, FsStore, SourceName) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let source = SourceName::new("main").unwrap();
    let identity = SourceIdentity::Postgres {
        system_id: 7,
        wal_seg_size: seg(),
    };
    logship::identity::record_identity(&store, &source, &identity)
        .await
        .unwrap();
    (dir, store, source)
}

/// Stores `content` at `key`, framed, then cut after `keep` payload bytes: an upload that
/// stopped short.
async fn put_truncated(store: &FsStore, key: &str, content: &[u8], keep: usize) {
    let mut stored = object::encode(content, Codec::None);
    stored.truncate(HEADER_LEN + keep);
    store.put(key, stored.into()).await.unwrap();
}

#[tokio::test]
async fn wal_fetch_of_a_truncated_segment() {
    let (dir, store, source) = archive().await;
    let segno = SegmentNo::new(3);
    let key = WalKey::Segment {
        tli: TimelineId::FIRST,
        segno,
    }
    .format(&source, seg());
    put_truncated(&store, &key, &vec![0x5A; MIB as usize], 100).await;

    let dest = dir.path().join("RECOVERYXLOG");
    let file = xlog_file_name(TimelineId::FIRST, segno, seg());
    let out = logship(
        &[
            "--store",
            store.url(),
            "wal-fetch",
            &file,
            &dest.display().to_string(),
        ],
        &[],
    );
    assert!(out.status.code().is_some_and(|code| code > 125), "{out:?}");
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: object {key} is corrupt: object payload is 100 bytes but its header says 1048576: it is truncated or has trailing bytes (the archived copy is damaged; restore to a target before it, or recover the object from a replica of the store)"
        )
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn list_with_a_truncated_identity() {
    let (_dir, store, _source) = archive().await;
    let key = "main/identity";
    let stored = store.get(key).await.unwrap();
    store.put(key, stored.slice(..10)).await.unwrap();

    let out = logship(&["--store", store.url(), "list", "--source", "main"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: in store {}: object {key} is corrupt: object is 10 bytes, shorter than the 40-byte header: it is truncated (restore it from a copy, or move the source's prefix aside)",
            store.url()
        )
    );
}

#[tokio::test]
async fn list_with_a_truncated_backup_meta() {
    let (_dir, store, source) = archive().await;
    let id = BackupId::new(TimelineId::FIRST, Lsn::new(0x30_0028));
    let key = ArchiveKey::BackupMeta { id }.format(&source);
    put_truncated(&store, &key, b"{\"format\": 1}", 4).await;

    let out = logship(&["--store", store.url(), "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: object {key} is corrupt: object payload is 4 bytes but its header says 13: it is truncated or has trailing bytes (recover it from a replica of the store, or delete it to drop that backup)"
        )
    );
}
