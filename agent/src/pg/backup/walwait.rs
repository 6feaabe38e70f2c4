//! Waiting until the archive holds the WAL a backup needs, from its start LSN to its end LSN:
//! without it the backup cannot be restored, so its meta must not be written before.

use std::time::Duration;

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};
use tokio::time::Instant;

use super::BackupError;
use crate::pg::catalog::SegmentObjects;
use crate::store::Store;

/// How often the store is asked again.
const POLL: Duration = Duration::from_millis(200);

/// The WAL `[start, end)` on one timeline that must be archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeededWal {
    /// The timeline holding it.
    pub tli: TimelineId,
    /// The first byte needed.
    pub start: Lsn,
    /// Just past the last byte needed.
    pub end: Lsn,
}

/// Waits until the archive of `source` holds `needed`, polling every 200 ms; fails after
/// `timeout`. Each segment is listed on its own, once complete never again, so a poll costs
/// one small listing however large the archive is.
pub async fn wait_for_wal(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    needed: NeededWal,
    timeout: Duration,
) -> Result<(), BackupError> {
    let Some(last_byte) = needed.end.as_u64().checked_sub(1).map(Lsn::new) else {
        return Ok(());
    };
    let last = last_byte.segment_no(seg);
    let mut next = needed.start.segment_no(seg);
    let deadline = Instant::now() + timeout;
    while next <= last {
        // Of the last segment only the bytes before `end` are needed; of the others, all.
        let want = if next == last {
            needed.end.checked_sub(next.start_lsn(seg)).unwrap_or(0)
        } else {
            seg.bytes()
        };
        if durable_len(store, source, seg, needed.tli, next).await? >= want {
            next = next.next();
            continue;
        }
        if Instant::now() >= deadline {
            return Err(BackupError::WalNotArchived {
                end: needed.end,
                waited: timeout,
                source_name: source.to_string(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// How many bytes of one segment, from its start, are durable in the store.
async fn durable_len(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    tli: TimelineId,
    segno: SegmentNo,
) -> Result<u64, BackupError> {
    // The complete object's key is the prefix of its pieces' keys too.
    let prefix = WalKey::Segment { tli, segno }.format(source, seg);
    let mut objects = SegmentObjects::default();
    for object in store.list(&prefix).await? {
        match WalKey::parse(&object.key, seg) {
            Ok((_, WalKey::Segment { segno: s, .. })) if s == segno => objects.complete = true,
            Ok((
                _,
                WalKey::Piece {
                    segno: s,
                    start,
                    end,
                    ..
                },
            )) if s == segno => objects.pieces.extend(PieceRange::new(start, end)),
            _ => {}
        }
    }
    Ok(objects.durable_len(seg))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use logship_protocol::archive::object::{self, Codec};

    use super::*;
    use crate::store::fs::FsStore;

    const SEG: WalSegSize = WalSegSize::DEFAULT;

    fn lsn(text: &str) -> Lsn {
        text.parse().unwrap()
    }

    fn needed(start: &str, end: &str) -> NeededWal {
        NeededWal {
            tli: TimelineId::FIRST,
            start: lsn(start),
            end: lsn(end),
        }
    }

    async fn put(store: &dyn Store, key: WalKey) {
        let source = SourceName::new("main").unwrap();
        let data = object::encode(b"wal", Codec::None);
        store
            .put(&key.format(&source, SEG), data.into())
            .await
            .unwrap();
    }

    fn segment(segno: u64) -> WalKey {
        WalKey::Segment {
            tli: TimelineId::FIRST,
            segno: SegmentNo::new(segno),
        }
    }

    fn piece(segno: u64, start: u32, end: u32) -> WalKey {
        WalKey::Piece {
            tli: TimelineId::FIRST,
            segno: SegmentNo::new(segno),
            start,
            end,
        }
    }

    async fn wait(store: &dyn Store, needed: NeededWal) -> Result<(), BackupError> {
        let source = SourceName::new("main").unwrap();
        wait_for_wal(store, &source, SEG, needed, Duration::from_millis(300)).await
    }

    #[tokio::test]
    async fn segments_and_pieces_up_to_the_end_are_enough() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::new(dir.path()).unwrap());
        put(store.as_ref(), segment(3)).await;
        put(store.as_ref(), piece(4, 0, 0x100)).await;
        put(store.as_ref(), piece(4, 0x100, 0x2000)).await;
        wait(store.as_ref(), needed("0/3000028", "0/4002000"))
            .await
            .unwrap();
        // An end exactly at a segment boundary needs nothing of the next segment.
        wait(store.as_ref(), needed("0/3000028", "0/4000000"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn missing_wal_times_out_with_the_position_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::new(dir.path()).unwrap());
        put(store.as_ref(), segment(3)).await;
        put(store.as_ref(), piece(4, 0, 0x100)).await;
        let err = wait(store.as_ref(), needed("0/3000028", "0/4000200"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "WAL up to 0/4000200 is not archived yet after 300ms (is logship run streaming \
             source \"main\"?); the backup is not complete"
        );
        // A gap before the end is waited for too.
        let err = wait(store.as_ref(), needed("0/2000028", "0/3000100"))
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::WalNotArchived { .. }), "{err}");
    }
}
