//! Small constructors shared by unit tests.

use jiff::Timestamp;
use logship_protocol::archive::backup::{BackupId, BackupMeta, CheckpointMode, TablespaceMeta};
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};

/// A timeline id; panics on 0.
pub fn tli(raw: u32) -> TimelineId {
    TimelineId::new(raw).unwrap()
}

/// An LSN from PostgreSQL notation (`0/3000158`).
pub fn lsn(text: &str) -> Lsn {
    text.parse().unwrap()
}

/// A timestamp from RFC 3339.
pub fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The meta of a backup on timeline `t` from `start` to `end` (LSNs) that ended at
/// `end_time`, five seconds after it started: a data directory of 100 bytes and no
/// tablespace.
pub fn backup_meta(t: u32, start: &str, end: &str, end_time: &str) -> BackupMeta {
    let start_lsn = lsn(start);
    let end_time = ts(end_time);
    BackupMeta {
        id: BackupId::new(tli(t), start_lsn),
        label: "test".into(),
        timeline: tli(t),
        start_lsn,
        end_lsn: lsn(end),
        start_time: end_time
            .checked_sub(jiff::SignedDuration::from_secs(5))
            .unwrap(),
        end_time,
        pg_version: "15.18".into(),
        pg_version_num: 150018,
        system_id: 7,
        wal_segment_size: WalSegSize::DEFAULT,
        raw_bytes: 100,
        stored_bytes: 40,
        tablespaces: vec![TablespaceMeta {
            oid: 0,
            location: None,
            chunks: 0,
            raw_bytes: 100,
            stored_bytes: 40,
            chunk_crcs: vec![],
        }],
        manifest: None,
        checkpoint: CheckpointMode::Fast,
    }
}
